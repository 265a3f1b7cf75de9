"""`vaujax.cpu_runtime.reuse_host_memory` against none: train steps and page faults per step.

The settings are process-wide and fixed before JAX's first computation, so each side runs in a
child process of its own (`VAUJAX_REUSE_HOST_MEMORY=0` / `1`), on the same configs, weights and
batches: the tiny VA-GPT's LLM (8 x 256 tokens) and the ~100M LLaMA of `train_step` (2 x 128).
Each child reports its best step time and the minor page faults per steady step
(`getrusage`), which count the temp buffer's pages mapped afresh.

  python -m benchmarks --only=host_memory
"""

from __future__ import annotations

import json
import resource
import time

from absl import flags

from benchmarks import common
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
  return json_from_child("benchmarks.host_memory", f"--child={','.join(sizes)}",
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


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("sizes", list(CONFIGS), "train steps to time: " + "; ".join(
      f"{name}: {label}" for name, label in LABELS.items()), flag_values=fv)
  flags.DEFINE_list("child", None, "internal: time these steps in this process, with the "
                    "settings VAUJAX_REUSE_HOST_MEMORY gives, and print them as JSON",
                    flag_values=fv)
  common.define_json_flag(fv)


def _rows(fv: flags.FlagValues):
  from vaujax.app import cli
  for name in ("child", "sizes"):
    unknown = [s for s in fv[name].value or () if s not in CONFIGS]
    if unknown:
      raise cli.fail(f"--{name}", f"no step {unknown[0]!r}; one of {', '.join(CONFIGS)}")
  if fv.child:
    out = child(fv.child)
    print(json.dumps(out))
    return out
  if not fv.sizes:
    raise cli.fail("--sizes", f"name one or more of {', '.join(CONFIGS)}")
  return main(tuple(fv.sizes))


def run(argv=None):
  """`python -m benchmarks.host_memory`: main() for the steps --sizes names."""
  return common.run_module(__doc__, define_flags, _rows, argv)


if __name__ == "__main__":
  run()
