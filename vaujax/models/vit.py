"""Pre-norm Vision Transformer covering CLIP vision, EVA-CLIP (LAVIS) and DINOv2 towers.

Axis legend: B images (frames), H/W pixels, N patches, R register tokens, D width, F MLP width.

One module, switched by `ViTConfig`, because the three published towers differ only in small
choices: CLIP has a pre-LayerNorm, quick-GELU and a bias-free patch conv; EVA (as LAVIS / LLaMA-VID
load it) has q/v biases but no k bias, exact GELU and no final norm; DINOv2 has LayerScale, a final
LayerNorm, optional register tokens and interpolates its position table for other input sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaujax.models import resample

Array = jax.Array
Dtype = Any


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  hidden_size: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  patch_size: int = 14
  image_size: int = 224               # native resolution of the position table
  act: str = "gelu"                   # 'gelu' (exact erf) | 'quick_gelu' | 'swiglu'
  layer_norm_eps: float = 1e-6
  patch_bias: bool = True
  pre_layernorm: bool = False         # CLIP's `pre_layrnorm`
  final_layernorm: bool = False       # DINOv2's `layernorm` (applied to the last layer only)
  pooled_layernorm: bool = False      # CLIP's `post_layernorm` (class token of the last layer)
  qkv_bias: str = "qkv"               # 'qkv' | 'qv' (EVA: no k bias) | 'none'
  layer_scale: bool = False           # DINOv2 LayerScale
  num_registers: int = 0              # DINOv2 with registers
  mask_token: bool = False            # DINOv2 keeps an (inference-unused) mask token
  pos_interpolation: str = "torch_bicubic"  # or 'antialiased_bicubic' (DINOv2 registers)
  feature_layer: int = -1             # HF hidden_states index of the output (-2: penultimate)

  @property
  def native_grid(self) -> int:
    return self.image_size // self.patch_size

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def layers_run(self) -> int:
    """Blocks executed to reach `feature_layer` (hidden_states has num_layers + 1 entries)."""
    index = self.feature_layer % (self.num_layers + 1)
    return index


def clip_vit_l14(image_size: int = 224) -> ViTConfig:
  """OpenAI CLIP ViT-L/14 vision tower as LLaVA uses it (penultimate layer, 224 or 336)."""
  return ViTConfig(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096,
                   image_size=image_size, act="quick_gelu", layer_norm_eps=1e-5, patch_bias=False,
                   pre_layernorm=True, pooled_layernorm=True, feature_layer=-2)


def eva_vit_g14() -> ViTConfig:
  """EVA-CLIP ViT-g/14 as LAVIS/LLaMA-VID build it: 39 blocks run, width 1408, no final norm."""
  return ViTConfig(hidden_size=1408, num_layers=39, num_heads=16, mlp_dim=6144, act="gelu",
                   layer_norm_eps=1e-6, qkv_bias="qv")


def dinov2(size: str = "base", registers: int = 0) -> ViTConfig:
  """facebook/dinov2-{small,base,large,giant}[-with-registers] (518-px position table)."""
  width, depth, heads = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16),
                         "giant": (1536, 40, 24)}[size]
  act, mlp = ("swiglu", 4096) if size == "giant" else ("gelu", 4 * width)
  return ViTConfig(hidden_size=width, num_layers=depth, num_heads=heads, mlp_dim=mlp,
                   image_size=518, act=act, final_layernorm=True, layer_scale=True,
                   num_registers=registers, mask_token=True,
                   pos_interpolation="antialiased_bicubic" if registers else "torch_bicubic")


def tiny_vit(kind: str = "clip", **overrides) -> ViTConfig:
  """Seconds-on-CPU configs with the structure of each published tower."""
  base = dict(hidden_size=32, num_layers=3, num_heads=4, mlp_dim=64, image_size=56)
  kinds = {"clip": dict(act="quick_gelu", layer_norm_eps=1e-5, patch_bias=False,
                        pre_layernorm=True, pooled_layernorm=True, feature_layer=-2),
           "eva": dict(act="gelu", qkv_bias="qv", mlp_dim=70),
           "dinov2": dict(final_layernorm=True, layer_scale=True, mask_token=True, mlp_dim=128)}
  return ViTConfig(**{**base, **kinds[kind], **overrides})


def _activation(name: str):
  if name == "gelu":
    return lambda x: jax.nn.gelu(x, approximate=False)
  if name == "quick_gelu":
    return lambda x: x * jax.nn.sigmoid(1.702 * x)
  raise ValueError(f"unknown activation {name!r}")


def _param_init(axes, init=nn.initializers.normal(0.02)):
  return nn.with_logical_partitioning(init, axes)


def layer_norm(eps: float, dtype, param_dtype, name: str) -> nn.LayerNorm:
  """LayerNorm with fp32 statistics and logical axes on scale/bias."""
  return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=param_dtype, use_fast_variance=False,
                      scale_init=_param_init(("norm",), nn.initializers.ones),
                      bias_init=_param_init(("norm",), nn.initializers.zeros), name=name)


def dense(features: int, axes: tuple[str, str], use_bias: bool, dtype, param_dtype,
          name: str) -> nn.Dense:
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                  kernel_init=_param_init(axes),
                  bias_init=_param_init(axes[1:], nn.initializers.zeros), name=name)


QUERY_CHUNK_ROWS = 128   # at most this many query rows per attention block


def attention(q: Array, k: Array, v: Array, scale: float,
              max_rows: Optional[int] = QUERY_CHUNK_ROWS, key_mask: Optional[Array] = None,
              dropout: Optional[Callable[[Array], Array]] = None) -> Array:
  """softmax(q k^T * scale, masked) v: q [B, S, heads, Dh], k/v [B, N, heads, Dh] -> [B, S,
  heads, Dh]; `key_mask` [B, N] (True = attend), `dropout` on the attention weights.

  fp32 logits and softmax. The queries run in near-equal chunks of at most `max_rows` rows
  (None: one block; 257 tokens at 128: 3 chunks of 88, 88 and 81), each chunk's value matmul
  heads-major on the unnormalised exp() weights, divided by their row sums afterwards as flash
  attention does (dropout commutes with that per-row scale). On XLA:CPU the single
  [B, heads, S, S] block with a normalised softmax and a tokens-major value matmul made the
  CLIP-style tower 1.4-1.5x slower and the Q-Former's forward 1.17x (BUILD.md).
  """
  s = q.shape[1]
  rows = s
  if max_rows is not None:
    rows = -(-s // -(-s // max_rows))
    rows = min(s, -(-rows // 8) * 8)
  outs = []
  for start in range(0, s, rows):
    logits = jnp.einsum("bqhd,bkhd->bhqk", q[:, start:start + rows], k,
                        preferred_element_type=jnp.float32) * scale        # [B, heads, c, N]
    if key_mask is not None:
      logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
    weights = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    kept = weights if dropout is None else dropout(weights)
    out = jnp.einsum("bhqk,bkhd->bhqd", kept.astype(v.dtype), v,
                     preferred_element_type=jnp.float32)                   # [B, heads, c, Dh]
    outs.append(out / jnp.sum(weights, axis=-1, keepdims=True))
  out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=2)
  return out.astype(v.dtype).transpose(0, 2, 1, 3)


class SelfAttention(nn.Module):
  config: ViTConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):                                                       # [B, S, D]
    cfg = self.config
    bias = {"qkv": (True, True, True), "qv": (True, False, True), "none": (False,) * 3}[cfg.qkv_bias]
    proj = lambda name, b: dense(cfg.hidden_size, ("embed", "heads"), b, self.dtype,  # noqa: E731
                                 self.param_dtype, name)
    b, s, _ = x.shape
    split = lambda t: t.reshape(b, s, cfg.num_heads, cfg.head_dim)  # noqa: E731
    q, k, v = (split(proj(n, bb)(x)) for n, bb in zip(("q", "k", "v"), bias))
    out = attention(q, k, v, cfg.head_dim ** -0.5).reshape(b, s, cfg.hidden_size)
    return dense(cfg.hidden_size, ("heads", "embed"), cfg.qkv_bias != "none", self.dtype,
                 self.param_dtype, "out")(out)


class MLP(nn.Module):
  config: ViTConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    fc = lambda f, axes, name: dense(f, axes, True, self.dtype, self.param_dtype, name)  # noqa
    if cfg.act == "swiglu":  # DINOv2-giant: weights_in -> (silu(x1) * x2) -> weights_out
      x1, x2 = jnp.split(fc(2 * cfg.mlp_dim, ("embed", "mlp"), "fc1")(x), 2, axis=-1)
      return fc(cfg.hidden_size, ("mlp", "embed"), "fc2")(jax.nn.silu(x1) * x2)
    h = _activation(cfg.act)(fc(cfg.mlp_dim, ("embed", "mlp"), "fc1")(x))
    return fc(cfg.hidden_size, ("mlp", "embed"), "fc2")(h)


class Block(nn.Module):
  config: ViTConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    norm = lambda name: layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, name)  # noqa
    scale = lambda name, y: y * self.param(  # noqa: E731
        name, _param_init(("norm",), nn.initializers.ones), (cfg.hidden_size,),
        self.param_dtype).astype(self.dtype) if cfg.layer_scale else y
    x = x + scale("layer_scale1", SelfAttention(cfg, self.dtype, self.param_dtype, name="attn")(
        norm("norm1")(x)))
    x = x + scale("layer_scale2", MLP(cfg, self.dtype, self.param_dtype, name="mlp")(
        norm("norm2")(x)))
    return nn.with_logical_constraint(x, ("act_batch", "act_tokens", "act_embed"))


def interpolate_positions(table: Array, grid_hw: tuple[int, int], native: int,
                          method: str) -> Array:
  """Resamples the patch rows [native*native, D] of a position table onto `grid_hw`."""
  if grid_hw == (native, native):
    return table
  make = {"torch_bicubic": resample.torch_bicubic_matrix,
          "antialiased_bicubic": resample.antialiased_bicubic_weights}[method]
  rows = jnp.asarray(make(native, grid_hw[0]), jnp.float32)
  cols = jnp.asarray(make(native, grid_hw[1]), jnp.float32)
  grid = table.astype(jnp.float32).reshape(native, native, -1)
  hp = jax.lax.Precision.HIGHEST
  out = jnp.einsum("hn,nmd,wm->hwd", rows, grid, cols, precision=hp)
  return out.reshape(grid_hw[0] * grid_hw[1], -1).astype(table.dtype)


class ViT(nn.Module):
  """Images [B, H, W, 3] (already normalised) -> tokens of layer `feature_layer`.

  Returns a dict: `tokens` [B, 1+R+N, D], `cls` [B, D], `registers` [B, R, D], `patches`
  [B, N, D] (row-major patch grid), `grid` (gh, gw) as static Python ints.
  """

  config: ViTConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Array) -> dict:
    cfg = self.config
    p, d = cfg.patch_size, cfg.hidden_size
    b, h, w, _ = images.shape
    if h % p or w % p:
      raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    grid = (h // p, w // p)
    x = nn.Conv(d, (p, p), strides=(p, p), padding="VALID", use_bias=cfg.patch_bias,
                dtype=self.dtype, param_dtype=self.param_dtype,
                kernel_init=_param_init(("patch_h", "patch_w", "channels", "embed")),
                bias_init=_param_init(("embed",), nn.initializers.zeros),
                name="patch_embedding")(images.astype(self.dtype))
    x = x.reshape(b, grid[0] * grid[1], d)                                      # [B, N, D]
    cls = self.param("class_embedding", _param_init(("embed",)), (d,), self.param_dtype)
    pos = self.param("position_embedding", _param_init(("pos", "embed")),
                     (1 + cfg.native_grid ** 2, d), self.param_dtype)
    if cfg.mask_token:
      self.param("mask_token", _param_init(("embed",), nn.initializers.zeros), (d,),
                 self.param_dtype)
    patch_pos = interpolate_positions(pos[1:], grid, cfg.native_grid, cfg.pos_interpolation)
    x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (b, 1, d)), x], axis=1)
    x = x + jnp.concatenate([pos[:1], patch_pos], axis=0).astype(self.dtype)[None]
    if cfg.num_registers:
      regs = self.param("register_tokens", _param_init((None, "embed")),
                        (cfg.num_registers, d), self.param_dtype)
      x = jnp.concatenate([x[:, :1], jnp.broadcast_to(regs.astype(self.dtype),
                                                      (b, cfg.num_registers, d)), x[:, 1:]], 1)
    if cfg.pre_layernorm:
      x = layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, "pre_layernorm")(x)
    x = nn.with_logical_constraint(x, ("act_batch", "act_tokens", "act_embed"))
    blocks = [Block(cfg, self.dtype, self.param_dtype, name=f"layers_{i}")
              for i in range(cfg.num_layers)]
    for block in blocks[:cfg.layers_run]:
      x = block(x)
    if self.is_initializing():  # create every layer's params, also those past feature_layer
      for block in blocks[cfg.layers_run:]:
        block(x)
    last = cfg.layers_run == cfg.num_layers
    if cfg.final_layernorm:  # DINOv2: every output token is normed
      normed = layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, "final_layernorm")(x)
      x = normed if last else x
    r = cfg.num_registers
    out = {"tokens": x, "cls": x[:, 0], "registers": x[:, 1:1 + r], "patches": x[:, 1 + r:],
           "grid": grid}
    if cfg.pooled_layernorm:  # CLIP's post_layernorm on the class token (HF pooler_output)
      pooled = layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, "post_layernorm")(
          x[:, 0])
      if last:
        out["pooled"] = pooled
    return out
