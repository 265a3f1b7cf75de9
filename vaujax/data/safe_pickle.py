"""Reading LLaMA-VID / VA-GPT `.pkl` feature files without running code from them.

Only numpy arrays, numpy dtypes/scalars and plain containers (dict, list, tuple, str, bytes,
numbers, None) may appear; any other global a pickle asks for (os.system, builtins.eval,
arbitrary classes) is refused before it is resolved, so nothing executes.
"""

from __future__ import annotations

import io
import os
import pickle

from vaujax.errors import InputError, require_file

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
  def __init__(self, file, source):
    super().__init__(file)
    self._source = source

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return super().find_class(module, name)
    raise InputError(self._source, f"refusing to unpickle {module}.{name}: only numpy arrays and "
                     "plain containers are allowed in feature files")


def load_restricted(path: str | os.PathLike):
  """Unpickles `path` with the restricted unpickler."""
  path = require_file(path, "pickle file")
  with open(path, "rb") as f:
    data = f.read()
  try:
    return _RestrictedUnpickler(io.BytesIO(data), path).load()
  except InputError:
    raise
  except Exception as e:  # truncated / corrupt pickles raise many types
    raise InputError(path, f"not a readable pickle ({type(e).__name__}: {e})") from e


def load_llamavid_features(path: str | os.PathLike):
  """A LLaMA-VID pkl: dict(feats=float16 [T, 257, 1408], inputs=str) -> (feats without CLS, inputs)."""
  import numpy as np
  obj = load_restricted(path)
  if not isinstance(obj, dict) or "feats" not in obj:
    raise InputError(path, "expected a dict with 'feats' (LLaMA-VID feature pickle)")
  feats = obj["feats"]
  if not isinstance(feats, np.ndarray) or feats.ndim != 3:
    raise InputError(path, f"'feats' must be an array [T, 1+N, D], got "
                     f"{getattr(feats, 'shape', type(feats).__name__)}")
  if feats.shape[1] % 2 == 0:
    raise InputError(path, f"'feats' has {feats.shape[1]} tokens per frame; expected CLS + a square "
                     "grid (odd count)")
  if not np.isfinite(feats).all():
    raise InputError(path, "'feats' contains NaN or Inf")
  return feats[:, 1:], obj.get("inputs", "")
