"""Reading and writing published weight files as flat `{key: np.ndarray}` state dicts.

Formats: safetensors (single file or sharded with `*.safetensors.index.json`, read without
torch), PyTorch `.bin`/`.pth`/`.pt` (read with `torch.load(weights_only=True)`, never plain
unpickling), and the same sharded layouts in a HF model directory.
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping

import numpy as np

from vaujax import files
from vaujax.errors import InputError, require_dir, require_file

SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"
MAX_INDEX_BYTES = 64 << 20   # a 400-layer model's index is well under 1 MB


# safetensors' own limit on the JSON header.
MAX_SAFETENSORS_HEADER = 100_000_000
# Bytes per element of the safetensors dtypes (sub-byte and unknown ones are left to the library).
_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors import SafetensorError
  from safetensors.numpy import load_file
  header = safetensors_header(path)
  try:
    return load_file(path)
  except (SafetensorError, OSError, ValueError) as e:
    raise InputError(path, f"not a readable safetensors file ({e})") from e
  except TypeError as e:  # bf16 has no numpy dtype: fall back to torch-free manual decode
    return _read_safetensors_raw(path, header, e)


def safetensors_header(path: str) -> dict:
  """The JSON header of a safetensors file, checked against the file before any tensor is read:
  the header length fits the file, and every tensor's byte range lies in the data section and
  holds exactly shape x itemsize bytes, without overlapping another. So no tensor can ask for
  more memory than the file holds."""
  def bad(problem):
    return InputError(path, f"not a readable safetensors file ({problem})")
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    if size < 8 or n > min(size - 8, MAX_SAFETENSORS_HEADER):
      raise bad(f"header of {n} bytes declared in a file of {size} bytes")
    try:
      header = json.loads(f.read(n))
    except (ValueError, RecursionError) as e:
      raise bad(f"header is not JSON: {e}") from e
  if not isinstance(header, dict):
    raise bad("header is not a JSON object")
  data_size, spans = size - 8 - n, []
  for key, info in header.items():
    if key == "__metadata__":
      continue
    spans.append(_tensor_span(key, info, data_size, bad))
  spans.sort()
  for (_, end, key), (start, _, other) in zip(spans, spans[1:]):
    if start < end:
      raise bad(f"tensors {key!r} and {other!r} overlap")
  return header


def _tensor_span(key: str, info, data_size: int, bad) -> tuple[int, int, str]:
  """(start, end, key) of one header entry, checked against its shape, dtype and the file."""
  if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
    raise bad(f"tensor {key!r} lacks dtype, shape or data_offsets")
  shape, offsets = info["shape"], info["data_offsets"]
  if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
    raise bad(f"tensor {key!r} has shape {shape!r}")
  if not (isinstance(offsets, list) and len(offsets) == 2
          and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= data_size):
    raise bad(f"tensor {key!r} has data_offsets {offsets!r} outside the {data_size} data bytes")
  itemsize = _ST_ITEMSIZE.get(info["dtype"])
  nbytes = math.prod(shape) * itemsize if itemsize else None
  if nbytes is not None and nbytes != offsets[1] - offsets[0]:
    raise bad(f"tensor {key!r} declares {shape} {info['dtype']} ({nbytes} bytes) but spans "
              f"{offsets[1] - offsets[0]} bytes")
  return offsets[0], offsets[1], key


def _read_safetensors_raw(path: str, header: dict, cause: Exception) -> dict[str, np.ndarray]:
  """Decodes safetensors by hand so that bf16 tensors load (as ml_dtypes.bfloat16); `header`
  was checked by `safetensors_header`."""
  import ml_dtypes
  dtypes = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64,
            "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
            "BOOL": np.bool_}
  with open(path, "rb") as f:
    n = int.from_bytes(f.read(8), "little")
    f.seek(8 + n)
    data = f.read()
  out = {}
  for key, info in header.items():
    if key == "__metadata__":
      continue
    if info["dtype"] not in dtypes:
      raise InputError(path, f"tensor {key!r} has unsupported dtype {info['dtype']}") from cause
    start, end = info["data_offsets"]
    out[key] = np.frombuffer(memoryview(data)[start:end],
                             dtype=dtypes[info["dtype"]]).reshape(info["shape"])
  return out


def _read_torch(path: str) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError as e:
    raise InputError(path, "reading PyTorch checkpoints needs torch; convert to safetensors "
                     "or install torch") from e
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for corrupt/unsafe files
    raise InputError(path, f"not a loadable PyTorch weights file ({type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''})") from e
  for wrapper in ("state_dict", "model", "module"):
    if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
      obj = obj[wrapper]
  if not isinstance(obj, Mapping):
    raise InputError(path, f"expected a state dict, found {type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    if not isinstance(v, torch.Tensor):
      continue
    if v.dtype == torch.bfloat16:
      import ml_dtypes
      out[k] = v.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
      out[k] = v.numpy()
  return out


def load_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads one weights file by its extension."""
  path = require_file(path, "weights file")
  if path.endswith(".safetensors"):
    return _read_safetensors(path)
  if path.endswith((".bin", ".pth", ".pt", ".ckpt")):
    return _read_torch(path)
  raise InputError(path, "unknown weights format (expected .safetensors, .bin, .pth or .pt)")


def weight_files(model_dir: str | os.PathLike) -> list[str]:
  """The weight files of a HF-style directory, preferring safetensors over .bin."""
  model_dir = require_dir(model_dir, "model directory")
  for index_name in (SAFETENSORS_INDEX, BIN_INDEX):
    index = os.path.join(model_dir, index_name)
    if os.path.exists(index):
      weight_map = files.read_json(index, max_bytes=MAX_INDEX_BYTES).get("weight_map")
      if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(index, "missing or empty 'weight_map'")
      shards = sorted(set(weight_map.values()))
      for f in shards:
        require_file(os.path.join(model_dir, f), f"shard listed in {index_name}")
      return [os.path.join(model_dir, f) for f in shards]
  names = sorted(os.listdir(model_dir))
  for ext in (".safetensors", ".bin"):
    found = [os.path.join(model_dir, n) for n in names if n.endswith(ext)]
    if found:
      return found
  raise InputError(model_dir, "no *.safetensors or *.bin weight files found")


def load_dir(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads and merges every shard of a HF-style model directory."""
  state: dict[str, np.ndarray] = {}
  for path in weight_files(model_dir):
    shard = load_file(path)
    dup = state.keys() & shard.keys()
    if dup:
      raise InputError(path, f"key {sorted(dup)[0]!r} appears in more than one shard")
    state.update(shard)
  return state


def save_safetensors_dir(state: Mapping[str, np.ndarray], out_dir: str | os.PathLike,
                         max_shard_bytes: int = 5 << 30) -> list[str]:
  """Writes a HF-style sharded safetensors directory (with an index when sharded).

  Each shard is written to a temporary name and renamed, so an interrupted export never
  leaves a file that looks complete.
  """
  from safetensors.numpy import save_file
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  shards: list[dict[str, np.ndarray]] = [{}]
  size = 0
  for key in sorted(state):
    arr = np.ascontiguousarray(state[key])
    if shards[-1] and size + arr.nbytes > max_shard_bytes:
      shards.append({})
      size = 0
    shards[-1][key] = arr
    size += arr.nbytes
  names = (["model.safetensors"] if len(shards) == 1 else
           [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
  for name, shard in zip(names, shards):
    tmp = os.path.join(out_dir, name + ".tmp")
    save_file(shard, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out_dir, name))
  if len(shards) > 1:
    index = {"metadata": {"total_size": int(sum(a.nbytes for a in state.values()))},
             "weight_map": {k: n for n, s in zip(names, shards) for k in s}}
    files.write_json(os.path.join(out_dir, SAFETENSORS_INDEX), index, indent=2)
  return [os.path.join(out_dir, n) for n in names]
