"""Jitted prefill + KV-cache decode for the LLaMA decoder.

Prompts are left-padded to a common length P so that every row writes the cache at the same slot;
rotary positions count real tokens only (`cumsum(mask) - 1`, as HF `generate` does), so padding
changes nothing. The whole loop runs inside one `jax.jit` with static shapes:
cache length = P + max_new_tokens.

A prompt may also be given as input embeddings (VA-GPT splices visual tokens into the prompt), the
decode steps then feed token ids.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from vaujax.generation.scoring import token_logprobs
from vaujax.models.llama import Llama, init_cache

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """temperature 0 means greedy; top_k 0 and top_p 1.0 disable those filters."""

  max_new_tokens: int = 32
  temperature: float = 0.0
  top_k: int = 0
  top_p: float = 1.0
  stop_at_eos: bool = True

  def __post_init__(self):
    if self.max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
    if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
      raise ValueError(f"invalid sampling config {self}")


@dataclasses.dataclass(frozen=True)
class GenerateOutput:
  tokens: Array   # [B, N] generated ids; pad after EOS
  scores: Array   # [B, N] log-prob of each chosen token under the model (0 after EOS)
  lengths: Array  # [B] generated tokens per row, EOS included


jax.tree_util.register_dataclass(GenerateOutput, data_fields=["tokens", "scores", "lengths"],
                                 meta_fields=[])


def filter_logits(logits: Array, cfg: SamplingConfig) -> Array:
  """Temperature, top-k and top-p (nucleus) filtering of [B, V] fp32 logits (-inf = removed)."""
  logits = logits / cfg.temperature
  neg_inf = jnp.finfo(logits.dtype).min
  if cfg.top_k:
    kth = jax.lax.top_k(logits, cfg.top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, neg_inf, logits)
  if cfg.top_p < 1.0:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    remove_sorted = mass_before >= cfg.top_p  # always keeps the most likely token
    remove = jnp.zeros_like(remove_sorted).at[
        jnp.arange(logits.shape[0])[:, None], order].set(remove_sorted)
    logits = jnp.where(remove, neg_inf, logits)
  return logits


def first_argmax(logits: Array) -> Array:
  """`jnp.argmax` over the last axis (the first maximum, or the first NaN) -> int32.

  Written as a max, then the smallest index holding it: two plain reductions that XLA:CPU
  vectorises, where `jnp.argmax` is a (value, index) pair reduction that it does not. Over
  [8, 32000] logits that is 0.15 instead of 0.58 ms, 5% of a batch-8 decode step.
  """
  top = jnp.max(logits, axis=-1, keepdims=True)             # NaN where a row holds a NaN
  index = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  hit = (logits == top) | jnp.isnan(logits)
  return jnp.min(jnp.where(hit, index, logits.shape[-1]), axis=-1)


def choose_tokens(logits: Array, rng: Array, cfg: SamplingConfig) -> Array:
  """Next token per row from [B, V] logits."""
  if cfg.temperature == 0.0:
    return first_argmax(logits)
  return jax.random.categorical(rng, filter_logits(logits, cfg), axis=-1).astype(jnp.int32)


def left_pad(prompts: list[list[int]], pad_id: int, length: Optional[int] = None):
  """Left-pads token lists to [B, P] ids and mask (numpy-free, host side)."""
  length = length or max(len(p) for p in prompts)
  if any(len(p) > length for p in prompts):
    raise ValueError(f"a prompt is longer than {length} tokens")
  ids = [[pad_id] * (length - len(p)) + list(p) for p in prompts]
  mask = [[0] * (length - len(p)) + [1] * len(p) for p in prompts]
  return jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32)


class Sampler:
  """Compiles once per (model, sampling config); call with left-padded prompts.

  Example:
    sampler = Sampler(Llama(cfg), SamplingConfig(max_new_tokens=32))
    out = sampler(params, ids, mask, jax.random.key(0))
  """

  def __init__(self, model: Llama, sampling: SamplingConfig, cache_dtype=jnp.float32):
    self.model = model
    self.sampling = sampling
    self.cache_dtype = cache_dtype
    self._jitted = jax.jit(self._generate)

  def __call__(self, params, prompt_ids: Optional[Array], prompt_mask: Array, rng: Array, *,
               inputs_embeds: Optional[Array] = None) -> GenerateOutput:
    """prompt_ids [B, P] left-padded (or None with inputs_embeds [B, P, D]); prompt_mask [B, P]."""
    max_len = prompt_mask.shape[1] + self.sampling.max_new_tokens
    if max_len > self.model.config.max_position_embeddings:
      raise ValueError(f"prompt ({prompt_mask.shape[1]}) + max_new_tokens "
                       f"({self.sampling.max_new_tokens}) exceeds max_position_embeddings "
                       f"({self.model.config.max_position_embeddings})")
    return self._jitted(params, prompt_ids, prompt_mask, rng, inputs_embeds)

  def _generate(self, params, prompt_ids, prompt_mask, rng, inputs_embeds):
    cfg, model = self.sampling, self.model
    b, p = prompt_mask.shape
    n = cfg.max_new_tokens
    cache = init_cache(model.config, b, p + n, self.cache_dtype)
    key_mask = jnp.concatenate([prompt_mask, jnp.ones((b, n), prompt_mask.dtype)], axis=1)
    positions = jnp.maximum(jnp.cumsum(prompt_mask, axis=1) - 1, 0)
    logits, cache = model.apply(params, prompt_ids, inputs_embeds=inputs_embeds,
                                positions=positions, attention_mask=key_mask, cache=cache,
                                cache_index=jnp.int32(0), logits_to_keep=1)
    next_pos = positions[:, -1] + 1                                              # [B]
    eos, pad = model.config.eos_token_id, model.config.pad_token_id

    def emit(state, step_logits, rng):
      tokens, scores, done = state["tokens"], state["scores"], state["done"]
      tok = choose_tokens(step_logits, rng, cfg)
      logp = token_logprobs(step_logits, tok)
      tok = jnp.where(done, pad, tok)
      tokens = tokens.at[:, state["step"]].set(tok)
      scores = scores.at[:, state["step"]].set(jnp.where(done, 0.0, logp))
      lengths = state["lengths"] + (~done).astype(jnp.int32)
      if cfg.stop_at_eos:
        done = done | (tok == eos)
      return dict(state, tokens=tokens, scores=scores, done=done, lengths=lengths), tok

    state = dict(tokens=jnp.full((b, n), pad, jnp.int32), scores=jnp.zeros((b, n), jnp.float32),
                 done=jnp.zeros((b,), bool), lengths=jnp.zeros((b,), jnp.int32), step=0,
                 cache=cache, rng=rng)
    rng, sub = jax.random.split(rng)
    state, tok = emit(state, logits[:, -1], sub)
    state = dict(state, step=jnp.int32(1), last=tok, rng=rng)

    def cond(s):
      return (s["step"] < n) & ~jnp.all(s["done"])

    def body(s):
      rng, sub = jax.random.split(s["rng"])
      step = s["step"]
      step_logits, new_cache = model.apply(
          params, s["last"][:, None], positions=(next_pos + step - 1)[:, None],
          attention_mask=key_mask, cache=s["cache"], cache_index=p + step - 1)
      s, tok = emit(dict(s, cache=new_cache), step_logits[:, -1], sub)
      return dict(s, step=step + 1, last=tok, rng=rng)

    state = jax.lax.while_loop(cond, body, state)
    return GenerateOutput(state["tokens"], state["scores"], state["lengths"])
