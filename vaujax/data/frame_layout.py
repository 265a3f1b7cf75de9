"""Videos of any length in fixed-shape batches, and where each frame sits in time (issue 26).

A run samples at most `model.num_frames` (T) frames per video: uniformly T (`data.sample_fps`
0, LLaMA-VID's fixed count), or at `data.sample_fps` up to T and uniformly T beyond
(`vaujax.data.video.sample_indices`), so a 4-second clip has 4 frames at 1 fps and a 10-minute
one T. A batch holds every video's per-frame arrays padded to T (static shapes: one compiled
step), and the prompt holds video slots for the video's real frames only: `splice_visual_tokens`
fills slot k with the k-th visual token, so the padded frames' tokens are computed but never
reach the LLM, and no attention mask over frames is needed.

`data.frame_times` says how the model learns where each frame sits in time:
  none   the slots alone (LLaMA-VID): time is implicit in the frame order
  text   each frame's slots are preceded by its timestamp as text ("3.0s"), so a frame's time
         is read from the prompt, not inferred from its position among frames of unknown spacing
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np

from vaujax.data import features
from vaujax.errors import InputError
from vaujax.models import tetg
from vaujax.models.vagpt import VIDEO_TOKEN_ID

FRAME_TIMES = ("none", "text")
# Per-frame arrays of a feature file; anything else (scalars, metadata) passes through.
PER_FRAME_KEYS = ("tower_patches", "dino_patches", "dino_cls", "timestamps")
PAD_TIME = -1.0   # timestamp of a padded frame (a real one is >= 0)


def frame_time_text(seconds: float) -> str:
  return f"{seconds:.1f}s"


def video_ids(timestamps: Sequence[float], tokens_per_frame: int, frame_times: str = "none",
              tokenizer=None) -> list[int]:
  """What a video placeholder becomes for a video with these (real) frames: `tokens_per_frame`
  slots per frame, each frame's preceded by its time as text when `frame_times` is "text"."""
  if frame_times not in FRAME_TIMES:
    raise ValueError(f"frame_times must be one of {FRAME_TIMES}, got {frame_times!r}")
  slots = [VIDEO_TOKEN_ID] * tokens_per_frame
  if frame_times == "none":
    return slots * len(timestamps)
  if tokenizer is None:
    raise ValueError('frame_times="text" needs the tokenizer')
  out = []
  for t in timestamps:
    out += tokenizer.encode(frame_time_text(float(t))) + slots
  return out


_NO_TIMES = ("has no 'timestamps' array, which data.sample_fps / data.frame_times need "
             "(re-extract the features with `vaujax features`)")


def check_frame_count(feats: Mapping[str, np.ndarray], num_frames: int,
                      source: Optional[str] = None) -> int:
  """The number of frames n; n outside 1..T, or no timestamps (which a variable-length video
  needs), is an InputError naming `source`."""
  if "timestamps" not in feats:
    raise InputError(source, _NO_TIMES)
  n = len(feats["timestamps"])
  if not 1 <= n <= num_frames:
    raise InputError(source, f"has {n} frames; the model takes 1 to {num_frames} "
                     "(model.num_frames; sample with data.sample_fps and at most that many)")
  return n


def placeholder_ids(timestamps: Optional[Sequence[float]], num_video_tokens: int,
                    num_frames: Optional[int], variable_frames: bool, frame_times: str,
                    tokenizer, source: Optional[str] = None) -> Optional[list[int]]:
  """What a video placeholder becomes under a run's layout: `video_ids` (num_video_tokens /
  num_frames slots per frame) when frames vary in number or carry their times, else None (the
  tokenizer's plain slots; num_frames and timestamps may then be unknown). Timestamps that the
  layout needs but `source` lacks are an InputError naming it."""
  if not variable_frames and frame_times == "none":
    return None
  if timestamps is None:
    raise InputError(source, _NO_TIMES)
  return video_ids(timestamps, num_video_tokens // num_frames, frame_times, tokenizer)


def pad_frames(feats: Mapping[str, np.ndarray], num_frames: int,
               source: Optional[str] = None) -> dict[str, np.ndarray]:
  """Per-frame arrays [n, ...] -> [T, ...] (zeros after the n real frames; timestamps PAD_TIME)
  plus `frame_mask` int32 [T]. More than T frames, or none, is an InputError naming `source`.

  `dino_patches` repeats the last real frame instead: SETS compares frame 0 with frame 1
  (`models/sets.py`), so a one-frame video (an image) padded with zeros would rank its patches
  by their norm, where unpadded it keeps them in order; a repeated frame differs by zero, as
  the unpadded one-frame video does. Frames 1..n-1 only look back, so longer videos select
  exactly as before."""
  n = check_frame_count(feats, num_frames, source)
  out = dict(feats)
  for key in PER_FRAME_KEYS:
    if key in feats:
      v = np.asarray(feats[key])
      pad = [(0, num_frames - n)] + [(0, 0)] * (v.ndim - 1)
      if key == "dino_patches":
        out[key] = np.pad(v, pad, mode="edge")
      else:
        out[key] = np.pad(v, pad, constant_values=PAD_TIME if key == "timestamps" else 0)
  out["frame_mask"] = (np.arange(num_frames) < n).astype(np.int32)
  return out


def cut_frame(feats: Mapping[str, np.ndarray], frame_s: float,
              source: Optional[str] = None) -> dict[str, np.ndarray]:
  """One frame of a video's features as an image's: every per-frame array [n, ...] -> [1, ...]
  at the sampled frame nearest to `frame_s` seconds (the earlier one on a tie), timestamps
  [0.0]. An image has no place in time, so a cut frame gets the time an image's feature file
  has: cut frames and images are one kind of example (same prompt with data.frame_times
  "text"), and a frame cut here equals that frame extracted as an image file. A file without
  timestamps, or a `frame_s` past the last sampled frame by more than one frame step (1 s for a
  one-frame file), is an InputError naming `source`."""
  if "timestamps" not in feats:
    raise InputError(source, _NO_TIMES.replace("data.sample_fps / data.frame_times",
                                               "a cut frame (frame_s)"))
  t = np.asarray(feats["timestamps"], np.float64)
  if not len(t):
    raise InputError(source, "has zero frames")
  step = tetg.frame_spacing(t, default=1.0)
  if frame_s > t[-1] + step:
    raise InputError(source, f"has no frame near frame_s {frame_s:g}: its last sampled frame is "
                     f"at {t[-1]:.2f} s")
  i = int(np.argmin(np.abs(t - frame_s)))
  # TETG's own frames are no image's
  out = {k: np.asarray(v)[i:i + 1] for k, v in features.without_tetg_frames(feats).items()}
  out["timestamps"] = np.zeros(1, t.dtype)
  return out


def no_frames(feats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The arrays with zero frames: what TETG sees of an image, which has no time axis to find
  an interval on (a hint function given it returns the class sentence only)."""
  return {k: np.asarray(v)[:0] for k, v in feats.items()}


def real_frames(batch_or_feats: Mapping[str, np.ndarray]) -> int:
  """Number of real frames of one (possibly padded) video."""
  if "frame_mask" in batch_or_feats:
    return int(np.asarray(batch_or_feats["frame_mask"]).sum())
  return len(batch_or_feats["timestamps"])


@dataclasses.dataclass(frozen=True)
class FrameSettings:
  """A run's frame sampling and layout (`data.sample_fps`, `data.frame_times`,
  `data.min_frames`); runs saved before these keys existed read as uniform T frames without
  times (and no minimum)."""
  sample_fps: float = 0.0
  frame_times: str = "none"
  min_frames: int = 0     # with sample_fps: a shorter video gives this many frames, faster

  @classmethod
  def of_run(cls, config) -> "FrameSettings":
    data = config.get("data") or {}
    return cls(float(data.get("sample_fps", 0.0) or 0.0), str(data.get("frame_times", "none")),
               int(data.get("min_frames", 0) or 0))

  @property
  def variable_frames(self) -> bool:
    """Whether videos may have fewer frames than the model's T (sampled by fps)."""
    return self.sample_fps > 0

  def video_ids(self, timestamps, cfg, tokenizer) -> Optional[list[int]]:
    """The placeholder's ids for a video (None: the plain T-frame slots)."""
    return placeholder_ids(timestamps, cfg.num_video_tokens, cfg.num_frames,
                           self.variable_frames, self.frame_times, tokenizer)

  def pad(self, feats, cfg, source: Optional[str] = None):
    return pad_frames(feats, cfg.num_frames, source) if self.variable_frames else feats

  def sampling(self, num_frames: int) -> dict:
    """Keyword arguments of `video.read_video` for this run."""
    if self.variable_frames:
      out = {"fps": self.sample_fps, "max_frames": num_frames}
      return {**out, "min_frames": self.min_frames} if self.min_frames else out
    return {"num_frames": num_frames}
