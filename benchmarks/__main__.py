"""Runs every benchmark module (or those named on the command line), prints one table, writes JSON.

  python -m benchmarks                 # all
  python -m benchmarks llm_decode      # one
  python -m benchmarks --json out.json

Each module `benchmarks/<name>.py` has `main() -> list[dict]`, rows with at least
{"benchmark", "metric", "vaujax", "reference", "ratio"}.
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time

SKIP = {"common", "__main__"}


def _modules():
  here = os.path.dirname(__file__)
  return sorted(m.name for m in pkgutil.iter_modules([here]) if m.name not in SKIP)


def main(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {_modules()})")
  parser.add_argument("--json", default="benchmarks_results.json")
  args = parser.parse_args(argv)
  # Both sides of every row run in this process, so both get these settings (host_memory.py
  # measures them against none in child processes).
  from vaujax import cpu_runtime
  print(f"host memory: {cpu_runtime.reuse_host_memory()}", flush=True)
  rows = []
  for name in args.names or _modules():
    start = time.perf_counter()
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"== {name}", flush=True)
    rows.extend(module.main())
    print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
  print(format_table(rows))
  with open(args.json, "w") as f:
    json.dump({"rows": rows, "python": sys.version}, f, indent=2)
  print(f"wrote {args.json}")


def format_table(rows):
  cols = ["benchmark", "metric", "vaujax", "reference", "ratio"]
  fmt = lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v)  # noqa: E731
  cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
            for i, c in enumerate(cols)]
  line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa
  return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


if __name__ == "__main__":
  main()
