"""Exact resampling matrices for the interpolations published models and processors use.

Resizing is separable: `out = R_h @ img @ R_w^T`. The matrices are built in numpy from static
sizes, so the jitted functions are plain matmuls and match the reference implementations exactly:

- `torch_bicubic_matrix`: `torch.nn.functional.interpolate(mode='bicubic', align_corners=False)`
  (cubic convolution with A=-0.75, source index clamped at the borders); DINOv2 position
  embeddings in HF `Dinov2Model`.
- `antialiased_bicubic_weights`: PIL's `Image.resize(BICUBIC)` and torch's `antialias=True`
  (kernel A=-0.5 stretched by the downscale factor, weights renormalised, borders truncated); the
  image processors and HF `Dinov2WithRegistersModel`.
- `pil_fixed_point_matrix`: the same weights in PIL's 8-bit fixed point (22 fractional bits), for
  bit-exact uint8 resizing as `Image.resize` does it.
"""

from __future__ import annotations

import functools
import math

import numpy as np

PIL_PRECISION_BITS = 32 - 8 - 2


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
  x = np.abs(x)
  near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
  far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
  return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def torch_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] float64 matrix of torch bicubic interpolation (align_corners=False, no antialias)."""
  scale = in_size / out_size
  mat = np.zeros((out_size, in_size))
  for o in range(out_size):
    src = (o + 0.5) * scale - 0.5
    base = math.floor(src)
    t = src - base
    for tap in range(-1, 3):
      w = _cubic(np.array(tap - t), -0.75)
      mat[o, min(max(base + tap, 0), in_size - 1)] += w
  return mat


def antialiased_bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] float64 matrix of PIL-style (antialiased) bicubic resampling."""
  scale = in_size / out_size
  filter_scale = max(scale, 1.0)
  support = 2.0 * filter_scale
  mat = np.zeros((out_size, in_size))
  for o in range(out_size):
    center = (o + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    xs = np.arange(lo, hi)
    w = _cubic((xs - center + 0.5) / filter_scale, -0.5)
    total = w.sum()
    mat[o, lo:hi] = w / total if total != 0 else w
  return mat


def pil_fixed_point_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] int32 coefficients exactly as PIL's 8-bit resampler rounds them (read-only,
  cached: a folder of videos asks for the same few sizes again and again)."""
  return _pil_fixed_point_matrix(int(in_size), int(out_size))


@functools.lru_cache(maxsize=512)
def _pil_fixed_point_matrix(in_size: int, out_size: int) -> np.ndarray:
  w = antialiased_bicubic_weights(in_size, out_size) * (1 << PIL_PRECISION_BITS)
  out = np.where(w < 0, np.trunc(w - 0.5), np.trunc(w + 0.5)).astype(np.int32)
  out.flags.writeable = False
  return out
