"""Process settings for XLA:CPU: reuse each execution's host buffers instead of mapping them anew.

XLA:CPU allocates every execution's temporary buffer with malloc and frees it when the program
ends: 41 MiB for the tiny VA-GPT LLM's train step, 544 MiB for a 100M-parameter LLaMA step.
glibc serves a block above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
`mmap` and unmaps it on free, so every step faults in and zeroes all of those pages again:
10.5 K minor page faults a step for the tiny model, 150 K for the 100M one. A JAX program run
asynchronously allocates on a worker thread, whose glibc arena is a heap of at most 64 MiB, and
glibc maps anything larger there whatever the threshold.

`reuse_host_memory()` therefore
  1. turns off JAX's asynchronous CPU dispatch (`jax_cpu_enable_async_dispatch`), so that a
     single-device program runs on the calling thread, whose main arena can grow to any size;
  2. raises glibc's mmap and trim thresholds (`mallopt`) to 2 GiB, so that those blocks come
     from the heap and stay there after `free`, ready for the next step.
Measured on 2 CPU cores (`benchmarks/host_memory.py`): the tiny and 100M train steps 1.1-1.4x
faster. The heap grows by a temp's worth a few times while its first blocks settle (freed blocks
split by small allocations in between), then steps fault in no new pages. The cost: memory the
process frees stays in it for reuse, so its resident size stays at its peak: a 128 MiB-temp
program settles at 390-1020 MiB; the 100M step's peak was 2770 MiB against 2725 without.

The train, evaluate, infer and demo commands and `python -m benchmarks` call it first thing;
`VAUJAX_REUSE_HOST_MEMORY=0` turns it off there. It does nothing off glibc (macOS, musl), and
leaves malloc alone when JAX's default backend is not the CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging
import os
import platform

import jax

ENV_VAR = "VAUJAX_REUSE_HOST_MEMORY"

# mallopt(3) parameter numbers (glibc <malloc.h>).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 2**31 - 1   # mallopt takes a C int: 2 GiB, larger blocks are still mapped


@dataclasses.dataclass(frozen=True)
class HostMemorySettings:
  """What `reuse_host_memory` changed (False: left as it was) and why not, where it did not."""

  sync_dispatch: bool
  malloc_thresholds: bool
  note: str = ""


def _backends_initialized() -> bool:
  try:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):   # newer JAX: assume not, the setting is then harmless
    return False


def _glibc():
  """libc as a ctypes library if it is glibc (the one with these mallopt parameters), else None."""
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return None
  try:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  except OSError:
    return None


def reuse_host_memory(enable: bool | None = None) -> HostMemorySettings:
  """Applies the settings above for this process; call it before the first JAX computation.

  `enable` None reads `VAUJAX_REUSE_HOST_MEMORY` (default on; "0", "false" or "no" turn it off).
  Calling it again is harmless. Under `jax.distributed`, call it after `initialize`: it starts
  the backends to learn which one is the default.
  """
  if enable is None:
    enable = os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")
  if not enable:
    return HostMemorySettings(False, False, f"turned off ({ENV_VAR})")
  notes = []
  if _backends_initialized():
    # The CPU client reads the flag when it is created; a running one keeps dispatching async.
    notes.append("JAX backends were already running: asynchronous dispatch stays on")
    sync = False
  else:
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    sync = True
  thresholds = False
  backend = jax.default_backend()
  libc = _glibc()
  if backend != "cpu":
    notes.append(f"default backend is {backend}: malloc left alone")
  elif libc is None:
    notes.append("not glibc: malloc left alone")
  else:
    thresholds = bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES))
    if not thresholds:
      notes.append("glibc refused the mallopt thresholds")
  settings = HostMemorySettings(sync, thresholds, "; ".join(notes))
  logging.info("vaujax.cpu_runtime: %s", settings)
  return settings
