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
