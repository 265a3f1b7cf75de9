"""Per-video feature files: what VA-GPT trains on instead of pixels.

One `.npz` per video (numpy's zip format, read with `allow_pickle=False`, so it cannot carry
code): `tower_patches` [T, N, Dv] (vision-tower patch tokens, CLS dropped), `dino_patches`
[T, M, Dd], `dino_cls` [T, Dd] (DINOv2 class embedding, TETG's input) and `timestamps` [T]
(seconds). LLaMA-VID `.pkl` files are read through the restricted unpickler.

  vaujax features --videos DIR --out DIR --encoder TOWER_PARAMS,DINOV2_PARAMS [--fps 1]
  vaujax features --videos DIR --out DIR --encoder tiny     # seeded random tiny towers

Extraction is resumable: finished videos are skipped, each file is written under a temporary
name and renamed, and a video that fails to decode is reported and counted, not fatal.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import zipfile
from typing import Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vaujax.data import preprocess, safe_pickle
from vaujax.data import video as video_io
from vaujax.errors import InputError, require_file
from vaujax.models import vit

KEYS = ("tower_patches", "dino_patches", "dino_cls", "timestamps")
# numpy parses each array header with ast.literal_eval, and CPython 3.11's AST constructor is not
# thread-safe (python/cpython#106905: "SystemError: AST constructor recursion depth mismatch",
# seen once in CI when Grain's prefetch threads loaded feature files concurrently).
_NPZ_READ_LOCK = threading.Lock()
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg")


def write_features(path: str, arrays: Mapping[str, np.ndarray]) -> None:
  """Validated, atomic write of one video's features."""
  for key, value in arrays.items():
    if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all():
      raise ValueError(f"{path}: feature {key!r} contains NaN or Inf; not written")
  tmp = path + ".tmp.npz"
  np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
  os.replace(tmp, path)


def read_features(path: str, expected: Optional[Mapping[str, tuple]] = None) -> dict[str, np.ndarray]:
  """Reads a feature file and checks it.

  `expected`: {key: trailing shape} (None entries unchecked), e.g. {"tower_patches": (16, 32)}.
  Raises InputError naming the file for a missing/corrupt file, missing keys, wrong shapes,
  mismatched frame counts and NaN/Inf.
  """
  path = require_file(path, "feature file")
  if path.endswith(".pkl"):
    feats, _ = safe_pickle.load_llamavid_features(path)
    out = {"tower_patches": feats.astype(np.float32)}
  else:
    try:
      with _NPZ_READ_LOCK, np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
      raise InputError(path, f"not a readable feature file ({type(e).__name__}: {e})") from e
  for key, shape in (expected or {}).items():
    if key not in out:
      raise InputError(path, f"missing feature {key!r} (has {sorted(out)})")
    if shape is not None and tuple(out[key].shape[1:]) != tuple(shape):
      raise InputError(path, f"feature {key!r} has shape {out[key].shape}, expected "
                       f"[T, {', '.join(map(str, shape))}]")
  frames = {k: v.shape[0] for k, v in out.items()}
  if len(set(frames.values())) > 1:
    raise InputError(path, f"features disagree on the number of frames: {frames}")
  for key, value in out.items():
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
      raise InputError(path, f"feature {key!r} contains NaN or Inf")
  return out


@dataclasses.dataclass
class FrameEncoder:
  """Frozen towers: uint8 frames [T, H, W, 3] -> feature dict (without timestamps)."""

  tower_config: vit.ViTConfig
  tower_params: dict
  dino_config: vit.ViTConfig
  dino_params: dict
  tower_spec: preprocess.PreprocessSpec = preprocess.CLIP_224
  dino_spec: preprocess.PreprocessSpec = preprocess.DINOV2_SAME_CROP
  batch_size: int = 32

  def __post_init__(self):
    tower, dino = vit.ViT(self.tower_config), vit.ViT(self.dino_config)

    def encode(tp, dp, frames):
      t = tower.apply(tp, preprocess.preprocess(frames, self.tower_spec))
      d = dino.apply(dp, preprocess.preprocess(frames, self.dino_spec))
      return {"tower_patches": t["patches"], "dino_patches": d["patches"], "dino_cls": d["cls"]}

    self._encode = jax.jit(encode)

  def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
    chunks = [self._encode(self.tower_params, self.dino_params, jnp.asarray(frames[i:i + self.
                                                                                batch_size]))
              for i in range(0, len(frames), self.batch_size)]
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks]) for k in chunks[0]}


def tiny_encoder(seed: int = 0, image_size: int = 112) -> FrameEncoder:
  """Seeded random tiny towers for tests and the CPU demo (patch 14 on a 112 crop: 8x8 grid)."""
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
  return FrameEncoder(tower_cfg, init(tower_cfg, seed), dino_cfg, init(dino_cfg, seed + 1),
                      spec, dspec)


def extract_folder(video_dir: str, out_dir: str, encoder: Callable[[np.ndarray], dict], *,
                   fps: Optional[float] = None, num_frames: Optional[int] = None,
                   log: Callable[[str], None] = print) -> dict:
  """Encodes every video of `video_dir` into `out_dir/<name>.npz`; returns a report."""
  from vaujax.errors import require_dir
  require_dir(video_dir, "video directory")
  os.makedirs(out_dir, exist_ok=True)
  names = sorted(n for n in os.listdir(video_dir) if n.lower().endswith(VIDEO_EXTS))
  report = {"written": 0, "skipped": 0, "failed": []}
  for name in names:
    out = os.path.join(out_dir, os.path.splitext(name)[0] + ".npz")
    if os.path.exists(out):
      report["skipped"] += 1
      continue
    try:
      frames, stamps = video_io.read_video(os.path.join(video_dir, name), fps=fps,
                                           num_frames=num_frames)
      write_features(out, {**encoder(frames), "timestamps": stamps})
      report["written"] += 1
    except (InputError, ValueError) as e:
      report["failed"].append((name, str(e)))
      log(f"skipped {name}: {e}")
  log(f"features: {report['written']} written, {report['skipped']} already done, "
      f"{len(report['failed'])} failed")
  return report


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


def encoder_from_spec(spec: str) -> FrameEncoder:
  """`tiny` / `tiny:SEED` (the demo's seeded random towers) or `TOWER_DIR,DINO_DIR` (towers
  converted with `vaujax convert-vision`): the encoder a run records as `data.encoder`."""
  if spec.startswith("tiny"):
    seed = spec.split(":", 1)[1] if ":" in spec else "0"
    if not seed.isdigit():
      raise InputError("--config.data.encoder", f"bad tiny encoder seed in {spec!r}")
    return tiny_encoder(int(seed))
  parts = spec.split(",")
  if len(parts) != 2:
    raise InputError("--config.data.encoder",
                     f"must be 'tiny[:SEED]' or 'TOWER_DIR,DINO_DIR', got {spec!r}")
  return encoder_from_params(*parts)


def encode_video(path: str, encoder: Callable[[np.ndarray], dict], num_frames: int
                 ) -> tuple[dict, np.ndarray]:
  """(feature dict, the sampled uint8 frames [T, H, W, 3]) of one video file."""
  frames, stamps = video_io.read_video(path, num_frames=num_frames)
  if len(frames) < num_frames:
    raise InputError(path, f"only {len(frames)} decodable frames, the model needs {num_frames}")
  return {**encoder(frames), "timestamps": stamps}, frames


if __name__ == "__main__":  # `python -m vaujax.data.features` keeps working
  from vaujax.app import features
  features.run()
