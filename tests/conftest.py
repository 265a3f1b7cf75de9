"""Test harness: 8 simulated CPU devices (set before jax is imported), parsed absl flags, and one
persistent compilation cache for the whole run.

The cache (a fresh directory per pytest run, inherited by the CLI subprocesses the tests start)
keeps every compiled program: tests that build the same model again, and subprocesses that
compile what the parent already compiled, load it instead of compiling it.
`VAUJAX_TEST_COMPILATION_CACHE=0` turns it off.

`JAX_PLATFORMS` set to an accelerator (benchmarks/gpu_check.sh runs tests/test_llama.py with
`JAX_PLATFORMS=cuda`) replaces the CPU default; the tests that need the 8-device mesh then skip.
"""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if os.environ.get("VAUJAX_TEST_COMPILATION_CACHE", "1") != "0":
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="vaujax-xla-cache-"))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  os.environ.setdefault("VAUJAX_COMPILATION_CACHE", os.environ["JAX_COMPILATION_CACHE_DIR"])

from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()  # grain workers read absl flags

import jax  # noqa: E402
import pytest  # noqa: E402

if os.environ["JAX_PLATFORMS"] == "cpu":
  assert jax.device_count() == 8, "tests expect 8 simulated CPU devices"


@pytest.fixture(scope="session")
def mesh8():
  """(data=2, fsdp=2, tensor=2) mesh over the 8 CPU devices."""
  if jax.device_count() < 8:
    pytest.skip(f"needs 8 devices (the simulated CPU mesh); {jax.default_backend()} has "
                f"{jax.device_count()}")
  from vaujax import sharding
  return sharding.make_mesh(data=2, fsdp=2, tensor=2)
