"""A stack of same-shaped layers run as one `lax.scan` over their stacked weights.

The parameter tree keeps one subtree per layer (`layers_0`, `layers_1`, ...: the converters,
checkpoints and LoRA paths name them); the stacking happens inside the jitted step. Under fsdp
each device stacks its own shards ([L, ...] sharded like one layer), so it is a local copy, and
the transpose of the stack slices the stacked gradient back into the per-layer tree. One layer
body is compiled instead of L, and each layer's all-gathered weights and recomputed buffers
live for one iteration of the loop instead of across the whole step.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp


def stack_layers(layers: Sequence[Any], dtype) -> Any:
  """Per-layer param trees -> one tree of [L, ...] leaves.

  Kernels (ndim >= 2) are stacked in the compute `dtype`: `nn.Dense` casts them to it anyway,
  so values and gradients (through the same cast) are unchanged and a bf16 stack is half the
  copy. 1-D leaves (norm scales, biases) keep their dtype.
  """
  def stack(*leaves):
    return jnp.stack([w.astype(dtype) if w.ndim >= 2 else w for w in leaves])
  return jax.tree_util.tree_map(stack, *layers)


def scan(body: Callable, carry, xs, remat: bool, policy: Optional[Callable] = None):
  """`lax.scan(body, carry, xs)`'s final carry; `remat` recomputes each iteration in the backward.

  `prevent_cse=False`: the scan already keeps XLA from merging the recompute with the forward.
  """
  if remat:
    body = jax.checkpoint(body, prevent_cse=False, policy=policy)
  return jax.lax.scan(body, carry, xs)[0]
