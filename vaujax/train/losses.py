"""Losses shared by trainers."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vaujax.data.conversation import IGNORE_INDEX


def next_token_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """HF causal-LM cross-entropy: position t predicts labels[t + 1]; IGNORE_INDEX is skipped.

  logits [B, L, V] (fp32), labels [B, L] -> (mean loss over supervised tokens, token count).
  """
  logits, targets = logits[:, :-1], labels[:, 1:]
  valid = targets != IGNORE_INDEX
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, jnp.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
  count = valid.sum()
  return -(picked * valid).sum() / jnp.maximum(count, 1), count
