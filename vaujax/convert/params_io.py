"""Converted parameter trees on disk: an orbax checkpoint plus a `vaujax.json` metadata file.

Layout of DIR:  DIR/params/ (orbax StandardCheckpointer)  and  DIR/vaujax.json ({kind, config, ...}).
The metadata is written last, so a directory without it is an incomplete conversion.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from vaujax import files
from vaujax.errors import InputError, require_dir

METADATA = "vaujax.json"


def write_params_dir(out_dir: str, params: Any, metadata: dict) -> None:
  import orbax.checkpoint as ocp
  out_dir = files.makedirs(files.absolute(out_dir))   # a local folder or a gs:// URL
  meta_path = os.path.join(out_dir, METADATA)
  if files.exists(meta_path):
    files.remove(meta_path)  # the directory is incomplete until the new metadata lands
  params = jax.tree_util.tree_map(np.asarray, params)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(out_dir, "params"), params, force=True)
  files.write_json(meta_path, metadata, indent=2)


def read_params_dir(path: str, target: Any = None) -> tuple[Any, dict]:
  """Restores (params, metadata). `target`: optional abstract tree with shardings."""
  import orbax.checkpoint as ocp
  path = files.absolute(require_dir(path, "params directory"))
  meta_path = os.path.join(path, METADATA)
  if not files.exists(meta_path):
    raise InputError(path, f"not a vaujax params directory (no {METADATA}; incomplete conversion?)")
  metadata = files.read_json(meta_path)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      params = ckptr.restore(os.path.join(path, "params"), target)
  except Exception as e:  # orbax raises assorted types for damaged checkpoints
    raise InputError(os.path.join(path, "params"), f"cannot restore orbax checkpoint "
                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
  return params, metadata
