"""LLaMA-VID frame tokens: per frame one context token and one content token, or all tokens.

Axis legend: B videos, T frames, N patches per frame, Q queries, Dq query width, Dv vision width,
D LLM width.

Context token (text-guided): `text_q = vlm_att_projector(Q)`, `K = vlm_att_key_projector(V)`,
`S = softmax(text_q K^T / sqrt(Dv))` over the frame's patches (only the SETS-kept ones when a mask
is given), `ctx = vlm_att_val_projector(mean over queries of S @ V)` with values = raw V.
Content token: `mm_projector(mean of the frame's (kept) patches)`, `mm_projector` = mlp2x_gelu.
Output order per video: [ctx_1, cont_1, ctx_2, cont_2, ...] -> [B, 2T, D].

Mode 'tokens' instead projects every (kept) patch token with `mm_projector` -> [B, T*k, D].
"""

from __future__ import annotations

import dataclasses
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

  def __post_init__(self):
    if self.mode not in ("context_content", "tokens"):
      raise ValueError(f"unknown frame token mode {self.mode!r}")


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


class FrameTokens(nn.Module):
  """patches [B, T, N, Dv] (+ queries [B, T, Q, Dq], mask [B, T, N]) -> LLM tokens."""

  config: FrameTokensConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, patches: Array, queries: Optional[Array] = None,
               mask: Optional[Array] = None) -> Array:
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
    content = projector(masked_mean(v, mask, axis=2))                          # [B, T, D]
    tokens = jnp.stack([ctx, content], axis=2)                                 # [B, T, 2, D]
    return tokens.reshape(b, 2 * t, cfg.llm_dim)
