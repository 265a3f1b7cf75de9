"""Multi-host set-up: `jax.distributed.initialize` from the config or the environment."""

from __future__ import annotations

import os

import jax


def initialize(config) -> None:
  """Initialises JAX's distributed runtime when more than one process is configured.

  Config `distributed.{coordinator, num_processes, process_id}` or the environment
  (VAUJAX_COORDINATOR, VAUJAX_NUM_PROCESSES, VAUJAX_PROCESS_ID). On TPU pods and SLURM,
  `jax.distributed.initialize()` without arguments discovers everything; set
  `distributed.auto = True` for that.
  """
  dist = config.get("distributed") or {}
  if dist.get("auto"):
    jax.distributed.initialize()
    return
  num = int(dist.get("num_processes") or os.environ.get("VAUJAX_NUM_PROCESSES", 1))
  if num <= 1:
    return
  jax.distributed.initialize(
      coordinator_address=dist.get("coordinator") or os.environ["VAUJAX_COORDINATOR"],
      num_processes=num,
      process_id=int(dist.get("process_id", os.environ.get("VAUJAX_PROCESS_ID", 0))))
