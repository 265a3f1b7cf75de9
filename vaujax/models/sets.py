"""SETS: spatial effective token selection (VA-GPT).

Axis legend: T frames, N patches per frame (tower grid), M patches per frame (DINOv2 grid),
D feature width, k kept patches per frame.

For each frame t the DINOv2 patch features F_t are compared with the previous frame's:
`D_t[i] = sum_c |F_t[i, c] - F_{t-1}[i, c]|` (Manhattan distance per patch). The `k = ceil(K * N)`
patches with the largest change are kept; only their vision-tower tokens reach the LLM.

Frame 0 has no previous frame. We use frame 1 as its reference (`D_0 = D_1`'s mirror: the
distance between F_0 and F_1), the natural symmetric choice: the patches that change between
the first two frames are the effective ones in both. A one-frame video keeps patches in their
natural order (all distances are zero and ties go to the lower index).

Ties are broken deterministically towards the lower patch index, and kept indices are returned
in ascending (spatial, row-major) order. Every function has static output shapes, so it jits,
vmaps over videos and shards.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def num_kept(num_patches: int, ratio: float) -> int:
  """ceil(K * N), K in (0, 1]."""
  if not 0.0 < ratio <= 1.0:
    raise ValueError(f"SETS keep ratio must be in (0, 1], got {ratio}")
  return max(1, math.ceil(round(ratio * num_patches, 9)))


def frame_differences(features: Array) -> Array:
  """Manhattan distance of each patch to the previous frame: [T, M, D] -> [T, M] (fp32)."""
  f = features.astype(jnp.float32)
  if f.shape[0] == 1:
    return jnp.zeros(f.shape[:2], jnp.float32)
  diffs = jnp.abs(f[1:] - f[:-1]).sum(-1)                                 # [T-1, M]
  return jnp.concatenate([diffs[:1], diffs], axis=0)                      # frame 0 uses D(0,1)


def grid_map(src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> np.ndarray:
  """[N_dst, N_src] averaging matrix that moves a per-patch score between patch grids.

  Each destination patch takes the mean score of the source patches whose centres fall inside
  it; if none does (destination finer than source), the source patch containing its centre.
  Identity when the grids are equal. Row-major flattening on both sides.
  """
  (sh, sw), (dh, dw) = src_grid, dst_grid

  def axis(src, dst):
    m = np.zeros((dst, src))
    centres = (np.arange(src) + 0.5) / src
    for d in range(dst):
      inside = np.nonzero((centres >= d / dst) & (centres < (d + 1) / dst))[0]
      if len(inside) == 0:
        inside = [min(int((d + 0.5) / dst * src), src - 1)]
      m[d, inside] = 1.0 / len(inside)
    return m

  return np.kron(axis(sh, dh), axis(sw, dw)).astype(np.float32)


def select_indices(scores: Array, k: int) -> Array:
  """Top-k patches per frame of [T, N] scores -> [T, k] int32 indices, ascending order.

  `lax.top_k` returns equal values lowest-index first, which gives the deterministic tie rule.
  """
  _, idx = jax.lax.top_k(scores, k)
  return jnp.sort(idx, axis=-1).astype(jnp.int32)


def select(dino_patches: Array, tower_tokens: Array, ratio: float = 0.5,
           dino_grid: tuple[int, int] | None = None,
           tower_grid: tuple[int, int] | None = None) -> dict:
  """SETS on one video.

  Args:
    dino_patches: [T, M, Dd] DINOv2 patch features (after the final LayerNorm).
    tower_tokens: [T, N, Dv] vision-tower patch tokens (no CLS).
    ratio: K, the kept fraction of the tower's N patches.
    dino_grid / tower_grid: (h, w) patch grids; default square. When they differ, the
      difference map is moved onto the tower grid with `grid_map`.
  Returns:
    dict with `tokens` [T, k, Dv] (selected, spatial order), `indices` [T, k], `mask` [T, N]
    (bool), `scores` [T, N] (the difference map on the tower grid).
  """
  t, m, _ = dino_patches.shape
  n = tower_tokens.shape[1]
  if tower_tokens.shape[0] != t:
    raise ValueError(f"{t} DINOv2 frames but {tower_tokens.shape[0]} tower frames")
  dino_grid = dino_grid or _square(m)
  tower_grid = tower_grid or _square(n)
  scores = frame_differences(dino_patches)
  if dino_grid != tower_grid:
    scores = scores @ jnp.asarray(grid_map(dino_grid, tower_grid)).T
  k = num_kept(n, ratio)
  indices = select_indices(scores, k)
  tokens = jnp.take_along_axis(tower_tokens, indices[..., None], axis=1)
  mask = jnp.zeros((t, n), bool).at[jnp.arange(t)[:, None], indices].set(True)
  return {"tokens": tokens, "indices": indices, "mask": mask, "scores": scores}


def select_batch(dino_patches: Array, tower_tokens: Array, ratio: float = 0.5, **grids) -> dict:
  """`select` vmapped over videos: [B, T, M, Dd], [B, T, N, Dv]."""
  return jax.vmap(lambda d, v: select(d, v, ratio, **grids))(dino_patches, tower_tokens)


def _square(n: int) -> tuple[int, int]:
  side = int(round(n ** 0.5))
  if side * side != n:
    raise ValueError(f"{n} patches is not a square grid; pass the grid explicitly")
  return side, side
