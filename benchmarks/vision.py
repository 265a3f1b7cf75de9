"""Vision tower frames/s: vaujax's jitted ViT vs the PyTorch reference (HF CLIPVisionModel).

Same config and weights (converted), same frames, CPU, one process. A second row times the
tower's attention in query chunks (`vit.attention`, since the sixth session of 2026-11-30)
against the single softmax block it replaced, on the same tower, interleaved.
  python -m benchmarks --only=vision
"""

import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from vaujax.models.params import count_params

CONFIG = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
              image_size=224, patch_size=14)
BATCH = 16


def _best(fn, repeats=3):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def single_block_attention(q, k, v, scale):
  """The tower's attention before the sixth session of 2026-11-30: one normalised [B, heads,
  S, S] softmax block, then a tokens-major value matmul (the "before" side of the row)."""
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
  probs = jax.nn.softmax(logits * scale, axis=-1).astype(v.dtype)
  return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def measure_attention(model, params, x, repeats: int = 5) -> dict:
  """Tower forward with `vit.attention` (query chunks) vs `single_block_attention`."""
  from benchmarks import train_step as ts
  from vaujax.models import vit
  def apply(p, images):   # a new function per call: jit must trace each side afresh
    return model.apply(p, images)["patches"]

  chunked = jax.jit(apply).lower(params, x).compile()
  with mock.patch.object(vit, "attention", single_block_attention):
    single = jax.jit(lambda p, images: apply(p, images)).lower(params, x).compile()
  distinct = chunked.as_text() != single.as_text()
  diff = float(jnp.abs(chunked(params, x) - single(params, x)).max())
  times = ts.interleave({name: (lambda fn=fn: jax.block_until_ready(fn(params, x)))
                         for name, fn in (("chunked", chunked), ("single", single))}, repeats)
  best = {k: min(v) for k, v in times.items()}
  b = x.shape[0]
  print(f"vision tower attention: query chunks {best['chunked'] * 1e3:.0f} ms vs one softmax "
        f"block {best['single'] * 1e3:.0f} ms a batch of {b} ({best['single'] / best['chunked']:.2f}x;"
        f" outputs differ by {diff:.1e})", flush=True)
  return dict(benchmark="vision", metric=f"frames/s batch {b}: attention in query chunks vs one "
                                         f"softmax block", vaujax=b / best["chunked"],
              reference=b / best["single"], ratio=best["single"] / best["chunked"],
              max_abs_diff=diff, distinct_programs=distinct)


def main():
  import torch
  from transformers import CLIPVisionConfig, CLIPVisionModel

  from vaujax.convert import vision as convert
  from vaujax.models import vit

  torch.manual_seed(0)
  hf_cfg = CLIPVisionConfig(**CONFIG)
  hf = CLIPVisionModel(hf_cfg).eval()
  cfg = convert.config_from_hf("clip", hf_cfg.to_dict(), "benchmark")
  params, _ = convert.params_from_state_dict(
      "clip", {k: v.detach().numpy() for k, v in hf.state_dict().items()}, cfg)
  frames = np.random.RandomState(0).randn(BATCH, 224, 224, 3).astype(np.float32)
  model = vit.ViT(cfg)
  fwd = jax.jit(lambda p, x: model.apply(p, x)["patches"])
  x = jnp.asarray(frames)
  start = time.perf_counter()
  jax.block_until_ready(fwd(params, x))
  compile_s = time.perf_counter() - start
  ours = _best(lambda: jax.block_until_ready(fwd(params, x)))
  tx = torch.tensor(frames).permute(0, 3, 1, 2).contiguous()

  def run_torch():
    with torch.no_grad():
      hf(tx, output_hidden_states=True)

  run_torch()
  ref = _best(run_torch)
  print(f"vision tower (CLIP-style, {count_params(params) / 1e6:.1f}M params, batch {BATCH}): "
        f"vaujax {BATCH / ours:.1f} frames/s, PyTorch {BATCH / ref:.1f} frames/s, "
        f"ratio {ref / ours:.2f}x (compile {compile_s:.1f} s)", flush=True)
  return [dict(benchmark="vision", metric=f"frames/s batch {BATCH}", vaujax=BATCH / ours,
               reference=BATCH / ref, ratio=ref / ours, compile_s=compile_s),
          measure_attention(model, params, x)]


def define_flags(fv) -> None:
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.vision`: main(), and --json to keep its rows."""
  return common.run_module(__doc__, define_flags, lambda fv: main(), argv)


if __name__ == "__main__":
  run()
