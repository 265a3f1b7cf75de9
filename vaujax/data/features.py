"""Per-video feature files: what VA-GPT trains on instead of pixels.

One `.npz` per video (numpy's zip format of `.npy` arrays, never unpickled, so it cannot carry
code): `tower_patches` [T, N, Dv] (vision-tower patch tokens, CLS dropped), `dino_patches`
[T, M, Dd], `dino_cls` [T, Dd] (DINOv2 class embedding, TETG's input) and `timestamps` [T]
(seconds). LLaMA-VID `.pkl` files are read through the restricted unpickler.

TETG's own frames (optional): `tetg_cls` [S, Dd] and `tetg_timestamps` [S], DINOv2 class
embeddings of the video sampled at `tetg_fps` with no cap, written only where that gives more
frames than the model's T (a video longer than T seconds at 1 fps). The LLM's frames stay capped
(a batch needs a fixed T), while TETG, a per-frame MLP, reads every sampled second, as VA-GPT's
does on uncapped 1-fps frames: its interval, and so the hint, is then as precise on a long video
as on a short one (`tetg_inputs`). Files without them give TETG the model's frames.

Reading is bounded: every array's `.npy` header (shape, dtype) is read and checked against the
expected shapes, the expected frame count, the size the zip declares for it and a byte budget
before any of its data is, so a small crafted file (a deflated zip bomb, a header declaring
10^12 elements) is refused without allocating what it declares.

  vaujax features --videos DIR --out DIR --encoder TOWER_PARAMS,DINOV2_PARAMS [--fps 1]
  vaujax features --videos DIR --out DIR --encoder tiny     # seeded random tiny towers

Extraction is resumable: finished videos are skipped, each file is written under a temporary
name and renamed, and a video that fails to decode is reported and counted, not fatal. The
folder records how its files were made (`extraction.json`: the frame sampling and, when the
caller names it, the encoder); an extraction into it with other settings is refused before any
video is read, instead of skipping files that were sampled another way.
Image files (.jpg, .png) of the folder become one-frame feature files (timestamps [0.0]),
through the same encoder and preprocessing as video frames, keyed by the same rule
(`frames/x.jpg` -> `frames/x.npz`): an image example reads its file as a one-frame video.

Names. A video's feature file is keyed by its path relative to the video folder, folders kept:
`cam1/001.mp4` -> `cam1/001.npz`, so `cam1/001.mp4` and `cam2/001.mp4` get a file each; two
videos of one folder that differ only in the extension keep it (`x/001.mp4.npz`,
`x/001.avi.npz`). A `video` field (relative to the dataset root, e.g. `videos/cam1/001.mp4`)
finds its file as the longest tail of its path that has one (`video_feature_path`), each tail
with its extension first: `videos/cam1/001.mp4.npz`, `videos/cam1/001.npz`, `cam1/001.mp4.npz`,
`cam1/001.npz`, `001.mp4.npz`, `001.npz`. A folder keyed by the bare name (the demo's, UCF-Crime's
flat folders, features from before) is found at the last step, unchanged. Two different videos
that would read one file (a flat folder, `cam1/001.mp4` and `cam2/001.mp4`) are refused by
`pipeline.check_unique_keys`.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import posixpath
import threading
import uuid
import zipfile
import zlib
from typing import Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vaujax import files
from vaujax.data import preprocess, safe_pickle
from vaujax.data import video as video_io
from vaujax.errors import InputError, require_file
from vaujax.models import vit

KEYS = ("tower_patches", "dino_patches", "dino_cls", "timestamps")
# TETG's denser frames (module docstring): their own frame count S, not the model's T
TETG_KEYS = ("tetg_cls", "tetg_timestamps")
MAX_TETG_FRAMES = 4096             # 68 minutes at 1 fps; longer videos are sampled uniformly
# numpy parses each array header with ast.literal_eval, and CPython 3.11's AST constructor is not
# thread-safe (python/cpython#106905: "SystemError: AST constructor recursion depth mismatch",
# seen once in CI when Grain's prefetch threads loaded feature files concurrently).
_NPZ_READ_LOCK = threading.Lock()
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg")
# Images become one-frame feature files (timestamps [0.0]): an image example batches as a
# one-frame video (vaujax/data/pipeline.py). Pixels an image may declare: its size is read from
# the header and checked before anything is decoded (a 100-byte PNG can declare 10^10 pixels).
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
MAX_IMAGE_PIXELS = 40_000_000      # 8K UHD is 33 M
# Bytes of arrays a feature file may declare: its arrays must be in the file (np.savez stores
# them uncompressed), or, compressed, expand at most EXPANSION_RATIO-fold (float features hardly
# compress; a zip bomb expands 1000-fold), and never beyond MAX_EXPANDED_BYTES of a small file.
EXPANSION_RATIO = 16
MAX_EXPANDED_BYTES = 64 << 20
MAX_MEMBERS = 256                  # arrays in one feature file (extraction writes four)
_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 10000            # numpy's own limit on a header's length
_CHUNK = 1 << 16              # bytes copied per read: a few copies of it are in flight
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, ValueError, OSError,
               EOFError, RuntimeError, NotImplementedError)


def write_features(path: str, arrays: Mapping[str, np.ndarray]) -> None:
  """Validated, atomic write of one video's features (under a short temporary name in the
  same folder, so a video name near the file-system limit still has room)."""
  for key, value in arrays.items():
    if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all():
      raise ValueError(f"{path}: feature {key!r} contains NaN or Inf; not written")
  if files.is_url(path):   # an object is uploaded whole: no temporary name
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    files.write_bytes(path, buffer.getvalue())
    return
  tmp = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex[:16]}.tmp.npz")
  try:
    with open(tmp, "xb") as f:
      np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def feature_path(feature_dir: str, key: str, ext: str = ".npz") -> str:
  """`feature_dir/<key><ext>`, refused when it is a link that resolves outside `feature_dir`
  (checking the path text alone would let a dataset point the reader at any file)."""
  path = os.path.join(feature_dir, key + ext)
  if files.is_url(path):   # an object store has no links
    return path
  root, real = os.path.realpath(feature_dir), os.path.realpath(path)
  if os.path.commonpath([root, real]) != root:
    raise InputError(path, f"resolves to {real}, outside the feature directory {feature_dir}")
  return path


def feature_keys(video: str) -> list[str]:
  """The keys a video's feature file may have, most specific first (see the module's rule):
  each tail of its relative path, with its extension, then without."""
  parts = posixpath.normpath(str(video).replace("\\", "/")).split("/")
  keys = []
  for i in range(len(parts)):
    tail = "/".join(parts[i:])
    for key in (tail, posixpath.splitext(tail)[0]):
      if key not in keys:
        keys.append(key)
  return keys


def video_feature_path(feature_dir: str, video: str, ext: str = ".npz") -> str:
  """The feature file of `video` (a path relative to the dataset root): the most specific of
  `feature_keys` that exists (a link out of `feature_dir` refused, as in `feature_path`); when
  none does, the mirrored path extraction would write (`<dir>/<path without extension>.npz`),
  so the error names it."""
  keys = feature_keys(video)
  for key in keys:
    candidate = os.path.join(feature_dir, key + ext)
    if files.exists(candidate) if files.is_url(candidate) else os.path.lexists(candidate):
      return feature_path(feature_dir, key, ext)
  return feature_path(feature_dir, keys[1] if len(keys) > 1 else keys[0], ext)


def frame_count(feats: Mapping[str, np.ndarray]) -> int:
  """Frames of a feature dict (0 for an empty one); TETG's own frames are not counted."""
  return min((np.shape(v)[0] if np.ndim(v) else 0 for k, v in feats.items()
              if k not in TETG_KEYS), default=0)


def tetg_inputs(feats: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """(class embeddings [S, D], timestamps [S]) TETG reads: its own denser frames when the file
  has them, else the model's (`dino_cls`, `timestamps`)."""
  if all(k in feats for k in TETG_KEYS):
    return feats["tetg_cls"], feats["tetg_timestamps"]
  return feats["dino_cls"], feats["timestamps"]


def without_tetg_frames(feats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The arrays of the model's T frames only (what a batch stacks)."""
  return {k: v for k, v in feats.items() if k not in TETG_KEYS}


def read_features(path: str, expected: Optional[Mapping[str, tuple]] = None, *,
                  frames: Optional[int] = None,
                  max_bytes: Optional[int] = None) -> dict[str, np.ndarray]:
  """Reads a feature file and checks it.

  `expected`: {key: trailing shape} (None entries unchecked), e.g. {"tower_patches": (16, 32)}.
  `frames`: the number of frames every array must have (a dataset's files are stacked into one
  batch). With either, a file of zero frames is refused. `max_bytes`: the most bytes of arrays
  the file may declare (default: see EXPANSION_RATIO). Raises InputError naming the file for a
  missing/corrupt file, members that are not numeric arrays, missing keys, wrong shapes or frame
  counts, sizes over the budget and NaN/Inf; the shapes are checked before any data is read.
  """
  path = require_file(path, "feature file")
  if max_bytes is None:
    max_bytes = max(EXPANSION_RATIO * files.getsize(path), MAX_EXPANDED_BYTES)
  if path.endswith(".pkl"):
    feats, _ = safe_pickle.load_llamavid_features(path)
    _check_shapes(path, {"tower_patches": feats.shape}, expected, frames)
    out = {"tower_patches": feats.astype(np.float32)}
  else:
    out = _read_npz(path, expected, frames, max_bytes)
  for key, value in out.items():
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
      raise InputError(path, f"feature {key!r} contains NaN or Inf")
  return out


def _check_shapes(path: str, shapes: Mapping[str, tuple], expected, frames) -> None:
  """The checks on shapes alone (done before any array data is read)."""
  for key, shape in shapes.items():
    if len(shape) == 0:
      raise InputError(path, f"feature {key!r} is a 0-d array; expected [T, ...]")
  for key, shape in (expected or {}).items():
    if key not in shapes:
      raise InputError(path, f"missing feature {key!r} (has {sorted(shapes)})")
    if shape is not None and tuple(shapes[key][1:]) != tuple(shape):
      raise InputError(path, f"feature {key!r} has shape {tuple(shapes[key])}, expected "
                       f"[T, {', '.join(map(str, shape))}]")
  counts = {k: v[0] for k, v in shapes.items() if k not in TETG_KEYS}
  if len(set(counts.values())) > 1:
    raise InputError(path, f"features disagree on the number of frames: {counts}")
  tetg = {k: v[0] for k, v in shapes.items() if k in TETG_KEYS}
  if tetg:
    if len(tetg) != len(TETG_KEYS) or len(set(tetg.values())) > 1:
      raise InputError(path, f"TETG's frames need both {list(TETG_KEYS)} with one frame count, "
                       f"found {tetg}")
    if not 0 < tetg["tetg_cls"] <= MAX_TETG_FRAMES:
      raise InputError(path, f"has {tetg['tetg_cls']} TETG frames; 1 to {MAX_TETG_FRAMES} are "
                       "read")
    if len(shapes["tetg_timestamps"]) != 1 or ("dino_cls" in shapes and tuple(
        shapes["tetg_cls"][1:]) != tuple(shapes["dino_cls"][1:])):
      raise InputError(path, f"TETG's frames have shapes tetg_cls {tuple(shapes['tetg_cls'])}, "
                       f"tetg_timestamps {tuple(shapes['tetg_timestamps'])}; expected [S, D] as "
                       "dino_cls and [S]")
  count = next(iter(counts.values()), 0)
  if frames is not None and count != frames:
    raise InputError(path, f"has {count} frames, expected {frames} (every feature file of a "
                     "dataset must have the same number)")
  if (expected is not None or frames is not None) and count == 0:
    raise InputError(path, "has zero frames")


@dataclasses.dataclass(frozen=True)
class _Member:
  """One `.npy` member of an .npz, known from its header alone."""
  key: str
  info: zipfile.ZipInfo
  shape: tuple
  dtype: np.dtype
  fortran: bool
  nbytes: int


def _read_npz(path: str, expected, frames, max_bytes: int) -> dict[str, np.ndarray]:
  with files.open_file(path, "rb") as f:   # files.*: a local file or a gs:// object
    if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
      raise InputError(path, "not a readable feature file: a single .npy array, not an .npz "
                       "archive of named features (np.savez)")
  try:
    _check_member_count(path)
    with zipfile.ZipFile(files.open_file(path, "rb") if files.is_url(path) else path) as z:
      members = [_npy_member(path, z, info) for info in z.infolist()]
      _check_members(path, members, max_bytes)
      _check_shapes(path, {m.key: m.shape for m in members}, expected, frames)
      return {m.key: _read_data(path, z, m) for m in members}
  except InputError:
    raise
  except _ZIP_ERRORS as e:
    raise InputError(path, f"not a readable feature file ({type(e).__name__}: {e})") from e


def _check_member_count(path: str) -> None:
  """Refuses an archive of more than MAX_MEMBERS entries from its end record, before zipfile
  builds an object per entry (a 1 MB zip can list 20000 of them)."""
  with files.open_file(path, "rb") as f:
    end = zipfile._EndRecData(f)   # the end-of-central-directory record, as zipfile reads it
  if end is not None and end[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS:
    raise InputError(path, f"not a readable feature file: {end[zipfile._ECD_ENTRIES_TOTAL]} "
                     f"members (a feature file holds a few arrays; at most {MAX_MEMBERS})")


def _npy_member(path: str, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
  """Reads one member's `.npy` header (a few hundred bytes at most) -> what it declares."""
  if not info.filename.endswith(".npy"):
    raise InputError(path, f"not a readable feature file: member {info.filename!r} is not a "
                     ".npy array")
  if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
    # zipfile hands bzip2/lzma a whole compressed block at once, unbounded in what it expands to
    raise InputError(path, f"not a readable feature file: member {info.filename!r} is compressed "
                     f"with method {info.compress_type} (np.savez stores, np.savez_compressed "
                     "deflates; nothing else is read)")
  with z.open(info) as f:
    magic = f.read(len(_NPY_MAGIC) + 2)
    if magic[:len(_NPY_MAGIC)] != _NPY_MAGIC or magic[-2:] not in (b"\x01\x00", b"\x02\x00"):
      raise InputError(path, f"not a readable feature file: member {info.filename!r} is not a "
                       ".npy array (version 1 or 2)")
    size_bytes = 2 if magic[-2] == 1 else 4
    length = f.read(size_bytes)
    header_len = int.from_bytes(length, "little")
    if len(length) != size_bytes or header_len > _MAX_NPY_HEADER:
      raise InputError(path, f"not a readable feature file: member {info.filename!r} has an "
                       "unreadable .npy header")
    header = f.read(header_len)
  with _NPZ_READ_LOCK:   # numpy parses the header with ast (see _NPZ_READ_LOCK)
    fp = io.BytesIO(magic + length + header)
    version = np.lib.format.read_magic(fp)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(fp)
  key = info.filename[:-len(".npy")]
  if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
    raise InputError(path, f"not a readable feature file: feature {key!r} has dtype {dtype} "
                     "(numbers expected)")
  if any(d < 0 for d in shape):
    raise InputError(path, f"not a readable feature file: feature {key!r} has shape {shape}")
  nbytes = math.prod(shape) * dtype.itemsize
  data_size = info.file_size - len(magic) - len(length) - len(header)
  if nbytes != data_size:
    raise InputError(path, f"not a readable feature file: feature {key!r} declares {shape} "
                     f"{dtype} ({nbytes} bytes) but its member holds {data_size} bytes")
  return _Member(key, info, tuple(shape), dtype, fortran, nbytes)


def _check_members(path: str, members: list[_Member], max_bytes: int) -> None:
  """No array twice, and all of them within the byte budget."""
  counts = collections.Counter(m.key for m in members)
  twice = sorted(k for k, n in counts.items() if n > 1)
  if twice:
    raise InputError(path, f"not a readable feature file: feature {twice[0]!r} appears twice")
  total = sum(m.nbytes for m in members)
  if total > max_bytes:
    raise InputError(path, f"declares {total} bytes of arrays, more than the {max_bytes} bytes "
                     f"allowed for a {files.getsize(path)}-byte file (a compressed file may "
                     f"expand at most {EXPANSION_RATIO}-fold; pass max_bytes to read more)")


def _read_data(path: str, z: zipfile.ZipFile, m: _Member) -> np.ndarray:
  """The member's array, filled in place from the zip stream (exactly its declared bytes)."""
  out = np.empty(m.shape[::-1] if m.fortran else m.shape, m.dtype)
  view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
  with z.open(m.info) as f:
    f.read(m.info.file_size - m.nbytes)        # the header, read and checked already
    done = 0
    while done < m.nbytes:
      chunk = f.read(min(_CHUNK, m.nbytes - done))
      if not chunk:
        raise InputError(path, f"not a readable feature file: feature {m.key!r} is truncated")
      view[done:done + len(chunk)] = chunk
      done += len(chunk)
    f.read(1)   # reaching the end checks the member's CRC
  return out.T if m.fortran else out


@dataclasses.dataclass
class FrameEncoder:
  """Frozen towers: uint8 frames [T, H, W, 3] -> feature dict (without timestamps).

  `tower_projection` [Dd, Dv] (else None): the vision tower is DINOv2 itself, its patch tokens
  times this fixed matrix (`dinov2_tower_projection`); the tower's config and params are then
  unused and nothing but DINOv2 runs."""

  tower_config: Optional[vit.ViTConfig]
  tower_params: Optional[dict]
  dino_config: vit.ViTConfig
  dino_params: dict
  tower_spec: preprocess.PreprocessSpec = preprocess.CLIP_224
  dino_spec: preprocess.PreprocessSpec = preprocess.DINOV2_SAME_CROP
  batch_size: int = 32
  tower_projection: Optional[np.ndarray] = None

  def __post_init__(self):
    dino = vit.ViT(self.dino_config)
    if self.tower_projection is None:
      tower = vit.ViT(self.tower_config)

    def encode(tp, dp, tower_in, dino_in):
      d = dino.apply(dp, dino_in)
      if self.tower_projection is None:
        t = tower.apply(tp, tower_in)["patches"]
      else:                                              # [T, M, Dd] @ [Dd, Dv] -> [T, M, Dv]
        t = d["patches"] @ jnp.asarray(self.tower_projection, d["patches"].dtype)
      return {"tower_patches": t, "dino_patches": d["patches"], "dino_cls": d["cls"]}

    def encode_dino(dp, dino_in):
      return {"dino_cls": dino.apply(dp, dino_in)["cls"]}

    self._encode = jax.jit(encode)
    self._encode_dino = jax.jit(encode_dino)

  def _apply(self, frames: np.ndarray) -> dict:
    # The resize and crop run on the host (preprocess.resize_crop_frames: nothing compiled per
    # frame size), so videos of many sizes compile the towers once per chunk length. Two specs
    # that differ only in mean and std share one resized crop.
    if self.tower_projection is not None:     # DINOv2 is the tower: its input alone
      dino_in = self._dino_input(frames)
      return self._encode(None, self.dino_params, None, dino_in)
    tower_crops = preprocess.resize_crop_frames(frames, self.tower_spec)
    same_geometry = ((self.tower_spec.shortest_edge, self.tower_spec.crop)
                     == (self.dino_spec.shortest_edge, self.dino_spec.crop))
    dino_crops = (tower_crops if same_geometry
                  else preprocess.resize_crop_frames(frames, self.dino_spec))
    return self._encode(self.tower_params, self.dino_params,
                        preprocess.normalize_crops(tower_crops, self.tower_spec),
                        preprocess.normalize_crops(dino_crops, self.dino_spec))

  def _dino_input(self, frames: np.ndarray) -> np.ndarray:
    crops = preprocess.resize_crop_frames(frames, self.dino_spec)
    return preprocess.normalize_crops(crops, self.dino_spec)

  def _apply_dino(self, frames: np.ndarray) -> dict:
    return self._encode_dino(self.dino_params, self._dino_input(frames))

  def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Chunks of `batch_size` frames, a shorter chunk padded to the next power of two (at least
    4): videos of any length and size compile a handful of tower programs."""
    return self._chunked(frames, self._apply)

  def class_embeddings(self, frames: np.ndarray) -> np.ndarray:
    """DINOv2's class embeddings [T, Dd] alone (TETG's input; the vision tower is not run),
    chunked as `__call__`."""
    return self._chunked(frames, self._apply_dino)["dino_cls"]

  def _chunked(self, frames: np.ndarray, apply) -> dict[str, np.ndarray]:
    chunks = []
    for i in range(0, len(frames), self.batch_size):
      chunk = np.asarray(frames[i:i + self.batch_size])
      n = len(chunk)
      padded = min(self.batch_size, max(4, 1 << (n - 1).bit_length()))
      if padded > n:
        chunk = np.concatenate([chunk, np.zeros((padded - n, *chunk.shape[1:]), chunk.dtype)])
      out = apply(chunk)
      chunks.append({k: np.asarray(v)[:n] for k, v in out.items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def tiny_encoder(seed: int = 0, image_size: int = 112, dino: bool = True) -> FrameEncoder:
  """Seeded random tiny towers for tests and the CPU demo (patch 14 on a 112 crop: 8x8 grid).
  Without `dino` the tiny DINOv2 is left uninitialised (None params; about 4 s saved) for a
  caller that puts a converted one beside the tower; the tower's weights do not change."""
  tower_cfg = vit.tiny_vit("eva", image_size=image_size)
  dino_cfg = vit.tiny_vit("dinov2", image_size=image_size, hidden_size=64, num_heads=4,
                          mlp_dim=128)
  x = jnp.zeros((1, image_size, image_size, 3))
  init = lambda cfg, s: jax.tree_util.tree_map(  # noqa: E731
      np.asarray, nn.unbox(vit.ViT(cfg).init(jax.random.key(s), x)))
  spec = preprocess.PreprocessSpec(image_size, image_size, preprocess.CLIP_MEAN,
                                   preprocess.CLIP_STD)
  dspec = preprocess.PreprocessSpec(image_size, image_size, preprocess.IMAGENET_MEAN,
                                    preprocess.IMAGENET_STD)
  return FrameEncoder(tower_cfg, init(tower_cfg, seed), dino_cfg,
                      init(dino_cfg, seed + 1) if dino else None, spec, dspec)


def read_image(path: str, max_pixels: int = MAX_IMAGE_PIXELS,
               max_side: int = video_io.MAX_SIDE) -> np.ndarray:
  """An image file as one frame, uint8 RGB [1, H, W, 3], scaled down to `max_side` on its
  longer side as video frames are. A size over `max_pixels` (read from the header, before any
  pixel is decoded), or a corrupt or truncated file, is an InputError naming it."""
  from PIL import Image
  path = require_file(path, "image file")
  try:
    with files.open_file(path, "rb") as f, Image.open(f) as image:
      width, height = image.size
      if width * height > max_pixels:
        raise InputError(path, f"declares {width}x{height} pixels, more than the "
                         f"{max_pixels} an image may have")
      image.load()
      rgb = image.convert("RGB")
  except InputError:
    raise
  except Image.DecompressionBombError as e:   # PIL's own bound, met while opening
    raise InputError(path, f"declares more pixels than an image may have ({e})") from e
  except (OSError, ValueError, SyntaxError, EOFError) as e:   # PIL's errors for bad files
    raise InputError(path, f"not a readable image (corrupt, truncated or unsupported: "
                     f"{type(e).__name__}: {e})") from e
  size = video_io.bounded_size(width, height, max_side)
  if size != (width, height):
    rgb = rgb.resize(size, Image.Resampling.BOX)   # area averaging, as video frames get
  return np.asarray(rgb, np.uint8)[None]


def tetg_frames(path: str, encoder: Callable[[np.ndarray], dict], tetg_fps: Optional[float],
                model_timestamps: np.ndarray, chunk_size: int = 64) -> dict[str, np.ndarray]:
  """TETG's own frames of a video file: {`tetg_cls` [S, D], `tetg_timestamps` [S]} sampled at
  `tetg_fps` (at most MAX_TETG_FRAMES, uniformly beyond), decoded and encoded `chunk_size`
  frames at a time (a long video is never held whole); {} when that gives no more frames than
  the model's (`model_timestamps`), whose own then serve TETG (counted from the header, before
  anything is decoded), and for an image. A `FrameEncoder` runs DINOv2 alone
  (`class_embeddings`); another encoder, whole."""
  if not tetg_fps or not path.lower().endswith(VIDEO_EXTS):
    return {}
  info = video_io.probe_video(path)
  if len(video_io.sample_indices(info.num_frames, info.fps, fps=tetg_fps,
                                 max_frames=MAX_TETG_FRAMES)) <= len(model_timestamps):
    return {}
  embed = getattr(encoder, "class_embeddings", None) or (lambda f: encoder(f)["dino_cls"])
  cls, stamps = [], []
  for frames, times in video_io.iter_video_chunks(path, chunk_size=chunk_size, fps=tetg_fps,
                                                  max_frames=MAX_TETG_FRAMES):
    cls.append(np.asarray(embed(frames)))
    stamps.append(np.asarray(times, np.float64))
  return {"tetg_cls": np.concatenate(cls), "tetg_timestamps": np.concatenate(stamps)}


def _read_frames(path: str, **sampling) -> tuple[np.ndarray, np.ndarray]:
  """(frames, timestamps) of a video, or of an image file (one frame at 0.0 s)."""
  if path.lower().endswith(IMAGE_EXTS):
    return read_image(path), np.zeros(1)
  return video_io.read_video(path, **sampling)


# What a feature folder's files were made with (`extract_folder`), beside them.
EXTRACTION_RECORD = "extraction.json"


def extraction_settings(*, fps: Optional[float] = None, num_frames: Optional[int] = None,
                        max_frames: Optional[int] = None, min_frames: Optional[int] = None,
                        tetg_fps: Optional[float] = None, encoder: Optional[str] = None) -> dict:
  """The settings `extract_folder` records: the frame sampling and TETG's (None and 0 alike
  say "not set"; a record without `tetg_fps` had none) and the encoder's name (None: not
  named, not compared)."""
  def norm(v):
    return None if v in (None, 0) else (float(v) if isinstance(v, float) else int(v))
  out = {"fps": norm(fps), "num_frames": norm(num_frames), "max_frames": norm(max_frames),
         "min_frames": norm(min_frames), "encoder": encoder}
  return {**out, "tetg_fps": float(tetg_fps)} if tetg_fps else out


def check_extraction_record(out_dir: str, settings: Mapping) -> bool:
  """Refuses (InputError naming the folder) a feature folder whose record says its files were
  made with other settings than `settings`; -> whether the folder has a record. A record's
  encoder is compared only when both name one. A folder of files without a record (made before
  records were kept) is not checked."""
  path = os.path.join(out_dir, EXTRACTION_RECORD)
  if not files.exists(path):
    return False
  saved = files.read_json(path, "feature extraction record")
  differ = [f"{k} {saved.get(k)!r} (asked: {settings.get(k)!r})"
            for k in sorted(set(settings) | set(saved))
            if k != "encoder" and saved.get(k) != settings.get(k)]
  if settings.get("encoder") and saved.get("encoder") and saved["encoder"] != settings["encoder"]:
    differ.append(f"encoder {saved['encoder']!r} (asked: {settings['encoder']!r})")
  if differ:
    raise InputError(out_dir, "its features were extracted with " + ", ".join(differ)
                     + f" ({EXTRACTION_RECORD}); extract into another folder (nothing was "
                     "changed here)")
  return True


def extract_folder(video_dir: str, out_dir: str, encoder: Callable[[np.ndarray], dict], *,
                   fps: Optional[float] = None, num_frames: Optional[int] = None,
                   max_frames: Optional[int] = None, min_frames: Optional[int] = None,
                   images: bool = True, encoder_name: Optional[str] = None,
                   tetg_fps: Optional[float] = None,
                   log: Callable[[str], None] = print) -> dict:
  """Encodes every video under `video_dir` (subfolders too, links to folders not followed)
  into `out_dir/<relative path without extension>.npz`, folders mirrored; returns a report.
  With `images`, image files (IMAGE_EXTS) too, each into a one-frame file (timestamps [0.0])
  through the same encoder. Two files of one folder whose names differ only in the extension
  (`001.mp4`, `001.avi`, `001.jpg`) keep it in their file names (`001.mp4.npz`, ...). A file
  that fails (unreadable, or a file-system error writing its features) is reported and
  counted; the files after it are still extracted. The folder's `extraction.json` records the
  sampling and `encoder_name` (a spec such as `tiny:0`); a folder recorded with other settings
  is refused before anything is read (`check_extraction_record`). A folder that already holds
  files but no record (made before records were kept) is extracted into unchecked, and gets
  no record, since what its files were made with is unknown; an empty or new folder gets one.
  `tetg_fps`: each video also gets TETG's own frames at that rate (`tetg_frames`) where they
  outnumber the model's."""
  from vaujax.errors import require_dir
  require_dir(video_dir, "video directory")
  settings = extraction_settings(fps=fps, num_frames=num_frames, max_frames=max_frames,
                                 min_frames=min_frames, tetg_fps=tetg_fps, encoder=encoder_name)
  existing = files.isdir(out_dir)
  if not (existing and check_extraction_record(out_dir, settings)):
    empty = not existing or not files.listdir(out_dir)
    files.makedirs(out_dir)   # files.*: a local folder or a gs:// URL
    if empty:
      files.write_json(os.path.join(out_dir, EXTRACTION_RECORD), settings)
  report = {"written": 0, "skipped": 0, "failed": []}
  for name, key in video_files(video_dir, VIDEO_EXTS + (IMAGE_EXTS if images else ())):
    out = os.path.join(out_dir, key + ".npz")
    if files.exists(out):
      report["skipped"] += 1
      continue
    try:
      files.makedirs(os.path.dirname(out))
      path = os.path.join(video_dir, name)
      frames, stamps = _read_frames(path, fps=fps, num_frames=num_frames,
                                    max_frames=max_frames, min_frames=min_frames)
      write_features(out, {**encoder(frames), "timestamps": stamps,
                           **tetg_frames(path, encoder, tetg_fps, stamps)})
      report["written"] += 1
    except (InputError, ValueError, OSError) as e:
      report["failed"].append((name, str(e)))
      log(f"skipped {name}: {e}")
  log(f"features: {report['written']} written, {report['skipped']} already done, "
      f"{len(report['failed'])} failed")
  return report


def video_files(video_dir: str, exts: tuple[str, ...] = VIDEO_EXTS) -> list[tuple[str, str]]:
  """(relative path, feature key) of every video (every file ending in one of `exts`) under
  `video_dir`, sorted: the key is the path without its extension, or with it where another
  such file of that folder has the same stem."""
  found = []
  walk = os.walk(video_dir)
  if files.is_url(video_dir):   # a bucket: its objects grouped by folder, as os.walk gives them
    folders = collections.defaultdict(list)
    for rel in files.walk_files(video_dir):
      folders[posixpath.dirname(rel)].append(posixpath.basename(rel))
    walk = [(posixpath.join(video_dir, f) if f else video_dir, [], n) for f, n in folders.items()]
  for root, dirs, names in walk:
    dirs.sort()
    rel = os.path.relpath(root, video_dir)
    videos = sorted(n for n in names if n.lower().endswith(exts))
    stems = collections.Counter(os.path.splitext(n)[0] for n in videos)
    for n in videos:
      stem = os.path.splitext(n)[0]
      path = n if rel == "." else posixpath.join(rel.replace(os.sep, "/"), n)
      found.append((path, path if stems[stem] > 1 else posixpath.splitext(path)[0]))
  return sorted(found)


def encoder_from_params(tower_dir: str, dino_dir: str) -> FrameEncoder:
  """Towers converted with `python -m vaujax.convert.vision`."""
  from vaujax.convert import params_io
  loaded = []
  for path in (tower_dir, dino_dir):
    params, meta = params_io.read_params_dir(path)
    if not str(meta.get("kind", "")).startswith("vit/"):
      raise InputError(path, f"not a vision tower params directory (kind={meta.get('kind')!r})")
    loaded.append((vit.ViTConfig(**meta["config"]), params))
  (tc, tp), (dc, dp) = loaded
  return FrameEncoder(tc, tp, dc, dp)


# The vision tower as DINOv2's own patch tokens, projected (`encoder_from_spec`)
PROJECTED_DINOV2 = "dinov2-patches"


def dinov2_tower_projection(dino_dim: int, width: int, seed: int = 0) -> np.ndarray:
  """[Dd, Dv] fixed Gaussian matrix (entries N(0, 1/Dd), numpy's seeded RandomState, the same on
  every machine): DINOv2's patch tokens times it are a Dv-wide vision tower whose patches keep
  what a trained ViT's carry (their place, what is there) at the cost of the tiny tower's width.
  A random projection keeps distances between tokens, times sqrt(Dv / Dd), to within a few tens
  of percent; each output channel has the scale of an average input channel."""
  rng = np.random.RandomState(seed)
  return (rng.standard_normal((dino_dim, width)) / np.sqrt(dino_dim)).astype(np.float32)


def encoder_from_spec(spec: str) -> FrameEncoder:
  """The encoder a run records as `data.encoder`:

    tiny / tiny:SEED              the demo's seeded random towers
    tiny[:SEED],DINO_DIR[@SIZE]   the tiny tower beside a converted DINOv2 (e.g. the real
                                  ViT-S/14 from `vaujax convert-vision --onnx`), fed SIZE-px
                                  ImageNet-normalised crops (default: the input size the ONNX
                                  graph declares, else 224); its position table is interpolated
                                  to the SIZE/14 grid, as the exported graph does
    dinov2-patches:WIDTH[:SEED],DINO_DIR[@SIZE]
                                  that DINOv2 alone; the vision tower's patches are its patch
                                  tokens projected to WIDTH (`dinov2_tower_projection`), on
                                  the same patch grid as SETS's
    TOWER_DIR,DINO_DIR            towers converted with `vaujax convert-vision`
  """
  flag = "--config.data.encoder"
  parts = spec.split(",")
  name, _, args = parts[0].partition(":")
  if name == PROJECTED_DINOV2:
    width, _, seed = args.partition(":")
    if len(parts) != 2 or not width.isdigit() or int(width) <= 0 or not (seed or "0").isdigit():
      raise InputError(flag, f"must be '{PROJECTED_DINOV2}:WIDTH[:SEED],DINO_DIR[@SIZE]' with "
                       f"a positive WIDTH, got {spec!r}")
    cfg, params, dspec = _converted_dinov2(parts[1], spec, flag)
    return FrameEncoder(None, None, cfg, params, dino_spec=dspec, tower_projection=(
        dinov2_tower_projection(cfg.hidden_size, int(width), int(seed or "0"))))
  if name == "tiny" and len(parts) <= 2:
    if not (args or "0").isdigit():
      raise InputError(flag, f"bad tiny encoder seed in {spec!r}")
    if len(parts) == 1:
      return tiny_encoder(int(args or "0"))
    cfg, params, dspec = _converted_dinov2(parts[1], spec, flag)   # checked before the tower
    return dataclasses.replace(tiny_encoder(int(args or "0"), dino=False), dino_config=cfg,
                               dino_params=params, dino_spec=dspec)
  if len(parts) != 2:
    raise InputError(flag, f"must be 'tiny[:SEED]', 'tiny[:SEED],DINO_DIR[@SIZE]', "
                     f"'{PROJECTED_DINOV2}:WIDTH[:SEED],DINO_DIR[@SIZE]' or "
                     f"'TOWER_DIR,DINO_DIR', got {spec!r}")
  return encoder_from_params(*parts)


def _converted_dinov2(part: str, spec: str, flag: str):
  """`DINO_DIR[@SIZE]` of an encoder spec -> (ViTConfig, params, its PreprocessSpec)."""
  from vaujax.convert import params_io
  path, _, size = part.rpartition("@") if "@" in part else (part, "", "")
  params, meta = params_io.read_params_dir(path)
  if meta.get("kind") != "vit/dinov2":
    raise InputError(path, f"not a DINOv2 params directory (kind={meta.get('kind')!r})")
  cfg = vit.ViTConfig(**meta["config"])
  declared = [int(d) for d in meta.get("input_size", []) if int(d) > 0]
  size = int(size) if size.isdigit() else (None if size else max(declared, default=224))
  if size is None or size <= 0 or size % cfg.patch_size:
    raise InputError(flag, f"DINOv2 input size in {spec!r} must be a positive multiple of "
                     f"the patch size {cfg.patch_size}")
  dspec = preprocess.PreprocessSpec(size, size, preprocess.IMAGENET_MEAN,
                                    preprocess.IMAGENET_STD)
  return cfg, params, dspec


def encode_video(path: str, encoder: Callable[[np.ndarray], dict], num_frames: int, *,
                 fps: Optional[float] = None, min_frames: Optional[int] = None,
                 tetg_fps: Optional[float] = None) -> tuple[dict, np.ndarray]:
  """(feature dict, the sampled uint8 frames [T, H, W, 3]) of one video file: `num_frames`
  uniformly, or with `fps` at that rate up to `num_frames` (a run's `data.sample_fps`), and
  at least `min_frames` (`data.min_frames`) when the video has them; with `tetg_fps`
  (`data.tetg_fps`), TETG's own frames too, as `extract_folder` writes them."""
  if fps:
    frames, stamps = video_io.read_video(path, fps=fps, max_frames=num_frames,
                                         min_frames=min_frames or None)
    if len(frames) == 0:
      raise InputError(path, "no decodable frames")
    return {**encoder(frames), "timestamps": stamps,
            **tetg_frames(path, encoder, tetg_fps, stamps)}, frames
  frames, stamps = video_io.read_video(path, num_frames=num_frames)
  if len(frames) < num_frames:
    raise InputError(path, f"only {len(frames)} decodable frames, the model needs {num_frames}")
  return {**encoder(frames), "timestamps": stamps}, frames


if __name__ == "__main__":  # `python -m vaujax.data.features` keeps working
  from vaujax.app import features
  features.run()
