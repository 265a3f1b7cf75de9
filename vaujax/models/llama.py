"""LLaMA / Vicuna decoder in flax.linen, numerically equal to HF `LlamaForCausalLM`.

Axis legend: B batch, L query length, S key length (cache size), D hidden, H query heads,
K key/value heads (grouped-query attention: H = K * G), Dh head dim, F MLP width, V vocab.

The model is a pure function of (params, ids or embeddings, positions, masks, cache). The KV
cache is an explicit pytree passed in and returned, so prefill and decode jit with static shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaujax.models import layer_scan

Array = jax.Array
Dtype = Any

ATTENTION_IMPLS = ("chunked", "einsum", "xla", "cudnn")
# What a rematerialised layer keeps from its forward pass for the backward (`remat_policy`):
#   full  nothing but its input: the whole layer runs again (least memory)
#   dots  also the outputs of its weight matmuls (q/k/v/o, gate/up/down projections: JAX's
#         `dots_with_no_batch_dims_saveable`); the norms, rotary, attention and SwiGLU products
#         are recomputed
REMAT_POLICIES = {"full": None, "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}
MIN_QUERY_CHUNK = 32   # "chunked": shorter sequences take the single-block einsum

# A layer's cache: {'k': [B, K, S, Dh], 'v': [B, K, S, Dh]} (heads-major, the layout the
# attention matmuls read, so a decode step never copies the cache); the model's is a list.
LayerCache = dict[str, Array]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AttentionMask:
  """Which keys each query reads, as the decoder layers get it.

  `allowed` [B, L, S] bool. `kind` (static) tells the kernels what shape of mask it is:
    causal_padding  no cache, S == L, exactly causal & key validity (a training batch, a
                    prompt): "chunked" skips the upper triangle, "cudnn" takes right padding
                    as key lengths
    causal          no cache, S == L, causal & a per-query key mask (options packed after one
                    prompt): "chunked" still skips the upper triangle, "cudnn" takes the mask
    cached          queries from `cache_index` on against the cache's S slots
  """

  allowed: Array
  kind: str = dataclasses.field(metadata=dict(static=True))


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  """Architecture hyper-parameters (HF `LlamaConfig` names where they exist)."""

  vocab_size: int = 32000
  hidden_size: int = 4096
  intermediate_size: int = 11008
  num_layers: int = 32
  num_heads: int = 32
  num_kv_heads: int = 32
  head_dim: Optional[int] = None  # defaults to hidden_size // num_heads
  max_position_embeddings: int = 4096
  rms_norm_eps: float = 1e-5
  rope_theta: float = 10000.0
  rope_scaling_factor: float = 1.0  # HF rope_scaling {"type": "linear", "factor": f}
  attention_bias: bool = False
  tie_word_embeddings: bool = False
  bos_token_id: int = 1
  eos_token_id: int = 2
  pad_token_id: int = 0
  remat: bool = False  # rematerialise each decoder layer in the backward pass
  remat_policy: str = "full"  # what a rematerialised layer saves (REMAT_POLICIES)
  # Run the decoder layers (no-cache forward: training, scoring) as one `lax.scan` over their
  # stacked weights: one compiled layer body instead of num_layers copies, and under fsdp each
  # layer's all-gathered weights and full-size gradients live for one iteration only. The
  # parameter tree keeps its per-layer `layers_i` names (checkpoints, converters, LoRA).
  scan_layers: bool = False
  # Attention kernel (see `attention`): "chunked" (the einsum per causal query chunk, skipping
  # the all-masked upper triangle; the default), "einsum" (one explicit fp32 [L, S] logits
  # block, any mask), "xla" or "cudnn" (jax.nn.dot_product_attention; cudnn is the fused flash
  # kernel on NVIDIA GPUs, bf16/fp16 only).
  attention_impl: str = "chunked"
  attention_chunks: int = 8  # "chunked": at most this many query chunks per sequence

  @property
  def head_size(self) -> int:
    return self.head_dim or self.hidden_size // self.num_heads

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                       f"num_kv_heads={self.num_kv_heads}")
    if self.head_dim is None and self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} not divisible by num_heads={self.num_heads}")
    if self.head_size % 2:
      raise ValueError(f"head_dim={self.head_size} must be even for rotary embeddings")
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={self.attention_impl!r}: expected one of "
                       f"{ATTENTION_IMPLS}")
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"remat_policy={self.remat_policy!r}: expected one of "
                       f"{tuple(REMAT_POLICIES)}")
    if self.attention_chunks < 1:
      raise ValueError(f"attention_chunks={self.attention_chunks} must be >= 1")


def vicuna_7b_v15() -> LlamaConfig:
  """lmsys/vicuna-7b-v1.5 (LLaMA-2 based; what LLaMA-VID fine-tunes): eps 1e-5, 4096 positions."""
  return LlamaConfig()


def vicuna_7b_v11() -> LlamaConfig:
  """lmsys/vicuna-7b-v1.1 (LLaMA-1 based): RMSNorm eps 1e-6, 2048 positions."""
  return LlamaConfig(rms_norm_eps=1e-6, max_position_embeddings=2048)


def tiny_llama(**overrides) -> LlamaConfig:
  """A seconds-on-CPU config for tests and the demo."""
  base = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
              num_kv_heads=2, max_position_embeddings=512)
  base.update(overrides)
  return LlamaConfig(**base)


# Every LLM a config can name (configs/vagpt.py: `model.llm`), in one table.
LLM_CONFIGS = {"tiny": tiny_llama, "vicuna_7b_v15": vicuna_7b_v15, "vicuna_7b_v11": vicuna_7b_v11}


# The sizes a config may change on a named LLM (configs/vagpt.py `model.llm_sizes`).
LLM_SIZES = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads")


def llm_config(name: str, sizes: Optional[Mapping[str, int]] = None) -> LlamaConfig:
  """The named LLM's config (`LLM_CONFIGS`); an unknown name lists the known ones. `sizes`
  changes the `LLM_SIZES` given a value other than 0 (a deeper or wider tiny LLM; a converted
  checkpoint must have the sizes of the model it is loaded into)."""
  if name not in LLM_CONFIGS:
    raise ValueError(f"unknown LLM {name!r}; choose from {sorted(LLM_CONFIGS)}")
  sizes = dict(sizes or {})
  unknown = sorted(set(sizes) - set(LLM_SIZES))
  if unknown:
    raise ValueError(f"unknown LLM size {unknown[0]!r}; choose from {list(LLM_SIZES)}")
  changed = {k: int(v) for k, v in sizes.items() if v}
  return dataclasses.replace(LLM_CONFIGS[name](), **changed)


def _dense_init(axes):
  return nn.with_logical_partitioning(nn.initializers.normal(0.02), axes)


class RMSNorm(nn.Module):
  """x * rsqrt(mean(x^2) + eps) * weight, the reduction in fp32 as in HF."""

  eps: float = 1e-5
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    weight = self.param("weight", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                        (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (jnp.asarray(weight, self.dtype) * normed.astype(self.dtype)).astype(self.dtype)


def rotary_tables(positions: Array, head_dim: int, theta: float,
                  scaling_factor: float = 1.0) -> tuple[Array, Array]:
  """cos/sin tables [B, L, Dh] in fp32 (HF half-split layout: freqs repeated twice)."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  freqs = (positions.astype(jnp.float32) / scaling_factor)[..., None] * inv_freq  # [B, L, Dh/2]
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def apply_rotary(x: Array, cos: Array, sin: Array) -> Array:
  """Rotate-half RoPE on x [B, L, heads, Dh] with cos/sin [B, L, Dh]."""
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  cos, sin = cos[:, :, None, :].astype(x.dtype), sin[:, :, None, :].astype(x.dtype)
  return x * cos + rotated * sin


class Attention(nn.Module):
  """Causal grouped-query self-attention with an optional KV cache."""

  config: LlamaConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _dense(self, features, axes, name):
    cfg = self.config
    return nn.Dense(features, use_bias=cfg.attention_bias, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=_dense_init(axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
                    name=name)

  @nn.compact
  def __call__(self, x: Array, cos: Array, sin: Array, mask: AttentionMask,
               cache: Optional[LayerCache], cache_index: Optional[Array]):
    cfg = self.config
    b, l, _ = x.shape
    dh = cfg.head_size
    # Kernels are [D, heads*Dh] (HF layout transposed); heads are split after the matmul.
    q = self._dense(cfg.num_heads * dh, ("embed", "heads"), "q_proj")(x).reshape(b, l, -1, dh)
    k = self._dense(cfg.num_kv_heads * dh, ("embed", "kv_heads"), "k_proj")(x).reshape(b, l, -1, dh)
    v = self._dense(cfg.num_kv_heads * dh, ("embed", "kv_heads"), "v_proj")(x).reshape(b, l, -1, dh)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)                   # [B, L, H|K, Dh]
    if cache is not None:
      start = (0, 0, cache_index, 0)
      new = lambda t, old: jax.lax.dynamic_update_slice(  # noqa: E731  [B, K, S, Dh]
          old, t.transpose(0, 2, 1, 3).astype(old.dtype), start)
      cache = {"k": new(k, cache["k"]), "v": new(v, cache["v"])}
      # Logical [B, S, K, Dh] views; XLA folds the transposes into the attention matmuls.
      k, v = (cache[n].transpose(0, 2, 1, 3).astype(self.dtype) for n in ("k", "v"))
    out = attention(q, k, v, mask.allowed, cfg.attention_impl, mask.kind,
                    cfg.attention_chunks).reshape(b, l, -1)
    out = nn.with_logical_constraint(out, ("act_batch", "act_len", "act_heads"))
    out = self._dense(cfg.hidden_size, ("heads", "embed"), "o_proj")(out)
    return out, cache


def attention(q: Array, k: Array, v: Array, mask: Array, impl: str = "chunked",
              kind: str = "cached", max_chunks: int = 8) -> Array:
  """Dispatches to the configured kernel; q [B,L,H,Dh], k/v [B,S,K,Dh], mask [B,L,S] bool.

  `kind` is `AttentionMask.kind`. Without a cache the mask lies inside the causal triangle, so
  "chunked" skips the upper triangle. When it is exactly causal & key validity
  ("causal_padding"), "cudnn" runs `cudnn_causal_padding_attention`. Otherwise every kernel
  gets the explicit mask ("chunked" is then the single-block einsum).
  """
  if kind not in ("causal_padding", "causal", "cached"):
    raise ValueError(f"unknown attention mask kind {kind!r}")
  if impl == "chunked" and kind != "cached":
    return causal_chunked_attention(q, k, v, mask, max_chunks)
  if impl in ("einsum", "chunked"):
    return grouped_attention(q, k, v, mask)
  if impl == "cudnn" and kind == "causal_padding":
    return cudnn_causal_padding_attention(q, k, v, mask)
  return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], implementation=impl)


def right_padding_lengths(valid: Array) -> tuple[Array, Array]:
  """Key validity [B, S] -> (real keys per row [B] int32, whether every row is right-padded)."""
  lengths = valid.sum(axis=-1, dtype=jnp.int32)
  prefix = jnp.arange(valid.shape[-1]) < lengths[:, None]
  return lengths, jnp.all(valid == prefix)


def cudnn_causal_padding_attention(q: Array, k: Array, v: Array, mask: Array,
                                   implementation: str = "cudnn") -> Array:
  """cuDNN flash attention under a causal & key-validity mask [B, L, L].

  JAX's cuDNN wrapper takes a mask only as a bias of the full [B, 1, L, S] shape, which the
  backward also differentiates. A right-padded batch (every training batch) goes as key
  lengths instead (`key_value_seq_lengths` with `is_causal`), so the kernel skips the upper
  triangle and the padding with no bias at all; any other validity pattern (left padding)
  takes the full mask. `implementation="xla"` runs the same dispatch on any backend (tests).
  """
  lengths, right_padded = right_padding_lengths(mask[:, -1, :])   # the last row sees every key
  by_lengths = lambda: jax.nn.dot_product_attention(  # noqa: E731
      q, k, v, is_causal=True, key_value_seq_lengths=lengths, implementation=implementation)
  by_mask = lambda: jax.nn.dot_product_attention(  # noqa: E731
      q, k, v, mask=mask[:, None], is_causal=True, implementation=implementation)
  return jax.lax.cond(right_padded, by_lengths, by_mask)


def query_chunk(length: int, max_chunks: int) -> int:
  """Rows per query chunk: length / max_chunks rounded up to a multiple of 8, at least 32."""
  chunk = -(-length // max_chunks)
  return max(MIN_QUERY_CHUNK, -(-chunk // 8) * 8)


def causal_chunked_attention(q: Array, k: Array, v: Array, mask: Array,
                             max_chunks: int = 8) -> Array:
  """Causal self-attention per query chunk: rows [i, e) meet only keys [0, e).

  The logits blocks above the diagonal are all masked, so they are never computed: about
  (n - 1) / 2n of the attention FLOPs and score memory go, and the per-chunk scores stay in
  cache (2-4x faster forward + backward on CPU; benchmarks/optimisations.py). Equal to
  `grouped_attention` on every row that sees at least one key. A row that sees none (a
  left-padding query) averages its chunk's values instead of all values: a meaningless output
  either way, which no loss and no later token reads.
  q [B, L, H, Dh], k/v [B, L, K, Dh], mask [B, L, L] (inside the causal triangle).
  """
  l = q.shape[1]
  if k.shape[1] != l:
    raise ValueError(f"causal chunked attention needs as many keys as queries, got "
                     f"{k.shape[1]} keys for {l} queries")
  chunk = query_chunk(l, max_chunks)
  if chunk >= l:
    return grouped_attention(q, k, v, mask)
  q, k, v = _heads_major(q, k, v)                            # [B, K, G, L, Dh], [B, K, S, Dh]
  outs = [_attend(q[:, :, :, start:start + chunk], k[:, :, :start + chunk],
                  v[:, :, :start + chunk], mask[:, start:start + chunk, :start + chunk])
          for start in range(0, l, chunk)]
  return _tokens_major(jnp.concatenate(outs, axis=3))


def grouped_attention(q: Array, k: Array, v: Array, mask: Array) -> Array:
  """Softmax attention (fp32 logits/softmax) for q [B,L,H,Dh], k/v [B,S,K,Dh], mask [B,L,S]."""
  return _tokens_major(_attend(*_heads_major(q, k, v), mask))


def _heads_major(q: Array, k: Array, v: Array) -> tuple[Array, Array, Array]:
  """q [B, L, H, Dh] -> [B, K, G, L, Dh] (H = K * G); k/v [B, S, K, Dh] -> [B, K, S, Dh]."""
  b, l, h, dh = q.shape
  kv_heads = k.shape[2]
  q = q.reshape(b, l, kv_heads, h // kv_heads, dh).transpose(0, 2, 3, 1, 4)
  return q, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)


def _tokens_major(out: Array) -> Array:
  """[B, K, G, L, Dh] -> [B, L, H, Dh]."""
  b, kv_heads, groups, l, dh = out.shape
  return out.transpose(0, 3, 1, 2, 4).reshape(b, l, kv_heads * groups, dh)


def _attend(q: Array, k: Array, v: Array, mask: Array) -> Array:
  """softmax(q k^T / sqrt(Dh), masked) v with fp32 logits and softmax, heads-major:
  q [B, K, G, L, Dh], k/v [B, K, S, Dh], mask [B, L, S] -> [B, K, G, L, Dh].

  The softmax is normalised after the value matmul, as flash attention does: the division
  runs over [L, Dh] instead of [L, S], and the backward's row reduction too (1.04-1.07x on
  CPU train steps; benchmarks in BUILD.md)."""
  logits = jnp.einsum("bkgld,bksd->bkgls", q, k, preferred_element_type=jnp.float32)
  logits = logits / jnp.sqrt(jnp.float32(q.shape[-1]))
  logits = jnp.where(mask[:, None, None], logits, jnp.finfo(jnp.float32).min)
  # The row maximum only keeps exp() in range; it cancels, so it needs no gradient.
  weights = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
  out = jnp.einsum("bkgls,bksd->bkgld", weights.astype(v.dtype), v,
                   preferred_element_type=jnp.float32)
  return (out / jnp.sum(weights, axis=-1, keepdims=True)).astype(v.dtype)


class MLP(nn.Module):
  """SwiGLU: down(silu(gate(x)) * up(x))."""

  config: LlamaConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    dense = lambda feats, axes, name: nn.Dense(  # noqa: E731
        feats, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=_dense_init(axes), name=name)
    gate = dense(cfg.intermediate_size, ("embed", "mlp"), "gate_proj")(x)
    up = dense(cfg.intermediate_size, ("embed", "mlp"), "up_proj")(x)
    h = nn.with_logical_constraint(nn.silu(gate) * up, ("act_batch", "act_len", "act_mlp"))
    return dense(cfg.hidden_size, ("mlp", "embed"), "down_proj")(h)


class DecoderLayer(nn.Module):
  config: LlamaConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, cos, sin, mask, cache=None, cache_index=None):
    cfg = self.config
    norm = lambda name: RMSNorm(cfg.rms_norm_eps, self.dtype, self.param_dtype, name=name)  # noqa: E731
    attn_out, cache = Attention(cfg, self.dtype, self.param_dtype, name="self_attn")(
        norm("input_layernorm")(x), cos, sin, mask, cache, cache_index)
    x = x + attn_out
    x = x + MLP(cfg, self.dtype, self.param_dtype, name="mlp")(norm("post_attention_layernorm")(x))
    x = nn.with_logical_constraint(x, ("act_batch", "act_len", "act_embed"))
    return x, cache


def causal_padding_mask(attention_mask: Optional[Array], batch: int, q_len: int, kv_len: int,
                        cache_index: Optional[Array]) -> Array:
  """Boolean [B, L, S]: causal (key slot <= query slot) and `attention_mask`.

  Without a cache the query slots are 0..L-1 and `attention_mask` is the key validity [B, L]
  or a per-query key mask [B, L, L]. With a cache the query slots start at `cache_index` and
  `attention_mask` is the key validity [B, S].
  """
  offset = 0 if cache_index is None else cache_index
  q_slot = offset + jnp.arange(q_len)[:, None]
  causal = jnp.arange(kv_len)[None, :] <= q_slot                                     # [L, S]
  if attention_mask is None:
    return jnp.broadcast_to(causal, (batch, q_len, kv_len))
  if attention_mask.ndim == 3:
    if cache_index is not None or attention_mask.shape[1:] != (q_len, kv_len):
      raise ValueError(f"a per-query attention mask must be [B, L, L] = [{batch}, {q_len}, "
                       f"{q_len}] without a cache, got {attention_mask.shape}")
    return causal[None] & attention_mask.astype(bool)
  return causal[None] & attention_mask[:, None, :kv_len].astype(bool)


class Llama(nn.Module):
  """LLaMA decoder with LM head. Parameter names mirror HF's (`embed_tokens`, `layers_i`, ...)."""

  config: LlamaConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def setup(self):
    cfg = self.config
    self.embed_tokens = nn.Embed(
        cfg.vocab_size, cfg.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype,
        embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")))
    layer_cls = nn.remat(DecoderLayer, policy=REMAT_POLICIES[cfg.remat_policy]) if cfg.remat \
        else DecoderLayer
    self.layers = [layer_cls(cfg, self.dtype, self.param_dtype, name=f"layers_{i}")
                   for i in range(cfg.num_layers)]
    self.norm = RMSNorm(cfg.rms_norm_eps, self.dtype, self.param_dtype)
    if not cfg.tie_word_embeddings:
      self.lm_head = nn.Dense(cfg.vocab_size, use_bias=False, dtype=self.dtype,
                              param_dtype=self.param_dtype,
                              kernel_init=_dense_init(("embed", "vocab")))

  def embed(self, input_ids: Array) -> Array:
    """Token embeddings [B, L, D] (placeholder ids < 0 embed as id 0; callers overwrite them)."""
    return self.embed_tokens(jnp.maximum(input_ids, 0))

  def logits(self, hidden: Array) -> Array:
    """LM head in fp32: [B, L, D] -> [B, L, V]."""
    if self.config.tie_word_embeddings:
      out = self.embed_tokens.attend(hidden)
    else:
      out = self.lm_head(hidden)
    return nn.with_logical_constraint(out.astype(jnp.float32), ("act_batch", "act_len", "act_vocab"))

  def __call__(self, input_ids: Optional[Array] = None, *, inputs_embeds: Optional[Array] = None,
               positions: Optional[Array] = None, attention_mask: Optional[Array] = None,
               cache: Optional[list[LayerCache]] = None, cache_index: Optional[Array] = None,
               return_hidden: bool = False, logits_to_keep: int = 0):
    """Runs the decoder.

    Args:
      input_ids: [B, L] int token ids, or None when `inputs_embeds` [B, L, D] is given.
      positions: [B, L] rotary positions; default 0..L-1 (offset by `cache_index` with a cache).
      attention_mask: [B, L] (no cache) or [B, S] key validity (with cache); 1 = real token.
        Without a cache it may also be [B, L, L], the keys each query may read (combined with
        the causal mask): options packed after one shared prompt (`scoring.option_logprobs`).
      cache: list of per-layer {'k','v'} [B, K, S, Dh] from `init_cache`; `cache_index` is
        the slot of the first query token.
      return_hidden: also return the final normed hidden states [B, L, D].
      logits_to_keep: > 0: the LM head runs on the last this many positions only (HF's
        `logits_to_keep`): a prefill that samples from its last token skips L - 1 rows of the
        [D, V] matmul.

    Returns:
      logits [B, L, V] fp32 ([B, logits_to_keep, V] if set); with a cache
      `(logits, new_cache)`; with `return_hidden`, the
      hidden states are appended to the returned tuple.
    """
    if (input_ids is None) == (inputs_embeds is None):
      raise ValueError("pass exactly one of input_ids or inputs_embeds")
    x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds.astype(self.dtype)
    b, l = x.shape[:2]
    x = nn.with_logical_constraint(x, ("act_batch", "act_len", "act_embed"))
    if positions is None:
      start = 0 if cache_index is None else cache_index
      positions = jnp.broadcast_to(start + jnp.arange(l), (b, l))
    cfg = self.config
    cos, sin = rotary_tables(positions, cfg.head_size, cfg.rope_theta, cfg.rope_scaling_factor)
    kv_len = l if cache is None else cache[0]["k"].shape[2]
    if cache is not None:
      kind = "cached"
    else:
      kind = "causal" if attention_mask is not None and attention_mask.ndim == 3 \
          else "causal_padding"
    mask = AttentionMask(causal_padding_mask(attention_mask, b, l, kv_len, cache_index), kind)
    new_cache = []
    if cfg.scan_layers and cache is None and not self.is_initializing():
      x = self._scan_layers(x, cos, sin, mask)
    else:
      for i, layer in enumerate(self.layers):
        x, layer_cache = layer(x, cos, sin, mask, None if cache is None else cache[i], cache_index)
        new_cache.append(layer_cache)
    hidden = self.norm(x)
    logits = self.logits(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)
    out = (logits,) if cache is None else (logits, new_cache)
    if return_hidden:
      out = out + (hidden,)
    return out[0] if len(out) == 1 else out

  def _scan_layers(self, x: Array, cos: Array, sin: Array, mask: AttentionMask) -> Array:
    """The decoder layers as one scan over their stacked weights (see `scan_layers`)."""
    cfg = self.config
    params = nn.unbox(self.variables["params"])
    stacked = layer_scan.stack_layers([params[f"layers_{i}"] for i in range(cfg.num_layers)],
                                      self.dtype)
    layer = DecoderLayer(cfg, self.dtype, self.param_dtype, parent=None)

    def body(h, layer_params):                                           # h: [B, L, D]
      return layer.apply({"params": layer_params}, h, cos, sin, mask)[0], None

    return layer_scan.scan(body, x, stacked, cfg.remat, REMAT_POLICIES[cfg.remat_policy])


def init_cache(config: LlamaConfig, batch: int, max_len: int,
               dtype: Dtype = jnp.float32) -> list[LayerCache]:
  """Zeroed KV cache: per layer {'k','v'} of shape [B, K, max_len, Dh]."""
  shape = (batch, config.num_kv_heads, max_len, config.head_size)
  return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
          for _ in range(config.num_layers)]
