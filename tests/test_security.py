"""Security of the input paths: no unsafe deserialisation anywhere in the tree, and the
restricted unpickler refuses every code-running payload (without running it)."""

import os
import pickle
import re

import numpy as np
import pytest

from vaujax.data import safe_pickle
from vaujax.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("vaujax", "configs", "benchmarks")


def _python_files():
  for top in SOURCES:
    for root, _, files in os.walk(os.path.join(REPO, top)):
      for name in files:
        if name.endswith(".py"):
          yield os.path.join(root, name)


def _calls(text: str, name: str):
  """The text of every call `name(...)` (balanced parentheses)."""
  for m in re.finditer(re.escape(name) + r"\s*\(", text):
    depth, i = 1, m.end()
    while depth and i < len(text):
      depth += {"(": 1, ")": -1}.get(text[i], 0)
      i += 1
    yield text[m.start():i]


def test_no_unsafe_deserialisation_in_the_tree():
  problems = []
  for path in _python_files():
    text = open(path, encoding="utf-8").read()
    rel = os.path.relpath(path, REPO)
    for bad in (r"\bpickle\.loads?\(", r"\bcPickle\b", r"allow_pickle\s*=\s*True",
                r"\bdill\b", r"\bjoblib\.load\(", r"\byaml\.load\(",
                r"(?<![.\w])eval\(", r"(?<![.\w])exec\("):
      if re.search(bad, text):
        problems.append(f"{rel}: {bad}")
    for call in _calls(text, "torch.load"):
      if not re.search(r"weights_only\s*=\s*True", call):
        problems.append(f"{rel}: torch.load without weights_only=True: {call[:80]}")
    for call in _calls(text, "np.load"):
      if "allow_pickle=False" not in call.replace(" ", ""):
        problems.append(f"{rel}: np.load without allow_pickle=False: {call[:80]}")
  assert not problems, "\n".join(problems)
  assert len(list(_python_files())) > 50   # the scan really saw the tree


class _Payload:
  def __init__(self, fn, *args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return self.fn, self.args


MARK = "/tmp/vaujax_unpickle_ran"


@pytest.mark.parametrize("payload", [
    _Payload(os.system, f"touch {MARK}"),
    _Payload(eval, f"open({MARK!r}, 'w').write('x')"),
    _Payload(exec, f"open({MARK!r}, 'w').write('x')"),
    _Payload(__import__("subprocess").call, ["touch", MARK]),
    _Payload(__import__("functools").partial, os.system, f"touch {MARK}"),
    _Payload(__import__("posix").system, f"touch {MARK}"),
    _Payload(__import__("builtins").__import__, "os"),
], ids=["os.system", "eval", "exec", "subprocess", "functools.partial", "posix.system",
        "__import__"])
def test_restricted_unpickler_refuses_code(payload, tmp_path):
  if os.path.exists(MARK):
    os.remove(MARK)
  path = tmp_path / "features.pkl"
  path.write_bytes(pickle.dumps({"feats": payload}))
  with pytest.raises(InputError, match="refusing to unpickle") as e:
    safe_pickle.load_restricted(str(path))
  assert "features.pkl" in str(e.value)
  assert not os.path.exists(MARK)


def test_restricted_unpickler_reads_llamavid_features(tmp_path):
  import numpy as np
  feats = np.random.RandomState(0).randn(3, 5, 4).astype(np.float16)
  path = tmp_path / "v.pkl"
  path.write_bytes(pickle.dumps({"feats": feats, "inputs": "a question"}))
  got, inputs = safe_pickle.load_llamavid_features(str(path))
  np.testing.assert_array_equal(got, feats[:, 1:])
  assert inputs == "a question"


# -- the allow-list itself -------------------------------------------------------------------------

# Every global the restricted unpickler may resolve, each reviewed: numpy arrays / dtypes / scalars
# (numpy 2 and numpy 1.x module names), the helpers pickle uses for bytes / bytearray / complex, and
# OrderedDict. None of them calls, imports or looks up anything named by the data. Adding an entry
# here is a security decision: getattr, for one, is the usual first step to running code
# (getattr(module, "system")).
REVIEWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"), ("builtins", "complex"), ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


def _global(module: str, name: str) -> bytes:
  """A protocol-0 pickle whose whole content is the global module.name (loading it resolves the
  global and returns it; nothing is called)."""
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n."


def _load(tmp_path, data: bytes):
  path = tmp_path / "g.pkl"
  path.write_bytes(data)
  return safe_pickle.load_restricted(str(path))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy.core names
def test_the_allow_list_is_exactly_the_reviewed_globals(tmp_path):
  assert set(safe_pickle._ALLOWED) <= REVIEWED, set(safe_pickle._ALLOWED) - REVIEWED
  import importlib
  for module, name in sorted(REVIEWED):            # and each reviewed global still resolves
    assert _load(tmp_path, _global(module, name)) is getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module, name", [
    ("builtins", "getattr"), ("builtins", "setattr"), ("builtins", "delattr"),
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "compile"), ("builtins", "open"),
    ("builtins", "__import__"), ("builtins", "globals"), ("builtins", "vars"),
    ("builtins", "type"), ("builtins", "object"), ("builtins", "breakpoint"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "set"), ("builtins", "frozenset"),
    ("__builtin__", "getattr"), ("__builtin__", "eval"),
    ("operator", "attrgetter"), ("operator", "methodcaller"), ("operator", "getitem"),
    ("functools", "partial"), ("functools", "reduce"), ("copyreg", "_reconstructor"),
    ("os", "system"), ("os", "popen"), ("os", "execv"), ("posix", "system"),
    ("subprocess", "Popen"), ("subprocess", "check_output"), ("pty", "spawn"),
    ("importlib", "import_module"), ("runpy", "run_path"), ("types", "FunctionType"),
    ("types", "CodeType"), ("marshal", "loads"), ("pickle", "loads"), ("_pickle", "loads"),
    ("io", "open"), ("shutil", "rmtree"), ("ctypes", "CDLL"), ("sys", "modules"),
    ("numpy", "load"), ("numpy", "frombuffer"), ("numpy", "fromfile"),
    ("numpy.testing._private.utils", "runstring"), ("numpy.lib.npyio", "load"),
    ("numpy.core.multiarray", "frombuffer"), ("numpy._core.numeric", "fromstring"),
    ("collections", "namedtuple"), ("collections", "defaultdict"),
    ("_codecs", "decode"), ("codecs", "encode"),
])
def test_globals_outside_the_list_are_refused_before_they_are_resolved(module, name, tmp_path):
  with pytest.raises(InputError) as e:
    _load(tmp_path, _global(module, name))
  assert str(e.value) == (f"{tmp_path / 'g.pkl'}: refusing to unpickle {module}.{name}: only numpy "
                          "arrays and plain containers are allowed in feature files")


class _GetAttr:
  def __init__(self, obj, name):
    self.obj, self.name = obj, name

  def __reduce__(self):
    return getattr, (self.obj, self.name)

  def __call__(self, *args):  # pickle wants the reduce function callable
    raise AssertionError("never called")


def test_getattr_gadget_is_refused(tmp_path):
  """With getattr allowed, arrays alone reach code: getattr(array, "tofile")(path) writes any
  file. The pickle below is exactly that; it is refused at getattr and writes nothing."""
  import numpy as np
  if os.path.exists(MARK):
    os.remove(MARK)
  data = pickle.dumps(_Payload(_GetAttr(np.zeros(2), "tofile"), MARK), protocol=4)
  with pytest.raises(InputError, match="refusing to unpickle builtins.getattr"):
    _load(tmp_path, data)
  assert not os.path.exists(MARK)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_feature_pickles_of_every_protocol_load(protocol, tmp_path):
  import collections

  import numpy as np
  obj = {"feats": np.arange(24, dtype=np.float16).reshape(2, 3, 4),
         "ids": np.arange(5, dtype=np.int64), "mask": np.array([True, False]),
         "strided": np.arange(12.0).reshape(3, 4)[:, ::2], "fortran": np.asfortranarray(
             np.arange(6.0).reshape(2, 3)),
         "scale": np.float32(0.5), "count": np.int64(7), "inputs": "a question",
         "raw": b"\x00\x01", "meta": collections.OrderedDict(fps=1.0, frames=[0, 1]),
         "nothing": None, "pair": (1, 2.5)}
  if protocol >= 3:   # protocol 2 names these __builtin__.complex / .bytearray (refused)
    obj.update(z=1 + 2j, buf=bytearray(b"ab"))
  got = _load(tmp_path, pickle.dumps(obj, protocol=protocol))
  assert got.keys() == obj.keys()
  for key, value in obj.items():
    if isinstance(value, np.ndarray):
      assert got[key].dtype == value.dtype
      np.testing.assert_array_equal(got[key], value)
    else:
      assert got[key] == value and type(got[key]) is type(value), key


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_numpy_1_feature_pickles_load(tmp_path):
  """LLaMA-VID's feature files were written by numpy 1.x, which names numpy.core.*."""
  import numpy as np
  feats = np.arange(12, dtype=np.float16).reshape(1, 3, 4)
  data = pickle.dumps({"feats": feats, "t": np.float32(2.0)}, protocol=2)
  assert b"numpy._core.multiarray" in data
  old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
  got = _load(tmp_path, old)
  np.testing.assert_array_equal(got["feats"], feats)
  assert got["t"] == np.float32(2.0)
  # an array the way protocol 5 reduces it: _frombuffer(data, dtype, shape, order)

  class Reduced:
    def __reduce__(self):
      return np._core.numeric._frombuffer, (feats.tobytes(), feats.dtype, feats.shape, "C")

  data = pickle.dumps(Reduced(), protocol=2)
  for module in (b"numpy._core.numeric", b"numpy.core.numeric"):
    got = _load(tmp_path, data.replace(b"numpy._core.numeric", module))
    np.testing.assert_array_equal(got, feats)


def test_unreadable_pickles_are_input_errors(tmp_path):
  for data in (b"", b"\x80\x04\x95", b"not a pickle", pickle.dumps([1, 2, 3])[:-1]):
    with pytest.raises(InputError, match=r"g.pkl: not a readable pickle \(\w+"):
      _load(tmp_path, data)
  with pytest.raises(InputError, match="pickle file does not exist"):
    safe_pickle.load_restricted(str(tmp_path / "missing.pkl"))


def _feats(shape, last=0.0):
  import numpy as np
  value = np.zeros(shape, np.float16)
  value.flat[-1] = last
  return value


@pytest.mark.parametrize("obj, problem", [
    ([1, 2], "expected a dict with 'feats' (LLaMA-VID feature pickle)"),
    ({"inputs": "q"}, "expected a dict with 'feats' (LLaMA-VID feature pickle)"),
    ({"feats": [[[1.0]]]}, "'feats' must be an array [T, 1+N, D], got list"),
    ({"feats": "abc"}, "'feats' must be an array [T, 1+N, D], got str"),
    ({"feats": _feats((3, 5))}, "'feats' must be an array [T, 1+N, D], got (3, 5)"),
    ({"feats": _feats((2, 5, 4, 1))}, "'feats' must be an array [T, 1+N, D], got (2, 5, 4, 1)"),
    ({"feats": _feats((2, 4, 3))}, "'feats' has 4 tokens per frame; expected CLS + a square grid "
                                   "(odd count)"),
    ({"feats": _feats((2, 6, 3))}, "'feats' has 6 tokens per frame; expected CLS + a square grid "
                                   "(odd count)"),
    ({"feats": _feats((2, 5, 3)).astype(np.complex64)},
     "'feats' has dtype complex64; expected numbers"),
    ({"feats": _feats((2, 5, 3), float("nan"))}, "'feats' contains NaN or Inf"),
    ({"feats": _feats((2, 5, 3), float("inf"))}, "'feats' contains NaN or Inf"),
])
def test_llamavid_feature_pickle_errors_name_the_file(obj, problem, tmp_path):
  path = tmp_path / "video.pkl"
  path.write_bytes(pickle.dumps(obj, protocol=4))
  with pytest.raises(InputError) as e:
    safe_pickle.load_llamavid_features(str(path))
  assert str(e.value) == f"{path}: {problem}"


def test_llamavid_features_drop_the_cls_token_and_default_the_text(tmp_path):
  import numpy as np
  feats = np.arange(2 * 9 * 3, dtype=np.float16).reshape(2, 9, 3)     # CLS + 8 patch tokens
  path = tmp_path / "v.pkl"
  path.write_bytes(pickle.dumps({"feats": feats}, protocol=4))
  got, inputs = safe_pickle.load_llamavid_features(str(path))
  np.testing.assert_array_equal(got, feats[:, 1:])
  assert got.shape == (2, 8, 3) and inputs == ""


# -- the calls a feature pickle may make, and why each refusal happens -----------------------------

class _Reduce:
  """Pickles as the call func(*args) (and state, when given)."""

  def __init__(self, *rv):
    self.rv = rv

  def __reduce__(self):
    return self.rv


def _numpy_helpers():
  import numpy as np
  return np._core.multiarray, np._core.numeric


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_calls_numpy_pickles_make_are_performed_exactly(tmp_path):
  import numpy as np
  multiarray, numeric = _numpy_helpers()
  f8 = np.dtype("f8")
  cases = [
      (_Reduce(numeric._frombuffer, (b"\0" * 24, f8, 3, "C")), np.zeros(3)),          # int shape
      (_Reduce(numeric._frombuffer, (bytes(range(6)), np.dtype("u1"), (2, 3), "F")),
       np.frombuffer(bytes(range(6)), np.uint8).reshape((2, 3), order="F")),
      (_Reduce(__import__("_codecs").encode, ("ab\xe9", "latin-1")), b"ab\xe9"),
      (_Reduce(__import__("_codecs").encode, ("ab", "latin1")), b"ab"),
      (_Reduce(multiarray.scalar, (np.dtype("i2"), b"\x05\x00")), np.int16(5)),
      (_Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
               ((2,), f8, False, b"\0" * 16)), np.zeros(2)),                         # 4-tuple state
  ]
  for obj, want in cases:
    got = _load(tmp_path, pickle.dumps(obj, protocol=2))
    assert type(got) is type(want)
    if isinstance(want, np.ndarray):
      assert got.dtype == want.dtype and got.flags.f_contiguous == want.flags.f_contiguous
      np.testing.assert_array_equal(got, want)
    else:
      assert got == want


def _refusals():
  import collections

  import numpy as np
  multiarray, numeric = _numpy_helpers()
  encode = __import__("_codecs").encode
  f8 = np.dtype("f8")
  return [
      (_Reduce(numeric._frombuffer, (b"\0" * 8, "f8", (1,), "C")),
       "array of dtype 'f8' (only plain numeric / byte dtypes)"),
      (_Reduce(numeric._frombuffer, (b"\0" * 16, f8, [2], "C")), "array shape [2]"),
      (_Reduce(numeric._frombuffer, (b"\0" * 16, f8, (-1, -2), "C")), "array shape (-1, -2)"),
      (_Reduce(numeric._frombuffer, (b"\0" * 16, f8, (2.0,), "C")), "array shape (2.0,)"),
      (_Reduce(numeric._frombuffer, ("x" * 8, f8, (1,), "C")),
       "array data of type str (bytes expected)"),
      (_Reduce(numeric._frombuffer, (b"\0" * 8, f8, (2,), "C")),
       "_frombuffer of 8 bytes as (2,) float64 order 'C'"),
      (_Reduce(numeric._frombuffer, (b"\0" * 8, f8, (1,), "K")),
       "_frombuffer of 8 bytes as (1,) float64 order 'K'"),
      (_Reduce(multiarray._reconstruct, (collections.OrderedDict, (0,), b"b")),
       "_reconstruct(OrderedDict, (0,)): an unfilled array of that size would be uninitialised "
       "memory"),
      (_Reduce(multiarray._reconstruct, (5, (0,), b"b")),
       "_reconstruct(5, (0,)): an unfilled array of that size would be uninitialised memory"),
      (_Reduce(multiarray.scalar, (f8, b"\0" * 3)), "numpy scalar of dtype float64 from 3 bytes"),
      (_Reduce(encode, ("abc",)), "_codecs.encode(..., 'utf-8'): only latin-1 text is decoded"),
      (_Reduce(encode, ("abc", "utf-16")),
       "_codecs.encode(..., 'utf-16'): only latin-1 text is decoded"),
      (_Reduce(encode, (b"abc", "latin1")),
       "_codecs.encode(..., 'latin1'): only latin-1 text is decoded"),
      (_Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), {"shape": (2,)}),
       "array state that is not (shape, dtype, is_fortran, data)"),
      (_Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), ((2,), f8, False)),
       "array state that is not (shape, dtype, is_fortran, data)"),
  ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("case", range(15))
def test_refused_calls_say_why(case, tmp_path):
  obj, why = _refusals()[case]
  with pytest.raises(InputError) as e:
    _load(tmp_path, pickle.dumps(obj, protocol=2))
  assert str(e.value) == f"{tmp_path / 'g.pkl'}: refusing to unpickle: {why}"


def test_calling_what_is_not_a_checked_function_is_refused(tmp_path):
  # REDUCE with a list (unhashable) where the function should be
  with pytest.raises(InputError, match=r"g.pkl: refusing to unpickle: call of list$"):
    _load(tmp_path, b"\x80\x02])R.")
  # text that latin-1 cannot encode: the encoder's own error, not a refusal
  with pytest.raises(InputError, match=r"not a readable pickle \(UnicodeEncodeError"):
    _load(tmp_path, pickle.dumps(_Reduce(__import__("_codecs").encode, ("\u20ac", "latin1")), 2))


def _text(x: str) -> bytes:
  return b"X" + len(x.encode()).to_bytes(4, "little") + x.encode()


def _float(x: float) -> bytes:
  import struct
  return b"G" + struct.pack(">d", x)


@pytest.mark.parametrize("data, want", [
    # INST and OBJ (protocols 0 and 1) call the class with the marked arguments, checked
    (b"(S'ab'\nS'latin1'\ni_codecs\nencode\n.", b"ab"),
    (b"(c_codecs\nencode\nS'ab'\nS'latin1'\no.", b"ab"),
    # NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args, **kwargs) for the classes that may be created
    (b"\x80\x02cbuiltins\ncomplex\n" + _float(3.0) + _float(4.0) + b"\x86\x81.", 3 + 4j),
    (b"\x80\x04cbuiltins\ncomplex\n" + _float(3.0) + _float(4.0) + b"\x86}\x92.", 3 + 4j),
    (b"\x80\x04cbuiltins\ncomplex\n)}(" + _text("real") + _float(1.0) + _text("imag")
     + _float(2.0) + b"u\x92.", 1 + 2j),
    (b"\x80\x04ccollections\nOrderedDict\n)}\x92.", __import__("collections").OrderedDict()),
])
def test_old_and_new_object_opcodes(data, want, tmp_path):
  got = _load(tmp_path, data)
  assert got == want and type(got) is type(want)


@pytest.mark.parametrize("data, why", [
    (b"(I5\nibuiltins\nbytearray\n.", "bytearray(int): only bytes or text are copied"),
    (b"(cbuiltins\nbytearray\nI5\no.", "bytearray(int): only bytes or text are copied"),
    (b"\x80\x04cnumpy\nndarray\nK\x02\x85}\x92.", "ndarray.__new__"),
    (b"\x80\x02cnumpy\nndarray\nK\x02\x85\x81.", "ndarray.__new__"),
    (b"\x80\x02K\x05)\x81.", "5.__new__"),                       # not even a class
])
def test_object_opcodes_are_checked_too(data, why, tmp_path):
  with pytest.raises(InputError) as e:
    _load(tmp_path, data)
  assert str(e.value) == f"{tmp_path / 'g.pkl'}: refusing to unpickle: {why}"
