"""Reading LLaMA-VID / VA-GPT `.pkl` feature files without running code from them.

Only numpy arrays, numpy dtypes/scalars and plain containers (dict, list, tuple, str, bytes,
numbers, None) may appear; any other global a pickle asks for (os.system, builtins.eval,
arbitrary classes) is refused before it is resolved, so nothing executes.

The allowed globals are also constructors, and a constructor allocates whatever its arguments
say: `bytearray(10**9)` is a gigabyte from a 35-byte pickle, and `ndarray((8, 257, 1408))` or
`_reconstruct(ndarray, shape, dtype)` without the state that fills it returns uninitialised
memory. So every call a pickle makes is checked first: arrays are built only from bytes the file
holds, of exactly the size their shape and dtype declare, and no call may size an allocation
from a number. Nothing a loaded pickle allocates is more than a small multiple of the file's
size. (This needs pickle's pure-Python unpickler: the C one cannot be hooked between opcodes.
Feature pickles are one large bytes record per array, so it is no slower in practice.)
"""

from __future__ import annotations

import _codecs
import collections
import io
import math
import os
import pickle

import numpy as np

from vaujax.errors import InputError, require_file

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("_codecs", "encode"), ("collections", "OrderedDict"),
}
_BYTES = (bytes, bytearray, memoryview, pickle.PickleBuffer)


class _Refused(Exception):
  """A call or state the unpickler will not perform (the message says which and why)."""


def _nbytes(shape, dtype) -> int:
  """Bytes an array of `shape` and `dtype` needs; refuses anything that is not a real shape
  of a plain (object-free) dtype."""
  if not isinstance(dtype, np.dtype) or dtype.hasobject:
    raise _Refused(f"array of dtype {dtype!r} (only plain numeric / byte dtypes)")
  if isinstance(shape, int):
    shape = (shape,)
  if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
    raise _Refused(f"array shape {shape!r}")
  return math.prod(shape) * dtype.itemsize


def _size_of(buf) -> int:
  if not isinstance(buf, _BYTES):
    raise _Refused(f"array data of type {type(buf).__name__} (bytes expected)")
  return memoryview(buf).nbytes


def _numpy_internals():
  """numpy's pickle helpers (numpy 2 names them numpy._core.*, numpy 1 numpy.core.*)."""
  try:
    from numpy._core import multiarray, numeric
  except ImportError:   # numpy 1.x
    from numpy.core import multiarray, numeric
  return multiarray, numeric


def _reconstruct(subtype, shape, dtype):
  """numpy's array pickles call `_reconstruct(ndarray, (0,), b'b')` and then fill the empty
  array from its state; any other shape would return uninitialised memory."""
  if subtype is not np.ndarray or _nbytes(shape, np.dtype(np.uint8)) != 0:
    raise _Refused(f"_reconstruct({getattr(subtype, '__name__', subtype)}, {shape!r}): an "
                   "unfilled array of that size would be uninitialised memory")
  return _numpy_internals()[0]._reconstruct(subtype, shape, dtype)


def _frombuffer(buf, dtype, shape, order):
  """An array over bytes the file holds, of exactly the size `shape` and `dtype` declare."""
  if _nbytes(shape, dtype) != _size_of(buf) or order not in ("C", "F"):
    raise _Refused(f"_frombuffer of {_size_of(buf)} bytes as {shape!r} {dtype} order {order!r}")
  return _numpy_internals()[1]._frombuffer(buf, dtype, shape, order)


def _scalar(dtype, data=None):
  """A numpy scalar from exactly its dtype's itemsize of bytes (an object scalar is refused)."""
  if _nbytes((), dtype) != _size_of(data):
    raise _Refused(f"numpy scalar of dtype {dtype} from {_size_of(data)} bytes")
  return _numpy_internals()[0].scalar(dtype, data)


def _bytearray(*args):
  if args and not isinstance(args[0], (str, *_BYTES)):
    raise _Refused(f"bytearray({type(args[0]).__name__}): only bytes or text are copied")
  return bytearray(*args)


def _encode(text, encoding="utf-8", errors="strict"):
  """pickle protocols < 3 store bytes as `_codecs.encode(text, 'latin1')`."""
  if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
    raise _Refused(f"_codecs.encode(..., {encoding!r}): only latin-1 text is decoded")
  return _codecs.encode(text, encoding, errors)


def _checked_calls() -> dict:
  """{allowed global: the checked function a pickle's call of it runs instead}."""
  multiarray, numeric = _numpy_internals()
  return {np.dtype: np.dtype, multiarray._reconstruct: _reconstruct, multiarray.scalar: _scalar,
          numeric._frombuffer: _frombuffer, bytearray: _bytearray, complex: complex,
          _codecs.encode: _encode, collections.OrderedDict: collections.OrderedDict}


# Classes a pickle may create with `cls.__new__(cls, *args)` (NEWOBJ): none of these allocates
# from its arguments (bytearray's __new__ ignores them; ndarray's would allocate, so it is out).
_NEW_OK = (complex, bytearray, collections.OrderedDict, np.dtype)


def _check_array_state(state) -> None:
  """ndarray.__setstate__'s (version, shape, dtype, is_fortran, data): the data must be bytes
  of exactly the declared size (an object array's data is a list: refused)."""
  if isinstance(state, tuple) and len(state) == 5:
    state = state[1:]
  if not isinstance(state, tuple) or len(state) != 4:
    raise _Refused("array state that is not (shape, dtype, is_fortran, data)")
  shape, dtype, _, data = state
  if _nbytes(shape, dtype) != _size_of(data):
    raise _Refused(f"array state of {_size_of(data)} bytes for {shape!r} {dtype}")


class _RestrictedUnpickler(pickle._Unpickler):
  dispatch = dict(pickle._Unpickler.dispatch)

  def __init__(self, file, source):
    super().__init__(file)
    self._source = source
    self._calls = _checked_calls()

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return super().find_class(module, name)
    raise InputError(self._source, f"refusing to unpickle {module}.{name}: only numpy arrays and "
                     "plain containers are allowed in feature files")

  def _call(self, func, args):
    checked = self._calls.get(func) if _hashable(func) else None
    if checked is None:
      raise _Refused(f"call of {getattr(func, '__name__', type(func).__name__)}")
    return checked(*args)

  def load_reduce(self):
    args = self.stack.pop()
    self.stack[-1] = self._call(self.stack[-1], args)
  dispatch[pickle.REDUCE[0]] = load_reduce

  def _instantiate(self, klass, args):   # INST and OBJ (protocols 0 and 1)
    self.append(self._call(klass, tuple(args)))

  def _new(self, cls, args, kwargs):
    if not (isinstance(cls, type) and cls in _NEW_OK):
      raise _Refused(f"{getattr(cls, '__name__', cls)}.__new__")
    return cls.__new__(cls, *args, **kwargs)

  def load_newobj(self):
    args = self.stack.pop()
    self.append(self._new(self.stack.pop(), args, {}))
  dispatch[pickle.NEWOBJ[0]] = load_newobj

  def load_newobj_ex(self):
    kwargs, args = self.stack.pop(), self.stack.pop()
    self.append(self._new(self.stack.pop(), args, kwargs))
  dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

  def load_build(self):
    if isinstance(self.stack[-2], np.ndarray):
      _check_array_state(self.stack[-1])
    super().load_build()
  dispatch[pickle.BUILD[0]] = load_build


def _hashable(x) -> bool:
  try:
    hash(x)
  except TypeError:
    return False
  return True


def load_restricted(path: str | os.PathLike):
  """Unpickles `path` with the restricted unpickler."""
  path = require_file(path, "pickle file")
  with open(path, "rb") as f:
    data = f.read()
  try:
    return _RestrictedUnpickler(io.BytesIO(data), path).load()
  except InputError:
    raise
  except _Refused as e:
    raise InputError(path, f"refusing to unpickle: {e}") from None
  except Exception as e:  # truncated / corrupt pickles raise many types
    raise InputError(path, f"not a readable pickle ({type(e).__name__}: {e})") from e


def load_llamavid_features(path: str | os.PathLike):
  """A LLaMA-VID pkl: dict(feats=float16 [T, 257, 1408], inputs=str) -> (feats without CLS, inputs)."""
  obj = load_restricted(path)
  if not isinstance(obj, dict) or "feats" not in obj:
    raise InputError(path, "expected a dict with 'feats' (LLaMA-VID feature pickle)")
  feats = obj["feats"]
  if not isinstance(feats, np.ndarray) or feats.ndim != 3:
    raise InputError(path, f"'feats' must be an array [T, 1+N, D], got "
                     f"{getattr(feats, 'shape', type(feats).__name__)}")
  if feats.dtype.kind not in "biuf":
    raise InputError(path, f"'feats' has dtype {feats.dtype}; expected numbers")
  if feats.shape[1] % 2 == 0:
    raise InputError(path, f"'feats' has {feats.shape[1]} tokens per frame; expected CLS + a square "
                     "grid (odd count)")
  if not np.isfinite(feats).all():
    raise InputError(path, "'feats' contains NaN or Inf")
  return feats[:, 1:], obj.get("inputs", "")
