"""Log-likelihood of given continuations after a prompt (multiple-choice scoring without parsing).

Prompt (left-padded) and continuation (right-padded) are laid side by side in one sequence,
positions count real tokens only, and one forward pass scores every continuation token.
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
def continuation_logprobs(model: Llama, params, prompt_ids: Optional[Array], prompt_mask: Array,
                          cont_ids: Array, cont_mask: Array,
                          prompt_embeds: Optional[Array] = None) -> tuple[Array, Array]:
  """Sum and mean log p(continuation | prompt) per row.

  Args:
    prompt_ids: [B, P] left-padded ids, or None when `prompt_embeds` [B, P, D] is given.
    prompt_mask: [B, P] 1 on real prompt tokens.
    cont_ids: [B, C] right-padded continuation ids; cont_mask [B, C].
  Returns:
    (sum_logprob [B], mean_logprob [B]) over the real continuation tokens.
  """
  if prompt_embeds is None:
    prompt_embeds = model.apply(params, prompt_ids, method=Llama.embed)
  cont_embeds = model.apply(params, cont_ids, method=Llama.embed)
  embeds = jnp.concatenate([prompt_embeds.astype(cont_embeds.dtype), cont_embeds], axis=1)
  mask = jnp.concatenate([prompt_mask, cont_mask], axis=1)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
  # Token t of the continuation is predicted by sequence slot P + t - 1: the LM head runs on
  # the last C + 1 slots only (not on the prompt's, which a video makes hundreds long).
  c = cont_ids.shape[1]
  logits = model.apply(params, inputs_embeds=embeds, positions=positions, attention_mask=mask,
                       logits_to_keep=c + 1)[:, :-1]                                 # [B, C, V]
  token_logp = jnp.where(cont_mask > 0, token_logprobs(logits, cont_ids), 0.0)
  total = token_logp.sum(axis=1)
  return total, total / jnp.maximum(cont_mask.sum(axis=1), 1)
