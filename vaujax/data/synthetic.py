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

Every video can differ from the next (issue 26): its duration is drawn from
[`seconds`, `max_seconds`], its height from [`size`, `max_size`] and its aspect (width / height)
from `aspects`; the anomaly lasts a drawn fraction of the video (`event_fraction`) and starts
anywhere that leaves it whole. Drawn sizes scale with the frame (an anomaly covers the same share
of the frame at 96 px as at 224 px). `look` picks the scene: "ucf" (dusk road, the default) or
"xd" (a night scene with another palette, layout and noise, for the cross-domain benchmark);
the anomalies themselves look the same in both. Wider-than-tall frames keep their anomalies in
the centre square, the part the towers' centre crop sees (as CLIP/LLaMA-VID preprocess frames).

Written as real video files plus annotations in the UCA format (timestamped sentences) and a
labels file with classes, anomaly intervals, locations, durations and sizes, so every builder runs
on it exactly as on UCF-Crime. Seeded and reproducible; with the variation options left at their
defaults a video is bit-identical to the fixed-size generator's.

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
  # Variation per video (None / (1.0,): every video as `seconds` x `size` square).
  max_seconds: Optional[float] = None   # durations uniform in [seconds, max_seconds]
  max_size: Optional[int] = None        # heights uniform in [size, max_size] (even)
  aspects: tuple[float, ...] = (1.0,)   # width / height, one drawn per video
  event_fraction: Optional[tuple[float, float]] = None  # anomaly length / duration, uniform
  look: str = "ucf"                     # "ucf" | "xd": the scene's palette and layout

  def __post_init__(self):
    if self.look not in LOOKS:
      raise ValueError(f"unknown look {self.look!r} (one of {sorted(LOOKS)})")
    if self.max_seconds is not None and self.max_seconds < self.seconds:
      raise ValueError(f"max_seconds {self.max_seconds} < seconds {self.seconds}")
    if self.max_size is not None and self.max_size < self.size:
      raise ValueError(f"max_size {self.max_size} < size {self.size}")
    if not self.aspects or min(self.aspects) <= 0:
      raise ValueError(f"aspects must be positive ratios, got {self.aspects}")
    if self.event_fraction is not None and not 0 < self.event_fraction[0] <= \
        self.event_fraction[1] <= 0.8:
      raise ValueError(f"event_fraction must be 0 < lo <= hi <= 0.8, got {self.event_fraction}")


@dataclasses.dataclass(frozen=True)
class VideoShape:
  """One video's drawn duration and frame size."""
  seconds: float
  height: int
  width: int


def video_shape(cfg: SyntheticConfig, index: int) -> VideoShape:
  """The duration and size of video `index` (its own seeded stream, so the scene's random
  stream is the same as without variation)."""
  rng = np.random.RandomState([cfg.seed, index, 26])
  seconds = cfg.seconds
  if cfg.max_seconds is not None and cfg.max_seconds > cfg.seconds:
    seconds = round(float(rng.uniform(cfg.seconds, cfg.max_seconds)), 1)
  height = cfg.size
  if cfg.max_size is not None and cfg.max_size > cfg.size:
    height = int(rng.randint(cfg.size // 2, cfg.max_size // 2 + 1)) * 2
  aspect = cfg.aspects[rng.randint(len(cfg.aspects))] if len(cfg.aspects) > 1 else cfg.aspects[0]
  width = max(2, int(round(height * aspect / 2)) * 2)
  return VideoShape(seconds, height, width)


@dataclasses.dataclass(frozen=True)
class VideoTruth:
  video_id: str
  label: str
  interval: Optional[tuple[float, float]]   # seconds, inclusive
  location: Optional[tuple[int, int]]       # (x, y) pixel centre of the anomaly
  sentences: list
  timestamps: list
  shape: VideoShape = None


# Scene palettes: background gradient (base + slope per channel along y and x), road colour and
# row, building colours, sensor noise, traffic colours.
LOOKS = {
    "ucf": dict(base=(60, 70, 80), slope_y=(40, 0, 20), slope_x=(0, 30, 0), road=(90, 90, 95),
                road_row=0.5, buildings=(40, 140), noise=3.0,
                traffic={"gray": (150, 150, 150), "white": (220, 220, 220),
                         "black": (20, 20, 20)}),
    "xd": dict(base=(18, 28, 46), slope_y=(10, 30, 0), slope_x=(25, 0, 35), road=(55, 52, 48),
               road_row=0.68, buildings=(70, 110), noise=5.0,
               traffic={"silver": (175, 180, 190), "blue": (60, 90, 170),
                        "brown": (110, 75, 40)}),
}


def _where(x, y, width, height=None):
  height = width if height is None else height
  vert = "top" if y < height / 3 else "bottom" if y > 2 * height / 3 else "middle"
  horiz = "left" if x < width / 3 else "right" if x > 2 * width / 3 else "centre"
  return f"{vert} {horiz} of the scene"


def _background(rng, height, width, look="ucf"):
  """The static scene [H, W, 3] float64: a gradient, a road and buildings. The random draws are
  the square generator's (at 112 px they give the same scene); sizes scale with the frame."""
  lk = LOOKS[look]
  u = min(height, width) / 112
  yy, xx = np.mgrid[0:height, 0:width]
  bg = np.stack([lk["base"][c] + lk["slope_y"][c] * yy / height + lk["slope_x"][c] * xx / width
                 for c in range(3)], -1)
  road = int(round(height * lk["road_row"]))
  half_road = int(round(10 * u))
  bg[road - half_road:road + half_road] = lk["road"]                         # a road
  lo, hi = lk["buildings"]
  for _ in range(4):                                                        # buildings
    x0, y0 = rng.randint(0, 112 - 24, 2)
    w, h = rng.randint(10, 24, 2)
    x0, y0 = int(x0 * width / 112), int(y0 * height / 112)
    w, h = int(round(w * u)), int(round(h * u))
    if abs(y0 + h / 2 - road) > 18 * u:
      bg[y0:y0 + h, x0:x0 + w] = rng.randint(lo, hi, 3)
  return bg


def _disk(frame, x, y, r, color, alpha=1.0):
  height, width = frame.shape[:2]
  yy, xx = np.ogrid[0:height, 0:width]
  inside = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
  frame[inside] = (1 - alpha) * frame[inside] + alpha * np.asarray(color, np.float64)


def _box(frame, x, y, half, color):
  height, width = frame.shape[:2]
  x0, x1 = int(max(x - half, 0)), int(min(x + half + 1, width))
  y0, y1 = int(max(y - half, 0)), int(min(y + half + 1, height))
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


def _event_interval(rng, cfg: SyntheticConfig, seconds: float) -> tuple[float, float]:
  """The anomaly's [start, end] (seconds, 0.1 s steps): whole inside the video, at least a
  little away from both ends."""
  if cfg.event_fraction is None:
    length = min(rng.uniform(cfg.min_event_s, cfg.max_event_s), 0.8 * seconds)
  else:
    length = rng.uniform(*cfg.event_fraction) * seconds
    length = min(max(length, cfg.min_event_s), cfg.max_event_s, 0.8 * seconds)
  margin = min(1.0, (seconds - length) / 4)
  start = rng.uniform(margin, seconds - length - margin)
  return round(start, 1), round(start + length, 1)


def render_video(cfg: SyntheticConfig, index: int, label: str) -> tuple[np.ndarray, VideoTruth]:
  """uint8 frames [T, H, W, 3] and the ground truth of one video."""
  rng = np.random.RandomState(cfg.seed * 100_003 + index)
  shape = video_shape(cfg, index)
  height, width, seconds = shape.height, shape.width, shape.seconds
  side = min(height, width)
  u = side / 112                       # scene sizes are drawn for 112 px and scaled
  n = int(round(seconds * cfg.fps))
  times = np.arange(n) / cfg.fps
  lk = LOOKS[cfg.look]
  bg = _background(rng, height, width, cfg.look)
  road = height * lk["road_row"]
  movers = []
  sentences, stamps = [], []
  colors = lk["traffic"]
  for _ in range(rng.randint(1, 3)):
    name = list(colors)[rng.randint(len(colors))]
    lane = road + rng.uniform(-6, 6) * u
    forward = rng.rand() < 0.5
    start_s = rng.uniform(0, seconds / 3)
    dur = rng.uniform(seconds / 2, seconds - start_s)
    movers.append((colors[name], lane, forward, start_s, dur))
    sentences.append(NORMAL_SENTENCE.format(color=name, start="left" if forward else "right",
                                            end="right" if forward else "left"))
    stamps.append([round(start_s, 1), round(min(start_s + dur, seconds), 1)])
  interval = location = None
  if label != "Normal":
    interval = _event_interval(rng, cfg, seconds)
    margin = int(round(22 * u))
    x0, y0 = (width - side) // 2, (height - side) // 2      # the centre square
    location = (x0 + int(rng.randint(margin, side - margin)),
                y0 + int(rng.randint(margin, side - margin)))
    sentences.append(SENTENCES[label].format(where=_where(*location, width, height)))
    stamps.append(list(interval))
  s = cfg.anomaly_scale * u
  frames = np.empty((n, height, width, 3), np.uint8)
  for i, t in enumerate(times):
    frame = bg.copy()
    for color, lane, forward, start_s, dur in movers:
      if start_s <= t <= start_s + dur:
        p = (t - start_s) / dur
        x = (p if forward else 1 - p) * (width + 10 * u) - 5 * u
        _box(frame, x, lane, 3 * u, color)
    if label == "Stealing" and t < interval[0]:  # the package waits before it is taken
      _box(frame, location[0] + 3 * s, location[1] + 2 * s, 2 * s, (40, 220, 60))
    if interval and interval[0] <= t <= interval[1]:
      p = (t - interval[0]) / max(interval[1] - interval[0], 1e-6)
      _draw_anomaly(frame, label, p, location[0], location[1], t - interval[0], s)
    frame += rng.normal(0, lk["noise"], frame.shape)
    frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
  order = np.argsort([st[0] for st in stamps], kind="stable")
  video_id = (f"Normal_Videos_{index:03d}_x264" if label == "Normal"
              else f"{label}{index:03d}_x264")
  truth = VideoTruth(video_id, label, interval, location, [sentences[i] for i in order],
                     [stamps[i] for i in order], shape)
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
    uca[truth.video_id] = {"duration": truth.shape.seconds, "timestamps": truth.timestamps,
                           "sentences": truth.sentences}
    labels[truth.video_id] = {"label": label,
                              "anomaly_intervals": [list(truth.interval)] if truth.interval else [],
                              "location": list(truth.location) if truth.location else None,
                              "duration": truth.shape.seconds,
                              "size": [truth.shape.width, truth.shape.height]}
  for name, obj in (("uca.json", uca), ("labels.json", labels)):
    with open(os.path.join(out_dir, name + ".tmp"), "w") as f:
      json.dump(obj, f, indent=1)
    os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
  return labels


if __name__ == "__main__":  # `python -m vaujax.data.synthetic` keeps working
  from vaujax.app import synthetic
  synthetic.run()
