"""One CLI style for every command: absl flags, ml_collections configs, one-line errors.

A command module defines

    def define_flags(fv: flags.FlagValues) -> None   # its flags, each with a help text
    def main(fv: flags.FlagValues)                   # the work, reading fv.<flag>

and runs as `cli.run(__doc__, define_flags, main, argv)`. That gives every command the same
behaviour:
  - `--help` (or `-h`) prints the module docstring and every flag with its meaning, exit 0;
  - a bad flag, or an `InputError` (a missing or malformed input), prints one line
    `error: <file or flag>: <problem>` and exits 2; `--verbose` shows the traceback instead;
  - orbax's and absl's routine warnings stay quiet unless `--verbose` is given.
Flags live in a fresh `FlagValues` per call, so commands (and tests calling them in one
process) never collide on flag names.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from typing import Callable, Optional, Sequence

from absl import flags

from vaujax.errors import InputError

HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull", "-help")
USAGE_ERROR = 2


def fail(source: str, problem: str) -> InputError:
  """The error for a bad flag value: `raise cli.fail("--run", "is required")`."""
  return InputError(source, problem)


def require(fv: flags.FlagValues, *names: str) -> None:
  """Raises the one-line error for the first of `names` that was not given."""
  for name in names:
    value = fv[name].value
    if value is None or value == "" or value == []:
      raise fail(f"--{name}", "is required (see --help)")


def help_text(doc: str, fv: flags.FlagValues) -> str:
  """The module docstring, then every flag with its help and default."""
  lines = [textwrap.dedent(doc or "").strip(), "", "flags:"]
  for name in sorted(fv):
    flag = fv[name]
    if flag.name != name or name.startswith("config."):   # short names; per-key overrides
      continue
    default = "" if flag.default in (None, "") else f" (default: {flag.default_as_str})"
    lines.append(f"  --{name}: {flag.help}{default}")
  return "\n".join(lines) + "\n"


def quiet_logs(verbose: bool) -> None:
  """Silences routine library chatter: orbax's read-only / missing-metadata warnings on every
  checkpoint read, absl's INFO lines, and JAX's probing of accelerator backends."""
  level = logging.INFO if verbose else logging.ERROR
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)
  for name in ("absl", "orbax", "jax._src.xla_bridge", "jax._src.compiler"):
    logging.getLogger(name).setLevel(level)
  # orbax logs each failed async write with its traceback; the failure itself reaches vaujax
  # and is printed as one `error:` line (a full disk: runs.checkpoint)
  # and a full disk fails JAX's compilation-cache writes too (a warning each) and leaves
  # tensorstore callbacks on orbax's closed event loops (a traceback each): noise after the line
  if verbose:
    logging.getLogger("absl").removeFilter(_not_from_orbax)
  else:
    logging.getLogger("absl").addFilter(_not_from_orbax)
    import warnings
    warnings.filterwarnings("ignore", message="Error writing persistent compilation cache")
    if sys.unraisablehook is sys.__unraisablehook__:
      sys.unraisablehook = _quiet_closed_loops


def _quiet_closed_loops(unraisable) -> None:
  """sys.unraisablehook: drops "Event loop is closed" (see quiet_logs), prints the rest."""
  value = unraisable.exc_value
  if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
    sys.__unraisablehook__(unraisable)


def _not_from_orbax(record: logging.LogRecord) -> bool:
  return f"{os.sep}orbax{os.sep}" not in record.pathname


# Set by the `vaujax` console script: the command it dispatches is the whole process.
ends_the_process = False


def run(doc: str, define_flags: Callable[[flags.FlagValues], None],
        main: Callable[[flags.FlagValues], object], argv: Optional[Sequence[str]] = None):
  """Parses `argv` (default sys.argv) into fresh flags and runs `main`; see the module doc."""
  argv_is_the_process = argv is None or ends_the_process   # the process ends with the command
  argv = list(sys.argv if argv is None else argv)
  fv = flags.FlagValues()
  import inspect
  if len(inspect.signature(define_flags).parameters) > 1:
    define_flags(fv, argv)   # flags that depend on argv (a run's config: `define_run_flags`)
  else:
    define_flags(fv)
  flags.DEFINE_bool("verbose", False, "show tracebacks and library log lines", flag_values=fv)
  if any(a in HELP_FLAGS for a in argv[1:]):
    sys.stdout.write(help_text(doc, fv))
    raise SystemExit(0)
  try:
    rest = fv(argv)
    if len(rest) > 1:
      raise InputError(rest[1], "unexpected positional argument (flags are --name=value)")
  except flags.Error as e:
    _exit_with(f"{_flag_problem(e)}", verbose="--verbose" in argv)
  except InputError as e:
    _exit_with(str(e), verbose="--verbose" in argv)
  except (KeyError, AttributeError, TypeError, ValueError) as e:   # a --config.key override
    _exit_with(_override_problem(e, argv), verbose="--verbose" in argv)
  quiet_logs(fv.verbose)
  try:
    _check_config_files(fv)
    return main(fv)
  except InputError as e:
    if fv.verbose:
      raise
    _exit_with(str(e), verbose=False, whole_process=argv_is_the_process)


# -- commands that read a run directory (evaluate, infer) ----------------------------------------

_RUN_PROBLEMS: dict = {}

def _flag_value(argv: Sequence[str], name: str) -> Optional[str]:
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def define_run_flags(fv: flags.FlagValues, argv: Sequence[str]) -> None:
  """`--run DIR` and `--config.key=value` overrides of the config saved in DIR/run/.

  The run's config is read before parsing, so that every saved key can be overridden; a run
  that cannot be read is reported by `load_run_from_flags`, after parsing.
  """
  import ml_collections
  from ml_collections import config_flags
  from vaujax.runs import run_dir
  flags.DEFINE_string("run", None, "training workdir of the run (holds run/ and checkpoints/)",
                      flag_values=fv)
  path, config, problem = _flag_value(argv, "run"), ml_collections.ConfigDict(), None
  if path and not any(a in HELP_FLAGS for a in argv[1:]):
    try:
      config = run_dir.load_run(path).config
    except InputError as e:
      problem = e
  _RUN_PROBLEMS[id(fv)] = problem   # reported after parsing, by load_run_from_flags
  config_flags.DEFINE_config_dict(
      "config", config, "overrides of the run's saved config, e.g. --config.data.classes=a,b "
      "(each is printed; the saved run is not changed)", flag_values=fv, sys_argv=list(argv))


def load_run_from_flags(fv: flags.FlagValues, log=print):
  """The run named by --run with --config overrides applied; each override is printed."""
  from vaujax.runs import run_dir
  require(fv, "run")
  problem = _RUN_PROBLEMS.pop(id(fv), None)
  if problem is not None:
    raise problem
  run = run_dir.load_run(fv.run)
  given = fv.config
  for line in run_dir.diff_configs(run.saved, given):
    log(f"override of the run's saved config: {line}")
  run.config = given
  return run


def _check_config_files(fv: flags.FlagValues) -> None:
  """ml_collections defers a config file's load error to first use; report it up front."""
  for name in fv:
    value = fv[name].value
    if type(value).__name__ == "_ErrorConfig":
      error = getattr(value, "_error", None)
      lines = [l.strip() for l in str(error).splitlines() if l.strip()]
      raise InputError(f"--{name}", f"cannot load the config file ({lines[-1] if lines else error})")


def _override_problem(e: Exception, argv: Sequence[str]) -> str:
  """ml_collections raises plain KeyError / AttributeError / TypeError for a bad
  `--config.key=value`: name the flag and say what was wrong, on one line."""
  text = str(e).replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
  text = " ".join(text.strip("'\" ").split())
  if "Did you mean" in text:
    text = "no such config key; " + text[text.index("Did you mean"):].rstrip("'\" ")
  for arg in argv[1:]:
    name = arg.split("=", 1)[0]
    key = name.rsplit(".", 1)[-1]
    if name.startswith("--config.") and key in text:
      return f"{name}: {'no such config key' if text.strip(chr(39)) == key else text}"
  return f"--config: {text}"


def _flag_problem(e: Exception) -> str:
  text = str(e).strip().splitlines()[0]
  # absl: "flag --x=1: ..." / "Unknown command line flag 'x'"
  if text.startswith("flag --"):
    name, _, problem = text[5:].partition(": ")
    return f"{name.split('=')[0]}: {problem or 'bad value'}"
  if "Unknown command line flag" in text:
    name = text.split("'")[1] if "'" in text else "?"
    return f"--{name}: unknown flag (see --help)"
  return f"flags: {text}"


def _exit_with(message: str, verbose: bool, whole_process: bool = False) -> None:
  if verbose:
    import traceback
    traceback.print_exc()
  elif whole_process:
    _silence_aftermath()
  print(f"error: {message}", file=sys.stderr, flush=True)
  raise SystemExit(USAGE_ERROR)


def _silence_aftermath() -> None:
  """After the one-line error nothing else reaches stderr: a failed write can leave an
  asyncio task whose exception was never retrieved (orbax's serialization; logged by the
  `asyncio` logger when the task is collected), a background thread that dies with the same
  error, or an object whose __del__ raises at shutdown. Each would print a traceback."""
  import logging
  import threading
  logging.getLogger("asyncio").disabled = True
  threading.excepthook = lambda args: None
  sys.unraisablehook = lambda unraisable: None


# -- the persistent compilation cache -------------------------------------------------------------

CACHE_ENV = "VAUJAX_COMPILATION_CACHE"


def enable_compilation_cache() -> Optional[str]:
  """Points JAX's persistent compilation cache at `$VAUJAX_COMPILATION_CACHE` (default
  ~/.cache/vaujax/jax; empty: off), so a second call of a command on the same run compiles
  nothing. Every program is cached, however quick its compile. Returns the directory."""
  import os
  path = os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser("~"), ".cache", "vaujax",
                                                "jax"))
  if not path:
    return None
  import jax
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
