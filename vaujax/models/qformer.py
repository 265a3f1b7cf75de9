"""LLaMA-VID's text-guided Q-Former (BERT-base with query tokens), equal to HF's InstructBLIP one.

Axis legend: B batch (prompt x frame), Q query tokens, L text length, S = Q + L, N image tokens,
H hidden width, Dv image feature width (`encoder_width`), F FFN width, V vocab.

Forward, as HF `InstructBlipQFormerModel` and LAVIS/LLaMA-VID `BertModel` (the `vlm_att_encoder`)
run it:
  1. text `word_emb(ids) + pos_emb(0..L-1)`; the queries (no position embedding) go in front:
     x = LayerNorm([queries; text]) -> [B, S, H] (queries-only: LayerNorm(queries)).
  2. every layer, post-LN residual blocks like BERT:
       bidirectional self-attention over x, key mask [ones(Q), text_mask];
       layers i % cross_attention_freq == 0: cross-attention of the query slice to the image
         features (K/V Dv -> H), key mask `image_mask`;
       FFN (exact GELU): `ffn_query` (intermediate_query/output_query) on the query slice,
         `ffn_text` (intermediate/output) on the text slice.
  3. output: the last hidden state; `queries` = its first Q rows [B, Q, H].

Differences between the two published layouts, none numerical: HF names `attention.attention.*`
and `embeddings.layernorm` what LAVIS/LLaMA-VID's `BertModel` calls `attention.self.*` and
`embeddings.LayerNorm`; HF takes the query tokens as `query_embeds` while LLaMA-VID keeps them
outside the BERT (`model.vlm_att_query` [1, Q, H]) and passes them the same way; LAVIS masks with
an additive -10000 and HF with the dtype minimum, both of which give exactly zero weight in fp32
(here: `where(mask, logits, finfo.min)`). The mask taken here is the *text* mask [B, L]; the
ones for the queries are prepended inside (HF's `attention_mask` is the full [B, Q + L]).
HF's InstructBLIP applies the embedding LayerNorm to the raw `query_embeds` together with the text,
exactly as LLaMA-VID does; BLIP-2's `Blip2QFormerModel` (no text, its own top-level `layernorm`
on the queries) is a different layout and is not read here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaujax.models import layer_scan
from vaujax.models.vit import attention, dense, layer_norm

Array = jax.Array
Dtype = Any


@dataclasses.dataclass(frozen=True)
class QFormerConfig:
  """BERT-base Q-Former hyper-parameters (HF `InstructBlipQFormerConfig` names in comments)."""

  hidden_size: int = 768
  num_layers: int = 12                # num_hidden_layers
  num_heads: int = 12                 # num_attention_heads
  intermediate_size: int = 3072
  layer_norm_eps: float = 1e-12
  max_position_embeddings: int = 512
  vocab_size: int = 30523             # bert-base-uncased + '[DEC]'
  encoder_width: int = 1408           # encoder_hidden_size: EVA-g feature width
  cross_attention_freq: int = 2       # cross_attention_frequency
  num_query_tokens: int = 32
  dropout: float = 0.0                # hidden_dropout_prob (BERT trains with 0.1)
  attention_dropout: float = 0.0      # attention_probs_dropout_prob
  # Rematerialise each layer in the backward pass: the paper plan's 64 frames x 288 tokens keep
  # [64, 12, 288, 288] fp32 attention scores per layer otherwise (benchmarks/memory_plan.py).
  remat: bool = False
  # Run the layers as a `lax.scan` over groups of `cross_attention_freq` layers (the first of
  # each with cross-attention), the weights of each position in the group stacked: one layer's
  # recomputed buffers live at a time. The parameter tree keeps its `layers_i` names.
  scan_layers: bool = False

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} not divisible by "
                       f"num_heads={self.num_heads}")
    if self.cross_attention_freq < 1:
      raise ValueError(f"cross_attention_freq must be >= 1, got {self.cross_attention_freq}")
    if self.scan_layers and self.num_layers % self.cross_attention_freq:
      raise ValueError(f"scan_layers needs num_layers={self.num_layers} to be a multiple of "
                       f"cross_attention_freq={self.cross_attention_freq}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  def has_cross_attention(self, layer: int) -> bool:
    return layer % self.cross_attention_freq == 0

  @classmethod
  def tiny(cls, **overrides) -> "QFormerConfig":
    """Seconds-on-CPU config with the base structure (cross-attention on layers 0 and 2)."""
    base = dict(hidden_size=64, num_layers=4, num_heads=4, intermediate_size=128,
                max_position_embeddings=64, vocab_size=100, encoder_width=48,
                num_query_tokens=8)
    return cls(**{**base, **overrides})


def qformer_base(encoder_width: int = 1408, num_query_tokens: int = 32,
                 training: bool = False) -> QFormerConfig:
  """LLaMA-VID's `init_bert`: bert-base-uncased, vocab 30523, cross-attention every 2 layers."""
  p = 0.1 if training else 0.0
  return QFormerConfig(encoder_width=encoder_width, num_query_tokens=num_query_tokens,
                       dropout=p, attention_dropout=p)


def _init(axes, init=nn.initializers.normal(0.02)):
  return nn.with_logical_partitioning(init, axes)


class Attention(nn.Module):
  """BERT attention block: x + MHA(x -> kv) -> dropout -> LayerNorm (post-LN).

  x [B, S, H], kv [B, N, Dk] (self-attention: kv = x), mask [B, N] (True = attend) or None.
  """

  config: QFormerConfig
  kv_axis: str = "embed"              # logical axis of Dk ('vision' for cross-attention)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, kv: Array, mask: Optional[Array],
               deterministic: bool = True) -> Array:
    cfg = self.config
    h, dh = cfg.num_heads, cfg.head_dim
    proj = lambda axes, name: dense(cfg.hidden_size, axes, True, self.dtype,  # noqa: E731
                                    self.param_dtype, name)
    split = lambda t: t.reshape(*t.shape[:2], h, dh)                          # noqa: E731
    q = split(proj(("embed", "heads"), "query")(x))                          # [B, S, h, dh]
    k = split(proj((self.kv_axis, "heads"), "key")(kv))                      # [B, N, h, dh]
    v = split(proj((self.kv_axis, "heads"), "value")(kv))
    dropout = nn.Dropout(cfg.attention_dropout)
    # One block (no query chunks): the BERT sequences are short, and one dropout draw.
    out = attention(q, k, v, dh ** -0.5, max_rows=None, key_mask=mask,
                    dropout=lambda w: dropout(w, deterministic=deterministic))
    out = out.reshape(*x.shape[:2], cfg.hidden_size)                          # [B, S, H]
    out = proj(("heads", "embed"), "out")(out)
    out = nn.Dropout(cfg.dropout)(out, deterministic=deterministic)
    return layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, "norm")(out + x)


class FeedForward(nn.Module):
  """BERT intermediate + output: LayerNorm(x + fc2(gelu(fc1(x)))), exact GELU. x [B, *, H]."""

  config: QFormerConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    y = dense(cfg.intermediate_size, ("embed", "mlp"), True, self.dtype, self.param_dtype,
              "fc1")(x)
    y = jax.nn.gelu(y, approximate=False)
    y = dense(cfg.hidden_size, ("mlp", "embed"), True, self.dtype, self.param_dtype, "fc2")(y)
    y = nn.Dropout(cfg.dropout)(y, deterministic=deterministic)
    return layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, "norm")(y + x)


class QFormerLayer(nn.Module):
  """One layer; x [B, S, H] with the Q query rows first -> [B, S, H]."""

  config: QFormerConfig
  layer: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array], image: Array, image_mask: Optional[Array],
               num_queries: int, deterministic: bool = True) -> Array:
    cfg = self.config
    mods = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = Attention(cfg, name="attention", **mods)(x, x, mask, deterministic)
    queries, text = x[:, :num_queries], x[:, num_queries:]                    # [B, Q|L, H]
    if cfg.has_cross_attention(self.layer):
      queries = Attention(cfg, kv_axis="vision", name="crossattention", **mods)(
          queries, image, image_mask, deterministic)
    queries = FeedForward(cfg, name="ffn_query", **mods)(queries, deterministic)
    ffn_text = FeedForward(cfg, name="ffn_text", **mods)
    if text.shape[1]:
      return jnp.concatenate([queries, ffn_text(text, deterministic)], axis=1)
    if self.is_initializing():  # queries-only init still creates the text FFN's params
      ffn_text(queries, deterministic)
    return queries


class QFormer(nn.Module):
  """query_embeds [B, Q, H], image_embeds [B, N, Dv] (+ text) -> dict of last hidden states.

  input_ids [B, L] and attention_mask [B, L] (text padding mask, 1 = real token) are optional;
  without them only the queries run. image_mask [B, N] (1 = attend) defaults to all ones.
  Returns `queries` [B, Q, H] and `hidden` [B, Q + L, H] (text rows after the queries).
  The learned query tokens are the caller's parameter (LLaMA-VID: `vlm_att_query`).
  """

  config: QFormerConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def embed(self, query_embeds: Array, input_ids: Optional[Array]) -> Array:
    """LayerNorm([queries; word + position embeddings]) -> [B, S, H]."""
    cfg = self.config
    x = query_embeds.astype(self.dtype)
    if input_ids is not None:
      length = input_ids.shape[1]
      if length > cfg.max_position_embeddings:
        raise ValueError(f"text length {length} exceeds max_position_embeddings="
                         f"{cfg.max_position_embeddings}")
      text = self.word_embeddings(input_ids)                                  # [B, L, H]
      text = text + self.position_embeddings(jnp.arange(length))[None]
      x = jnp.concatenate([x, text.astype(self.dtype)], axis=1)
    return self.embed_norm(x)

  def setup(self):
    cfg = self.config
    mods = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    # The word table's vocab axis stays unsharded: 30523 rows divide by no mesh size.
    self.word_embeddings = nn.Embed(cfg.vocab_size, cfg.hidden_size,
                                    embedding_init=_init((None, "embed")), **mods)
    self.position_embeddings = nn.Embed(cfg.max_position_embeddings, cfg.hidden_size,
                                        embedding_init=_init(("pos", "embed")), **mods)
    self.embed_norm = layer_norm(cfg.layer_norm_eps, self.dtype, self.param_dtype, "embed_norm")
    # static: num_queries (arg 5) and deterministic (arg 6), counting `self`
    layer_cls = nn.remat(QFormerLayer, static_argnums=(5, 6)) if cfg.remat else QFormerLayer
    self.layers = [layer_cls(cfg, i, name=f"layers_{i}", **mods)
                   for i in range(cfg.num_layers)]
    self.dropout = nn.Dropout(cfg.dropout)

  def __call__(self, query_embeds: Array, image_embeds: Array,
               input_ids: Optional[Array] = None, attention_mask: Optional[Array] = None,
               image_mask: Optional[Array] = None, deterministic: bool = True) -> dict:
    cfg = self.config
    b, q, _ = query_embeds.shape
    if attention_mask is not None and input_ids is None:
      raise ValueError("attention_mask is the text padding mask; it needs input_ids")
    if self.is_initializing() and input_ids is None:  # create the word/position tables too
      self.embed(query_embeds, jnp.zeros((b, 1), jnp.int32))
    x = self.dropout(self.embed(query_embeds, input_ids), deterministic=deterministic)
    x = nn.with_logical_constraint(x, ("act_batch", "act_len", "act_embed"))
    mask = None
    if attention_mask is not None:
      mask = jnp.concatenate([jnp.ones((b, q), bool), attention_mask.astype(bool)], axis=1)
    image = image_embeds.astype(self.dtype)
    image_mask = None if image_mask is None else image_mask.astype(bool)
    if cfg.scan_layers and not self.is_initializing():
      x = self._scan_layers(x, mask, image, image_mask, q, deterministic)
    else:
      for layer in self.layers:
        x = layer(x, mask, image, image_mask, q, deterministic)
        x = nn.with_logical_constraint(x, ("act_batch", "act_len", "act_embed"))
    return {"queries": x[:, :q], "hidden": x}

  def _scan_layers(self, x: Array, mask: Optional[Array], image: Array,
                   image_mask: Optional[Array], num_queries: int, deterministic: bool) -> Array:
    """The layers as a scan over groups of `cross_attention_freq` (see `scan_layers`).

    Group g holds layers g*f .. g*f+f-1; position j of every group has the same structure, so
    `stacked[j]` stacks those layers' weights [G, ...]. Dropout draws one key per group from
    the 'dropout' stream.
    """
    cfg = self.config
    f = cfg.cross_attention_freq
    groups = cfg.num_layers // f
    params = nn.unbox(self.variables["params"])
    stacked = [layer_scan.stack_layers([params[f"layers_{g * f + j}"] for g in range(groups)],
                                       self.dtype) for j in range(f)]
    layers = [QFormerLayer(cfg, j, self.dtype, self.param_dtype, parent=None) for j in range(f)]
    keys = None if deterministic else jax.random.split(self.make_rng("dropout"), groups)

    def body(h, xs):                                                     # h: [B, S, H]
      group_params, key = xs
      for j, layer in enumerate(layers):
        rngs = None if deterministic else {"dropout": jax.random.fold_in(key, j)}
        h = layer.apply({"params": group_params[j]}, h, mask, image, image_mask, num_queries,
                        deterministic, rngs=rngs)
        h = nn.with_logical_constraint(h, ("act_batch", "act_len", "act_embed"))
      return h, None

    return layer_scan.scan(body, x, (stacked, keys), cfg.remat)
