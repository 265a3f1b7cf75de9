"""Config validation before any work: ranges and types of every numeric key, paths that must
exist, each problem named as the `--config.<key>` flag that would fix it.

`check_vagpt(config)` and `check_tetg(config)` raise `InputError("--config.<key>", problem)` for
the first problem found; training calls them before it builds a mesh, loads a tokenizer or
reads data, so a bad value never starts work or crashes deep inside grain, orbax or jax.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Optional

import ml_collections

from vaujax.errors import InputError
from vaujax.runs import run_dir

_MISSING = object()


def _get(config, key: str):
  return run_dir.config_value(config, key, _MISSING)


def _flag(key: str) -> str:
  return f"--config.{key}"


def _number(config, key: str, *, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, integer: bool = False, required: bool = True) -> None:
  """`key` is a finite number (an int when `integer`) in [low, high] (low excluded when
  `low_open`); a missing optional key passes."""
  value = _get(config, key)
  if value is _MISSING:
    if required:
      raise InputError(_flag(key), "is missing from the config")
    return
  kind = "an integer" if integer else "a number"
  if isinstance(value, bool) or not isinstance(value, (int, float)) or (
      integer and not isinstance(value, int)):
    raise InputError(_flag(key), f"must be {kind}, got {value!r}")
  if not math.isfinite(value):
    raise InputError(_flag(key), f"must be finite, got {value!r}")
  if low is not None and (value <= low if low_open else value < low):
    raise InputError(_flag(key), f"must be {'>' if low_open else '>='} {low}, got {value!r}")
  if high is not None and value > high:
    raise InputError(_flag(key), f"must be <= {high}, got {value!r}")


def _file(config, key: str, what: str, *, directory: bool = False,
          optional: bool = False) -> None:
  value = _get(config, key)
  if value is _MISSING or not value:
    if optional:
      return
    raise InputError(_flag(key), f"is required ({what})")
  if not isinstance(value, str):
    raise InputError(_flag(key), f"must be a path, got {value!r}")
  from vaujax import files   # local paths and gs:// URLs alike
  exists = files.isdir(value) if directory else files.exists(value)
  if not exists:
    raise InputError(_flag(key), f"{value}: {what} does not exist")


def _choice(config, key: str, choices) -> None:
  value = _get(config, key)
  if value is not _MISSING and value not in choices:
    raise InputError(_flag(key), f"must be one of {sorted(choices)}, got {value!r}")


def check_vagpt(config: ml_collections.ConfigDict,
                extra: Optional[Callable[[ml_collections.ConfigDict], None]] = None) -> None:
  """Every numeric key in range and every input path present, for a VA-GPT stage config."""
  n = _number
  n(config, "total_steps", low=1, integer=True)
  n(config, "seed", low=0, integer=True)
  n(config, "ckpt_every", low=1, integer=True)
  n(config, "keep", low=1, integer=True)
  n(config, "log_every", low=1, integer=True)
  n(config, "data.batch_size", low=1, integer=True)
  n(config, "data.max_length", low=1, integer=True)
  n(config, "data.num_epochs", low=1, integer=True)
  n(config, "data.length_bucket", low=0, integer=True, required=False)
  n(config, "data.read_threads", low=-1, integer=True, required=False)
  n(config, "data.prefetch_buffer", low=0, integer=True, required=False)
  n(config, "optim.learning_rate", low=0, low_open=True)
  n(config, "optim.warmup_steps", low=0, integer=True)
  n(config, "optim.total_steps", low=1, integer=True)
  n(config, "optim.weight_decay", low=0)
  n(config, "optim.grad_clip", low=0)
  n(config, "optim.accumulate", low=1, integer=True, required=False)
  n(config, "lora.rank", low=0, integer=True, required=False)
  n(config, "model.num_frames", low=1, integer=True)
  n(config, "model.sets_ratio", low=0, high=1, low_open=True)
  _llm_sizes(config)
  _content_grid(config)
  n(config, "eval.every", low=0, integer=True, required=False)
  n(config, "eval.batches", low=1, integer=True, required=False)
  _choice(config, "dtype", {"float32", "bfloat16", "float16"})
  _choice(config, "data.mc_instruction", {"letter", "text"})
  n(config, "data.sample_fps", low=0, required=False)
  _choice(config, "data.frame_times", {"none", "text"})
  n(config, "data.min_frames", low=0, integer=True, required=False)
  min_frames, frames = _get(config, "data.min_frames"), _get(config, "model.num_frames")
  if min_frames is not _MISSING and frames is not _MISSING and min_frames > frames:
    raise InputError(_flag("data.min_frames"), f"{min_frames} is more than model.num_frames "
                     f"({frames}), the most frames a video may give")
  _choice(config, "data.hint_intervals", {"strongest", "all"})
  _choice(config, "data.hint_regions", {True, False})
  _choice(config, "data.hint_types", {True, False})
  _choice(config, "data.train_hint_labels", {True, False})
  if _get(config, "data.train_hint_labels") is True and \
      _get(config, "data.hint_regions") is not True and _get(config, "data.hint_types") is not True:
    raise InputError(_flag("data.train_hint_labels"), "sets the regions and types the hint "
                     "says: it needs data.hint_regions or data.hint_types")
  n(config, "data.hint_jitter", low=0, high=4, required=False)
  n(config, "data.tetg_fps", low=0, required=False)
  _choice(config, "data.imgsp", {True, False})
  n(config, "data.imgsp_turns", low=1, integer=True, required=False)
  for key in ("mesh.data", "mesh.fsdp", "mesh.tensor"):
    value = _get(config, key)
    if value is not _MISSING and (not isinstance(value, int) or value == 0 or value < -1):
      raise InputError(_flag(key), f"must be a positive integer or -1 (all the rest), got "
                       f"{value!r}")
  _file(config, "data.train_json", "instruction file")
  _file(config, "data.feature_dir", "feature directory", directory=True)
  _file(config, "data.tokenizer", "tokenizer")
  _file(config, "data.tetg_params", "TETG classifier directory", directory=True, optional=True)
  _file(config, "data.bert_vocab", "Q-Former vocab.txt", optional=True)
  _file(config, "init_from", "run or params directory to start from", directory=True,
        optional=True)
  _file(config, "eval.json", "held-out instruction file", optional=True)
  if extra is not None:
    extra(config)


def _llm_sizes(config) -> None:
  """model.llm_sizes: each a non-negative integer (0 keeps the named LLM's), and together a
  shape the LLM can have (heads divide the width and the KV heads, an even head size)."""
  from vaujax.models import llama
  sizes = _get(config, "model.llm_sizes")
  if sizes is _MISSING:
    return
  sizes = dict(sizes.items())
  for key in sizes:
    if key not in llama.LLM_SIZES:
      raise InputError(_flag(f"model.llm_sizes.{key}"),
                       f"is not an LLM size; choose from {list(llama.LLM_SIZES)}")
    _number(config, f"model.llm_sizes.{key}", low=0, integer=True)
  try:
    llama.llm_config(_get(config, "model.llm"), sizes)
  except ValueError as e:
    raise InputError(_flag("model.llm_sizes"), str(e)) from e


def _content_grid(config) -> None:
  """model.content_grid: a positive integer, at most the side of the tower's patch grid, and
  only with frame_token_mode context_content (mode tokens keeps every patch already)."""
  key = "model.content_grid"
  _number(config, key, low=1, integer=True, required=False)
  g, patches = _get(config, key), _get(config, "model.num_patches")
  if g is _MISSING or g == 1:
    return
  if isinstance(patches, int) and patches > 0 and g > math.isqrt(patches):
    raise InputError(_flag(key), f"{g} is more than the side of the tower's patch grid "
                     f"({math.isqrt(patches)}, model.num_patches {patches})")
  mode = _get(config, "model.frame_token_mode")
  if mode is not _MISSING and mode != "context_content":
    raise InputError(_flag(key), f"a content grid needs model.frame_token_mode "
                     f"context_content, got {mode!r}")


def check_tetg(config: ml_collections.ConfigDict) -> None:
  """The TETG classifier's config (configs/tetg.py)."""
  n = _number
  n(config, "learning_rate", low=0, low_open=True)
  n(config, "momentum", low=0, high=1)
  n(config, "batch_size", low=1, integer=True)
  n(config, "num_epochs", low=1, integer=True)
  n(config, "seed", low=0, integer=True)
  n(config, "threshold", low=0, high=1)
  n(config, "smooth", low=1, integer=True)
  n(config, "merge_gap", low=0, integer=True)
  n(config, "extend", low=0, required=False)
  types = _get(config, "types")
  if types is not _MISSING:
    names = str(types).split(",") if types else []
    if not isinstance(types, str) or any(not c.strip() for c in names) or \
        len(set(names)) != len(names) or len(names) == 1:
      raise InputError(_flag("types"), f"must be two or more distinct class names, "
                       f"comma-separated, or empty, got {types!r}")
  _file(config, "data.feature_dir", "feature directory", directory=True)
  _file(config, "data.labels_json", "labels file")


def check_batch_against_mesh(config: ml_collections.ConfigDict, num_devices: int,
                             num_processes: int = 1) -> None:
  """`data.batch_size` is the global batch: it must split evenly over the mesh's data x fsdp
  axes (each row on one of their shards) and over the processes (each reads
  batch_size / num_processes examples of its own shard of the data), and data x fsdp must be a
  multiple of the process count (a process feeds the rows of its own devices only). Checked
  before any work; the message names the key and the sizes that would work."""
  shape = [_get(config, f"mesh.{axis}") for axis in ("data", "fsdp", "tensor")]
  shape = [1 if s is _MISSING else s for s in shape]
  devices = _get(config, "mesh.devices")
  if isinstance(devices, int) and devices > 0:
    num_devices = min(num_devices, devices)
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise InputError(_flag("mesh"), f"{num_devices} devices do not divide into mesh axes "
                       f"{dict(zip(('data', 'fsdp', 'tensor'), shape))}")
    shape[shape.index(-1)] = num_devices // known
  rows = shape[0] * shape[1]
  batch = _get(config, "data.batch_size")
  if rows % num_processes:
    raise InputError(_flag("mesh.fsdp"), f"mesh.data x mesh.fsdp = {rows} is not a multiple of "
                     f"the {num_processes} processes (each process feeds its own devices' rows); "
                     "give data x fsdp more of the devices, tensor fewer")
  step = rows * num_processes // math.gcd(rows, num_processes)
  if isinstance(batch, int) and batch % step:
    raise InputError(_flag("data.batch_size"), f"{batch} (the global batch) must be a multiple "
                     f"of mesh.data x mesh.fsdp = {rows} on {num_devices} devices"
                     + (f" and of the {num_processes} processes" if num_processes > 1 else "")
                     + ": e.g. " + " or ".join(str(b) for b in sorted(
                         {batch // step * step, (batch // step + 1) * step} - {0})))
