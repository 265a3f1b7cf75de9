"""Frame preprocessing equal to the published image processors, as jittable functions.

`uint8 [T, H, W, 3]` frames -> `float32 [T, S, S, 3]` normalised crops (NHWC, what `ViT` takes).

HF's CLIPImageProcessor and BitImageProcessor (DINOv2) resize with PIL's bicubic filter on
uint8 images, which works in 8-bit fixed point with 22 fractional bits and rounds to uint8 after
each separable pass. We apply the same integer coefficients as two int32 matmuls, horizontal
pass first, so the resized frames are bit-identical to PIL's; center crop and normalisation then
follow HF (rescale by 1/255, subtract mean, divide by std).

`preprocess` is jittable and compiles once per frame size. `preprocess_frames`, for host frames
(feature extraction), gives the same values bit for bit with nothing compiled per size: the
resize and crop are two integer matrices (the crop's rows of the resize matrices; a pass PIL
skips is an exact selection) applied as exact float64 matmuls on the host, and only the
normalisation is jitted. Videos of a hundred sizes then cost no compiles.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from vaujax.models import resample

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class PreprocessSpec:
  """Resize the shortest side to `shortest_edge` (bicubic), center-crop `crop`, normalise."""

  shortest_edge: int
  crop: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]


CLIP_224 = PreprocessSpec(224, 224, CLIP_MEAN, CLIP_STD)          # LLaMA-VID / EVA / CLIP-L-224
CLIP_336 = PreprocessSpec(336, 336, CLIP_MEAN, CLIP_STD)          # LLaVA-1.5 CLIP-L-336
DINOV2_EVAL = PreprocessSpec(256, 224, IMAGENET_MEAN, IMAGENET_STD)  # HF/FB DINOv2 eval
# DINOv2 on the same 224 crop as the 224 tower, so both patch grids are 16x16 and align 1:1.
DINOV2_SAME_CROP = PreprocessSpec(224, 224, IMAGENET_MEAN, IMAGENET_STD)


def shortest_edge_size(height: int, width: int, shortest: int) -> tuple[int, int]:
  """HF's output size for `size={'shortest_edge': s}`: the long side is truncated, not rounded."""
  if height <= width:
    return shortest, int(shortest * width / height)
  return int(shortest * height / width), shortest


def pil_bicubic_resize(frames: jax.Array, height: int, width: int) -> jax.Array:
  """Bit-exact `PIL.Image.resize((width, height), BICUBIC, reducing_gap=None)` on uint8 frames."""
  t, h, w, c = frames.shape
  x = frames
  if width != w:
    x = _fixed_point_pass(x, resample.pil_fixed_point_matrix(w, width), "ox,tyxc->tyoc")
  if height != h:
    x = _fixed_point_pass(x, resample.pil_fixed_point_matrix(h, height), "oy,tyxc->toxc")
  return x.astype(jnp.uint8)


def _fixed_point_pass(x: jax.Array, coeffs, spec: str) -> jax.Array:
  """One separable pass in PIL's fixed point: int32 products, rounded, clipped to 0..255."""
  half = 1 << (resample.PIL_PRECISION_BITS - 1)
  acc = jnp.einsum(spec, jnp.asarray(coeffs), x.astype(jnp.int32),
                   preferred_element_type=jnp.int32)
  return jnp.clip(jnp.right_shift(acc + half, resample.PIL_PRECISION_BITS), 0, 255)


def center_crop(frames: jax.Array, size: int) -> jax.Array:
  """HF center crop: top = (H - size) // 2, left = (W - size) // 2."""
  h, w = frames.shape[1:3]
  if h < size or w < size:
    raise ValueError(f"frames {h}x{w} are smaller than the crop {size}")
  top, left = (h - size) // 2, (w - size) // 2
  return frames[:, top:top + size, left:left + size]


def normalize(frames: jax.Array, mean, std) -> jax.Array:
  x = frames.astype(jnp.float32) * jnp.float32(1 / 255)
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


@functools.partial(jax.jit, static_argnames=("spec",))
def preprocess(frames: jax.Array, spec: PreprocessSpec) -> jax.Array:
  """uint8 [T, H, W, 3] -> float32 [T, crop, crop, 3]."""
  if frames.dtype != jnp.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
  h, w = frames.shape[1:3]
  out_h, out_w = shortest_edge_size(h, w, spec.shortest_edge)
  resized = pil_bicubic_resize(frames, out_h, out_w)
  return normalize(center_crop(resized, spec.crop), spec.mean, spec.std)


def crop_matrices(height: int, width: int, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
  """Fixed-point matrices ([crop, height], [crop, width] int32) whose two passes give the
  center crop of the shortest-edge resize: the crop's rows of PIL's coefficients, or, where
  PIL skips a pass (the size does not change), a selection of the crop scaled by 2**22, which
  the pass's rounding turns back into the same pixels."""
  out_h, out_w = shortest_edge_size(height, width, spec.shortest_edge)
  if out_h < spec.crop or out_w < spec.crop:
    raise ValueError(f"frames {height}x{width} resize to {out_h}x{out_w}, smaller than the "
                     f"crop {spec.crop}")

  def one_side(size, out):
    start = (out - spec.crop) // 2
    if size == out:
      full = np.eye(size, dtype=np.int32) << resample.PIL_PRECISION_BITS
    else:
      full = resample.pil_fixed_point_matrix(size, out)
    return full[start:start + spec.crop]

  return one_side(height, out_h), one_side(width, out_w)


_HOST_PASS_VALUES = 1 << 23   # float64 values per group of frames on the host (64 MiB)


def _host_fixed_point_pass(x: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
  """`_fixed_point_pass` over the last axis in float64 on the host: every product and partial
  sum is an integer below 2**53, so the matmul is exact in any order, and floor((acc + half) /
  2**22) is the arithmetic right shift."""
  acc = x @ coeffs.T.astype(np.float64)
  half = float(1 << (resample.PIL_PRECISION_BITS - 1))
  return np.clip(np.floor((acc + half) * 2.0 ** -resample.PIL_PRECISION_BITS), 0, 255)


def resize_crop_frames(frames: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
  """uint8 [T, H, W, 3] -> uint8 [T, crop, crop, 3], bit for bit `preprocess`'s resized crop,
  computed on the host (BLAS) with no program to compile for each frame size."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
  t, h, w, _ = frames.shape
  rows, cols = crop_matrices(h, w, spec)
  out = np.empty((t, spec.crop, spec.crop, 3), np.uint8)
  group = max(1, _HOST_PASS_VALUES // (h * w * 3))   # bounds the float64 copy (HD: 1 frame)
  for i in range(0, t, group):
    x = frames[i:i + group].transpose(0, 1, 3, 2).astype(np.float64)   # [t, H, 3, W]
    x = _host_fixed_point_pass(x, cols)                         # [t, H, 3, S] (horizontal first)
    x = _host_fixed_point_pass(x.transpose(0, 3, 2, 1), rows)  # [t, S(x), 3, S(y)]
    out[i:i + group] = x.transpose(0, 3, 1, 2)                 # [t, S(y), S(x), 3]
  return out


@jax.jit
def _normalize(crops: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  return normalize(crops, mean, std)


def normalize_crops(crops: np.ndarray, spec: PreprocessSpec) -> jax.Array:
  """uint8 crops [T, S, S, 3] -> float32, as `preprocess` normalises (one program per T)."""
  return _normalize(crops, np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32))


def preprocess_frames(frames: np.ndarray, spec: PreprocessSpec) -> jax.Array:
  """`preprocess` bit for bit on host frames, with nothing compiled per frame size."""
  return normalize_crops(resize_crop_frames(frames, spec), spec)
