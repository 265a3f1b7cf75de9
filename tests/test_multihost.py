"""2 processes x 4 CPU devices (jax.distributed on loopback) train with the losses of
1 process x 8 devices (length buckets on: the processes agree on each batch's length)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from vaujax import testing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _args(data, workdir, *extra, steps=STEPS):
  return [sys.executable, "-m", "vaujax.train", "--config",
          os.path.join(REPO, f"configs/vagpt_stage1.py:size=tiny,frames=4,steps={steps}"),
          "--workdir", workdir, f"--config.data.train_json={data['train_json']}",
          f"--config.data.feature_dir={data['features']}",
          f"--config.data.tokenizer={data['tokenizer']}", "--config.data.batch_size=4",
          "--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2",
          "--config.ckpt_every=3", "--config.progress=False",
          # each process trims its half batch to the length all processes agree on
          "--config.data.length_bucket=16", *extra]


def _env(devices):
  return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              PYTHONPATH=REPO, JAX_PLATFORMS="cpu")


def _two_processes(data, workdir, port, steps, *extra):
  return [subprocess.Popen(_args(data, workdir, "--config.distributed.num_processes=2",
                                 f"--config.distributed.coordinator=127.0.0.1:{port}",
                                 f"--config.distributed.process_id={p}", *extra, steps=steps),
                           env=_env(4), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT) for p in (0, 1)]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
  data = testing.make_tiny_vagpt_data(str(tmp_path / "data"), num_videos=8, num_frames=4)
  single = str(tmp_path / "single")
  subprocess.run(_args(data, single), env=_env(8), check=True, cwd=REPO, capture_output=True)
  multi = str(tmp_path / "multi")
  # the two processes run the paper config's scanned, rematerialised layers; the single one
  # runs them unrolled
  procs = _two_processes(data, multi, _free_port(), STEPS, "--config.model.scan_layers=True",
                         "--config.model.remat=True")
  outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
  assert all(p.returncode == 0 for p in procs), outputs[0][-3000:] + outputs[1][-3000:]
  read = lambda d: [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]  # noqa
  a, b = read(single), read(multi)
  assert [r["step"] for r in b] == list(range(1, STEPS + 1))
  np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], atol=1e-5)
  assert [r["seq_len"] for r in b] == [r["seq_len"] for r in a] and max(
      r["seq_len"] for r in a) < 256
  # process 0 logs its own rows; together the processes cover the same examples
  assert all(set(x["examples"]) <= set(sum((r["examples"] for r in a), []))
             for x in b)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_after_the_same_step(tmp_path):
  """A preemption signal that reaches one host only: both processes must force the same
  step's checkpoint (a collective save) and exit 143; the rerun finishes the run."""
  data = testing.make_tiny_vagpt_data(str(tmp_path / "data"), num_videos=8, num_frames=4)
  run, steps = str(tmp_path / "run"), 40
  procs = _two_processes(data, run, _free_port(), steps, "--config.ckpt_every=100")
  try:
    metrics, deadline = os.path.join(run, "metrics.jsonl"), time.time() + 300
    while time.time() < deadline and not (
        os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3):
      time.sleep(0.05)
    procs[0].send_signal(signal.SIGTERM)
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
  finally:
    for p in procs:
      p.kill()
  assert [p.returncode for p in procs] == [143, 143], outputs[0][-3000:] + outputs[1][-3000:]
  stopped = [int(o.split("preempted at step ")[1].split(";")[0]) for o in outputs]
  assert stopped[0] == stopped[1] < steps
  ckpts = sorted(int(n) for n in os.listdir(os.path.join(run, "checkpoints")) if n.isdigit())
  assert ckpts == [stopped[0]]
  procs = _two_processes(data, run, _free_port(), steps, "--config.ckpt_every=100")
  outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
  assert all(p.returncode == 0 for p in procs), outputs[0][-3000:] + outputs[1][-3000:]
  steps_logged = [json.loads(l)["step"] for l in open(os.path.join(run, "metrics.jsonl"))]
  assert steps_logged == list(range(1, steps + 1))
