"""Text-only drills in reading TETG's hint (the demo's `--hint_drills`).

VA-GPT grounds its answers in time through TETG's interval in the prompt. The demo's probes
found the LLM, not TETG, short of that: TETG's interval has the truth as its nearest option for
every in-range interval question, yet the 2-layer model answers 68-74% of them, fewer on
videos longer or shorter than it trained on (BUILD.md). A drill makes reading the hint the
whole task: an invented video that exists only as text, the hint VA-GPT's prompt would carry
for it, and the benchmark's MC questions about it, whose answer is the option nearest to the
hint. Drills are text-only instruction items (no `video`, no placeholder: LLaVA's text
conversations, `pipeline.is_text_only`), so they cost no feature file.

Each drill draws a duration, one event (or, with typed hints, two of different classes) with
its class, interval and region, then:
  - the hint's interval as TETG would give it: the event's first and last frame at the run's
    sampling (`video.sample_indices`), each end a frame off with some chance, then moved by up
    to `hint_jitter` frame spacings as training hints are (`tetg.jittered`); redrawn
    until the true option is the one nearest to it (by summed boundary distance);
  - the hint text (`conversation.hint_text`: the run's class sentence, regions and types when
    the run's hints have them);
  - the MC items of `benchmark_files.multiple_choice` for it that the hint answers: when
    (always), where (with regions), which type and the per-event questions (with types);
  - each as one training conversation: `hint + " " + question, options, instruction` -> the
    true option's text, the human turn of a video item after `conversation.insert_hint` less
    its placeholder.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from vaujax.data import benchmark_files, conversation, regions, video
from vaujax.data.annotations import NORMAL, Event, VideoAnnotation
from vaujax.models import tetg


@dataclasses.dataclass(frozen=True)
class DrillConfig:
  count: int                               # invented videos (each gives 1-5 items)
  classes: tuple[str, ...]                 # the run's anomaly classes (its hint's sentence)
  seconds: tuple[float, float] = (2.0, 48.0)   # durations, drawn log-uniformly
  event_fraction: tuple[float, float] = (0.15, 0.5)   # of the duration ...
  min_event_s: float = 1.0                 # ... at least this long
  src_fps: float = 2.0                     # the videos' frame rate ...
  sample_fps: float = 1.0                  # ... sampled at this rate, at most `frames` frames
                                           # (0: `frames` uniformly)
  frames: int = 12
  min_frames: int = 0                      # with sample_fps: a shorter video gives this many
                                           # frames, faster (data.min_frames)
  edge_error: float = 0.25                 # chance that each end of the hint is a frame off
  hint_jitter: float = 0.5                 # then moved by up to this many frame spacings
  regions: bool = False                    # the hint says where (data.hint_regions)
  types: bool = False                      # the hint names the type (data.hint_types) ...
  multi_fraction: float = 0.0              # ... and this share of drills has two events
  seed: int = 0

  def __post_init__(self):
    anomalies = [c for c in self.classes if c != NORMAL]
    if self.count < 0:
      raise ValueError(f"count must be >= 0, got {self.count}")
    if len(anomalies) < 2:
      raise ValueError(f"drills need at least two anomaly classes, got {self.classes}")
    lo, hi = self.seconds
    if not 0 < lo <= hi or not 0 < self.min_event_s <= lo:
      raise ValueError(f"drill durations {self.seconds} must be positive, at least min_event_s "
                       f"{self.min_event_s}")
    if not 0 < self.event_fraction[0] <= self.event_fraction[1] <= 0.5:
      raise ValueError(f"event_fraction {self.event_fraction} must lie in (0, 0.5]")
    if self.multi_fraction and not self.types:
      raise ValueError("two-event drills need typed hints (types=True): their questions name "
                       "the type, which an untyped hint does not say")


def drill_items(cfg: DrillConfig) -> list[dict]:
  """The drills' text-only training items (ids `drill<k>_...`), deterministic in `cfg`."""
  items = []
  for k in range(cfg.count):
    rng = benchmark_files.seeded_rng(cfg.seed, f"drill{k}")
    drill = _invented_video(cfg, rng, f"drill{k}")
    times = _frame_times(cfg, drill.duration)
    mc = [m for m in benchmark_files.multiple_choice([drill], cfg.classes, seed=cfg.seed)
          if _answerable(cfg, m)]
    for _ in range(50):     # a hint whose nearest option is the truth, for every question
      spans = [_tetg_like(cfg, e.interval, times, rng) for e in drill.events]
      if all(_hint_points_to_truth(m, spans, drill.events) for m in mc):
        break
    else:        # nothing nearer found (a tight event in a few frames): the true intervals
      spans = [e.interval for e in drill.events]
    hint = conversation.hint_text(
        spans, cfg.classes, [e.region for e in drill.events] if cfg.regions else None,
        [e.label for e in drill.events] if cfg.types else None)
    for item in benchmark_files.mc_training_items(mc):
      question = item["conversations"][0]["value"].removeprefix(
          conversation.VIDEO_PLACEHOLDER + "\n")
      items.append({"id": item["id"], "label": item["label"],
                    "conversations": [{"from": "human", "value": f"{hint} {question}"},
                                      item["conversations"][1]]})
  return items


def _invented_video(cfg: DrillConfig, rng, name: str) -> VideoAnnotation:
  lo, hi = cfg.seconds
  duration = round(float(math.exp(rng.uniform(math.log(lo), math.log(hi)))), 1)
  anomalies = [c for c in cfg.classes if c != NORMAL]
  count = 2 if cfg.multi_fraction and rng.uniform() < cfg.multi_fraction else 1
  kinds = [anomalies[i] for i in rng.choice(len(anomalies), count, replace=False)]
  # two events: each in its own half of the video, so they never overlap
  parts = [(0.0, duration)] if count == 1 else [(0.0, duration / 2), (duration / 2, duration)]
  events = []
  for kind, (a, b) in zip(kinds, parts):
    room = b - a
    length = min(room, max(cfg.min_event_s * (room / duration),
                           rng.uniform(*cfg.event_fraction) * duration))
    start = round(a + rng.uniform(0, room - length), 1)
    end = round(min(b, start + length), 1)
    where = regions.REGIONS[rng.randint(len(regions.REGIONS))] if cfg.regions else None
    events.append(Event(kind, start, end, where))
  return VideoAnnotation(name, duration, (), (), kinds[0],
                         tuple(e.interval for e in events), tuple(events))


def _frame_times(cfg: DrillConfig, duration: float) -> np.ndarray:
  """The times of the frames the run would sample from a video this long."""
  n = max(1, int(round(duration * cfg.src_fps)))
  if cfg.sample_fps <= 0:       # a fixed count (data.sample_fps 0)
    return video.sample_indices(n, cfg.src_fps, count=cfg.frames) / cfg.src_fps
  return video.sample_indices(n, cfg.src_fps, fps=cfg.sample_fps, max_frames=cfg.frames,
                              min_frames=cfg.min_frames or None) / cfg.src_fps


def _tetg_like(cfg: DrillConfig, interval, times: np.ndarray, rng) -> tuple[float, float]:
  """An interval as TETG reads it from these frames: the first and last frame inside the event
  (the nearest frame when none is), each a frame off with chance `edge_error`, then jittered
  and rounded to the tenths the hint says."""
  inside = np.nonzero((times >= interval[0]) & (times <= interval[1]))[0]
  if not len(inside):
    inside = np.array([int(np.argmin(np.abs(times - sum(interval) / 2)))])
  first, last = int(inside[0]), int(inside[-1])
  first = min(max(0, first + _off(cfg, rng)), len(times) - 1)
  last = min(max(first, last + _off(cfg, rng)), len(times) - 1)
  spacing = tetg.frame_spacing(times, default=1.0)
  start, end = tetg.jittered((float(times[first]), float(times[last])), cfg.hint_jitter * spacing,
                             rng)
  return float(f"{start:.1f}"), float(f"{end:.1f}")     # as the hint prints them


def _off(cfg: DrillConfig, rng) -> int:
  return int(rng.choice([-1, 1])) if rng.uniform() < cfg.edge_error else 0


def _answerable(cfg: DrillConfig, item: dict) -> bool:
  """Whether the hint says what the MC item asks: when always; where with regions; the type,
  and anything about one of several events, only with types."""
  if item["category"] == "type" or item.get("event_label"):
    return cfg.types
  return item["category"] == "temporal" or (item["category"] == "spatial" and cfg.regions)


def _hint_points_to_truth(item: dict, spans: Sequence, events: Sequence[Event]) -> bool:
  """For an interval question, whether the hint's span of the asked event has the true option
  as its nearest (summed boundary distance, a tie counts as a miss); other questions: True."""
  if item["category"] != "temporal":
    return True
  k = next((i for i, e in enumerate(events) if e.label == item.get("event_label")), 0)
  a, b = spans[k]
  distance = [abs(s - a) + abs(e - b) for s, e in map(_interval_of, item["options"])]
  truth = benchmark_files.LETTERS.index(item["answer"])
  return all(d > distance[truth] for i, d in enumerate(distance) if i != truth)


def _interval_of(option: str) -> tuple[float, float]:
  """"From 1.5 to 4.0 seconds." -> (1.5, 4.0): the inverse of the builder's own wording
  (`benchmark_files._interval_text`); `evaluate.parsing` reads any answer's, but data does not
  import evaluate."""
  words = option.split()
  return float(words[1]), float(words[3])
