"""The Colab notebooks in colabs/ run top to bottom, headless, on CPU, and show what they promise.

Each notebook runs in a fresh IPython kernel on this interpreter (a `python3` kernelspec written
under the test's tmp dir and put first on JUPYTER_PATH, so a user-level `python3` spec pointing
at another Python cannot take over), with the repo on PYTHONPATH, JAX on CPU and TMPDIR inside
the test's tmp dir (the notebooks write only under `tempfile.mkdtemp()`). The kernel gets 2
simulated CPU devices (not the suite's 8): the training cells still shard over every device
(FSDP), at a quarter of the collectives' cost on this 2-core machine.
"""

import json
import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLABS = os.path.join(REPO, "colabs")
NOTEBOOKS = ["01_modules_tour", "02_ask_a_video", "03_train_tiny"]
# Text each notebook must print (besides showing at least one PNG figure).
EXPECTED_TEXT = {
    "01_modules_tour": ["kept per frame:", "context + content tokens:", "| logits (1, 21, 256)"],
    "02_ask_a_video": ["greedy generation matches HF generate", '"anomaly":', '"start_s":',
                       '"frame_scores":', '"explanation":'],
    "03_train_tiny": ["held-out frame AUC", "stage one: loss", "stage two (SETS"],
}


def _read(name):
  return nbformat.read(os.path.join(COLABS, name + ".ipynb"), as_version=4)


def _kernel_env(tmp_path, monkeypatch):
  """JUPYTER_PATH with a `python3` kernelspec on sys.executable; the kernel's environment."""
  spec = tmp_path / "jupyter" / "kernels" / "python3"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "Python 3 (vaujax tests)", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  from jupyter_client.kernelspec import KernelSpecManager
  assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
  work = tmp_path / "tmp"
  work.mkdir()
  pythonpath = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
  xla_flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                       if not f.startswith("--xla_force_host_platform_device_count"))
  return dict(os.environ, PYTHONPATH=pythonpath, JAX_PLATFORMS="cpu", TMPDIR=str(work),
              XLA_FLAGS=f"{xla_flags} --xla_force_host_platform_device_count=2".strip()), work


def _shown(outputs) -> tuple[str, bool]:
  """(the text the outputs print or return, whether they show a PNG figure)."""
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  text += "".join(o.get("data", {}).get("text/plain", "") for o in outputs
                  if o.output_type in ("execute_result", "display_data"))
  return text, any("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_stores_the_outputs_of_its_cells(name):
  """A reader on a code host sees every step's output: the stored outputs come from one run of
  these very cells, top to bottom (colabs/store_outputs.py), without errors."""
  from colabs.store_outputs import source_sha256
  nb = _read(name)
  assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# vaujax")
  setup = nb.cells[1].source
  assert "google.colab" in setup and "YOUR_ORG" not in setup and 'VAUJAX_SOURCE = ""' in setup
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
      "run colabs/store_outputs.py: the stored outputs are not one top-to-bottom run"
  for cell in code:
    assert cell.metadata.get("vaujax", {}).get("source_sha256") == source_sha256(cell.source), \
        f"{name}: a cell changed after its outputs were stored; run colabs/store_outputs.py"
  outputs = [o for c in code for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  text, figure = _shown(outputs)
  for expected in EXPECTED_TEXT[name]:
    assert expected in text, f"{name}: {expected!r} not in the stored outputs"
  assert figure, f"{name}: no stored figure"


def test_setup_installs_the_pinned_jax_build_of_the_runtime():
  """The setup cell pins the JAX of pyproject.toml, per runtime, and notebook 02 pins its HF
  reference to the test extra's versions."""
  import re
  pyproject = open(os.path.join(REPO, "pyproject.toml")).read()
  jax_floor = re.search(r'"jax>=([0-9.]+),', pyproject).group(1)
  for name in NOTEBOOKS:
    setup = _read(name).cells[1].source
    assert f'JAX_VERSION = "{jax_floor}"' in setup
    for build in ('f"jax[tpu]=={JAX_VERSION}"', 'f"jax[cuda12]=={JAX_VERSION}"',
                  'f"jax=={JAX_VERSION}"'):
      assert build in setup
  for name in ("02_ask_a_video", "03_train_tiny"):   # training uses every device (FSDP)
    code = "".join(c.source for c in _read(name).cells if c.cell_type == "code")
    assert "fsdp=-1, tensor=1, devices=-1" in code and "devices=1)" not in code
    assert "batch_size=BATCH" in code
  setup = _read("02_ask_a_video").cells[1].source
  for package in ("transformers", "torch"):
    pinned = re.search(rf'"{package}(==|>=)([0-9.]+)', pyproject).group(2)
    assert f'"{package}=={pinned}"' in setup


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path, monkeypatch):
  env, work = _kernel_env(tmp_path, monkeypatch)
  before = sorted(os.listdir(COLABS))
  nb = _read(name)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": REPO}})
  client.execute(env=env)   # raises CellExecutionError, with the traceback, if a cell fails
  outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  text, figure = _shown(outputs)
  for expected in EXPECTED_TEXT[name]:
    assert expected in text, f"{name}: {expected!r} not printed"
  assert figure, f"{name}: no figure shown"
  assert sorted(os.listdir(COLABS)) == before, "a notebook wrote into colabs/"
  assert [d for d in os.listdir(work) if d.startswith("vaujax_")], "no tempfile.mkdtemp() dir"
