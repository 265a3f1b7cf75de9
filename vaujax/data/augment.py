"""Temporal-shift augmentation of pre-extracted features and their annotations.

With few training videos a language model can memorise each video's answer ("From 2.6 to 6.5
seconds.") from its visual tokens instead of reading the evidence (the frames, the TETG hint).
A time-shifted copy shows the same events `s` frames earlier or later: every per-frame feature
moves by `s` frames (the edge frame is repeated where the shift uncovers the video's start or
end), the timestamps stay, and every annotated interval moves by `s` frame spacings (the
events' too, each keeping its class and region). The copy's
answer differs from the original's, so only evidence that moves with the events predicts it.

Mirrored copies (`write_mirrored`) do the same for where an event happens: each frame's patch
grid mirrored left to right, top to bottom or both, and the annotation's sides swapped.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional, Sequence

import numpy as np

from vaujax.data import features
from vaujax.data.annotations import VideoAnnotation
from vaujax.models import tetg


def shift_features(feats: dict, frames: int) -> dict:
  """Per-frame arrays [T, ...] moved by `frames` (> 0: later), edges repeated; `timestamps`
  and anything that is not per-frame are kept. TETG's own frames (`tetg_cls`), when the file
  has them, move by the same time: `frames` model frame spacings in TETG's spacings, rounded."""
  t = len(feats["timestamps"])
  out = _take_frames(feats, np.clip(np.arange(t) - frames, 0, t - 1),
                     keep=("timestamps", *features.TETG_KEYS))
  if all(k in feats for k in features.TETG_KEYS):
    s = len(feats["tetg_timestamps"])
    seconds = frames * tetg.frame_spacing(feats["timestamps"])
    moved = int(round(seconds / max(tetg.frame_spacing(feats["tetg_timestamps"]), 1e-9)))
    out["tetg_cls"] = np.asarray(feats["tetg_cls"])[np.clip(np.arange(s) - moved, 0, s - 1)]
  return out


def _take_frames(feats: dict, index: np.ndarray, keep: Sequence[str] = ()) -> dict:
  """`feats` with every per-frame array [T, ...] taken at `index`; scalars, arrays of another
  length and the `keep` keys as they are."""
  t = len(feats["timestamps"])
  return {k: (v if k in keep or np.ndim(v) == 0 or len(v) != t else np.asarray(v)[index])
          for k, v in feats.items()}


def shift_annotation(v: VideoAnnotation, seconds: float, video_id: str,
                     min_kept: float = 0.8) -> Optional[VideoAnnotation]:
  """The annotation of `v` moved by `seconds`, intervals clipped to [0, duration]; None when an
  anomaly interval would keep less than `min_kept` of its length inside the video."""
  def move(interval):
    s, e = interval
    return (round(min(max(s + seconds, 0.0), v.duration), 1),
            round(min(max(e + seconds, 0.0), v.duration), 1))

  anomalies = tuple(move(a) for a in v.anomaly_intervals)
  events = tuple(dataclasses.replace(e, start=m[0], end=m[1])
                 for e, m in ((e, move(e.interval)) for e in v.events))
  for before, after in zip(v.anomaly_intervals + tuple(e.interval for e in v.events),
                           anomalies + tuple(e.interval for e in events)):
    if after[1] - after[0] < min_kept * (before[1] - before[0]):
      return None
  stamps = tuple(move(s) for s in v.timestamps)
  kept = [(s, text) for s, text in zip(stamps, v.sentences) if s[1] > s[0]]
  return dataclasses.replace(v, video_id=video_id, timestamps=tuple(s for s, _ in kept),
                             sentences=tuple(text for _, text in kept),
                             anomaly_intervals=anomalies, events=events)


def write_time_shifted(feature_dir: str, videos: Sequence[VideoAnnotation], copies: int, *,
                       max_shift: int = 2, seed: int = 0) -> list[VideoAnnotation]:
  """Writes up to `copies` shifted feature files per anomalous video (shifts of 1..`max_shift`
  frames either way, seeded) next to the originals as `<id>_shift<+s|-s>.npz`; returns their
  annotations. Existing copies are reused (the rerun is idempotent)."""
  out = []
  shifts = [s for s in range(-max_shift, max_shift + 1) if s]
  for v in videos:
    if not v.anomaly_intervals or copies < 1:
      continue
    rng = np.random.RandomState((seed * 1_000_003 + sum(map(ord, v.video_id))) % 2**31)
    feats = features.read_features(features.feature_path(feature_dir, v.video_id))
    stamps = np.asarray(feats["timestamps"], np.float64)
    spacing = tetg.frame_spacing(stamps, default=v.duration)
    for s in rng.permutation(shifts)[:copies]:
      video_id = f"{v.video_id}_shift{int(s):+d}"
      moved = shift_annotation(v, int(s) * spacing, video_id)
      if moved is None:
        continue
      path = os.path.join(feature_dir, video_id + ".npz")
      if not os.path.exists(path):
        features.write_features(path, shift_features(feats, int(s)))
      out.append(moved)
  return out


def scale_annotation(v: VideoAnnotation, factor: float, video_id: str) -> VideoAnnotation:
  """The annotation of `v` on a clock running `factor` times slower: every time (duration,
  sentence timestamps, anomaly intervals, events) multiplied by `factor`, to 0.1 s."""
  scale = lambda interval: tuple(round(t * factor, 1) for t in interval)  # noqa: E731
  events = tuple(dataclasses.replace(e, start=s, end=t)
                 for e, (s, t) in ((e, scale(e.interval)) for e in v.events))
  return dataclasses.replace(v, video_id=video_id, duration=round(v.duration * factor, 1),
                             timestamps=tuple(scale(s) for s in v.timestamps),
                             anomaly_intervals=tuple(scale(a) for a in v.anomaly_intervals),
                             events=events)


def write_time_scaled(feature_dir: str, videos: Sequence[VideoAnnotation], *,
                      factors: tuple[float, float] = (1.5, 3.0), copies: int = 1,
                      seed: int = 0, durations: Optional[tuple[float, float]] = None,
                      max_fps: float = 0.0) -> list[VideoAnnotation]:
  """Writes `copies` time-scaled copies per video, `<id>_scale<f>.npz`: the same frames with
  every timestamp (and the annotation) multiplied by a factor drawn from `factors` (seeded; the
  first copy's factor does not depend on `copies`), as if the video ran that many times slower.
  A model trained on 4-16 s videos otherwise never writes a time past 16 s and answers inside
  that range on longer videos, though TETG's hint and the frame times carry the right numbers;
  the copies make it read them. `durations` (lo, hi) draws each copy's duration instead,
  uniform in seconds, and derives its factor: a factor range gives mostly short copies of short
  videos (the demo's 4-16 s videos at 1.5-3x: 27 of 1785 MC answers started past 16 s, none
  past 20 s), a duration range spreads the answers' times over it. `max_fps` > 0 thins a
  faster copy's frames to at most that rate (`_thin_frames`), as sampling a video that short
  would give, and names it `<id>_scale<f>_fps<r>`. Two draws that round to one factor give one
  copy. Existing copies are reused (the rerun is idempotent)."""
  if durations is not None and not 0 < durations[0] <= durations[1]:
    raise ValueError(f"durations must be 0 < lo <= hi, got {durations}")
  out = []
  for v in videos:
    rng = np.random.RandomState((seed * 1_000_033 + sum(map(ord, v.video_id))) % 2**31)
    drawn = []
    for _ in range(copies):
      factor = round(float(rng.uniform(*factors)) if durations is None else
                     float(rng.uniform(*durations)) / max(v.duration, 1e-3), 2)
      if factor not in drawn:
        drawn.append(factor)
    out += [_scaled_copy(feature_dir, v, factor, max_fps) for factor in drawn]
  return out


def thinned_frames(timestamps: np.ndarray, max_fps: float) -> np.ndarray:
  """Indices of the frames that sampling at `max_fps` would take: the frame nearest each time
  of a `1 / max_fps` grid from the first frame to the last (each once; all of them when
  `max_fps` <= 0 or the frames are no denser)."""
  t = np.asarray(timestamps, np.float64)
  if max_fps <= 0 or t.size < 2:
    return np.arange(t.size)
  grid = t[0] + np.arange(0.0, t[-1] - t[0] + 1e-6, 1.0 / max_fps)
  if grid.size >= t.size:
    return np.arange(t.size)
  return np.unique(np.abs(t[None, :] - grid[:, None]).argmin(axis=1))


def _thin_frames(feats: dict, max_fps: float) -> dict:
  """`feats` with its per-frame arrays [T, ...] at the frames `thinned_frames` keeps; TETG's own
  frames are dropped (TETG then reads the kept ones)."""
  kept = thinned_frames(feats["timestamps"], max_fps)
  if len(kept) == len(feats["timestamps"]):
    return feats
  return _take_frames(features.without_tetg_frames(feats), kept)


def _scaled_copy(feature_dir: str, v: VideoAnnotation, factor: float,
                 max_fps: float = 0.0) -> VideoAnnotation:
  """One copy of `v` on a clock `factor` times slower (its feature file written once), its
  frames thinned to `max_fps` (> 0) where the faster clock made them denser."""
  feats = None
  video_id = f"{v.video_id}_scale{factor:g}"
  if max_fps > 0:
    feats = features.read_features(features.feature_path(feature_dir, v.video_id))
    if len(thinned_frames(np.asarray(feats["timestamps"]) * factor, max_fps)) < len(
        feats["timestamps"]):
      video_id += f"_fps{max_fps:g}"
  path = os.path.join(feature_dir, video_id + ".npz")
  if not os.path.exists(path):
    if feats is None:
      feats = features.read_features(features.feature_path(feature_dir, v.video_id))
    scaled = {k: np.asarray(feats[k], np.float64) * factor
              for k in ("timestamps", "tetg_timestamps") if k in feats}
    features.write_features(path, _thin_frames({**feats, **scaled}, max_fps))
  return scale_annotation(v, factor, video_id)


# Mirrored copies (issue 29): the same augmentation for where as the shifts are for when. A
# model that memorises each training video's region ("near the top left of the scene") from its
# visual tokens never reads where the event is; a mirrored copy puts the same event on the other
# side, so only evidence that moves with it (its patches' places, a region hint made from them)
# predicts the copy's answer.
PATCH_KEYS = ("tower_patches", "dino_patches")      # per-frame patch grids [T, g*g, D]
# axis -> (the grid axis reversed in [T, g, g, D], the words swapped, the copy's id suffix);
# "both" is the two mirrors at once (a half turn)
MIRRORS = {"horizontal": ((2,), {"left": "right", "right": "left"}, "_mirror"),
           "vertical": ((1,), {"top": "bottom", "bottom": "top"}, "_flip"),
           "both": ((1, 2), {"left": "right", "right": "left", "top": "bottom",
                             "bottom": "top"}, "_mirror_flip")}


def _mirror(axis: str):
  if axis not in MIRRORS:
    raise ValueError(f"mirror axis must be one of {tuple(MIRRORS)}, got {axis!r}")
  return MIRRORS[axis]


def mirror_features(feats: dict, axis: str = "horizontal") -> dict:
  """The patch grids mirrored (horizontal: each row of each frame's g x g grid reversed, left
  to right; vertical: the rows' order reversed; both); everything else (class embeddings,
  timestamps, TETG's frames) as it is. Patches of the tower and of DINOv2 are features of
  unmirrored pixels at mirrored places: a permutation, not the features of a mirrored frame."""
  grid_axes = _mirror(axis)[0]
  out = dict(feats)
  for key in PATCH_KEYS:
    if key in feats:
      p = np.asarray(feats[key])
      g = int(round(np.sqrt(p.shape[1]))) if p.ndim == 3 else 0
      if p.ndim != 3 or g * g != p.shape[1]:
        raise ValueError(f"{key}: expected [T, g*g, D] patches, got {p.shape}")
      out[key] = np.flip(p.reshape(p.shape[0], g, g, -1), grid_axes).reshape(p.shape)
  return out


def mirror_text(text: str, axis: str = "horizontal") -> str:
  """The sides the mirror swaps, swapped (whole words, case kept): 'left' / 'right' for
  horizontal, 'top' / 'bottom' for vertical; region names ("top left" -> "top right") and
  directions ("from the left to the right") alike."""
  words = _mirror(axis)[1]
  pattern = r"\b(" + "|".join(f"[{w[0].upper()}{w[0]}]{w[1:]}" for w in words) + r")\b"
  return re.sub(pattern, lambda m: (words[m.group(1).lower()].capitalize()
                                    if m.group(1)[0].isupper() else words[m.group(1)]), text)


def mirror_annotation(v: VideoAnnotation, video_id: str,
                      axis: str = "horizontal") -> VideoAnnotation:
  """The annotation of `v` mirrored: every event's region and every sentence's sides swapped;
  times unchanged."""
  events = tuple(dataclasses.replace(e, region=None if e.region is None
                                     else mirror_text(e.region, axis)) for e in v.events)
  return dataclasses.replace(v, video_id=video_id, events=events,
                             sentences=tuple(mirror_text(s, axis) for s in v.sentences))


def write_mirrored(feature_dir: str, videos: Sequence[VideoAnnotation],
                   axes: Sequence[str] = ("horizontal",)) -> list[VideoAnnotation]:
  """One mirrored copy per axis per anomalous video whose events know their region,
  `<id>_mirror.npz` (horizontal), `<id>_flip.npz` (vertical), `<id>_mirror_flip.npz` (both)
  next to the original; returns their annotations. Existing copies are reused."""
  out = []
  for v in videos:
    if not v.events or any(e.region is None for e in v.events):
      continue
    feats = None
    for axis in axes:
      video_id = v.video_id + _mirror(axis)[2]
      path = os.path.join(feature_dir, video_id + ".npz")
      if not os.path.exists(path):
        if feats is None:
          feats = features.read_features(features.feature_path(feature_dir, v.video_id))
        features.write_features(path, mirror_features(feats, axis))
      out.append(mirror_annotation(v, video_id, axis))
  return out
