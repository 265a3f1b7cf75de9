"""Log-likelihood of given continuations after a prompt (multiple-choice scoring without parsing).

Prompt (left-padded) and continuations (right-padded) are laid side by side in one sequence,
positions count real tokens only, and one forward pass scores every continuation token: K
options share one pass over their prompt (`option_logprobs`).
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from vaujax.models.llama import Llama

Array = jax.Array


def token_logprobs(logits: Array, tokens: Array) -> Array:
  """log softmax(logits)[token] for logits [..., V] and tokens [...], as x[t] - logsumexp(x):
  no [..., V] log-softmax array is built."""
  picked = jnp.take_along_axis(logits, tokens[..., None], axis=-1)[..., 0]
  return picked - jax.nn.logsumexp(logits, axis=-1)


@functools.partial(jax.jit, static_argnames=("model",))
def option_logprobs(model: Llama, params, prompt_ids: Optional[Array], prompt_mask: Array,
                    option_ids: Array, option_mask: Array,
                    prompt_embeds: Optional[Array] = None) -> tuple[Array, Array]:
  """Sum and mean log p(option | prompt) for K options per prompt, in one forward pass.

  The options are packed after their prompt, [prompt | option 1 | ... | option K], and each
  option reads the prompt and its own earlier tokens only (a per-query mask), at positions that
  continue the prompt's: every option is scored as if it followed the prompt alone, but the
  prompt (hundreds of tokens with a video) runs once instead of K times.

  Args:
    prompt_ids: [B, P] left-padded ids, or None when `prompt_embeds` [B, P, D] is given.
    prompt_mask: [B, P] 1 on real prompt tokens.
    option_ids: [B, K, C] right-padded option ids; option_mask [B, K, C].
  Returns:
    (sum_logprob [B, K], mean_logprob [B, K]) over each option's real tokens.
  """
  b, k, c = option_ids.shape
  if prompt_embeds is None:
    prompt_embeds = model.apply(params, prompt_ids, method=Llama.embed)
  option_embeds = model.apply(params, option_ids.reshape(b, k * c), method=Llama.embed)
  embeds = jnp.concatenate([prompt_embeds.astype(option_embeds.dtype), option_embeds], axis=1)
  option_mask = option_mask.astype(prompt_mask.dtype)
  keys = jnp.concatenate([prompt_mask, option_mask.reshape(b, k * c)], axis=1)    # [B, P + KC]
  prompt_len = prompt_mask.sum(axis=1)                                               # [B]
  positions = jnp.concatenate([
      jnp.maximum(jnp.cumsum(prompt_mask, axis=1) - 1, 0),
      jnp.tile(prompt_len[:, None] + jnp.arange(c), (1, k))], axis=1)             # [B, P + KC]
  if k == 1:
    mask = keys        # one option: the plain causal & key-validity mask
  else:
    # Slot segments: 0 for the prompt, i for option i; a query reads the prompt and its own
    # option (the causal mask, applied by the model, keeps it to earlier slots).
    segment = jnp.concatenate([jnp.zeros(prompt_mask.shape[1], jnp.int32),
                               jnp.repeat(jnp.arange(1, k + 1, dtype=jnp.int32), c)])
    same = (segment[None, :] == 0) | (segment[None, :] == segment[:, None])           # [L, L]
    mask = same[None] & (keys[:, None, :] > 0)                                        # [B, L, L]
  # Token t of option i is predicted by the option's slot t - 1, its first token by the
  # prompt's last slot: the LM head runs on those K * C + 1 slots only.
  logits = model.apply(params, inputs_embeds=embeds, positions=positions, attention_mask=mask,
                       logits_to_keep=k * c + 1)                                 # [B, KC + 1, V]
  rows = (jnp.arange(k)[:, None] * c + jnp.arange(c)) * (jnp.arange(c) > 0)       # [K, C]
  logits = jnp.take(logits, rows.reshape(-1), axis=1)                            # [B, KC, V]
  token_logp = token_logprobs(logits, option_ids.reshape(b, k * c)).reshape(b, k, c)
  token_logp = jnp.where(option_mask > 0, token_logp, 0.0)
  total = token_logp.sum(axis=-1)
  return total, total / jnp.maximum(option_mask.sum(axis=-1), 1)


def continuation_logprobs(model: Llama, params, prompt_ids: Optional[Array], prompt_mask: Array,
                          cont_ids: Array, cont_mask: Array,
                          prompt_embeds: Optional[Array] = None) -> tuple[Array, Array]:
  """Sum and mean log p(continuation | prompt) per row: one option per prompt.

  Args:
    prompt_ids: [B, P] left-padded ids, or None when `prompt_embeds` [B, P, D] is given.
    prompt_mask: [B, P] 1 on real prompt tokens.
    cont_ids: [B, C] right-padded continuation ids; cont_mask [B, C].
  Returns:
    (sum_logprob [B], mean_logprob [B]) over the real continuation tokens.
  """
  total, mean = option_logprobs(model, params, prompt_ids, prompt_mask, cont_ids[:, None],
                                cont_mask[:, None], prompt_embeds)
  return total[:, 0], mean[:, 0]
