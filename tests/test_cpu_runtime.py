"""vaujax.cpu_runtime: a steady XLA:CPU execution reuses its host buffers instead of faulting in
fresh pages, and computes the same numbers. Each case runs in its own process: the settings are
process-wide and must come before JAX's first computation."""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A program whose temporary buffer (tanh(x @ w1), 128 MiB) is above the 64 MiB a worker
# thread's glibc arena can hold; minor page faults counted for each of 60 executions.
CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import jax, jax.numpy as jnp
    from vaujax import cpu_runtime
    if sys.argv[1] == "late":
      jax.numpy.zeros(1).block_until_ready()      # the backend starts before the call
    enable = {"on": True, "off": False, "late": True, "env": None}[sys.argv[1]]
    settings = cpu_runtime.reuse_host_memory(enable)
    x = jax.random.normal(jax.random.key(0), (16384, 64))
    w1 = jax.random.normal(jax.random.key(1), (64, 2048))
    w2 = jax.random.normal(jax.random.key(2), (2048, 8))
    f = jax.jit(lambda x, w1, w2: jnp.tanh(x @ w1) @ w2).lower(x, w1, w2).compile()
    out = f(x, w1, w2).block_until_ready()
    faults = []
    for _ in range(60):
      before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      f(x, w1, w2).block_until_ready()
      faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps(dict(faults=faults, temp=f.memory_analysis().temp_size_in_bytes,
                          sync=settings.sync_dispatch, malloc=settings.malloc_thresholds,
                          note=settings.note, out=np.asarray(out).tolist())))
""")


def _run(mode: str, **env) -> dict:
  proc = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True,
                        text=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc settings are glibc's")
def test_steady_execution_reuses_host_buffers_and_computes_the_same():
  off, on = _run("off"), _run("on")
  assert off["temp"] >= 128 * 2**20 and on["temp"] == off["temp"]
  assert (off["sync"], off["malloc"]) == (False, False)
  assert (on["sync"], on["malloc"], on["note"]) == (True, True, "")
  # Without the settings every execution maps its 128 MiB temp afresh: 32 K pages of 4 KiB
  # (fewer only with transparent huge pages on every mapping). With them the heap grows by a
  # temp's worth a few times while the first blocks settle (1-5 times in 40 executions, 1-4 in
  # 400 in a trial), then every execution reuses a block it already holds.
  afresh = lambda run: sum(n > 4000 for n in run["faults"])  # noqa: E731
  assert afresh(off) == 60, off["faults"]
  assert afresh(on) <= 12, on["faults"]
  assert sorted(on["faults"])[30] < 500, on["faults"]
  assert on["out"] == off["out"]          # the same program on the same inputs, bit for bit


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc settings are glibc's")
def test_environment_variable_and_a_late_call():
  assert (lambda r: (r["sync"], r["malloc"]))(_run("env", VAUJAX_REUSE_HOST_MEMORY="0")) == \
      (False, False)
  assert (lambda r: (r["sync"], r["malloc"]))(_run("env")) == (True, True)   # default: on
  late = _run("late")
  # After the backend started the dispatch mode is fixed; the note says so, malloc still applies.
  assert (late["sync"], late["malloc"]) == (False, True)
  assert "already running" in late["note"]
