"""Runs every benchmark module (or those named by --only), prints one table, writes JSON.

  python -m benchmarks                          # all
  python -m benchmarks --only=llm_decode        # one (or several: --only=vision,llm_decode)
  python -m benchmarks --json=out.json

Each module `benchmarks/<name>.py` has `main() -> list[dict]`, rows with at least
{"benchmark", "metric", "vaujax", "reference", "ratio"}, and its own command line
(`python -m benchmarks.<name> --help`).
"""

import importlib
import os
import pkgutil
import time

from absl import flags

from benchmarks import common

SKIP = {"common", "__main__"}


def _modules():
  here = os.path.dirname(__file__)
  return sorted(m.name for m in pkgutil.iter_modules([here]) if m.name not in SKIP)


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("only", None, f"benchmarks to run, comma-separated, of "
                    f"{','.join(_modules())} (default: all)", flag_values=fv)
  common.define_json_flag(fv, "benchmarks_results.json")


def run(argv=None):
  """`python -m benchmarks`: `argv` as on the command line (argv[0] the program)."""
  from vaujax.app import cli
  return cli.run(__doc__, define_flags, run_flags, argv)


def main(argv=None):
  """As before: `argv` without the program name (default sys.argv[1:]); -> the rows."""
  return run(None if argv is None else ["python -m benchmarks", *argv])


def run_flags(fv: flags.FlagValues) -> list:
  from vaujax.app import cli
  names = fv.only or _modules()
  unknown = [n for n in names if n not in _modules()]
  if unknown:
    raise cli.fail("--only", f"no benchmark {unknown[0]!r}; one of {', '.join(_modules())}")
  common.check_json(fv.json)
  # Both sides of every row run in this process, so both get these settings (host_memory.py
  # measures them against none in child processes).
  from vaujax import cpu_runtime
  print(f"host memory: {cpu_runtime.reuse_host_memory()}", flush=True)
  rows = []
  for name in names:
    start = time.perf_counter()
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"== {name}", flush=True)
    rows.extend(module.main())
    print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
  print(format_table(rows))
  common.write_json(fv.json, rows)
  return rows


def format_table(rows):
  cols = ["benchmark", "metric", "vaujax", "reference", "ratio"]
  fmt = lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v)  # noqa: E731
  cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
            for i, c in enumerate(cols)]
  line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa
  return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


if __name__ == "__main__":
  run()
