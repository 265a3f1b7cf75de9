"""Security of the input paths: no unsafe deserialisation anywhere in the tree, and the
restricted unpickler refuses every code-running payload (without running it)."""

import os
import pickle
import re

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
