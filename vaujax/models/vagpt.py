"""VA-GPT: LLaMA-VID frame tokens with SETS token selection, spliced into a LLaMA/Vicuna LLM.

Axis legend: B videos, T frames, N tower patches per frame, M DINOv2 patches per frame,
Dv tower width, Dd DINOv2 width, L text length, V = num_video_tokens slots, D LLM width.

Inputs are pre-extracted features (as VA-GPT and LLaMA-VID's long-video path train): the frozen
vision tower's patch tokens and DINOv2 patch features per sampled frame. The TETG hint is text,
inserted into the prompt by the data pipeline (`conversation.insert_hint`), so the model sees it
as ordinary tokens.

Steps (methods a reader can follow):
  select_tokens  SETS: keep ceil(K*N) patches per frame whose DINOv2 features changed most
  frame_tokens   LLaMA-VID context + content tokens (or projected patch tokens); with
                 `frame_tokens.content_grid` g > 1 one content token per cell of a g x g grid
  embed_inputs   text embeddings with the visual tokens written into the <video> slots
  __call__       logits of the LLM
Freezing (towers, LLM parts) is the optimizer's business: this module has no stop_gradient.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vaujax.models import llama, sets
from vaujax.models.frame_tokens import FrameTokens, FrameTokensConfig, grid_cells
from vaujax.models.llama import Llama, LlamaConfig
from vaujax.models.qformer import QFormer, QFormerConfig
from vaujax.models.vit import layer_norm

Array = jax.Array
Dtype = Any

# The prompt's video slots: token ids that `splice_visual_tokens` overwrites with visual tokens
# (negative, so they never collide with a vocabulary id; LLaMA-VID's IMAGE_TOKEN_INDEX).
VIDEO_TOKEN_ID = -200


@dataclasses.dataclass(frozen=True)
class VAGPTConfig:
  llm: LlamaConfig
  frame_tokens: FrameTokensConfig
  num_frames: int                 # T (videos are sampled/padded to this many frames)
  num_patches: int                # N tower patches per frame (CLS dropped)
  dino_patches: int               # M DINOv2 patches per frame
  num_queries: int = 32           # learned query tokens (`vlm_att_query`)
  use_sets: bool = True
  sets_ratio: float = 0.5         # K
  # LLaMA-VID's text-guided Q-Former (`vlm_att_encoder`). None: the learned queries go to the
  # context attention directly (text-agnostic, no BERT).
  qformer: Optional[QFormerConfig] = None
  # [ours] a learned embedding per patch position [N, Dv], added to the tower's patches before
  # SETS picks and the frame tokens pool them, so a pooled token says where its patches were.
  # A trained ViT's patch outputs carry their position already (LLaMA-VID: off); the tiny
  # random tower's do not (a probe of the anomaly's mean patch feature finds its region at
  # chance), so the demo's spatial questions need it.
  patch_position: bool = False

  def __post_init__(self):
    q = self.qformer
    if q is not None and (q.num_query_tokens != self.num_queries
                          or q.hidden_size != self.frame_tokens.query_dim
                          or q.encoder_width != self.frame_tokens.vision_dim):
      raise ValueError(f"Q-Former ({q.num_query_tokens} queries x {q.hidden_size}, image width "
                       f"{q.encoder_width}) does not fit num_queries={self.num_queries}, "
                       f"query_dim={self.frame_tokens.query_dim}, "
                       f"vision_dim={self.frame_tokens.vision_dim}")
    g, side = self.frame_tokens.content_grid, math.isqrt(self.num_patches)
    if g > 1 and (side * side != self.num_patches or g > side):
      raise ValueError(f"content grid {g} does not fit {self.num_patches} tower patches (a "
                       f"square grid of side >= {g} needed)")

  @property
  def kept_patches(self) -> int:
    return sets.num_kept(self.num_patches, self.sets_ratio) if self.use_sets else self.num_patches

  @property
  def num_video_tokens(self) -> int:
    """Slots for one video in the prompt."""
    if self.frame_tokens.mode == "context_content":
      return self.frame_tokens.tokens_per_frame * self.num_frames
    return self.num_frames * self.kept_patches


def splice_visual_tokens(text_embeds: Array, input_ids: Array, visual: Array) -> Array:
  """Writes visual tokens into the VIDEO_TOKEN_ID slots of a sequence, in order.

  text_embeds [B, L, D], input_ids [B, L], visual [B, V, D]: the k-th slot of row b receives
  visual[b, k mod V], so a prompt with one placeholder per question (`imgsp`) gets the same V
  tokens in each, or each question its own when `visual` holds P * V (`VAGPT.frame_tokens` with
  per-question Q-Former prompts). Static shapes; rows with no slots are returned unchanged.
  """
  is_slot = input_ids == VIDEO_TOKEN_ID
  slot = jnp.maximum(jnp.cumsum(is_slot, axis=1) - 1, 0) % visual.shape[1]     # [B, L]
  gathered = jnp.take_along_axis(visual, slot[..., None], axis=1)               # [B, L, D]
  return jnp.where(is_slot[..., None], gathered.astype(text_embeds.dtype), text_embeds)


class VAGPT(nn.Module):
  config: VAGPTConfig
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def setup(self):
    cfg = self.config
    self.llm = Llama(cfg.llm, self.dtype, self.param_dtype)
    self.frame_token_generator = FrameTokens(cfg.frame_tokens, self.dtype, self.param_dtype)
    if cfg.frame_tokens.mode == "context_content":
      self.vlm_att_query = self.param(
          "vlm_att_query", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                        ("queries", None)),
          (cfg.num_queries, cfg.frame_tokens.query_dim), self.param_dtype)
      if cfg.qformer is not None:
        self.vlm_att_ln = layer_norm(1e-5, self.dtype, self.param_dtype, "vlm_att_ln")
        self.vlm_att_encoder = QFormer(cfg.qformer, self.dtype, self.param_dtype)
    if cfg.patch_position:
      self.patch_position_embedding = self.param(
          "patch_position_embedding",
          nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, "vision")),
          (cfg.num_patches, cfg.frame_tokens.vision_dim), self.param_dtype)

  def select_tokens(self, tower_patches: Array, dino_patches: Optional[Array]):
    """SETS -> (kept patches [B, T, k, Dv], their tower patch indices [B, T, k] int32); SETS
    off: all N patches and arange(N). The indices say where each kept patch was (content grid).
    """
    cfg = self.config
    if not cfg.use_sets or cfg.sets_ratio >= 1.0:
      b, t, n = tower_patches.shape[:3]
      return tower_patches, jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (b, t, n))
    if dino_patches is None:
      raise ValueError("SETS is on (config.use_sets) but no DINOv2 patch features were given")
    kept = sets.select_batch(dino_patches, tower_patches, cfg.sets_ratio)
    return kept["tokens"], kept["indices"]

  def queries(self, kept: Array, qformer_ids: Optional[Array] = None,
              qformer_mask: Optional[Array] = None) -> Array:
    """Per-frame queries [B, T, Q, Dq] for the context attention.

    With the Q-Former: the learned queries and the question text (BERT ids [B, Lq], mask) attend
    to the frame's (SETS-kept) patches after `vlm_att_ln`, frame by frame (LLaMA-VID repeats
    the text for every frame). Without: the learned queries themselves.
    """
    cfg = self.config
    b, t, k, dv = kept.shape
    q = self.vlm_att_query.astype(self.dtype)                                 # [Q, Dq]
    if cfg.qformer is None:
      return jnp.broadcast_to(q, (b, t, *q.shape))
    image = self.vlm_att_ln(kept).reshape(b * t, k, dv)                      # [B*T, k, Dv]
    ids = mask = None
    if qformer_ids is not None:
      ids = jnp.repeat(qformer_ids, t, axis=0)                               # [B*T, Lq]
      mask = None if qformer_mask is None else jnp.repeat(qformer_mask, t, axis=0)
    out = self.vlm_att_encoder(jnp.broadcast_to(q, (b * t, *q.shape)), image, ids, mask)
    return out["queries"].reshape(b, t, *q.shape)

  def frame_tokens(self, tower_patches: Array, dino_patches: Optional[Array] = None,
                   qformer_ids: Optional[Array] = None,
                   qformer_mask: Optional[Array] = None) -> Array:
    """[B, T, N, Dv] (+ DINOv2 [B, T, M, Dd], question [B, Lq]) -> visual tokens [B, V, D].

    With one Q-Former prompt per question (LLaMA-VID's `imgsp`: ids and mask [B, P, Lq]) each
    prompt gets its own frame tokens, in order: [B, P * V, D] for the P placeholders (rows of
    padding prompts fill no slot).
    """
    if self.config.patch_position:   # before SETS: the kept patches keep where they were
      tower_patches = tower_patches + self.patch_position_embedding.astype(tower_patches.dtype)
    kept, indices = self.select_tokens(tower_patches, dino_patches)
    if qformer_ids is not None and qformer_ids.ndim == 3:
      b, p = qformer_ids.shape[:2]
      flat = lambda x: None if x is None else x.reshape(b * p, *x.shape[2:])  # noqa: E731
      tokens = self._frame_tokens_of(jnp.repeat(kept, p, axis=0), jnp.repeat(indices, p, axis=0),
                                     flat(qformer_ids), flat(qformer_mask))    # [B*P, V, D]
      return tokens.reshape(b, p * tokens.shape[1], tokens.shape[2])
    return self._frame_tokens_of(kept, indices, qformer_ids, qformer_mask)

  def _frame_tokens_of(self, kept: Array, indices: Array, qformer_ids: Optional[Array],
                       qformer_mask: Optional[Array]) -> Array:
    cfg = self.config
    queries = cells = None
    if cfg.frame_tokens.mode == "context_content":
      queries = self.queries(kept, qformer_ids, qformer_mask)
      if cfg.frame_tokens.content_grid > 1:
        cells = grid_cells(indices, cfg.num_patches, cfg.frame_tokens.content_grid)
    return self.frame_token_generator(kept, queries, cells=cells)

  def embed_inputs(self, input_ids: Array, tower_patches: Array,
                   dino_patches: Optional[Array] = None, qformer_ids: Optional[Array] = None,
                   qformer_mask: Optional[Array] = None) -> Array:
    visual = self.frame_tokens(tower_patches, dino_patches, qformer_ids, qformer_mask)
    return splice_visual_tokens(self.llm.embed(input_ids), input_ids, visual)

  def __call__(self, input_ids: Array, tower_patches: Array, dino_patches: Optional[Array] = None,
               attention_mask: Optional[Array] = None, positions: Optional[Array] = None,
               qformer_ids: Optional[Array] = None,
               qformer_mask: Optional[Array] = None) -> Array:
    """Logits [B, L, vocab] (fp32)."""
    embeds = self.embed_inputs(input_ids, tower_patches, dino_patches, qformer_ids, qformer_mask)
    return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, positions=positions)


def llm_params(params) -> dict:
  """The LLM's own variables out of VA-GPT's, for the sampler and scorer."""
  return {"params": params["params"]["llm"]}


def config_from_dict(cd) -> VAGPTConfig:
  """VAGPTConfig from a `configs/vagpt.py` ConfigDict (llm: 'tiny' | 'vicuna_7b_v15' | ...)."""
  # remat and scan_layers cover the LLM and the Q-Former alike
  layers = dict(remat=bool(cd.get("remat", False)), scan_layers=bool(cd.get("scan_layers", False)))
  llm = dataclasses.replace(llama.llm_config(cd.llm, cd.get("llm_sizes")),
                            attention_impl=cd.get("attention", "chunked"),
                            attention_chunks=int(cd.get("attention_chunks", 8)),
                            remat_policy=str(cd.get("remat_policy", "full")), **layers)
  qformer = None
  if cd.get("qformer") and cd.frame_token_mode == "context_content":
    qformer = QFormerConfig(
        hidden_size=cd.query_dim, num_layers=cd.qformer_layers, num_heads=cd.qformer_heads,
        intermediate_size=cd.qformer_mlp, vocab_size=cd.qformer_vocab_size or 30523,
        encoder_width=cd.vision_dim, num_query_tokens=cd.num_queries,
        max_position_embeddings=max(512, cd.qformer_max_length),
        **layers)
  return VAGPTConfig(
      llm=llm, frame_tokens=FrameTokensConfig(cd.vision_dim, llm.hidden_size, cd.query_dim,
                                              cd.frame_token_mode,
                                              int(cd.get("content_grid", 1))),
      num_frames=cd.num_frames, num_patches=cd.num_patches, dino_patches=cd.dino_patches,
      num_queries=cd.num_queries, use_sets=cd.use_sets, sets_ratio=cd.sets_ratio,
      qformer=qformer, patch_position=bool(cd.get("patch_position", False)))


def parameter_counts(cd) -> dict[str, int]:
  """Parameters per component of a `configs/vagpt.py` config, from abstract inits (no memory).

  The vision tower and DINOv2 run frozen outside the model (features are pre-extracted); they
  are counted with their published configs for the paper size.
  """
  from vaujax.models import tetg, vit
  cfg = config_from_dict(cd)
  from vaujax.models.params import count_params as count
  b, t = 1, cfg.num_frames
  shapes = jax.eval_shape(
      VAGPT(cfg).init, jax.random.key(0), jnp.zeros((b, 4), jnp.int32),
      jnp.zeros((b, t, cfg.num_patches, cfg.frame_tokens.vision_dim)),
      jnp.zeros((b, t, cfg.dino_patches, cd.dino_dim)))["params"]
  out = {"llm": count(shapes["llm"]),
         "frame_tokens": count(shapes["frame_token_generator"]) + count(
             shapes.get("vlm_att_query", {}))}
  if cd.size == "paper":
    towers = {"vision_tower (EVA ViT-g/14, frozen)": vit.eva_vit_g14(),
              "dinov2 (ViT-B/14, frozen)": vit.dinov2("base")}
    for name, tower in towers.items():
      size = tower.native_grid * tower.patch_size
      out[name] = count(jax.eval_shape(vit.ViT(tower).init, jax.random.key(0),
                                       jnp.zeros((1, size, size, 3))))
  out["tetg"] = count(jax.eval_shape(tetg.TETGClassifier().init, jax.random.key(0),
                                     jnp.zeros((1, cd.dino_dim))))
  out["total"] = sum(out.values())
  return out
