"""Multi-host set-up: `jax.distributed.initialize` from the config or the environment."""

from __future__ import annotations

import os

import jax

from vaujax.errors import InputError


def settings(config, environ=os.environ) -> dict | None:
  """The `jax.distributed.initialize` arguments of this process, {} for auto-discovery, or
  None for a single process.

  `distributed.auto = True`: {} (TPU pods, SLURM, Open MPI: JAX finds the coordinator, the
  process count and this process's id itself). Otherwise each of coordinator, num_processes and
  process_id comes from the config when set there (`distributed.num_processes` > 1, a
  non-empty `distributed.coordinator`), else from VAUJAX_COORDINATOR, VAUJAX_NUM_PROCESSES and
  VAUJAX_PROCESS_ID, so one command with per-host environment variables launches every host.
  """
  dist = config.get("distributed") or {}
  if dist.get("auto"):
    return {}
  num = int(dist.get("num_processes") or 1)
  from_config = num > 1
  if not from_config:
    num = int(environ.get("VAUJAX_NUM_PROCESSES") or 1)
  if num <= 1:
    return None
  coordinator = dist.get("coordinator") or environ.get("VAUJAX_COORDINATOR")
  if not coordinator:
    raise InputError("--config.distributed.coordinator", f"{num} processes need a coordinator "
                     "address host:port (or VAUJAX_COORDINATOR)")
  process_id = int(dist.get("process_id", 0)) if from_config else int(
      environ.get("VAUJAX_PROCESS_ID", 0))
  if not 0 <= process_id < num:
    raise InputError("--config.distributed.process_id", f"{process_id} is not in 0..{num - 1}")
  return dict(coordinator_address=coordinator, num_processes=num, process_id=process_id)


def initialize(config) -> None:
  """Initialises JAX's distributed runtime when more than one process is configured
  (`settings`); a no-op for one process."""
  kwargs = settings(config)
  if kwargs is not None:
    jax.distributed.initialize(**kwargs)
