"""Device mesh and logical-axis sharding shared by every model and trainer.

Parameters carry logical axis names (`nn.with_logical_partitioning`); a rules table maps them
onto the physical mesh axes `data`, `fsdp` and `tensor`. Rules live in configs, this file gives
the defaults and the helpers that turn abstract parameter trees into `NamedSharding`s.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axes. Parameters: `embed` is FSDP-sharded, the wide axes are
# tensor-parallel. Activations: batch over data+fsdp, everything else replicated.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("act_batch", ("data", "fsdp")),
    ("act_len", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    ("act_frames", None),
    ("act_tokens", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("norm", None),
    ("layers", None),
    ("patch_h", None),
    ("patch_w", None),
    ("channels", None),
    ("pos", None),
    ("classes", None),
    ("queries", None),
    ("vision", None),
    ("vision_out", None),
)


def make_mesh(
    data: int = 1,
    fsdp: int = -1,
    tensor: int = 1,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
  """Builds a (data, fsdp, tensor) mesh; one axis may be -1 to take the remaining devices.

  Axis types are `Auto` so classic `jit` + `NamedSharding` code works (jax.make_mesh defaults
  to Explicit axes since 0.7).
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = [data, fsdp, tensor]
  if shape.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, shape))}")
  known = int(np.prod([s for s in shape if s != -1]))
  if -1 in shape:
    if len(devices) % known:
      raise ValueError(f"{len(devices)} devices do not divide into mesh {dict(zip(MESH_AXES, shape))}")
    shape[shape.index(-1)] = len(devices) // known
  if int(np.prod(shape)) != len(devices):
    raise ValueError(
        f"mesh {dict(zip(MESH_AXES, shape))} needs {int(np.prod(shape))} devices, have {len(devices)}")
  return jax.make_mesh(
      tuple(shape), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)


def logical_to_mesh_sharding(logical_tree: Any, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
  """Maps a tree of logical `PartitionSpec`s (or `nn.LogicallyPartitioned` boxes) to shardings."""
  specs = nn.get_partition_spec(logical_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, list(rules))


def abstract_params_and_shardings(init_fn, mesh: Mesh, rules=DEFAULT_RULES, *args):
  """`jax.eval_shape` of a Flax init and the matching NamedShardings (no allocation).

  Returns (abstract_unboxed_params, shardings).
  """
  boxed = jax.eval_shape(init_fn, *args)
  shardings = logical_to_mesh_sharding(boxed, mesh, rules)
  return nn.unbox(boxed), shardings


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
  """Leading axis over (data, fsdp), the rest replicated."""
  return NamedSharding(mesh, P(("data", "fsdp"), *([None] * (ndim - 1))))


def shardings_like_params(abstract_tree: Any, params: Any, param_shardings: Any,
                          mesh: Mesh) -> Any:
  """Shardings for a tree whose leaves mirror parameters (optimizer moments, EMAs, ...).

  A leaf takes the sharding of the parameter whose key path is a suffix of its own path and
  whose shape it shares; any other leaf (counts, scalars) is replicated. This keeps Adam moments
  FSDP-sharded exactly like their parameters.
  """
  def keys(path):
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)

  by_path = {keys(p): (x.shape, s) for (p, x), s in zip(
      jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(param_shardings))}
  lengths = sorted({len(k) for k in by_path}, reverse=True)

  def pick(path, leaf):
    k = keys(path)
    for n in lengths:
      match = by_path.get(k[-n:]) if len(k) >= n else None
      if match is not None and tuple(match[0]) == tuple(getattr(leaf, "shape", ())):
        return match[1]
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(pick, abstract_tree)
