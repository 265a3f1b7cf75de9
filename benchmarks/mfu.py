r"""Model FLOPs utilisation (MFU) of the train step on a reduced-depth Vicuna-7B-shaped LLaMA.

The 7B widths (hidden 4096, MLP 11008, 32 heads, vocab 32000) with fewer layers, bf16 compute,
fp32 master weights and AdamW (the trainer's step, state donated), batch 8 x 2048 tokens. FLOPs
per step are PaLM's model count: 6 x dense parameters x tokens, plus 12 x layers x seq x hidden
per token for the attention scores (no causal discount). MFU is taken against two peaks:
  published  the device's dense bf16 peak (PEAK_BF16 below, matched on `device_kind`)
  measured   an 8192^3 bf16 `jnp.dot` timed interleaved with the steps

Made for an accelerator (`config.model.attention=cudnn` on NVIDIA GPUs). On a CPU the module
reports nothing unless VAUJAX_MFU_ON_CPU=1, since `utilization` already covers the CPU.

  python -m benchmarks --only=mfu
  VAUJAX_MFU_LAYERS=8 VAUJAX_MFU_BATCH=4 VAUJAX_MFU_ATTENTION=chunked python -m benchmarks \\
      --only=mfu
  VAUJAX_MFU_SCAN=1 python -m benchmarks --only=mfu   # the layers as one scan (the paper config's)
  python -m benchmarks.mfu --layers=8 --batch=4 --attention=chunked --scan   # the same as flags
  bash benchmarks/gpu_check.sh     # the device checks of the performance issue, in one run
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
from absl import flags

from benchmarks import common
from benchmarks import train_step as ts
from benchmarks import utilization

# Dense bf16 peak FLOP/s by `device_kind` substring (vendor data sheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "TPU v5p": 459e12,
             "TPU v5 lite": 197e12, "TPU v4": 275e12}
SEVEN_B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_heads=32,
               num_kv_heads=32, max_position_embeddings=4096)


def published_peak(device) -> float:
  """The data-sheet bf16 peak of `device`, or NaN when its kind is not in PEAK_BF16."""
  for name, flops in PEAK_BF16.items():
    if name.lower() in device.device_kind.lower():
      return flops
  return float("nan")


def model_flops(cfg, n_dense: int, batch: int, seq: int) -> float:
  tokens = batch * seq
  return 6 * n_dense * tokens + 12 * cfg.num_layers * seq * cfg.hidden_size * tokens


def measure(layers: int = 4, batch: int = 8, seq: int = 2048, matmul_n: int = 8192,
            repeats: int = 5, config: dict = SEVEN_B, attention: str | None = None,
            scan_layers: bool = False) -> dict:
  """One row: the step's model FLOP/s over the published and the measured bf16 peak."""
  from vaujax.models import llama
  device = jax.devices()[0]
  attention = attention or ("cudnn" if device.platform == "gpu" else "chunked")
  cfg = dataclasses.replace(llama.LlamaConfig(**config), num_layers=layers,
                            attention_impl=attention, scan_layers=scan_layers)
  model = llama.Llama(cfg, dtype=jnp.bfloat16, param_dtype=jnp.float32)
  ours, _, n_params, n_dense, compile_s = ts.compiled_llama_step(model, batch, seq)
  ours()                                                          # warm-up
  peak = utilization.matmul_peak(matmul_n, jnp.bfloat16)
  times = ts.interleave({"step": ours, "peak": peak}, repeats)
  step_s = min(times["step"])
  measured = 2 * matmul_n ** 3 / min(times["peak"])
  flops = model_flops(cfg, n_dense, batch, seq)
  published = published_peak(device)
  mfu_published, mfu_measured = flops / step_s / published, flops / step_s / measured
  row = dict(benchmark="mfu",
             metric=f"train-step MFU, 7B-shaped LLaMA with {layers} layers "
                    f"({n_params / 1e9:.2f}B params, bf16, batch {batch}x{seq}, "
                    f"attention={attention}{', scanned layers' if scan_layers else ''}) on "
                    f"{device.device_kind}",
             vaujax=mfu_published if math.isfinite(mfu_published) else mfu_measured,
             reference="-", ratio="-", mfu_published=mfu_published, mfu_measured=mfu_measured,
             achieved_tflops=flops / step_s / 1e12,
             published_peak_tflops=published / 1e12, measured_peak_tflops=measured / 1e12,
             step_s=step_s, tokens_per_s=batch * seq / step_s, compile_s=compile_s,
             params_b=n_params / 1e9, layers=layers, scan_layers=scan_layers,
             device=device.device_kind)
  print(f"{row['metric']}: step {step_s * 1e3:.1f} ms, {row['achieved_tflops']:.1f} TFLOP/s; "
        f"MFU {row['mfu_published']:.1%} of the published {published / 1e12:.0f} TFLOP/s, "
        f"{row['mfu_measured']:.1%} of the measured {measured / 1e12:.1f} TFLOP/s matmul",
        flush=True)
  return row


def env_settings() -> dict:
  """The settings the VAUJAX_MFU_* variables give (the defaults of the command-line flags)."""
  env = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
  return dict(layers=env("VAUJAX_MFU_LAYERS", 4), batch=env("VAUJAX_MFU_BATCH", 8),
              seq=env("VAUJAX_MFU_SEQ", 2048),
              attention=os.environ.get("VAUJAX_MFU_ATTENTION") or None,
              scan_layers=os.environ.get("VAUJAX_MFU_SCAN") == "1",
              on_cpu=os.environ.get("VAUJAX_MFU_ON_CPU") == "1")


def rows(layers: int = 4, batch: int = 8, seq: int = 2048, attention: str | None = None,
         scan_layers: bool = False, on_cpu: bool = False) -> list[dict]:
  if jax.default_backend() == "cpu" and not on_cpu:
    print("mfu: no accelerator here (the CPU's utilisation is `utilization`); skipped")
    return []
  return [measure(layers=layers, batch=batch, seq=seq, attention=attention,
                  scan_layers=scan_layers)]


def main() -> list[dict]:
  return rows(**env_settings())


def define_flags(fv: flags.FlagValues) -> None:
  s = env_settings()
  flags.DEFINE_integer("layers", s["layers"], "decoder layers of the 7B-shaped LLaMA "
                       "(env VAUJAX_MFU_LAYERS)", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("batch", s["batch"], "sequences per step (env VAUJAX_MFU_BATCH)",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("seq", s["seq"], "tokens per sequence (env VAUJAX_MFU_SEQ)",
                       lower_bound=2, flag_values=fv)
  flags.DEFINE_string("attention", s["attention"], "config.model.attention: chunked, einsum, "
                      "xla or cudnn (default: cudnn on a GPU, else chunked; env "
                      "VAUJAX_MFU_ATTENTION)", flag_values=fv)
  flags.DEFINE_bool("scan", s["scan_layers"], "the layers as one lax.scan (env VAUJAX_MFU_SCAN=1)",
                    flag_values=fv)
  flags.DEFINE_bool("on_cpu", s["on_cpu"], "measure on a CPU too (env VAUJAX_MFU_ON_CPU=1)",
                    flag_values=fv)
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.mfu`: main(), with the settings the flags give."""
  return common.run_module(__doc__, define_flags, lambda fv: rows(
      layers=fv.layers, batch=fv.batch, seq=fv.seq, attention=fv.attention,
      scan_layers=fv.scan, on_cpu=fv.on_cpu), argv)


if __name__ == "__main__":
  run()
