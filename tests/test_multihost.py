"""4 processes x 2 CPU devices (jax.distributed on loopback) train with the losses of
1 process x 8 devices: each process reads its own shard of the data, only process 0 writes the
run's files (metrics, TensorBoard, run/), every process writes its checkpoint shard, and a
preempted or stopped run resumes (length buckets on: the processes agree on each batch's
length)."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from vaujax import testing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6
PROCESSES, DEVICES = 4, 2

# Runs `python -m vaujax.train` and records every file and folder the process opens for writing,
# creates or renames to (Python's audit events: metrics, TensorBoard, run/, orbax's metadata),
# as JSON in $VAUJAX_TEST_WRITES at exit. Tensorstore's array shards are written from C++ and
# are checked by their folders instead.
_RECORDING_TRAIN = """
import atexit, json, os, runpy, sys
written = set()
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
def hook(event, args):
  if event == "open" and isinstance(args[2], int) and args[2] & WRITE:
    path = args[0]
  elif event == "os.mkdir":
    path = args[0]
  elif event in ("os.rename", "os.replace"):
    path = args[1]
  else:
    return
  if isinstance(path, (str, os.PathLike)):
    written.add(os.path.abspath(os.fspath(path)))
sys.addaudithook(hook)
atexit.register(lambda: json.dump(sorted(written), open(os.environ["VAUJAX_TEST_WRITES"], "w")))
sys.argv[0] = "vaujax.train"
runpy.run_module("vaujax.train", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return testing.make_tiny_vagpt_data(str(tmp_path_factory.mktemp("data")), num_videos=8,
                                      num_frames=4)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _args(data, workdir, *extra, steps=STEPS):
  return ["--config",
          os.path.join(REPO, f"configs/vagpt_stage1.py:size=tiny,frames=4,steps={steps}"),
          "--workdir", workdir, f"--config.data.train_json={data['train_json']}",
          f"--config.data.feature_dir={data['features']}",
          f"--config.data.tokenizer={data['tokenizer']}", "--config.data.batch_size=4",
          "--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2",
          "--config.ckpt_every=3", "--config.progress=False",
          # each process trims its rows to the length all processes agree on
          "--config.data.length_bucket=16", *extra]


def _env(devices, **extra):
  return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              PYTHONPATH=REPO, JAX_PLATFORMS="cpu", **extra)


def _processes(data, workdir, port, steps, *extra, writes=None):
  """PROCESSES training processes of DEVICES devices each, configured through the environment
  variables of vaujax/train/distributed.py (what a SLURM or hand-made launch sets)."""
  procs = []
  for p in range(PROCESSES):
    env = _env(DEVICES, VAUJAX_COORDINATOR=f"127.0.0.1:{port}",
               VAUJAX_NUM_PROCESSES=str(PROCESSES), VAUJAX_PROCESS_ID=str(p))
    command = [sys.executable, "-m", "vaujax.train"]
    if writes:
      env["VAUJAX_TEST_WRITES"] = os.path.join(writes, f"process_{p}.json")
      command = [sys.executable, "-c", _RECORDING_TRAIN]
    log = tempfile.TemporaryFile()   # a file, not a pipe: nothing blocks on a full pipe
    procs.append(subprocess.Popen(command + _args(data, workdir, *extra, steps=steps), env=env,
                                  cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    procs[-1].log = log
  return procs


def _finish(procs, codes=None, timeout=600):
  """Waits for every process; once one has failed, the others (which would wait for it in a
  collective or at the distributed shutdown) get 30 s, then are killed. -> their outputs."""
  deadline, failed_at = time.time() + timeout, None
  while any(p.poll() is None for p in procs) and time.time() < deadline:
    if failed_at is None and any(p.returncode not in (None, 0, 143) for p in procs):
      failed_at = time.time()
    if failed_at is not None and time.time() > failed_at + 30:
      break
    time.sleep(0.2)
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.wait()
  outputs = []
  for p in procs:
    p.log.seek(0)
    outputs.append(p.log.read().decode(errors="replace"))
    p.log.close()
  expected = codes or [0] * len(procs)
  assert [p.returncode for p in procs] == expected, "\n".join(
      f"--- process {i}:\n{o[-2500:]}" for i, o in enumerate(outputs))
  return outputs


def _metrics(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _under(workdir, paths):
  return sorted(os.path.relpath(p, workdir) for p in paths if p.startswith(workdir + os.sep))


def test_launch_settings_come_from_the_config_or_the_environment():
  from configs import vagpt_stage1
  from vaujax.errors import InputError
  from vaujax.train import distributed
  config = vagpt_stage1.get_config("size=tiny")
  assert distributed.settings(config, {}) is None                        # one process
  env = {"VAUJAX_COORDINATOR": "10.0.0.1:1234", "VAUJAX_NUM_PROCESSES": "4",
         "VAUJAX_PROCESS_ID": "3"}
  assert distributed.settings(config, env) == dict(
      coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3)
  config.distributed.update(num_processes=2, coordinator="h:1", process_id=1)
  assert distributed.settings(config, env) == dict(coordinator_address="h:1", num_processes=2,
                                                   process_id=1)
  config.distributed.auto = True                      # TPU pods, SLURM: JAX discovers all
  assert distributed.settings(config, env) == {}
  config.distributed.update(auto=False, process_id=2)
  with pytest.raises(InputError, match="process_id"):
    distributed.settings(config, {})


def test_global_batch_is_checked_against_the_mesh_and_the_processes():
  from configs import vagpt_stage1
  from vaujax.errors import InputError
  from vaujax.train.config_checks import check_batch_against_mesh
  config = vagpt_stage1.get_config("size=paper")                # batch 8, fsdp=-1
  check_batch_against_mesh(config, 8, 2)
  with pytest.raises(InputError) as e:                            # a v5e-16: 16 chips
    check_batch_against_mesh(config, 16, 4)
  assert str(e.value).startswith("--config.data.batch_size: 8 (the global batch) must be a "
                                 "multiple of mesh.data x mesh.fsdp = 16") and "e.g. 16" in str(e.value)
  config.mesh.update(data=2, fsdp=1, tensor=-1)                   # rows on 2 of 4 processes
  with pytest.raises(InputError, match="mesh.fsdp: .* not a multiple of the 4 processes"):
    check_batch_against_mesh(config, 8, 4)
  config.mesh.update(data=2, fsdp=2, tensor=2)
  config.data.batch_size = 4                                      # the simulation below
  check_batch_against_mesh(config, 8, 4)


@pytest.mark.slow
def test_four_processes_match_one_and_only_process_0_writes_the_run_files(data, tmp_path):
  single = str(tmp_path / "single")
  subprocess.run([sys.executable, "-m", "vaujax.train", *_args(data, single)], env=_env(8),
                 check=True, cwd=REPO, capture_output=True)
  multi, writes = str(tmp_path / "multi"), str(tmp_path / "writes")
  os.makedirs(writes)
  # The processes run the paper config's scanned, rematerialised layers (the single one runs
  # them unrolled); they stop at step 3 (its checkpoint written by all four), then a second
  # launch resumes to STEPS on the same learning-rate schedule (optim.total_steps=STEPS).
  scanned = ("--config.model.scan_layers=True", "--config.model.remat=True")
  _finish(_processes(data, multi, _free_port(), STEPS, *scanned, "--config.total_steps=3",
                     writes=writes))
  steps_dir = os.path.join(multi, "checkpoints", "3", "state")
  # orbax writes one OCDBT shard folder per process
  assert sorted(n for n in os.listdir(steps_dir) if n.startswith("ocdbt.process_")) == [
      f"ocdbt.process_{p}" for p in range(PROCESSES)]
  written = [_under(multi, json.load(open(os.path.join(writes, f"process_{p}.json"))))
             for p in range(PROCESSES)]
  run_files = lambda paths: [p for p in paths if not p.startswith(("checkpoints", ".write_probe"))]  # noqa
  assert {"metrics.jsonl", os.path.join("run", "config.json")} <= set(run_files(written[0]))
  assert any(p.startswith(os.path.join("tensorboard", "events")) for p in written[0])
  assert all(run_files(w) == [] for w in written[1:]), written[1:]
  assert len(os.listdir(os.path.join(multi, "tensorboard"))) == 1
  outputs = _finish(_processes(data, multi, _free_port(), STEPS, *scanned))
  assert all("resumed from step 3" in o for o in outputs), outputs[0][-2000:]
  a, b = _metrics(single), _metrics(multi)
  assert [r["step"] for r in b] == list(range(1, STEPS + 1))
  np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], atol=1e-5)
  assert [r["seq_len"] for r in b] == [r["seq_len"] for r in a] and max(
      r["seq_len"] for r in a) < 256
  # process 0 logs its own rows (one of the four shards); the four shards cover the batch
  assert all(len(x["examples"]) == 1 and set(x["examples"]) <= set(r["examples"])
             for x, r in zip(b, a))


@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_after_the_same_step(data, tmp_path):
  """A preemption signal that reaches one host only: every process must force the same
  step's checkpoint (a collective save) and exit 143; the rerun finishes the run."""
  run, steps = str(tmp_path / "run"), 30
  procs = _processes(data, run, _free_port(), steps, "--config.ckpt_every=100")
  try:
    metrics, deadline = os.path.join(run, "metrics.jsonl"), time.time() + 300
    while time.time() < deadline and not (
        os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 3):
      time.sleep(0.05)
    procs[0].send_signal(signal.SIGTERM)
    outputs = _finish(procs, [143] * PROCESSES)
  finally:
    for p in procs:
      p.kill()
  stopped = [int(o.split("preempted at step ")[1].split(";")[0]) for o in outputs]
  assert len(set(stopped)) == 1 and stopped[0] < steps
  ckpts = sorted(int(n) for n in os.listdir(os.path.join(run, "checkpoints")) if n.isdigit())
  assert ckpts == [stopped[0]]
  outputs = _finish(_processes(data, run, _free_port(), steps, "--config.ckpt_every=100"))
  assert all(f"resumed from step {stopped[0]}" in o for o in outputs)
  assert [r["step"] for r in _metrics(run)] == list(range(1, steps + 1))
