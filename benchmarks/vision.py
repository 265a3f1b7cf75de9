"""Vision tower frames/s: vaujax's jitted ViT vs the PyTorch reference (HF CLIPVisionModel).

Same config and weights (converted), same frames, CPU, one process.
  python -m benchmarks vision
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

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
  print(f"vision tower (CLIP-style, {vit.count_params(params) / 1e6:.1f}M params, batch {BATCH}): "
        f"vaujax {BATCH / ours:.1f} frames/s, PyTorch {BATCH / ref:.1f} frames/s, "
        f"ratio {ref / ours:.2f}x (compile {compile_s:.1f} s)", flush=True)
  return [dict(benchmark="vision", metric=f"frames/s batch {BATCH}", vaujax=BATCH / ours,
               reference=BATCH / ref, ratio=ref / ours, compile_s=compile_s)]


if __name__ == "__main__":
  main()
