"""What several benchmark modules share and the runner does not run as a benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def json_from_child(module: str, *args: str, env: dict | None = None, echo: bool = False,
                    timeout: float | None = None):
  """Runs `python -m <module> *args` in a fresh process at the project root; -> the JSON value
  its last stdout line holds.

  For settings that are fixed per process (XLA flags, malloc, a fresh heap). `env` updates the
  environment. `echo` prints the child's other stdout lines and lets its stderr through.
  `timeout` (seconds) kills a child that runs longer.
  """
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        env={**os.environ, **(env or {})}, text=True, stdout=subprocess.PIPE,
                        stderr=None if echo else subprocess.PIPE, timeout=timeout)
  if proc.returncode:
    raise RuntimeError(f"{module} {' '.join(args)}: child process failed ({proc.returncode})"
                       + (f":\n{proc.stderr[-3000:]}" if proc.stderr else ""))
  *lines, last = proc.stdout.rstrip("\n").split("\n")
  if echo and lines:
    print("\n".join(lines), flush=True)
  return json.loads(last)


# The command line of every module (`python -m benchmarks.<name> --help`): absl flags through
# vaujax.app.cli, like every vaujax command. `python -m benchmarks` calls the modules' main().

def define_json_flag(fv, default: str | None = None) -> None:
  """`--json FILE`: where the rows go (with the Python version), as `python -m benchmarks`."""
  from absl import flags
  flags.DEFINE_string("json", default, "write the rows and the Python version to this JSON file"
                      + ("" if default else " (default: print only)"), flag_values=fv)


def check_json(path: str) -> None:
  """Before any benchmark runs: the --json file can be written (its folder exists)."""
  from vaujax.errors import InputError
  if "://" in path:   # a gs:// URL: no folders to check, written whole at the end
    return
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise InputError(path, f"output folder {folder} does not exist")
  if os.path.isdir(path):
    raise InputError(path, "is a directory, not a JSON file")


def write_json(path: str, rows: list) -> None:
  from vaujax import files   # a local file or a gs:// URL
  files.write_json(path, {"rows": rows, "python": sys.version}, indent=2)
  print(f"wrote {path}")


def int_list(fv, name: str) -> list[int]:
  """A comma-separated list flag as positive ints, or the one-line error naming the flag."""
  from vaujax.app import cli
  try:
    values = [int(v) for v in fv[name].value]
  except ValueError:
    raise cli.fail(f"--{name}", f"expected comma-separated integers, got "
                                f"{','.join(fv[name].value)!r}") from None
  if not values or min(values) < 1:
    raise cli.fail(f"--{name}", "expected one or more positive integers")
  return values


def run_module(doc: str, define_flags, rows, argv=None):
  """Parses `argv` into the module's flags, checks --json, runs `rows(fv)` (-> its rows), writes
  them when --json is given; --help, bad flags and bad inputs as `vaujax.app.cli.run`."""
  from vaujax.app import cli

  def main(fv):
    if fv.json:
      check_json(fv.json)
    result = rows(fv)
    if fv.json:
      write_json(fv.json, result)
    return result

  return cli.run(doc, define_flags, main, argv)
