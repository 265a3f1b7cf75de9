"""Fault injection: SIGTERM and SIGKILL mid-job, a checkpoint write that fails (disk full), a
failing example inside the Grain pipeline, NaN in features, and long bf16 training. After each
the job resumes or reports clearly, and nothing complete is lost or replaced by a half file."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import vagpt_stage1
from vaujax import testing
from vaujax.data import features
from vaujax.errors import InputError
from vaujax.runs import checkpoint
from vaujax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=REPO,
           JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return testing.make_tiny_vagpt_data(str(tmp_path_factory.mktemp("data")), num_videos=8,
                                      num_frames=4)


def _config(paths, steps, **data_overrides):
  c = vagpt_stage1.get_config(f"size=tiny,frames=4,steps={steps}")
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.batch_size = paths["tokenizer"], 4
  c.data.update(data_overrides)
  c.progress, c.ckpt_every = False, 5
  c.mesh.update(dict(data=2, fsdp=2, tensor=2))
  return c


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l) for l in f]


def _copy_features(paths, tmp_path):
  import shutil
  out = str(tmp_path / "features")
  shutil.copytree(paths["features"], out)
  return out


def test_failed_checkpoint_write_stops_clearly_and_keeps_the_last_one(data, tmp_path,
                                                                     monkeypatch):
  workdir = str(tmp_path / "w")
  original = ocp.CheckpointManager.save

  def disk_full(self, step, *args, **kwargs):
    if step == 10:
      raise OSError(errno.ENOSPC, "No space left on device")
    return original(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full)
  with pytest.raises(checkpoint.CheckpointError) as e:
    loop.train_and_evaluate(_config(data, 12), workdir)
  message = str(e.value)
  assert "step 10" in message and "No space left" in message
  assert "last complete checkpoint is step 5" in message and workdir in message
  monkeypatch.setattr(ocp.CheckpointManager, "save", original)
  history = loop.train_and_evaluate(_config(data, 12), workdir)     # space is back: resume
  assert [h["step"] for h in history] == list(range(6, 13))


def test_a_metrics_line_torn_by_a_kill_does_not_block_the_resume(data, tmp_path, capsys):
  # SIGKILL can cut one write() short at a page boundary: the log ends in half a JSON line.
  workdir = str(tmp_path / "w")
  loop.train_and_evaluate(_config(data, 7), workdir)
  log = os.path.join(workdir, "metrics.jsonl")
  with open(log, "a") as f:
    f.write('{"loss": 1.23, "step": 8, "exam')
  history = loop.train_and_evaluate(_config(data, 9), workdir)
  assert "1 unreadable line(s)" in capsys.readouterr().out
  assert [h["step"] for h in history] == [8, 9]     # resumed from the final step-7 checkpoint
  assert [r["step"] for r in _losses(workdir)] == list(range(1, 10))


def test_a_failing_example_in_the_pipeline_names_the_file(data, tmp_path):
  feature_dir = _copy_features(data, tmp_path)
  victim = sorted(os.listdir(feature_dir))[0]
  with open(os.path.join(feature_dir, victim), "wb") as f:
    f.write(b"not a zip any more")
  workdir = str(tmp_path / "w")
  with pytest.raises(InputError) as e:   # strict mode: the bad file stops training, named
    loop.train_and_evaluate(_config(data, 40, feature_dir=feature_dir, skip_bad=False), workdir)
  assert victim in str(e.value) and "not a readable feature file" in str(e.value)
  # skip-and-count mode: the example is dropped up front and training runs
  history = loop.train_and_evaluate(_config(data, 4, feature_dir=feature_dir), str(tmp_path / "s"))
  assert len(history) == 4


def test_nan_in_features_never_reaches_the_loss(data, tmp_path, capsys):
  feature_dir = _copy_features(data, tmp_path)
  victim = sorted(os.listdir(feature_dir))[1]
  path = os.path.join(feature_dir, victim)
  arrays = dict(np.load(path))
  arrays["tower_patches"][0, 0, 0] = np.nan
  np.savez(path, **arrays)
  with pytest.raises(InputError, match="NaN"):
    loop.train_and_evaluate(_config(data, 40, feature_dir=feature_dir, skip_bad=False),
                            str(tmp_path / "strict"))
  history = loop.train_and_evaluate(_config(data, 4, feature_dir=feature_dir),
                                    str(tmp_path / "skip"))
  out = capsys.readouterr().out
  assert "skipped" in out and "NaN" in out
  assert all(np.isfinite(h["loss"]) for h in history)
  with pytest.raises(ValueError, match="NaN"):          # nor can NaN be written
    features.write_features(str(tmp_path / "x.npz"), {"tower_patches": np.full((2, 3), np.nan)})


def _cli(paths, workdir, steps):
  return [sys.executable, "-m", "vaujax.train", "--config",
          os.path.join(REPO, f"configs/vagpt_stage1.py:size=tiny,frames=4,steps={steps}"),
          "--workdir", workdir, f"--config.data.train_json={paths['train_json']}",
          f"--config.data.feature_dir={paths['features']}",
          f"--config.data.tokenizer={paths['tokenizer']}", "--config.data.batch_size=8",
          "--config.ckpt_every=50", "--config.progress=False"]


@pytest.mark.slow
def test_sigterm_checkpoints_the_current_step_and_resumes_exactly(data, tmp_path):
  subprocess.run(_cli(data, str(tmp_path / "ref"), 20), env=ENV, check=True, cwd=REPO,
                 capture_output=True)
  reference = _losses(str(tmp_path / "ref"))
  run = str(tmp_path / "run")
  proc = subprocess.Popen(_cli(data, run, 20), env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while time.time() < deadline:
    if os.path.exists(os.path.join(run, "metrics.jsonl")) and len(_losses(run)) >= 7:
      break
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 143, out[-2000:]
  stopped = len(_losses(run))
  assert 7 <= stopped < 20 and f"preempted at step {stopped}" in out
  # ckpt_every=50: the only checkpoint is the one SIGTERM asked for
  assert sorted(int(n) for n in os.listdir(os.path.join(run, "checkpoints"))
                if n.isdigit()) == [stopped]
  subprocess.run(_cli(data, run, 20), env=ENV, check=True, cwd=REPO, capture_output=True)
  resumed = _losses(run)
  assert [r["step"] for r in resumed] == list(range(1, 21))
  np.testing.assert_allclose([r["loss"] for r in resumed], [r["loss"] for r in reference],
                             atol=1e-6)


def test_sigterm_during_a_save_that_was_not_asked_for_stops_after_the_next_step(
    data, tmp_path, monkeypatch):
  """SIGTERM lands inside step 3's (skipped, non-forced) save: training must go on to step 4,
  write that checkpoint and say so, not claim a step-3 checkpoint that does not exist."""
  original = checkpoint.Checkpointer.save

  def save_then_signal(self, step, *args, **kwargs):
    saved = original(self, step, *args, **kwargs)
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)   # the handler runs before save returns
    return saved

  monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_signal)
  c = _config(data, 8)
  c.ckpt_every = 50
  workdir = str(tmp_path / "w")
  with pytest.raises(loop.Preempted, match="preempted at step 4"):
    loop.train_and_evaluate(c, workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  assert sorted(int(n) for n in os.listdir(ckpts) if n.isdigit()) == [4]
  monkeypatch.setattr(checkpoint.Checkpointer, "save", original)
  loop.train_and_evaluate(c, workdir)                    # resumes from step 4
  assert [r["step"] for r in _losses(workdir)] == list(range(1, 9))


@pytest.mark.slow
def test_sigkill_during_feature_extraction_loses_nothing(data, tmp_path):
  from vaujax.data import synthetic
  synthetic.generate(str(tmp_path / "syn"), synthetic.SyntheticConfig(num_videos=10, seconds=4))
  videos, out = str(tmp_path / "syn" / "videos"), str(tmp_path / "feats")
  args = [sys.executable, "-m", "vaujax.app.features", "--videos", videos, "--out", out,
          "--encoder", "tiny", "--num_frames", "4"]
  proc = subprocess.Popen(args, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline and not (os.path.isdir(out) and any(
      n.endswith(".npz") and ".tmp" not in n for n in os.listdir(out))):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done = sorted(n for n in os.listdir(out) if n.endswith(".npz") and ".tmp" not in n)
  assert 1 <= len(done) <= 10
  for name in done:                       # every file that looks complete is complete
    features.read_features(os.path.join(out, name), {"tower_patches": None, "timestamps": ()})
  mtimes = {n: os.path.getmtime(os.path.join(out, n)) for n in done}
  subprocess.run(args, env=ENV, cwd=REPO, check=True, capture_output=True)
  final = sorted(n for n in os.listdir(out) if n.endswith(".npz") and ".tmp" not in n)
  assert len(final) == 10
  assert all(os.path.getmtime(os.path.join(out, n)) == t for n, t in mtimes.items())  # kept


@pytest.mark.slow
def test_bf16_training_of_the_tiny_config_stays_finite_for_1000_steps(data, tmp_path):
  c = _config(data, 1000)
  c.dtype = "bfloat16"
  c.ckpt_every, c.log_every = 1000, 100
  c.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  history = loop.train_and_evaluate(c, str(tmp_path / "bf16"))
  losses = np.array([h["loss"] for h in history])
  assert len(losses) == 1000 and np.isfinite(losses).all()
  assert np.isfinite([h["grad_norm"] for h in history]).all()
  assert losses[-50:].mean() < 0.5 * losses[:50].mean()
