"""LLaMA-VID frame tokens: per frame one context token and one content token, or all tokens.

Axis legend: B videos, T frames, N patches per frame, Q queries, Dq query width, Dv vision width,
D LLM width, G = g*g content grid cells.

Context token (text-guided): `text_q = vlm_att_projector(Q)`, `K = vlm_att_key_projector(V)`,
`S = softmax(text_q K^T / sqrt(Dv))` over the frame's patches (only the SETS-kept ones when a mask
is given), `ctx = vlm_att_val_projector(mean over queries of S @ V)` with values = raw V.
Content token: `mm_projector(mean of the frame's (kept) patches)`, `mm_projector` = mlp2x_gelu.
Output order per video: [ctx_1, cont_1, ctx_2, cont_2, ...] -> [B, 2T, D].

[ours] Content grid (`content_grid` g > 1, issue 29): the mean throws away where in the frame
things are, so instead a g x g grid is laid over the tower's square h x w patch grid (patch
(r, c) lies in cell (r*g//h, c*g//w)) and each cell gives `mm_projector(mean of the kept patches
in that cell)` (zeros in: a cell with no kept patch). Per frame [ctx, cont_1 .. cont_G], cells
row-major from the top left -> [B, (1 + G) T, D]. Same parameters as g = 1.

Mode 'tokens' instead projects every (kept) patch token with `mm_projector` -> [B, T*k, D].
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any


@dataclasses.dataclass(frozen=True)
class FrameTokensConfig:
  vision_dim: int            # Dv (EVA-g: 1408)
  llm_dim: int               # D (Vicuna-7B: 4096)
  query_dim: int = 768       # Dq (Q-Former width)
  mode: str = "context_content"   # or 'tokens'
  content_grid: int = 1      # g: content tokens of a g x g grid per frame (1: LLaMA-VID's one)

  def __post_init__(self):
    if self.mode not in ("context_content", "tokens"):
      raise ValueError(f"unknown frame token mode {self.mode!r}")
    if not isinstance(self.content_grid, int) or self.content_grid < 1:
      raise ValueError(f"content_grid must be a positive integer, got {self.content_grid!r}")
    if self.content_grid > 1 and self.mode != "context_content":
      raise ValueError("content_grid > 1 needs mode 'context_content' (mode 'tokens' already "
                       "keeps every patch)")

  @property
  def tokens_per_frame(self) -> int:
    """Context_content mode: one context token and g*g content tokens."""
    return 1 + self.content_grid ** 2


def _dense(features, axes, dtype, param_dtype, name):
  return nn.Dense(features, dtype=dtype, param_dtype=param_dtype,
                  kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), axes),
                  bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
                  name=name)


class MLPProjector(nn.Module):
  """LLaMA-VID `mlp2x_gelu`: Dense -> exact GELU -> Dense (keys mm_projector.0 / .2)."""

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = _dense(self.features, ("vision", "embed"), self.dtype, self.param_dtype, "fc1")(x)
    x = jax.nn.gelu(x, approximate=False)
    return _dense(self.features, ("mlp", "embed"), self.dtype, self.param_dtype, "fc2")(x)


def masked_mean(x: Array, mask: Optional[Array], axis: int) -> Array:
  if mask is None:
    return x.mean(axis)
  m = mask.astype(x.dtype)[..., None]
  return (x * m).sum(axis) / jnp.maximum(m.sum(axis), 1)


def grid_cells(positions: Array, num_patches: int, grid: int) -> Array:
  """Content-grid cell of each patch: indices [...] on the square sqrt(N) x sqrt(N) tower grid
  (row-major) -> int32 [...] in [0, grid*grid), cells row-major from the top left."""
  side = math.isqrt(num_patches)
  if side * side != num_patches:
    raise ValueError(f"{num_patches} patches is not a square grid")
  if not 1 <= grid <= side:
    raise ValueError(f"content grid {grid} must be in 1..{side} (the tower grid's side)")
  row, col = positions // side, positions % side
  return ((row * grid // side) * grid + col * grid // side).astype(jnp.int32)


def cell_means(v: Array, cells: Array, mask: Optional[Array], num_cells: int) -> Array:
  """Mean of the (kept) patches of each cell: v [B, T, k, Dv], cells [B, T, k] -> [B, T, G, Dv]
  (zeros for a cell with no kept patch, as `masked_mean`)."""
  member = jax.nn.one_hot(cells, num_cells, dtype=v.dtype)                   # [B, T, k, G]
  if mask is not None:
    member = member * mask.astype(v.dtype)[..., None]
  sums = jnp.einsum("btkg,btkd->btgd", member, v, preferred_element_type=jnp.float32)
  counts = member.astype(jnp.float32).sum(2)[..., None]                      # [B, T, G, 1]
  return (sums / jnp.maximum(counts, 1)).astype(v.dtype)


class FrameTokens(nn.Module):
  """patches [B, T, N, Dv] (+ queries [B, T, Q, Dq], mask [B, T, N]) -> LLM tokens.

  With a content grid, `cells` [B, T, N] gives each patch's grid cell (`grid_cells` of the kept
  patches' tower indices); None: the patches are the whole square tower grid in row-major order.
  """

  config: FrameTokensConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, patches: Array, queries: Optional[Array] = None,
               mask: Optional[Array] = None, cells: Optional[Array] = None) -> Array:
    cfg = self.config
    b, t, n, dv = patches.shape
    v = patches.astype(self.dtype)
    projector = MLPProjector(cfg.llm_dim, self.dtype, self.param_dtype, name="mm_projector")
    if cfg.mode == "tokens":
      tokens = projector(v)                                                    # [B, T, N, D]
      return tokens.reshape(b, t * n, cfg.llm_dim)
    if queries is None:
      raise ValueError("context tokens need text-guided queries [B, T, Q, Dq]")
    text_q = _dense(dv, ("queries", "vision"), self.dtype, self.param_dtype,
                    "vlm_att_projector")(queries.astype(self.dtype))            # [B, T, Q, Dv]
    keys = _dense(dv, ("vision", "vision_out"), self.dtype, self.param_dtype,
                  "vlm_att_key_projector")(v)                                  # [B, T, N, Dv]
    logits = jnp.einsum("btqd,btnd->btqn", text_q, keys,
                        preferred_element_type=jnp.float32) / jnp.sqrt(jnp.float32(dv))
    if mask is not None:
      logits = jnp.where(mask[:, :, None, :], logits, jnp.finfo(jnp.float32).min)
    attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    ctx = jnp.einsum("btqn,btnd->btqd", attn, v).mean(2)                       # [B, T, Dv]
    ctx = _dense(cfg.llm_dim, ("vision", "embed"), self.dtype, self.param_dtype,
                 "vlm_att_val_projector")(ctx)                                  # [B, T, D]
    g = cfg.content_grid
    if g == 1:
      content = projector(masked_mean(v, mask, axis=2))                        # [B, T, D]
      tokens = jnp.stack([ctx, content], axis=2)                               # [B, T, 2, D]
      return tokens.reshape(b, 2 * t, cfg.llm_dim)
    if cells is None:
      cells = jnp.broadcast_to(grid_cells(jnp.arange(n), n, g), (b, t, n))
    content = projector(cell_means(v, cells, mask, g * g))                     # [B, T, G, D]
    tokens = jnp.concatenate([ctx[:, :, None], content], axis=2)               # [B, T, 1+G, D]
    return tokens.reshape(b, (1 + g * g) * t, cfg.llm_dim)
