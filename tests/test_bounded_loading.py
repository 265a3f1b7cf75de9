"""Bounded loading: a small file cannot make a loader allocate what it merely declares.

Each crafted file here is under 1 MB and declares arrays of up to a gigabyte (or 10^12
elements, or a memo slot four billion entries out). Every loader reads the declared sizes first
and checks them against the expected shape, the bytes the file really holds and a byte budget,
so it either returns arrays of the expected shape or raises InputError naming the file, and
its peak allocation (tracemalloc) stays a small multiple of the expected array size.
"""

import io
import json
import pickle
import re
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaujax.errors import InputError

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FRAMES, TRAILING = 8, (64, 256)                       # expected: [8, 64, 256] float32
EXPECTED_BYTES = FRAMES * int(np.prod(TRAILING)) * 4  # 512 KiB
MAX_FILE = 1 << 20
BOUND = 4 * EXPECTED_BYTES                            # "a small multiple"
GIB = 1 << 30


def peak_allocation(fn):
  """(result or the InputError raised, peak bytes traced while `fn` ran)."""
  tracemalloc.start()
  try:
    base = tracemalloc.get_traced_memory()[0]
    try:
      result = fn()
    except InputError as e:
      result = e
    return result, tracemalloc.get_traced_memory()[1] - base
  finally:
    tracemalloc.stop()


def _write(tmp_path, name, data: bytes) -> str:
  assert len(data) < MAX_FILE, (name, len(data))
  path = tmp_path / name
  path.write_bytes(data)
  return str(path)


# -- .npz / .npy -------------------------------------------------------------------------------

def npy_header(shape, descr="<f4", fortran=False) -> bytes:
  """A version 1.0 .npy header declaring `shape` of `descr` (no data)."""
  buf = io.BytesIO()
  np.lib.format.write_array_header_1_0(
      buf, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
  return buf.getvalue()


_MEMBERS = {}


def zip_member(name: str, header: bytes, data_len: int, method: str) -> bytes:
  """A one-member zip: `name` holding a .npy header then `data_len` zero bytes, stored,
  deflated or bzip2-ed, written in 1 MiB steps (a 1 GiB deflated member is about 1 MB and is
  never held whole): a zip bomb that is honest about its sizes."""
  key = (name, header, data_len, method)
  if key not in _MEMBERS:
    compression = {"store": zipfile.ZIP_STORED, "deflate": zipfile.ZIP_DEFLATED,
                   "bzip2": zipfile.ZIP_BZIP2}[method]
    buf, step = io.BytesIO(), b"\0" * (1 << 20)
    with zipfile.ZipFile(buf, "w", compression) as z:
      with z.open(name, "w", force_zip64=data_len > 1 << 31) as f:
        f.write(header)
        for _ in range(data_len >> 20):
          f.write(step)
        f.write(b"\0" * (data_len & ((1 << 20) - 1)))
    _MEMBERS[key] = buf.getvalue()
  return _MEMBERS[key]


DESCRS = ["<f4", "<f2", ">f4", "<f8", "|b1", "<i8", "|O", "<U8", "<c8", [("a", "<f4")]]
SHAPES = st.one_of(
    st.just((FRAMES, *TRAILING)), st.just((FRAMES - 1, *TRAILING)), st.just((0, *TRAILING)),
    st.just(()), st.just((FRAMES,)), st.just((10 ** 12,)), st.just((FRAMES, 10 ** 6, 256)),
    st.just((GIB // (4 * 64 * 256), *TRAILING)), st.just((FRAMES, 64, 255)),
    st.tuples(st.integers(0, 2 ** 20), st.integers(0, 64), st.integers(0, 300)))


BOMBS = [((256 << 20) // (4 * 64 * 256), 64, 256), (1 << 26,)]   # 256 MiB of float32 each


@st.composite
def crafted_npz(draw):
  """What a crafted feature file holds (`build_npz` makes its bytes, under 1 MB)."""
  kind = draw(st.sampled_from(["member", "member", "member", "bomb", "npy", "two", "text",
                               "many"]))
  if kind == "bomb":   # 256 MiB deflated to 250 kB (two of them, built once)
    return ("bomb", draw(st.sampled_from(BOMBS)), "<f4", False, "deflate", 256 << 20)
  shape, descr = draw(SHAPES), draw(st.sampled_from(DESCRS))
  fortran = draw(st.booleans())
  declared = int(np.prod(shape, dtype=object)) * np.dtype(descr).itemsize
  method = draw(st.sampled_from(["store", "deflate", "bzip2"]))
  data_len = draw(st.sampled_from([declared, declared // 2, declared + 8, 0]))
  data_len = max(0, min(data_len, MAX_FILE // 2 if method == "store" else 4 << 20))
  return (kind, shape, descr, fortran, method, data_len)


def build_npz(kind, shape, descr, fortran, method, data_len) -> bytes:
  header = npy_header(shape, descr, fortran)
  if kind == "npy":    # a plain .npy renamed .npz
    return header + b"\0" * min(data_len, MAX_FILE // 2)
  if kind == "text":
    return zip_member("notes.txt", b"hello", 0, "store")
  if kind == "many":   # 4000 one-byte members, each a zip entry costing objects
    return _many_members(4000)
  data = zip_member("tower_patches.npy", header, data_len, method)
  if kind == "two":    # and a second member with one frame less
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as z:
      z.writestr("timestamps.npy", npy_header((FRAMES - 1,), "<f8") + b"\0" * 8 * (FRAMES - 1))
    data = buf.getvalue()
  return data


def _many_members(n: int) -> bytes:
  if n not in _MEMBERS:
    buf, one = io.BytesIO(), npy_header((1,), "|u1") + b"\0"
    with zipfile.ZipFile(buf, "w") as z:
      for i in range(n):
        z.writestr(f"{i}.npy", one)
    _MEMBERS[n] = buf.getvalue()
  return _MEMBERS[n]


@SETTINGS
@given(crafted_npz())
def test_feature_reader_allocates_at_most_a_small_multiple(tmp_path_factory, crafted):
  from vaujax.data import features
  path = _write(tmp_path_factory.mktemp("npz"), "f.npz", build_npz(*crafted))
  result, peak = peak_allocation(
      lambda: features.read_features(path, {"tower_patches": TRAILING}, frames=FRAMES))
  if not isinstance(result, InputError):
    assert result["tower_patches"].shape == (FRAMES, *TRAILING), crafted
  else:
    assert str(result).startswith(path), result
  assert peak <= BOUND, (crafted, peak)


def test_zip_bomb_and_huge_headers_are_refused_before_allocation(tmp_path):
  """The adversarial user's files: 1 GiB deflated to 1 MB, and 10^12 declared elements."""
  from vaujax.data import features
  bomb = zip_member("tower_patches.npy", npy_header((GIB // 4 // 4096, 64, 64)), GIB, "deflate")
  huge = zip_member("tower_patches.npy", npy_header((10 ** 12,)), 64, "store")
  for name, data in (("bomb.npz", bomb), ("huge.npz", huge)):
    path = _write(tmp_path, name, data)
    for expected in ({"tower_patches": None}, None):   # with and without expected shapes
      result, peak = peak_allocation(lambda: features.read_features(path, expected))
      assert isinstance(result, InputError) and name in str(result), result
      assert peak < BOUND, (name, peak)


def test_valid_files_read_exactly_as_numpy_writes_them(tmp_path):
  """C and Fortran order, big-endian, float16 and bool arrays come back bit for bit, savez and
  savez_compressed alike, and a valid file's peak is about its array size."""
  from vaujax.data import features
  rng = np.random.RandomState(0)
  arrays = {"tower_patches": rng.randn(FRAMES, *TRAILING).astype(np.float32),
            "fortran": np.asfortranarray(rng.randn(FRAMES, 3, 5)), "big": np.arange(FRAMES,
                                                                                      dtype=">i4"),
            "half": rng.randn(FRAMES, 2).astype(np.float16), "mask": np.ones(FRAMES, bool)}
  for save in (np.savez, np.savez_compressed):
    save(tmp_path / "ok.npz", **arrays)
    got, peak = peak_allocation(lambda: features.read_features(str(tmp_path / "ok.npz"),
                                                               frames=FRAMES))
    with np.load(tmp_path / "ok.npz") as want:
      assert list(got) == list(want.files)
      for key in want.files:
        assert got[key].dtype == want[key].dtype and got[key].flags.f_contiguous == \
            want[key].flags.f_contiguous, key
        np.testing.assert_array_equal(got[key], want[key])
    assert peak < 2.5 * EXPECTED_BYTES, peak


# -- pickles -----------------------------------------------------------------------------------

class _Reduce:
  def __init__(self, *rv):
    self.rv = rv

  def __reduce__(self):
    return self.rv


def _multiarray():
  try:
    from numpy._core import multiarray, numeric
  except ImportError:
    from numpy.core import multiarray, numeric
  return multiarray, numeric


def attack_pickles(n: int) -> dict[str, bytes]:
  """Feature pickles of a few dozen to a few hundred bytes that ask for `n`-byte allocations."""
  multiarray, numeric = _multiarray()
  feats = lambda x: pickle.dumps({"feats": x}, 2)  # noqa: E731
  return {
      "bytearray(n)": b"\x80\x02cbuiltins\nbytearray\nJ" + struct.pack("<i", min(n, 2 ** 31 - 1))
                      + b"\x85R.",
      "unfilled _reconstruct": feats(_Reduce(multiarray._reconstruct,
                                             (np.ndarray, (FRAMES, 65, 256), np.dtype("f2")))),
      "_reconstruct(n)": feats(_Reduce(multiarray._reconstruct,
                                       (np.ndarray, (n,), np.dtype("u1")))),
      "ndarray(n)": feats(_Reduce(np.ndarray, ((n // 8, 1, 1), np.dtype("f8")))),
      "NEWOBJ ndarray(n)": (b"\x80\x02}X\x05\x00\x00\x00featscnumpy\nndarray\nJ"
                            + struct.pack("<i", min(n // 8, 2 ** 31 - 1))
                            + b"K\x01K\x01\x87\x85\x81s."),
      "state smaller than shape": feats(_Reduce(
          multiarray._reconstruct, (np.ndarray, (0,), b"b"),
          (1, (n // 8, 1, 1), np.dtype("f8"), False, b"\0" * 8))),
      "_frombuffer(n)": feats(_Reduce(numeric._frombuffer,
                                      (b"\0" * 8, np.dtype("f8"), (n // 8, 1, 1), "C"))),
      "BINBYTES8 of n": b"\x80\x04\x8e" + struct.pack("<Q", n) + b"abc",
      "memo slot 2^30": b"\x80\x02N" + b"r" + struct.pack("<I", 0x3FFFFFFF) + b".",
      "object feats": feats(np.array([[["a"]]], dtype=object)),
      "str feats": feats(np.array([[["a", "b", "c"]]])),
      "structured feats": feats(np.zeros((2, 3, 4), dtype=[("a", "f4"), ("b", "i4")])),
      "valid": feats(np.ones((FRAMES, 1 + TRAILING[0], TRAILING[1]), np.float16)),
  }


@SETTINGS
@given(st.sampled_from(sorted(attack_pickles(1))), st.sampled_from([1 << 20, 1 << 28, GIB]),
       st.sampled_from([2, 4, 5]))
def test_pickle_loader_allocates_at_most_a_small_multiple(tmp_path_factory, name, n, protocol):
  from vaujax.data import features
  data = attack_pickles(n)[name]
  if protocol != 2 and name in ("valid", "object feats", "str feats", "structured feats"):
    data = pickle.dumps(pickle.loads(data), protocol)
  path = _write(tmp_path_factory.mktemp("pkl"), "f.pkl", data)
  result, peak = peak_allocation(
      lambda: features.read_features(path, {"tower_patches": TRAILING}, frames=FRAMES))
  if name == "valid":
    assert result["tower_patches"].shape == (FRAMES, *TRAILING)
  else:
    assert isinstance(result, InputError) and str(result).startswith(path), (name, result)
  assert peak <= BOUND, (name, peak)


def test_pickle_refusals_say_why(tmp_path):
  from vaujax.data import safe_pickle
  attacks = attack_pickles(GIB)
  for name, match in [("bytearray(n)", "bytearray(int)"),
                      ("unfilled _reconstruct", "uninitialised memory"),
                      ("ndarray(n)", "call of ndarray"), ("NEWOBJ ndarray(n)", "ndarray.__new__"),
                      ("state smaller than shape", "array state of 8 bytes"),
                      ("object feats", "dtype('O')")]:
    path = _write(tmp_path, "a.pkl", attacks[name])
    with pytest.raises(InputError, match=f"a.pkl: refusing to unpickle: .*{re.escape(match)}"):
      safe_pickle.load_restricted(path)


# -- safetensors -------------------------------------------------------------------------------

def _safetensors(header: dict, data: bytes, declared_len=None) -> bytes:
  raw = json.dumps(header).encode()
  return struct.pack("<Q", len(raw) if declared_len is None else declared_len) + raw + data


@st.composite
def crafted_safetensors(draw):
  shape = draw(st.sampled_from([[64, 64], [GIB // 4], [10 ** 12], [64, 65], [-1, 4]]))
  dtype = draw(st.sampled_from(["F32", "BF16", "F16", "I8"]))
  held = draw(st.sampled_from([64 * 64 * 4, 100, 0]))
  end = draw(st.sampled_from([held, GIB, 2 ** 63]))
  declared = draw(st.sampled_from([None, GIB, 2 ** 64 - 1, 3]))
  header = {"w": {"dtype": dtype, "shape": shape, "data_offsets": [0, end]}}
  return _safetensors(header, b"\0" * held, declared), f"{shape} {dtype} {held}B end={end}"


@SETTINGS
@given(crafted_safetensors())
def test_safetensors_loader_allocates_at_most_a_small_multiple(tmp_path_factory, crafted):
  from vaujax.convert import weights
  data, what = crafted
  path = _write(tmp_path_factory.mktemp("st"), "m.safetensors", data)
  result, peak = peak_allocation(lambda: weights.load_file(path))
  if isinstance(result, InputError):
    assert str(result).startswith(path) and "not a readable safetensors file" in str(result)
  assert peak <= BOUND, (what, peak)


def test_safetensors_header_is_checked_against_the_file(tmp_path):
  from vaujax.convert import weights
  cases = {
      "long.safetensors": (_safetensors({}, b"", 2 ** 40), "header of 1099511627776 bytes"),
      "beyond.safetensors": (_safetensors({"w": {"dtype": "F32", "shape": [GIB // 4],
                                                 "data_offsets": [0, GIB]}}, b"\0" * 16),
                             "outside the 16 data bytes"),
      "size.safetensors": (_safetensors({"w": {"dtype": "F32", "shape": [8],
                                               "data_offsets": [0, 16]}}, b"\0" * 16),
                           "declares [8] F32 (32 bytes) but spans 16 bytes"),
      "overlap.safetensors": (_safetensors({"a": {"dtype": "F32", "shape": [4],
                                                  "data_offsets": [0, 16]},
                                            "b": {"dtype": "F32", "shape": [4],
                                                  "data_offsets": [8, 24]}}, b"\0" * 24),
                              "overlap"),
  }
  for name, (data, match) in cases.items():
    path = _write(tmp_path, name, data)
    with pytest.raises(InputError, match=f"{name}: not a readable safetensors file .*"
                                         f"{re.escape(match)}"):
      weights.load_file(path)


# -- JSON --------------------------------------------------------------------------------------

def test_json_over_its_budget_is_refused_before_it_is_read(tmp_path):
  from vaujax import files
  path = _write(tmp_path, "train.json", b"[" + b"0," * 400_000 + b"0]")
  result, peak = peak_allocation(lambda: files.read_json(path, kind=list, max_bytes=64 << 10))
  assert isinstance(result, InputError) and "larger than the 65536 bytes allowed" in str(result)
  assert peak < 64 << 10
  assert len(files.read_json(path, kind=list)) == 400_001       # the default budget is 1 GiB
  deep = _write(tmp_path, "deep.json", b"[" * 100_000)
  with pytest.raises(InputError, match="deep.json: malformed JSON \\(nested too deeply"):
    files.read_json(deep, kind=list)


def test_config_and_index_readers_have_small_budgets():
  from vaujax.convert import llama, weights
  assert llama.MAX_CONFIG_BYTES <= 16 << 20 and weights.MAX_INDEX_BYTES <= 64 << 20


# -- video -------------------------------------------------------------------------------------

def test_large_frames_are_scaled_down_while_decoding(tmp_path):
  """4000x2000 frames come out at most MAX_SIDE wide, and decoding three of them traces less
  than a few copies of the *output* (it used to hold several copies of the 24 MB frames)."""
  from vaujax.data import video
  frames = np.zeros((3, 2000, 4000, 3), np.uint8)
  frames[:, ::40] = 200
  video.write_video(tmp_path / "big.mp4", frames, fps=3,
                    options={"preset": "ultrafast", "crf": "30"})
  del frames
  (out, stamps), peak = peak_allocation(lambda: video.read_video(tmp_path / "big.mp4"))
  assert out.shape == (3, video.MAX_SIDE // 2, video.MAX_SIDE, 3)
  np.testing.assert_array_equal(stamps, np.arange(3) / 3)
  assert peak < 2.5 * out.nbytes, peak
  small, _ = video.read_video(tmp_path / "big.mp4", max_side=256)
  assert small.shape == (3, 128, 256, 3) and abs(small.mean() - out.mean()) < 3


# -- configs that hide what they say -----------------------------------------------------------

def test_transformers5_rope_parameters_convert_with_their_linear_scaling(tmp_path):
  """transformers 5 saves `rope_scaling=` as `rope_parameters` only: the converted model must
  scale RoPE too (its logits equal HF's), and a type we do not implement must be refused."""
  import jax.numpy as jnp
  import torch
  from transformers import LlamaConfig as HFConfig, LlamaForCausalLM

  from vaujax.convert import llama as convert
  from vaujax.models import llama
  cfg = llama.tiny_llama()
  torch.manual_seed(0)
  hf = LlamaForCausalLM(HFConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
      intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
      max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.rms_norm_eps,
      rope_scaling={"rope_type": "linear", "factor": 2.0})).eval()
  hf.save_pretrained(tmp_path / "hf")
  saved = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert saved.get("rope_parameters", {}).get("factor") == 2.0 and not saved.get("rope_scaling")
  params, got_cfg = convert.load_hf(str(tmp_path / "hf"))
  assert got_cfg.rope_scaling_factor == 2.0
  ids = np.array([[1, 5, 9, 33, 70, 2, 200, 17, 64, 3, 99, 150]])
  with torch.no_grad():
    want = hf(torch.from_numpy(ids)).logits.numpy()
  got = np.asarray(llama.Llama(got_cfg).apply(params, jnp.asarray(ids)))
  np.testing.assert_allclose(got, want, atol=2e-4)
  for kind in ("llama3", "dynamic", "yarn"):
    bad = dict(saved, rope_parameters={"rope_type": kind, "factor": 8.0, "rope_theta": 1e4})
    with pytest.raises(InputError, match=f"config.json: rope_parameters type '{kind}' is not "
                                         "supported"):
      convert.config_from_hf(bad, "config.json")
  both = dict(saved, rope_scaling={"type": "linear", "factor": 4.0})
  with pytest.raises(InputError, match="rope_scaling and rope_parameters disagree"):
    convert.config_from_hf(both, "config.json")
