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
