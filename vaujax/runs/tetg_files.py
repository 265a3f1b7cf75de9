"""The trained TETG classifier on disk, and what a run does with it: frame scores, the
interval, the prompt hint. One object, so the classifier runs once per video."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np

from vaujax.convert import params_io
from vaujax.data import conversation
from vaujax.errors import InputError
from vaujax.models import tetg

KIND = "tetg"


@dataclasses.dataclass(frozen=True)
class TETGView:
  """What TETG says about one video."""
  scores: np.ndarray                              # [T] P(anomalous) per frame
  interval: Optional[tuple[float, float]]         # seconds, or None
  hint: str                                       # the prompt hint text


@dataclasses.dataclass(frozen=True)
class TrainedTETG:
  """A trained classifier (params + config: threshold, smoothing, extension)."""
  params: dict
  config: tetg.TETGConfig

  def scores(self, class_embeddings: np.ndarray) -> np.ndarray:
    return tetg.frame_probabilities(self.params, self.config, class_embeddings)

  def view(self, feats: Mapping[str, np.ndarray], classes: Sequence[str]) -> TETGView:
    """Scores, interval and hint of one video's features (`dino_cls` [T, D], `timestamps`)."""
    scores = self.scores(feats["dino_cls"])
    interval = tetg.extract_interval(scores, feats["timestamps"], self.config)
    return TETGView(scores, interval, conversation.hint_text(interval, classes))

  def hint_fn(self, classes: Sequence[str]):
    """A data-pipeline hint function `(video_id, feats) -> hint text`."""
    classes = tuple(classes)
    return lambda video_id, feats: self.view(feats, classes).hint


def save_tetg(path: str, params: dict, config: tetg.TETGConfig) -> None:
  """Writes a classifier as a params directory (orbax params + `vaujax.json`)."""
  params_io.write_params_dir(path, params, {"kind": KIND, "config": dataclasses.asdict(config)})


def load_tetg(path: str) -> TrainedTETG:
  params, meta = params_io.read_params_dir(path)
  if meta.get("kind") != KIND:
    raise InputError(path, f"not a TETG classifier directory (kind={meta.get('kind')!r})")
  cfg = dict(meta["config"])
  cfg["hidden"] = tuple(cfg["hidden"])
  try:
    return TrainedTETG(params, tetg.TETGConfig(**cfg))
  except TypeError as e:
    raise InputError(path, f"bad TETG config in {params_io.METADATA} ({e})") from e
