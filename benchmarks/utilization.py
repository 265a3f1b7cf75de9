"""Achieved FLOP/s of the ~100M LLaMA train step over this machine's measured fp32 matmul peak.

The peak is a large jitted `jnp.dot` (fp32, 2048 x 2048) timed interleaved with the train step,
so contention from other jobs lowers both alike. FLOPs per step come two ways:
  xla       `compiled.cost_analysis()["flops"]` of the very executable that is timed
  6N        6 x (parameters minus the embedding gather) x tokens, the usual analytic estimate
            (it leaves out attention scores, ~12 x layers x seq x width per token, reported too)

  python -m benchmarks --only=utilization
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from benchmarks import common
from benchmarks import train_step as ts

MATMUL_N = 2048


def matmul_peak(n: int = MATMUL_N, dtype=jnp.float32):
  """A callable that runs one n x n x n `dtype` jnp.dot (compiled, warmed up, synced)."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()

  def run():
    dot(a, b).block_until_ready()
  return run


def cost_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):     # older jax: one dict per computation
    cost = cost[0]
  return float(cost["flops"])


def measure(config: dict = ts.LLAMA_100M, batch: int = ts.BATCH_100M, seq: int = ts.SEQ_100M,
            repeats: int = ts.STEPS, matmul_n: int = MATMUL_N, label: str = "~100M LLaMA") -> dict:
  from vaujax.models import llama
  cfg = llama.LlamaConfig(**config)
  ours, compiled, n_params, n_dense, compile_s = ts.compiled_llama_step(llama.Llama(cfg), batch,
                                                                        seq)
  xla_flops = cost_flops(compiled)
  ours()                                                   # warm-up
  peak_run = matmul_peak(matmul_n)

  def peak_best():                                         # best of 3 dots per round
    best = float("inf")
    for _ in range(3):
      t0 = time.perf_counter()
      peak_run()
      best = min(best, time.perf_counter() - t0)
    peak_best.times.append(best)
  peak_best.times = []
  times = ts.interleave({"step": ours, "peak": peak_best}, repeats)
  step_s = min(times["step"])
  peak_flops = 2 * matmul_n ** 3 / min(peak_best.times)
  tokens = batch * seq
  analytic = 6 * n_dense * tokens
  attention = 6 * 2 * cfg.num_layers * seq * cfg.num_heads * cfg.head_size * tokens
  row = dict(benchmark="utilization",
             metric=f"train-step FLOP/s / matmul peak, {label} ({n_params / 1e6:.0f}M, "
                    f"batch {batch}x{seq}), XLA count",
             vaujax=xla_flops / step_s / peak_flops, reference="-", ratio="-",
             utilization_xla=xla_flops / step_s / peak_flops,
             utilization_6n=analytic / step_s / peak_flops,
             utilization_6n_attn=(analytic + attention) / step_s / peak_flops,
             achieved_gflops_xla=xla_flops / step_s / 1e9, peak_gflops=peak_flops / 1e9,
             xla_gflop_per_step=xla_flops / 1e9, analytic_6n_gflop_per_step=analytic / 1e9,
             attention_gflop_per_step=attention / 1e9, step_s=step_s, compile_s=compile_s,
             params_m=n_params / 1e6, matmul_n=matmul_n, repeats=repeats,
             loadavg_1m=ts.load_average())
  print(f"{label} ({n_params / 1e6:.1f}M, {batch}x{seq}): step {step_s:.2f} s, XLA "
        f"{xla_flops / 1e9:,.0f} GFLOP/step ({row['achieved_gflops_xla']:.1f} GFLOP/s), 6N "
        f"{analytic / 1e9:,.0f} GFLOP/step; matmul peak {peak_flops / 1e9:.1f} GFLOP/s -> "
        f"utilization {row['utilization_xla']:.0%} (XLA count), {row['utilization_6n']:.0%} (6N)",
        flush=True)
  return row


def main():
  row = measure()
  six_n = dict(row, metric=row["metric"].replace("XLA count", "6N count"),
               vaujax=row["utilization_6n"])
  return [row, six_n]


def define_flags(fv) -> None:
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.utilization`: main(), and --json to keep its rows."""
  return common.run_module(__doc__, define_flags, lambda fv: main(), argv)


if __name__ == "__main__":
  run()
