"""LoRA adapters as a parameter-tree transform (no model changes).

Targets are kernels [in, out] whose path matches a regex (default: the LLM's q/v projections).
Training state holds `{"base": params, "lora": {path: {"a": [in, r], "b": [r, out]}}}`; the model
sees `merge(...)`: `kernel + (alpha / r) * a @ b`. With freeze rules `base/.*` -> freeze and
`lora/.*` -> train, only the adapters learn; `b` starts at zero, so training starts exactly at the
base model. Export merges the adapters into plain params.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from vaujax.models.params import param_path

DEFAULT_TARGETS = r"llm/layers_\d+/self_attn/(q_proj|v_proj)/kernel"


def init(params, rng, rank: int, targets: str = DEFAULT_TARGETS) -> dict:
  pattern = re.compile(targets)
  leaves = [(param_path(p), x) for p, x in jax.tree_util.tree_leaves_with_path(params)]
  chosen = [(name, x) for name, x in leaves if pattern.fullmatch(name) and x.ndim == 2]
  if not chosen:
    raise ValueError(f"LoRA target regex {targets!r} matches no 2-D kernel")
  keys = jax.random.split(rng, len(chosen))
  return {name: {"a": jax.random.normal(k, (x.shape[0], rank), jnp.float32) / rank,
                 "b": jnp.zeros((rank, x.shape[1]), jnp.float32)}
          for k, (name, x) in zip(keys, chosen)}


def merge(params, adapters: dict, alpha: float, rank: int):
  """params with each adapted kernel replaced by kernel + (alpha / rank) * a @ b."""
  scale = alpha / rank

  def add(path, x):
    ad = adapters.get(param_path(path))
    return x if ad is None else x + (scale * (ad["a"] @ ad["b"])).astype(x.dtype)

  return jax.tree_util.tree_map_with_path(add, params)
