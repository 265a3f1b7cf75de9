"""Where an anomaly happens, from the frozen tower's patches and TETG's interval: the spatial
counterpart of TETG's hint (issue 29; a vaujax design, not in the paper).

Axis legend: T frames, N = g x g patches per frame, D feature width.

What appears during an event is what differs between the frames inside its interval and the
last frame before it (the scene just before the anomaly): per patch, the Manhattan distance
`sum_c |F_t[i, c] - F_ref[i, c]|` (as SETS measures change between frames), averaged over the
frames inside. The patches are pooled into the 3x3 grid of regions (`vaujax/data/regions.py`:
thirds of the centre square the tower sees; a patch counts in the third holding its centre) by
their mean, and the region with the largest mean change is the event's. A video whose event
starts at its first frame takes the first frame after the interval as its reference.

Why the frame before rather than every frame outside: the normal objects keep moving, so the
further a reference frame lies from the event, the more of their motion the difference holds.
Measured on the demo's synthetic videos with the true intervals (issue 29's spread regions, 61
events; chance 11-20%): region right for 80% with the tiny tower's patches against the frame
before, 77% against each frame's nearest frame outside; DINOv2's patches 57% (BUILD.md).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

GRID = 3     # regions per side


def patch_cells(num_patches: int) -> np.ndarray:
  """[N] region index (row-major over the 3x3 grid) of each patch of a g x g patch grid: the
  third holding the patch's centre, as `regions.region_of` names the labels' pixels. Not
  `frame_tokens.grid_cells`, the content grid's rule (a patch's first row and column, so an 8x8
  grid's sixth row counts in the middle third there and in the bottom one here)."""
  g = math.isqrt(num_patches)
  if g * g != num_patches or g < GRID:
    raise ValueError(f"need a square patch grid of at least {GRID}x{GRID}, got {num_patches} "
                     f"patches")
  third = np.minimum(GRID - 1, (GRID * (np.arange(g) + 0.5) / g).astype(np.int64))   # [g]
  return (GRID * third[:, None] + third[None, :]).reshape(-1)


def region_scores(patches: np.ndarray, timestamps: np.ndarray,
                  interval: Sequence[float]) -> Optional[np.ndarray]:
  """[9] mean change per region of the frames inside `interval` (seconds, inclusive) against
  the reference frame (the last before it, else the first after it); None when no frame lies
  inside or none outside. `patches` [T, N, D], `timestamps` [T]."""
  p = np.asarray(patches, np.float32)
  t = np.asarray(timestamps, np.float64)
  if p.ndim != 3 or t.shape != (p.shape[0],):
    raise ValueError(f"expected patches [T, N, D] and timestamps [T], got {p.shape} and "
                     f"{t.shape}")
  start, end = float(interval[0]), float(interval[1])
  inside = np.flatnonzero((t >= start) & (t <= end))
  before, after = np.flatnonzero(t < start), np.flatnonzero(t > end)
  if not len(inside) or not (len(before) or len(after)):
    return None
  ref = before[-1] if len(before) else after[0]
  change = np.abs(p[inside] - p[ref][None]).sum(-1).mean(0)        # [N]
  cells = patch_cells(p.shape[1])
  return np.bincount(cells, change, GRID * GRID) / np.bincount(cells, minlength=GRID * GRID)


def event_region(patches: np.ndarray, timestamps: np.ndarray,
                 interval: Sequence[float]) -> Optional[int]:
  """The region (row-major index into `regions.REGIONS`) that changes most during `interval`
  (`region_scores`; ties go to the lower index), or None where it cannot say."""
  scores = region_scores(patches, timestamps, interval)
  return None if scores is None else int(np.argmax(scores))
