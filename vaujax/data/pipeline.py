"""Grain pipelines: instruction examples + per-video features -> padded, masked batches.

    source (JSON list or a TFDS data source)
      -> repeat(num_epochs) -> shuffle(seed) -> [process_index::process_count]
         (or, with group_by_modality, each epoch's shuffled batches all text-only or all
          visual: ModalityGroupedEpochs)
      -> Prepare (load features, insert TETG hint, tokenize, mask labels, truncate/pad)
      -> batch(drop_remainder) -> iterator with get_state()/set_state()

Every example in a batch has the same shapes: ids/labels/mask [L] (L = max_length; longer
examples are truncated from the end and counted), features [T, ...] (T fixed by extraction).
An example may also be an image (`"image": "frames/x.jpg"`, its one-frame feature file) or a
cut frame of a video (`"video"` + `"frame_s"` seconds: that video's frame nearest to it, no
extraction); either is a one-frame video padded to T (data.sample_fps > 0) with no TETG interval.
An example with neither `video` nor `image` is text only (LLaVA's text conversations, or
`hint_drills` items): no placeholder, no feature file, no TETG hint; its frame arrays are zeros
that no slot of its prompt reads, so it batches with video examples.
The iterator state is a small dict that orbax/grain checkpoint with the model, so a restored
iterator yields exactly the examples that had not been seen.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import posixpath
import threading
from typing import Callable, Mapping, Optional, Sequence

import grain
import numpy as np

from vaujax.data import conversation, features, frame_layout
from vaujax.data.tokenizer import Tokenizer
from vaujax.errors import InputError

# (video id, features) -> hint text; with hint_jitter > 0 also called with `jitter=` (frame
# spacings) and `rng=` (numpy Generator) keywords, with hint_labels with `events=` (the item's
# annotated events) (TrainedTETG.hint_fn takes all three)
HintFn = Callable[..., str]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  feature_dir: str
  num_video_tokens: int
  max_length: int
  batch_size: int
  feature_shapes: Mapping[str, Optional[tuple]] = dataclasses.field(default_factory=dict)
  num_epochs: int = 1
  seed: int = 0
  shuffle: bool = True
  qformer_max_length: int = 0    # > 0: emit the Q-Former's question ids/mask, padded to this
  # LLaMA-VID's imgsp layout: a placeholder and a Q-Former prompt per question, at most
  # imgsp_turns questions (the Q-Former ids are [imgsp_turns, Lq]).
  imgsp: bool = False
  imgsp_turns: int = 1
  # Batches prepared ahead by grain threads (0 = auto, see `read_options`; read_threads -1 =
  # none, examples are prepared in the training loop). The threads share the host's cores
  # with the train step (benchmarks/input_pipeline.py).
  read_threads: int = 0
  prefetch_buffer: int = 0
  # Frames every feature file must have (grain stacks the examples of a batch); None: as many
  # as the first file read.
  num_frames: Optional[int] = None
  # Videos of any length (vaujax/data/frame_layout.py): a file may have 1..num_frames frames;
  # its per-frame arrays are padded to num_frames and its prompt gets slots for its real frames
  # only. frame_times "text": each frame's slots follow its time as text.
  variable_frames: bool = False
  frame_times: str = "none"
  # Training only: each boundary of TETG's hint moves by up to this many frame spacings, a new
  # draw each time an example is read (seeded), so that the LLM learns to pick the option
  # nearest an inexact hint instead of copying its digits (runs/tetg_files.py).
  hint_jitter: float = 0.0
  # Training only (data.train_hint_labels): the hint's regions and types come from the item's
  # annotated `events` (an always-right hint to learn to read; evaluation keeps TETG's own;
  # runs/tetg_files.py).
  hint_labels: bool = False
  # Training only (data.group_by_modality): every batch all text-only or all visual examples
  # (LLaVA's group_by_modality_length), so a batch of short text-only examples is not padded
  # to its video examples' length (`ModalityGroupedEpochs`).
  group_by_modality: bool = False


def video_path(item: Mapping) -> str:
  """An example's `video` (or, for an image example, its `image`), normalised: a path relative
  to the dataset root (absolute paths and `..` are refused, so an annotation file cannot point
  the pipeline outside the dataset)."""
  field = "image" if is_image(item) else "video"
  video = str(item[field])
  parts = video.replace("\\", "/").split("/")
  if os.path.isabs(video) or ".." in parts or not parts[-1]:
    raise InputError(item.get("id"), f"{field} path {video!r} escapes the dataset root")
  return posixpath.normpath("/".join(parts))


def video_key(item: Mapping) -> str:
  """An example's video id: its file name without folders or extension (what labels and TETG
  hints are keyed by; an image's name, or a cut frame's video's). Its feature file is found by
  the whole path (`features.video_feature_path`)."""
  return posixpath.splitext(posixpath.basename(video_path(item)))[0]


def is_image(item: Mapping) -> bool:
  """An image example: `{"image": "frames/x.jpg", ...}`, read from a one-frame feature file."""
  return bool(item.get("image"))


def is_text_only(item: Mapping) -> bool:
  """A text-only example: neither a `video` nor an `image` (its conversation has no placeholder,
  which the instruction reader checks)."""
  return not (item.get("video") or item.get("image"))


def text_only_features(cfg: PipelineConfig, item: Mapping) -> dict:
  """A text-only example's frame arrays: zeros of the run's shapes ([T, ...]; with variable
  frames timestamps PAD_TIME and an all-zero frame_mask). Its prompt has no video slot, so the
  visual tokens computed from them reach no position of the LLM. Shapes the config leaves
  unknown are an InputError naming the example."""
  if cfg.num_frames is None or any(s is None for s in cfg.feature_shapes.values()):
    raise InputError(item.get("id"), "is a text-only example (no 'video' or 'image'); its blank "
                     "frame arrays need the run's frame count and every feature shape")
  out = {k: np.zeros((cfg.num_frames, *shape), np.float32)
         for k, shape in cfg.feature_shapes.items()}
  if cfg.variable_frames:
    out["timestamps"] = np.full(cfg.num_frames, frame_layout.PAD_TIME, np.float32)
    out["frame_mask"] = np.zeros(cfg.num_frames, np.int32)
  return out


def is_one_frame(item: Mapping) -> bool:
  """An image, or one cut frame of a video (`{"video": ..., "frame_s": 3.0}`): either batches
  as a one-frame video, padded to T (which needs variable frames, data.sample_fps > 0)."""
  return is_image(item) or item.get("frame_s") is not None


def check_unique_keys(items: Sequence[Mapping], source: str, feature_dir: str) -> None:
  """Refuses two different videos that would read one feature file of `feature_dir`
  (`cam1/001.mp4` and `cam2/001.mp4` with a folder keyed by the bare name, `001.npz`): one would
  train on, or be graded by, the other's features. The InputError names both examples, their
  videos and the file. Paths that agree on all the folders both name are taken as one video
  written from different roots (`videos/001.mp4` and `001.mp4`, as the instruction builders
  write them). Items whose `video` is missing or escapes the dataset root are left to the
  checks that report them."""
  by_video: dict[str, str] = {}
  seen: dict[str, list[tuple]] = {}
  for item in items:
    if not isinstance(item, Mapping) or is_text_only(item):
      continue
    try:
      video = video_path(item)
    except InputError:
      continue
    if video not in by_video:
      by_video[video] = features.video_feature_path(feature_dir, video)
    path, parts = by_video[video], tuple(video.split("/"))
    known = seen.setdefault(path, [])
    for other, other_id in known:
      if not _same_video(parts, other):
        raise InputError(source, f"examples {other_id} and {item.get('id')}: videos "
                         f"{'/'.join(other)!r} and {'/'.join(parts)!r} would both read the "
                         f"feature file {path}; extract features with `vaujax features` (it "
                         "keeps the folders: one file per video) or rename one of the videos")
    if all(p != parts for p, _ in known):
      known.append((parts, item.get("id")))


def _same_video(a: tuple, b: tuple) -> bool:
  """Whether two normalised relative paths can name one file: the shorter is the longer's tail."""
  n = min(len(a), len(b))
  return a[len(a) - n:] == b[len(b) - n:]


def _read_example_features(cfg: PipelineConfig, item: Mapping) -> tuple[str, dict]:
  """(path, features) of an example: a feature file that links outside `cfg.feature_dir`, or
  whose shapes or frame count (`cfg.num_frames`) differ, is an InputError naming it. An image
  example's file must have one frame; a cut frame is sliced out of its video's file
  (`frame_layout.cut_frame`); either without variable frames is an InputError naming it."""
  if is_text_only(item):
    return "", text_only_features(cfg, item)
  path = features.video_feature_path(cfg.feature_dir, video_path(item))
  if not is_one_frame(item):
    return path, features.read_features(path, cfg.feature_shapes,
                                        frames=None if cfg.variable_frames else cfg.num_frames)
  kind = "an image" if is_image(item) else "a cut frame"
  if not cfg.variable_frames:
    raise InputError(item.get("id"), f"is {kind} (key {video_key(item)!r}), a one-frame example "
                     "padded to model.num_frames frames, which needs videos of variable length: "
                     "set data.sample_fps > 0, or leave images out of a fixed-frame run")
  feats = features.read_features(path, cfg.feature_shapes)
  if not is_image(item):
    return path, frame_layout.cut_frame(feats, float(item["frame_s"]), path)
  if features.frame_count(feats) != 1:
    raise InputError(path, f"has {features.frame_count(feats)} frames, but it is the feature "
                     f"file of the image of example {item.get('id')} (one frame; is it a "
                     "video's of the same name?)")
  return path, feats


class Prepare(grain.transforms.Map):
  """One example -> numpy arrays (features loaded, conversation tokenized and padded)."""

  def __init__(self, cfg: PipelineConfig, tokenizer: Tokenizer, hint_fn: Optional[HintFn] = None,
               bert_tokenizer=None):
    self.cfg, self.tokenizer, self.hint_fn = cfg, tokenizer, hint_fn
    self.bert = bert_tokenizer
    self.truncated = 0
    self.questions_truncated = 0
    self._first_frames = None    # (count, path) of the first file read, when not configured

  def _features(self, item) -> dict:
    """The example's features; a file with another frame count than the first one read is an
    InputError naming both (grain would fail stacking the batch, naming neither)."""
    path, feats = _read_example_features(self.cfg, item)
    if is_text_only(item):
      return feats
    count = features.frame_count(feats)
    if self.cfg.variable_frames:     # padded in `map`, after TETG has read the real frames
      frame_layout.check_frame_count(feats, self.cfg.num_frames, path)
      return feats
    if self._first_frames is None:
      self._first_frames = (count, path)
    if count != self._first_frames[0]:
      raise InputError(path, f"has {count} frames but {self._first_frames[1]} has "
                       f"{self._first_frames[0]}: every feature file of a dataset must have the "
                       "same number")
    return feats

  def map(self, item):
    cfg = self.cfg
    feats = self._features(item)
    text_only = is_text_only(item)
    hint = ""
    if self.hint_fn is not None and not text_only:
      # an image has no time: TETG gets no frames, no interval (a text-only example: no hint)
      seen = frame_layout.no_frames(feats) if is_one_frame(item) else feats
      extra = {}
      if cfg.hint_jitter > 0:      # a new draw per read: the position in the repeated stream
        # (the 7 keeps these draws apart from imgsp's [seed, index] stream below)
        extra.update(jitter=cfg.hint_jitter, rng=np.random.default_rng(
            [cfg.seed, 7, max(0, int(item.get("_draw", 0)))]))
      if cfg.hint_labels and not is_one_frame(item):
        if "events" not in item:
          raise InputError(item.get("id"), "data.train_hint_labels needs the training item's "
                           "annotated 'events' ([] for a normal video)")
        extra["events"] = item["events"]
      hint = self.hint_fn(video_key(item), seen, **extra)
    feats = features.without_tetg_frames(feats)   # TETG's own frames: read, not batched
    if text_only:     # no placeholder: no slots (the blank arrays are already [T, ...])
      video = []
    else:
      video = frame_layout.placeholder_ids(feats.get("timestamps"), cfg.num_video_tokens,
                                           cfg.num_frames, cfg.variable_frames, cfg.frame_times,
                                           self.tokenizer, video_path(item))
      if cfg.variable_frames:
        feats = frame_layout.pad_frames(feats, cfg.num_frames)
    try:
      # imgsp's placeholder sides: random as in LLaMA-VID's training, fixed per example
      rng = np.random.default_rng([cfg.seed, max(0, int(item.get("_index", 0)))])
      prepared = conversation.prepare(item["conversations"], hint=hint, imgsp=cfg.imgsp,
                                      rng=rng if cfg.imgsp else None)
      ids, labels = conversation.tokenize_conversation(
          prepared.conversations, self.tokenizer, num_video_tokens=cfg.num_video_tokens,
          video_ids=video, placeholder_per_turn=cfg.imgsp)
    except conversation.ConversationError as e:
      raise InputError(item.get("id"), str(e)) from e
    if len(ids) > cfg.max_length:
      if cfg.num_video_tokens and (ids[cfg.max_length:] == conversation.VIDEO_TOKEN_ID).any():
        raise InputError(item.get("id"), f"max_length {cfg.max_length} cuts into the video slots")
      self.truncated += 1
      if self.truncated <= 3 or self.truncated % 1000 == 0:   # say it, don't flood the log
        logging.warning("example %s: %d tokens truncated to %d (%d truncations so far; raise "
                        "data.max_length)", item.get("id"), len(ids), cfg.max_length,
                        self.truncated)
      ids, labels = ids[:cfg.max_length], labels[:cfg.max_length]
    pad = cfg.max_length - len(ids)
    out = {"input_ids": np.pad(ids, (0, pad), constant_values=self.tokenizer.pad_id),
           "labels": np.pad(labels, (0, pad), constant_values=conversation.IGNORE_INDEX),
           "attention_mask": np.pad(np.ones(len(ids), np.int32), (0, pad)),
           "example_index": np.int64(item.get("_index", -1))}
    if self.bert is not None and cfg.qformer_max_length:
      out.update(self._qformer_ids(item, prepared.qformer_texts))
    # What the model reads, the same keys for every example of a run (so that text-only and
    # video examples stack): the two towers' patches, and with variable frames the frame times
    # and mask. A file's dino_cls is TETG's, read above for the hint.
    keys = ("tower_patches", "dino_patches") + (("timestamps",) if cfg.variable_frames else ())
    for key in keys:
      if key in feats:
        out[key] = feats[key].astype(np.float32)
    if cfg.variable_frames:
      out["frame_mask"] = feats["frame_mask"]
    return out

  def _qformer_ids(self, item, questions: Sequence[str]) -> dict:
    """The Q-Former's question ids/mask padded to qformer_max_length: [Lq] of the first
    question, or with imgsp [imgsp_turns, Lq], one row per question (padding rows masked)."""
    cfg = self.cfg
    rows = cfg.imgsp_turns if cfg.imgsp else 1
    if len(questions) > rows:
      raise InputError(item.get("id"), f"{len(questions)} questions, more than data.imgsp_turns="
                       f"{rows} (each question gets its own Q-Former prompt)")
    q_ids, q_mask = self.bert.batch(questions, cfg.qformer_max_length,
                                    pad_to=cfg.qformer_max_length)
    for question, mask in zip(questions, q_mask):
      if mask[-1]:   # filled to the brim: was anything cut off the front?
        full = len(self.bert.encode(question, 1 << 30))
        if full > cfg.qformer_max_length:
          self.questions_truncated += 1
          if self.questions_truncated <= 3 or self.questions_truncated % 1000 == 0:
            logging.warning("example %s: Q-Former question of %d tokens keeps its last %d (%d "
                            "so far; raise model.qformer_max_length)", item.get("id"), full,
                            cfg.qformer_max_length, self.questions_truncated)
    pad = ((0, rows - len(questions)), (0, 0))
    q_ids = np.pad(q_ids, pad, constant_values=self.bert.pad_id)
    q_mask = np.pad(q_mask, pad)
    return {"qformer_ids": q_ids if cfg.imgsp else q_ids[0],
            "qformer_mask": q_mask if cfg.imgsp else q_mask[0]}


def json_source(path: str, *, skip_bad: bool = False) -> tuple[list[dict], list[str]]:
  """(items, problems) of an instruction file. Two different videos that would read one
  feature file are refused by `check_unique_keys` once the feature directory is known."""
  from vaujax.data.instructions import read_instructions
  items, problems = read_instructions(path, skip_bad=skip_bad)
  return [dict(item, _index=i) for i, item in enumerate(items)], problems


def drop_examples_without_features(items: Sequence[dict], cfg: PipelineConfig
                                   ) -> tuple[list[dict], list[str]]:
  """Validates every example's feature file up front (skip-and-count mode). Without
  `cfg.num_frames`, files whose frame count differs from the most common one are dropped too
  (a batch stacks its examples' arrays)."""
  read, problems = [], []
  for item in items:
    try:
      path, feats = _read_example_features(cfg, item)
      read.append((item, path, None if is_text_only(item) else features.frame_count(feats)))
    except InputError as e:
      problems.append(str(e))
  counts = collections.Counter(count for _, _, count in read if count is not None)
  common = max(counts, key=lambda c: (counts[c], -c)) if counts else None
  kept = []
  for item, path, count in read:
    if count is None:               # text only: blank arrays of the run's shapes
      kept.append(item)
    elif cfg.variable_frames:         # any count from 1 to num_frames is padded to num_frames
      try:
        frame_layout.check_frame_count({"timestamps": range(count)}, cfg.num_frames, path)
        kept.append(item)
      except InputError as e:
        problems.append(str(e))
    elif count == common:
      kept.append(item)
    else:
      problems.append(str(InputError(path, f"has {count} frames but most feature files have "
                                     f"{common}: every feature file of a dataset must have the "
                                     "same number")))
  return kept, problems


class ModalityGroupedEpochs:
  """`epochs` passes over `source` as a random-access source, each a new shuffle in which every
  run of `batch_size` consecutive positions (a batch) is all text-only or all visual examples.

  Per epoch (numpy's Generator seeded [seed, epoch]): each kind is shuffled and cut into full
  batches; the two kinds' leftovers (fewer than a batch each) are shuffled together into at most
  one mixed batch, and what remains of them (fewer than a batch) sits the epoch out; then the
  batches are shuffled. Every epoch has the same length, N // batch_size batches, so a position
  says its epoch, and an item left out of one epoch is drawn again in the next. Pass the global
  batch (per-process batch x process count): `[p::P]` then gives each process's batches of one
  kind too. Like grain's shuffle, the order is a pure function of (seed, position), so a
  checkpointed iterator resumes exactly.
  """

  def __init__(self, source, batch_size: int, epochs: Optional[int], seed: int):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self._source, self._batch, self._seed = source, batch_size, seed
    text = np.array([is_text_only(source[i]) for i in range(len(source))], bool)
    self._text, self._visual = np.flatnonzero(text), np.flatnonzero(~text)
    self.epoch_length = (len(source) // batch_size) * batch_size
    limit = np.iinfo(np.int64).max // max(1, self.epoch_length)
    self._epochs = limit if epochs is None else epochs
    self._orders = collections.OrderedDict()     # epoch -> order, the last few
    self._lock = threading.Lock()                # grain's threads read concurrently

  def __len__(self):
    return self._epochs * self.epoch_length

  def order(self, epoch: int) -> np.ndarray:
    """[epoch_length] source indices of one epoch, in batch order."""
    with self._lock:
      if epoch in self._orders:
        return self._orders[epoch]
    rng, b = np.random.default_rng([self._seed, epoch]), self._batch
    batches, rest = [], []
    for kind in (self._text, self._visual):
      shuffled = rng.permutation(kind)
      full = len(shuffled) // b * b
      batches += list(shuffled[:full].reshape(-1, b))
      rest.append(shuffled[full:])
    rest = rng.permutation(np.concatenate(rest))
    batches += list(rest[:len(rest) // b * b].reshape(-1, b))
    order = (np.concatenate([batches[i] for i in rng.permutation(len(batches))])
             if batches else np.zeros(0, np.int64))
    with self._lock:       # grain's threads may read two epochs around a boundary
      self._orders[epoch] = order
      while len(self._orders) > 4:
        self._orders.popitem(last=False)
    return order

  def __getitem__(self, index):
    if not 0 <= index < len(self):
      raise IndexError(index)
    epoch, pos = divmod(int(index), self.epoch_length)
    return self._source[int(self.order(epoch)[pos])]


def make_dataset(source, cfg: PipelineConfig, tokenizer: Tokenizer, *,
                 process_index: int = 0, process_count: int = 1,
                 hint_fn: Optional[HintFn] = None, bert_tokenizer=None) -> grain.IterDataset:
  """The batched dataset for one process (`source`: a list of items or a random-access source)."""
  if cfg.group_by_modality and cfg.shuffle:
    ds = grain.MapDataset.source(ModalityGroupedEpochs(
        source, cfg.batch_size * process_count, cfg.num_epochs, cfg.seed))
  else:
    ds = grain.MapDataset.source(source)
    if cfg.num_epochs != 1:
      ds = ds.repeat(cfg.num_epochs)
    if cfg.shuffle:
      ds = ds.shuffle(seed=cfg.seed)
  if cfg.hint_jitter > 0:     # the position in the (repeated, shuffled) stream seeds the draw
    ds = ds.map_with_index(lambda i, item: {**item, "_draw": i})
  ds = ds[process_index::process_count]
  ds = ds.map(Prepare(cfg, tokenizer, hint_fn, bert_tokenizer))
  return ds.batch(cfg.batch_size, drop_remainder=True).to_iter_dataset(read_options(cfg))


def read_options(cfg: PipelineConfig) -> grain.ReadOptions:
  """Prefetch threads and buffer (in batches): the config's, or half the host's cores (1 to 16)
  and two batches per thread."""
  if cfg.read_threads < 0:
    return grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
  threads = cfg.read_threads or min(16, max(1, (os.cpu_count() or 2) // 2))
  return grain.ReadOptions(num_threads=threads,
                           prefetch_buffer_size=cfg.prefetch_buffer or 2 * threads)


TOKEN_KEYS = ("input_ids", "labels", "attention_mask")   # [B, max_length], right-padded


def bucket_length(attention_mask: np.ndarray, bucket: int, max_length: int) -> int:
  """The batch's token length rounded up to a multiple of `bucket` (at most `max_length`).

  Examples are right-padded, so the longest row's last real token bounds what the batch needs.
  """
  mask = np.asarray(attention_mask)
  rows = mask.any(axis=1)
  longest = int((mask.shape[1] - np.argmax(mask[:, ::-1] > 0, axis=1))[rows].max()) \
      if rows.any() else 1
  return min(max_length, -(-longest // bucket) * bucket)


def trim_to_length(batch: dict, length: int) -> dict:
  """Drops the all-padding tail of the token arrays: [B, max_length] -> [B, length].

  Exact for training: padding sits after every real token (causal attention never looks
  forward) and carries IGNORE_INDEX labels. Fewer distinct lengths mean fewer compiles of the
  train step, so lengths go to buckets (`bucket_length`).
  """
  mask = np.asarray(batch["attention_mask"])
  if mask[:, length:].any():
    raise ValueError(f"cannot trim to {length} tokens: a row has real tokens beyond it")
  return {k: (v[:, :length] if k in TOKEN_KEYS else v) for k, v in batch.items()}


class TFDSInstructionSource:
  """Adapts a `tfds.data_source` of the instruction builder to the JSON items' form.

  TFDS stores ArrayRecord examples in its own order; position i here is the example whose
  `index` field is i (one pass over the records at construction), so the JSON and TFDS paths
  shuffle and batch identically.
  """

  def __init__(self, data_source):
    self._source = data_source
    self._order = np.argsort([int(data_source[i]["index"]) for i in range(len(data_source))])

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    record = self._source[int(self._order[index])]
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
    return {"id": text(record["id"]), "video": text(record["video"]),
            "conversations": json.loads(text(record["conversations"])),
            "_index": int(record["index"])}
