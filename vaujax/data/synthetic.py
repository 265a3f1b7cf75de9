"""A synthetic anomaly-video dataset with known ground truth (the default for tests and the demo).

Surveillance-like scenes: a static background (road, buildings), sensor noise and normal traffic
(small objects moving slowly along straight lines). Some videos contain one anomaly that is
spatially small and temporally sparse, at a known interval and location:

  Explosion      a bright yellow-white disk that expands fast, then fades
  Fighting       two magenta figures that collide again and again
  RoadAccidents  two fast cars that meet head-on and stop, with a brief flash
  Stealing       a green object is picked up by a figure in dark red and carried off (not in
                 black: black pedestrians are part of the normal traffic)
  Arson          a flickering orange flame that grows slowly

Written as real video files plus annotations in the UCA format (timestamped sentences) and a
labels file with classes, anomaly intervals and locations, so every builder runs on it exactly
as on UCF-Crime. Seeded and reproducible.

  vaujax synthetic --out DIR [--num_videos 40 --seconds 12 --fps 4]
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from vaujax.data import video as video_io

CLASSES = ("Explosion", "Fighting", "RoadAccidents", "Stealing", "Arson")
SENTENCES = {
    "Explosion": "A sudden explosion flashes near the {where}.",
    "Fighting": "Two people fight each other near the {where}.",
    "RoadAccidents": "Two cars crash into each other near the {where}.",
    "Stealing": "A person takes the green package near the {where} and runs away.",
    "Arson": "A fire is set and spreads near the {where}.",
}
NORMAL_SENTENCE = "A {color} vehicle moves slowly from the {start} to the {end}."


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  num_videos: int = 40
  seconds: float = 12.0
  fps: float = 4.0
  size: int = 112                     # square frames, multiple of 16 for h264
  normal_fraction: float = 0.3
  min_event_s: float = 2.0
  max_event_s: float = 4.0
  seed: int = 0
  classes: tuple[str, ...] = CLASSES
  anomaly_scale: float = 1.0          # size of the anomalies (1 = a few patches at 112 px)


@dataclasses.dataclass(frozen=True)
class VideoTruth:
  video_id: str
  label: str
  interval: Optional[tuple[float, float]]   # seconds, inclusive
  location: Optional[tuple[int, int]]       # (x, y) pixel centre of the anomaly
  sentences: list
  timestamps: list


def _where(x, y, size):
  vert = "top" if y < size / 3 else "bottom" if y > 2 * size / 3 else "middle"
  horiz = "left" if x < size / 3 else "right" if x > 2 * size / 3 else "centre"
  return f"{vert} {horiz} of the scene"


def _background(rng, size):
  yy, xx = np.mgrid[0:size, 0:size]
  bg = np.stack([60 + 40 * yy / size, 70 + 30 * xx / size, 80 + 20 * yy / size], -1)
  bg[size // 2 - 10:size // 2 + 10] = (90, 90, 95)                         # a road
  for _ in range(4):                                                        # buildings
    x0, y0 = rng.randint(0, size - 24, 2)
    w, h = rng.randint(10, 24, 2)
    if abs(y0 + h / 2 - size / 2) > 18:
      bg[y0:y0 + h, x0:x0 + w] = rng.randint(40, 140, 3)
  return bg


def _disk(frame, x, y, r, color, alpha=1.0):
  size = frame.shape[0]
  yy, xx = np.ogrid[0:size, 0:size]
  inside = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
  frame[inside] = (1 - alpha) * frame[inside] + alpha * np.asarray(color, np.float64)


def _box(frame, x, y, half, color):
  size = frame.shape[0]
  x0, x1 = int(max(x - half, 0)), int(min(x + half + 1, size))
  y0, y1 = int(max(y - half, 0)), int(min(y + half + 1, size))
  if x0 < x1 and y0 < y1:
    frame[y0:y1, x0:x1] = color


def _draw_anomaly(frame, label, u, x, y, t_since, s=1.0):
  """u in [0, 1]: progress through the anomaly interval; s scales sizes and distances."""
  if label == "Explosion":
    r = s * (3 + 11 * min(u * 2.5, 1.0))
    _disk(frame, x, y, r, (255, 240, 160), alpha=max(0.35, 1.0 - 0.6 * u))
  elif label == "Fighting":
    gap = s * (2 + 5 * abs(np.sin(t_since * 6.0)))
    _box(frame, x - gap, y, 3 * s, (200, 30, 160))
    _box(frame, x + gap, y + s * np.sin(t_since * 9.0), 3 * s, (230, 40, 190))
  elif label == "RoadAccidents":
    d = s * 24 * max(0.0, 1.0 - u * 3.0)
    _box(frame, x - 4 * s - d, y, 4 * s, (30, 60, 230))
    _box(frame, x + 4 * s + d, y, 4 * s, (230, 200, 20))
    if u * 3.0 >= 1.0 and u < 0.6:
      _disk(frame, x, y, 6 * s, (255, 255, 255), alpha=0.7)
  elif label == "Stealing":
    carry = s * 20 * u
    _box(frame, x + carry, y - 3 * s, 4 * s, (150, 20, 30))    # the thief, in dark red
    _box(frame, x + carry, y - 8 * s, 2 * s, (60, 40, 30))     # their head
    _box(frame, x + carry + 3 * s, y + 2 * s, 2 * s, (40, 220, 60))
  elif label == "Arson":
    r = s * (2 + 7 * u + 1.5 * np.sin(t_since * 11.0))
    _disk(frame, x, y, max(r, 1.5 * s), (255, 110, 0), alpha=0.9)
    _disk(frame, x, y - 2 * s, max(r * 0.5, s), (255, 200, 40), alpha=0.9)
  else:
    raise ValueError(f"no renderer for class {label!r}")


def render_video(cfg: SyntheticConfig, index: int, label: str) -> tuple[np.ndarray, VideoTruth]:
  """uint8 frames [T, S, S, 3] and the ground truth of one video."""
  rng = np.random.RandomState(cfg.seed * 100_003 + index)
  size, n = cfg.size, int(round(cfg.seconds * cfg.fps))
  times = np.arange(n) / cfg.fps
  bg = _background(rng, size)
  movers = []
  sentences, stamps = [], []
  colors = {"gray": (150, 150, 150), "white": (220, 220, 220), "black": (20, 20, 20)}
  for _ in range(rng.randint(1, 3)):
    name = list(colors)[rng.randint(len(colors))]
    lane = size / 2 + rng.uniform(-6, 6)
    forward = rng.rand() < 0.5
    start_s = rng.uniform(0, cfg.seconds / 3)
    dur = rng.uniform(cfg.seconds / 2, cfg.seconds - start_s)
    movers.append((colors[name], lane, forward, start_s, dur))
    sentences.append(NORMAL_SENTENCE.format(color=name, start="left" if forward else "right",
                                            end="right" if forward else "left"))
    stamps.append([round(start_s, 1), round(min(start_s + dur, cfg.seconds), 1)])
  interval = location = None
  if label != "Normal":
    length = rng.uniform(cfg.min_event_s, cfg.max_event_s)
    start = rng.uniform(1.0, cfg.seconds - length - 1.0)
    interval = (round(start, 1), round(start + length, 1))
    margin = 22
    location = (int(rng.randint(margin, size - margin)), int(rng.randint(margin, size - margin)))
    sentences.append(SENTENCES[label].format(where=_where(*location, size)))
    stamps.append(list(interval))
  frames = np.empty((n, size, size, 3), np.uint8)
  for i, t in enumerate(times):
    frame = bg.copy()
    for color, lane, forward, start_s, dur in movers:
      if start_s <= t <= start_s + dur:
        p = (t - start_s) / dur
        x = (p if forward else 1 - p) * (size + 10) - 5
        _box(frame, x, lane, 3, color)
    if label == "Stealing" and t < interval[0]:  # the package waits before it is taken
      s = cfg.anomaly_scale
      _box(frame, location[0] + 3 * s, location[1] + 2 * s, 2 * s, (40, 220, 60))
    if interval and interval[0] <= t <= interval[1]:
      u = (t - interval[0]) / max(interval[1] - interval[0], 1e-6)
      _draw_anomaly(frame, label, u, location[0], location[1], t - interval[0],
                    cfg.anomaly_scale)
    frame += rng.normal(0, 3.0, frame.shape)
    frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
  order = np.argsort([s[0] for s in stamps], kind="stable")
  video_id = (f"Normal_Videos_{index:03d}_x264" if label == "Normal"
              else f"{label}{index:03d}_x264")
  truth = VideoTruth(video_id, label, interval, location, [sentences[i] for i in order],
                     [stamps[i] for i in order])
  return frames, truth


def video_labels(cfg: SyntheticConfig) -> list[str]:
  """Class of every video: a fixed share of Normal, the rest cycling through the classes."""
  rng = np.random.RandomState(cfg.seed)
  labels = []
  for i in range(cfg.num_videos):
    labels.append("Normal" if rng.rand() < cfg.normal_fraction
                  else cfg.classes[i % len(cfg.classes)])
  return labels


def generate(out_dir: str, cfg: SyntheticConfig = SyntheticConfig()) -> dict:
  """Writes `videos/*.mp4`, `uca.json` (UCA format) and `labels.json`; returns the labels."""
  os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
  uca, labels = {}, {}
  for index, label in enumerate(video_labels(cfg)):
    frames, truth = render_video(cfg, index, label)
    path = os.path.join(out_dir, "videos", truth.video_id + ".mp4")
    if not os.path.exists(path):
      video_io.write_video(path, frames, cfg.fps)
    uca[truth.video_id] = {"duration": cfg.seconds, "timestamps": truth.timestamps,
                           "sentences": truth.sentences}
    labels[truth.video_id] = {"label": label,
                              "anomaly_intervals": [list(truth.interval)] if truth.interval else [],
                              "location": list(truth.location) if truth.location else None}
  for name, obj in (("uca.json", uca), ("labels.json", labels)):
    with open(os.path.join(out_dir, name + ".tmp"), "w") as f:
      json.dump(obj, f, indent=1)
    os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
  return labels


if __name__ == "__main__":  # `python -m vaujax.data.synthetic` keeps working
  from vaujax.app import synthetic
  synthetic.run()
