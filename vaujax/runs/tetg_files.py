"""The trained TETG classifier on disk, and what a run does with it: frame scores, the
interval, the prompt hint. One object, so the classifier runs once per video."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Mapping, Optional, Sequence

import numpy as np

from vaujax.convert import params_io
from vaujax.data import conversation, features, regions
from vaujax.errors import InputError
from vaujax.models import event_region, tetg

KIND = "tetg"


HINT_INTERVALS = ("strongest", "all")   # data.hint_intervals: which runs the hint names


@dataclasses.dataclass(frozen=True)
class TETGView:
  """What TETG says about one video, on the frames it read (`features.tetg_inputs`: its own
  denser frames when the features have them, else the model's)."""
  scores: np.ndarray                              # [S] P(anomalous) per frame TETG read
  interval: Optional[tuple[float, float]]         # seconds, the strongest run, or None
  hint: str                                       # the prompt hint text
  intervals: tuple[tuple[float, float], ...] = ()  # every confident run, in time order
  timestamps: Optional[np.ndarray] = None         # [S] the times of `scores`
  # with hint_regions: the region of each of the runs the hint names (None: not said)
  where: Optional[tuple[Optional[str], ...]] = None
  # with hint_types: the anomaly class of each of the runs the hint names (None: not said)
  types: Optional[tuple[Optional[str], ...]] = None


@dataclasses.dataclass(frozen=True)
class TypeHead:
  """The typed hint's class head (`tetg.TETGTypeClassifier`): its params, hidden widths and
  the anomaly classes its outputs stand for."""
  params: dict
  hidden: tuple[int, ...]
  classes: tuple[str, ...]

  def probabilities(self, class_embeddings: np.ndarray) -> np.ndarray:
    """[S, C] class probabilities per frame."""
    return tetg.type_probabilities(self.params, self.hidden, len(self.classes), class_embeddings)


@dataclasses.dataclass(frozen=True)
class TrainedTETG:
  """A trained classifier (params + config: threshold, smoothing, extension), and which runs
  its hint names: "strongest" (the one run with the most probability mass; runs saved before
  data.hint_intervals) or "all" (every confident run, for videos with several anomalies).
  With `hint_regions` (data.hint_regions) the hint says where each named run happens: the
  region that changes most in the vision tower's patches (`models/event_region.py`); with
  `hint_types` (data.hint_types) which anomaly it shows, by the class head `types`."""
  params: dict
  config: tetg.TETGConfig
  hint_intervals: str = "strongest"
  hint_regions: bool = False
  types: Optional[TypeHead] = None
  hint_types: bool = False

  def __post_init__(self):
    if self.hint_intervals not in HINT_INTERVALS:
      raise InputError("--config.data.hint_intervals", f"must be one of {HINT_INTERVALS}, got "
                       f"{self.hint_intervals!r}")
    if self.hint_types and self.types is None:
      raise InputError("--config.data.hint_types", "the run's TETG classifier has no type head "
                       "(train it with configs/tetg.py's types: the anomaly classes)")

  def scores(self, class_embeddings: np.ndarray) -> np.ndarray:
    return tetg.frame_probabilities(self.params, self.config, class_embeddings)

  def view(self, feats: Mapping[str, np.ndarray], classes: Sequence[str]) -> TETGView:
    """Scores, intervals and hint of one video's features (`dino_cls` [T, D], `timestamps`, or
    TETG's own `tetg_cls` / `tetg_timestamps`)."""
    cls, times = features.tetg_inputs(feats)
    scores = self.scores(cls)
    interval = tetg.extract_interval(scores, times, self.config)
    intervals = tuple(tetg.extract_intervals(scores, times, self.config))
    named = self._named(intervals, interval)
    where = self._where(feats, named)
    kinds = self._types(cls, times, named)
    return TETGView(scores, interval, conversation.hint_text(named, classes, where, kinds),
                    intervals, np.asarray(times, np.float64), where, kinds)

  def _types(self, cls, times, named) -> Optional[tuple]:
    """Each named run's anomaly class by the type head (`tetg.run_type` on TETG's frames), or
    None without hint_types."""
    if not self.hint_types or not named:
      return None
    probs = self.types.probabilities(cls)
    found = [tetg.run_type(probs, times, run) for run in named]
    return tuple(None if k is None else self.types.classes[k] for k in found)

  def _named(self, intervals, interval) -> list:
    """The runs the hint names, as a list (none without a run): every confident run ("all"),
    or the strongest one."""
    if self.hint_intervals == "all":
      return list(intervals)
    return [] if interval is None else [interval]

  def _where(self, feats: Mapping[str, np.ndarray], named) -> Optional[tuple]:
    """Each named run's region from the tower's patches (`tower_patches` [T, N, D] on the
    model's `timestamps`), or None without hint_regions. A run the patches cannot place
    (no frame inside it, or none outside) gets None."""
    if not self.hint_regions or not named:
      return None
    if "tower_patches" not in feats or "timestamps" not in feats:
      raise InputError("--config.data.hint_regions",
                       "needs the features' tower_patches and timestamps")
    found = [event_region.event_region(feats["tower_patches"], feats["timestamps"], run)
             for run in named]
    return tuple(None if i is None else regions.REGIONS[i] for i in found)

  def hint_fn(self, classes: Sequence[str], max_cached: int = 1 << 16):
    """A data-pipeline hint function `(video_id, feats, jitter=0, rng=None, events=None) -> hint
    text`; with `jitter` > 0 the named intervals are those of `tetg.jittered`; with `events` (a
    training item's annotated events) the regions and types are theirs (`_labelled`). The
    classifier runs once per video: its view is kept by the video's id and a digest of its
    class embeddings and timestamps (an epoch reads each video again; a cut frame of it has
    other features), at most `max_cached` views (then the memo starts afresh)."""
    classes = tuple(classes)
    views: dict = {}

    def cached_view(video_id, feats):
      digest = hashlib.blake2b(digest_size=16)
      for key, value in zip(("cls", "timestamps"), features.tetg_inputs(feats)):
        value = np.ascontiguousarray(value)
        digest.update(f"{key}:{value.dtype}:{value.shape}".encode())
        digest.update(value.tobytes())
      key = (video_id, digest.digest())
      view = views.get(key)
      if view is None:
        view = self.view(feats, classes)
        if len(views) >= max_cached:
          views.clear()
        views[key] = view
      return view

    def hint(video_id, feats, jitter: float = 0.0, rng=None, events=None):
      view = cached_view(video_id, feats)
      named = self._named(view.intervals, view.interval)
      where, kinds = view.where, view.types
      if events is not None:
        where, kinds = (_labelled(named, view.where, events, "region"),
                        _labelled(named, view.types, events, "label"))
      if (jitter <= 0 or not view.intervals) and (where, kinds) == (view.where, view.types):
        return view.hint
      if jitter > 0:
        spacing = tetg.frame_spacing(view.timestamps)
        named = [tetg.jittered(i, jitter * spacing, rng) for i in named]
      # the regions and types of the runs TETG found
      return conversation.hint_text(named, classes, where, kinds)
    return hint


def _labelled(named, said: Optional[tuple], events, key: str) -> Optional[tuple]:
  """data.train_hint_labels (training only): each named run's `key` ("region" or "label") is
  that of the annotated event it overlaps (or touches) most (`events`: [{"start", "end",
  "region", "label"}]), so the training hint says it right; a run that meets no event with one
  (a false alarm) keeps what TETG `said`. None (not said) stays None."""
  if said is None:
    return None
  out = []
  for run, own in zip(named, said):
    overlaps = [(min(run[1], e["end"]) - max(run[0], e["start"]), e[key])
                for e in events if e.get(key) is not None]
    best = max(overlaps, default=(-1.0, None), key=lambda o: o[0])
    out.append(best[1] if best[0] >= 0 else own)   # touching counts (a one-frame run)
  return tuple(out)


def save_tetg(path: str, params: dict, config: tetg.TETGConfig,
              types: Optional[TypeHead] = None) -> None:
  """Writes a classifier as a params directory (orbax params + `vaujax.json`); with a type
  head, both in one tree ({"detector", "types"}) and its widths and classes in the metadata
  (a directory without one is read as before)."""
  meta = {"kind": KIND, "config": dataclasses.asdict(config)}
  if types is not None:
    meta["types"] = {"hidden": list(types.hidden), "classes": list(types.classes)}
    params = {"detector": params, "types": types.params}
  params_io.write_params_dir(path, params, meta)


def load_tetg(path: str) -> TrainedTETG:
  params, meta = params_io.read_params_dir(path)
  if meta.get("kind") != KIND:
    raise InputError(path, f"not a TETG classifier directory (kind={meta.get('kind')!r})")
  cfg = dict(meta["config"])
  cfg["hidden"] = tuple(cfg["hidden"])
  types = None
  if meta.get("types") is not None:
    head = meta["types"]
    if not isinstance(head, dict) or not isinstance(params, dict) or \
        set(params) != {"detector", "types"}:
      raise InputError(path, f"bad type head in {params_io.METADATA} (needs 'hidden' and "
                       "'classes', and params 'detector' and 'types')")
    try:
      types = TypeHead(params["types"], tuple(int(w) for w in head["hidden"]),
                       tuple(str(c) for c in head["classes"]))
    except (KeyError, TypeError, ValueError) as e:
      raise InputError(path, f"bad type head in {params_io.METADATA} ({e})") from e
    params = params["detector"]
  try:
    return TrainedTETG(params, tetg.TETGConfig(**cfg), types=types)
  except TypeError as e:
    raise InputError(path, f"bad TETG config in {params_io.METADATA} ({e})") from e
