"""Runs each notebook top to bottom, headless, and stores its outputs in the .ipynb file, so a
reader who opens it on a code host sees what every step prints and draws.

  .venv/bin/python colabs/store_outputs.py               # all three
  .venv/bin/python colabs/store_outputs.py 03_train_tiny

The run is Colab's free runtime as far as a CPU can be: JAX on one CPU device, the kernel on
this interpreter with the repository on PYTHONPATH, files under a fresh temporary folder. Each
code cell's metadata records the SHA-256 of the source its outputs came from
(`vaujax.source_sha256`): tests/test_colabs.py fails when a cell was edited after its outputs
were stored, so stale outputs cannot ship.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import nbclient
import nbformat

COLABS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(COLABS)
NOTEBOOKS = ["01_modules_tour", "02_ask_a_video", "03_train_tiny"]


def source_sha256(source: str) -> str:
  return hashlib.sha256(source.encode()).hexdigest()


def store(name: str) -> None:
  path = os.path.join(COLABS, name + ".ipynb")
  nb = nbformat.read(path, as_version=4)
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  with tempfile.TemporaryDirectory() as work:
    env.update(PYTHONPATH=os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p),
               JAX_PLATFORMS="cpu", TMPDIR=work)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": REPO}})
    client.execute(env=env)
  for cell in nb.cells:
    if cell.cell_type == "code":
      cell.metadata["vaujax"] = {"source_sha256": source_sha256(cell.source)}
  nbformat.write(nb, path)
  print(f"stored the outputs of {path}")


if __name__ == "__main__":
  for notebook in sys.argv[1:] or NOTEBOOKS:
    store(notebook)
