"""TFDS builders (manual_dir: the user's local files) for the instruction data and both
benchmarks, written as ArrayRecord so that they build and read without TensorFlow and feed
the same Grain pipeline through `tfds.data_source`.

    builder = InstructionData(data_dir=DIR, config="default")   # manual_dir holds train.json
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=M))
    source = tfds.data_source("vaujax_instructions", data_dir=DIR, split="train")

Nested conversations/options are stored as JSON text; `pipeline.TFDSInstructionSource` turns
records back into items.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow_datasets as tfds

from vaujax.data.benchmark_files import LETTERS, MIN_OPTIONS
from vaujax.errors import InputError


def _text(**kw):
  return tfds.features.Text(**kw)


class InstructionData(tfds.core.GeneratorBasedBuilder):
  """LLaVA-format instruction data: manual_dir/{train,test}.json."""

  name = "vaujax_instructions"
  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Put train.json (and optionally test.json) in manual_dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "id": _text(), "video": _text(), "conversations": _text(),
            "index": tfds.features.Scalar(dtype=np.int64)}),
        description="VA-GPT instruction data (conversations as JSON text)")

  def _split_generators(self, dl_manager):
    splits = {}
    for split in ("train", "test"):
      path = os.path.join(dl_manager.manual_dir, f"{split}.json")
      if os.path.exists(path):
        splits[split] = self._generate_examples(path)
    if not splits:
      raise InputError(dl_manager.manual_dir, "manual_dir has neither train.json nor test.json")
    return splits

  def _generate_examples(self, path):
    from vaujax.data.instructions import read_instructions
    items, _ = read_instructions(path)
    for i, item in enumerate(items):
      if item.get("image") or "frame_s" in item:   # the records keep a video path only
        raise InputError(path, f"example {item.get('id', i)}: image and cut-frame examples are "
                         "read from the instruction JSON, not through TFDS")
      # a text-only example keeps an empty video path (`pipeline.is_text_only`)
      yield i, {"id": str(item.get("id", i)), "video": item.get("video") or "",
                "conversations": json.dumps(item["conversations"]), "index": i}


class MultipleChoiceBenchmark(tfds.core.GeneratorBasedBuilder):
  """MC benchmark files (XD-Violence style; 2 to 8 options a question): manual_dir/test.json."""

  name = "vaujax_multiple_choice"
  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Put test.json (a list of MC items) in manual_dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "id": _text(), "video": _text(), "question": _text(), "options": _text(),
            "answer": _text(), "category": _text(), "gt_interval": _text(), "label": _text()}),
        description="multiple-choice anomaly benchmark (options as JSON text)")

  def _split_generators(self, dl_manager):
    return {"test": self._generate_examples(os.path.join(dl_manager.manual_dir, "test.json"))}

  def _generate_examples(self, path):
    from vaujax.errors import require_file
    require_file(path, "benchmark file")
    with open(path, encoding="utf-8") as f:
      try:
        items = json.load(f)
      except json.JSONDecodeError as e:
        raise InputError(path, f"malformed JSON ({e.msg} at line {e.lineno})") from e
    for i, item in enumerate(items):
      missing = [k for k in ("id", "video", "question", "options", "answer") if k not in item]
      if missing:
        raise InputError(path, f"item {i}: missing {missing}")
      if not MIN_OPTIONS <= len(item["options"]) <= len(LETTERS):
        raise InputError(path, f"item {i}: {len(item['options'])} options (the benchmark "
                         f"reader takes {MIN_OPTIONS} to {len(LETTERS)})")
      yield i, {"id": item["id"], "video": item["video"], "question": item["question"],
                "options": json.dumps(item["options"]), "answer": item["answer"],
                "category": item.get("category", ""),
                "gt_interval": json.dumps(item.get("gt_interval")),
                "label": item.get("label", "")}


def build(builder_cls, data_dir: str, manual_dir: str):
  """Builds a dataset in ArrayRecord format and returns the builder."""
  builder = builder_cls(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder
