"""`vaujax.cpu_runtime.reuse_host_memory` against none: train steps and page faults per step.

The settings are process-wide and fixed before JAX's first computation, so each side runs in a
child process of its own (`VAUJAX_REUSE_HOST_MEMORY=0` / `1`), on the same configs, weights and
batches: the tiny VA-GPT's LLM (8 x 256 tokens) and the ~100M LLaMA of `train_step` (2 x 128).
Each child reports its best step time and the minor page faults per steady step
(`getrusage`), which count the temp buffer's pages mapped afresh.

  python -m benchmarks host_memory
"""

from __future__ import annotations

import json
import resource
import sys
import time

from benchmarks.common import json_from_child

TINY_STEPS, LLAMA_100M_STEPS = 20, 3
CONFIGS = ("tiny", "100m")
LABELS = {"tiny": "tiny LLaMA of VA-GPT, 8x256", "100m": "~100M LLaMA, 2x128"}


def _measure(step, repeats: int) -> dict:
  step()                     # one more warm-up after the compile
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / repeats
  return {"best_s": min(times), "faults_per_step": faults}


def child(sizes=CONFIGS) -> dict:
  """One side: the settings as the environment says, then the steps named in `sizes`."""
  from vaujax import cpu_runtime
  settings = cpu_runtime.reuse_host_memory()
  from benchmarks import train_step
  from vaujax.models import llama
  out = {"settings": str(settings)}
  steps = {"tiny": (llama.tiny_llama(), (train_step.TINY_BATCH, 256), TINY_STEPS),
           "100m": (llama.LlamaConfig(**train_step.LLAMA_100M),
                    (train_step.BATCH_100M, train_step.SEQ_100M), LLAMA_100M_STEPS)}
  for name in sizes:
    cfg, (batch, seq), repeats = steps[name]
    step, compiled, *_ = train_step.compiled_llama_step(llama.Llama(cfg), batch, seq)
    out[name] = dict(_measure(step, repeats),
                     temp_mib=compiled.memory_analysis().temp_size_in_bytes / 2**20)
  return out


def _run_child(enable: bool, sizes) -> dict:
  return json_from_child("benchmarks.host_memory", "--child", ",".join(sizes),
                         env={"VAUJAX_REUSE_HOST_MEMORY": "1" if enable else "0"}, timeout=600)


def main(sizes=CONFIGS):
  off, on = _run_child(False, sizes), _run_child(True, sizes)
  rows = []
  for name in sizes:
    label = LABELS[name]
    a, b = on[name], off[name]
    rows.append(dict(
        benchmark="host_memory",
        metric=f"train step ms, {label}: host buffers reused ÷ mapped afresh "
               f"({a['temp_mib']:.0f} MiB temp)",
        vaujax=a["best_s"] * 1e3, reference=b["best_s"] * 1e3, ratio=b["best_s"] / a["best_s"],
        faults_per_step=a["faults_per_step"], reference_faults_per_step=b["faults_per_step"],
        settings=on["settings"]))
    print(f"{label}: {a['best_s'] * 1e3:.1f} ms with the settings, {b['best_s'] * 1e3:.1f} ms "
          f"without ({b['best_s'] / a['best_s']:.2f}x); page faults per step "
          f"{a['faults_per_step']:,.0f} vs {b['faults_per_step']:,.0f}", flush=True)
  return rows


if __name__ == "__main__":
  if "--child" in sys.argv:
    print(json.dumps(child(sys.argv[sys.argv.index("--child") + 1].split(","))))
  else:
    main()
