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

Several anomalies per video (issue 29): with `max_events` > 1, a `multi_fraction` share of the
anomalous videos gets 2..`max_events` events of different classes, at different times (at least
1 s apart, each whole inside the video) and in different regions of the 3x3 grid
(`regions.py`). The video keeps its first event's class (its id, e.g. `Fighting003_x264`).
Every event's region is `regions.region_of` its pixel centre; its sentence names it with
`regions.region_text` ("... near the top left of the scene.").

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

from vaujax.data import regions
from vaujax.data import video as video_io
from vaujax.data.annotations import Event

CLASSES = ("Explosion", "Fighting", "RoadAccidents", "Stealing", "Arson")
SENTENCES = {        # {where}: regions.region_text, e.g. "the top left of the scene"
    "Explosion": "A sudden explosion flashes near {where}.",
    "Fighting": "Two people fight each other near {where}.",
    "RoadAccidents": "Two cars crash into each other near {where}.",
    "Stealing": "A person takes the green package near {where} and runs away.",
    "Arson": "A fire is set and spreads near {where}.",
}
EVENT_GAP_S = 1.0        # several events: the least time between one's end and the next's start
EVENT_MARGIN_S = 0.5     # ... and between the video's ends and the first / last event
MIN_MULTI_EVENT_S = 1.0  # ... and the shortest event (fewer events where they do not fit)
EVENTS_FILL = 0.7        # ... and the most of the room they take together (the rest places them)
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
  # Several anomalies per video (the defaults keep every video as before: one event).
  max_events: int = 1                   # most events in one video (2..max_events when several)
  multi_fraction: float = 0.0           # share of anomalous videos with several events
  spread_regions: bool = False          # one-event videos: region uniform over the nine (else
                                        # the pixel centre uniform, so mostly the middle ones)

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
    if not 1 <= self.max_events <= min(len(self.classes), len(regions.REGIONS)):
      raise ValueError(f"max_events must be 1 to {min(len(self.classes), len(regions.REGIONS))} "
                       f"(events differ in class and region), got {self.max_events}")
    if not 0.0 <= self.multi_fraction <= 1.0:
      raise ValueError(f"multi_fraction must be in [0, 1], got {self.multi_fraction}")


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
  label: str                                # the video's class: its first event's
  interval: Optional[tuple[float, float]]   # seconds, inclusive (the first event's)
  location: Optional[tuple[int, int]]       # (x, y) pixel centre of the (first) anomaly
  sentences: list
  timestamps: list
  shape: VideoShape = None
  events: tuple[Event, ...] = ()            # every event by start, with its region
  locations: tuple[tuple[int, int], ...] = ()  # each event's (x, y) pixel centre


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


def _event_length(rng, cfg: SyntheticConfig, seconds: float) -> float:
  """One anomaly's length alone in the video: `event_fraction` of it (or min..max_event_s),
  at least min_event_s, at most max_event_s and 0.8 of the video."""
  if cfg.event_fraction is None:
    return min(rng.uniform(cfg.min_event_s, cfg.max_event_s), 0.8 * seconds)
  length = rng.uniform(*cfg.event_fraction) * seconds
  return min(max(length, cfg.min_event_s), cfg.max_event_s, 0.8 * seconds)


def _event_interval(rng, cfg: SyntheticConfig, seconds: float) -> tuple[float, float]:
  """The anomaly's [start, end] (seconds, 0.1 s steps): whole inside the video, at least a
  little away from both ends."""
  length = _event_length(rng, cfg, seconds)
  margin = min(1.0, (seconds - length) / 4)
  start = rng.uniform(margin, seconds - length - margin)
  return round(start, 1), round(start + length, 1)


def _event_intervals(rng, cfg: SyntheticConfig, seconds: float,
                     n: int) -> Optional[list[tuple[float, float]]]:
  """`n` non-overlapping [start, end] in time order (0.1 s steps), or None when they do not fit.

  The rule: the room is the video less EVENT_MARGIN_S at both ends and EVENT_GAP_S between
  events. Each event is drawn as long as a lone event would be (`_event_length`); when together
  they would take more than EVENTS_FILL of the room, all are scaled down together to that
  share (the rest of the room is split at random before, between and after them, so where
  they happen varies). Each is at least min_event_s where n of those fit, else an equal share
  of the room, and never under MIN_MULTI_EVENT_S (None, drawing nothing, when n of those do
  not fit: the video then gets fewer events). E.g. with the demo's settings (event_fraction
  0.25-0.45, min_event_s 1.5) a 4 s video has 2 s of room: two 1.0 s events at 0.5-1.5 and
  2.5-3.5 s; an 8 s one two events of about 2 s (4.2 s together) in 6 s; a 16 s one two of
  4-7.2 s each, at most 9.8 s together, in 14 s.
  """
  tenth = lambda s: int(round(s * 10))   # noqa: E731  work in 0.1 s steps: exact gaps
  margin, gap, shortest = tenth(EVENT_MARGIN_S), tenth(EVENT_GAP_S), tenth(MIN_MULTI_EVENT_S)
  room = tenth(seconds) - 2 * margin - (n - 1) * gap
  if room < n * shortest:
    return None
  floor = max(shortest, min(tenth(cfg.min_event_s), room // n))
  lengths = [int(_event_length(rng, cfg, seconds) * 10) for _ in range(n)]
  cap = int(room * EVENTS_FILL)
  if sum(lengths) > cap:
    lengths = [int(length * cap / sum(lengths)) for length in lengths]
  lengths = [max(floor, length) for length in lengths]
  if sum(lengths) > room:      # the floors overfill it: equal shares (at least the floor)
    lengths = [room // n] * n
  cuts = np.sort(rng.randint(0, room - sum(lengths) + 1, n))   # slack before each event
  out, start = [], margin
  for i, length in enumerate(lengths):
    start += int(cuts[i] - (cuts[i - 1] if i else 0))
    out.append((start / 10, (start + length) / 10))
    start += length + gap
  return out


def _location(rng, width: int, height: int, margin: int, cell: Optional[int] = None):
  """An event's (x, y) pixel centre inside the centre square, `margin` px from its edges:
  uniform over it, or uniform inside grid cell `cell` (a REGIONS index)."""
  side = min(height, width)
  x0, y0 = (width - side) // 2, (height - side) // 2      # the centre square
  if cell is None:
    return (x0 + int(rng.randint(margin, side - margin)),
            y0 + int(rng.randint(margin, side - margin)))

  def coordinate(k):    # pixels whose third of the square is k, inside the margins
    lo = max(margin, -(-k * side // 3))
    hi = min(side - margin, -(-(k + 1) * side // 3))
    return int(rng.randint(lo, hi))
  row, column = divmod(int(cell), 3)
  return x0 + coordinate(column), y0 + coordinate(row)


def _event_count(cfg: SyntheticConfig, ev_rng) -> int:
  """How many events an anomalous video gets (its own stream: one-event videos stay as they
  were)."""
  if cfg.max_events < 2 or cfg.multi_fraction <= 0 or ev_rng.rand() >= cfg.multi_fraction:
    return 1
  return int(ev_rng.randint(2, cfg.max_events + 1))


def _place_events(rng, cfg: SyntheticConfig, index: int, label: str,
                  shape: VideoShape) -> list[tuple[str, tuple[float, float], tuple[int, int]]]:
  """[(class, interval, location)] of an anomalous video, by start; the first is `label`."""
  margin = int(round(22 * (min(shape.height, shape.width) / 112)))   # as u * 22 in render_video
  ev_rng = np.random.RandomState([cfg.seed, index, 29])
  intervals = None
  for n in range(_event_count(cfg, ev_rng), 1, -1):     # as many as fit (None draws nothing)
    intervals = _event_intervals(ev_rng, cfg, shape.seconds, n)
    if intervals is not None:
      break
  if intervals is None:     # one event: the draws of the one-event generator, in its order
    interval = _event_interval(rng, cfg, shape.seconds)
    cell = int(rng.randint(len(regions.REGIONS))) if cfg.spread_regions else None
    return [(label, interval, _location(rng, shape.width, shape.height, margin, cell))]
  others = [c for c in cfg.classes if c != label]
  n = len(intervals)
  labels = [label] + [others[i] for i in ev_rng.choice(len(others), n - 1, replace=False)]
  cells = ev_rng.choice(len(regions.REGIONS), n, replace=False)
  return [(c, interval, _location(ev_rng, shape.width, shape.height, margin, cell))
          for c, interval, cell in zip(labels, intervals, cells)]


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
  placed = _place_events(rng, cfg, index, label, shape) if label != "Normal" else []
  events = []
  for event_label, interval, location in placed:
    region = regions.region_of(*location, width, height)
    events.append(Event(event_label, *interval, region))
    sentences.append(SENTENCES[event_label].format(where=regions.region_text(region)))
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
    for event_label, interval, location in placed:
      if event_label == "Stealing" and t < interval[0]:  # the package waits to be taken
        _box(frame, location[0] + 3 * s, location[1] + 2 * s, 2 * s, (40, 220, 60))
      if interval[0] <= t <= interval[1]:
        p = (t - interval[0]) / max(interval[1] - interval[0], 1e-6)
        _draw_anomaly(frame, event_label, p, location[0], location[1], t - interval[0], s)
    frame += rng.normal(0, lk["noise"], frame.shape)
    frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
  order = np.argsort([st[0] for st in stamps], kind="stable")
  video_id = (f"Normal_Videos_{index:03d}_x264" if label == "Normal"
              else f"{label}{index:03d}_x264")
  first = placed[0] if placed else (None, None, None)
  truth = VideoTruth(video_id, label, first[1], first[2], [sentences[i] for i in order],
                     [stamps[i] for i in order], shape, tuple(events),
                     tuple(location for _, _, location in placed))
  return frames, truth


def labels_entry(truth: VideoTruth) -> dict:
  """The video's labels.json entry: class, every event's interval, the first one's location,
  duration, size and the events (class, interval, region, location), by start."""
  return {"label": truth.label,
          "anomaly_intervals": [[e.start, e.end] for e in truth.events],
          "location": list(truth.location) if truth.location else None,
          "duration": truth.shape.seconds,
          "size": [truth.shape.width, truth.shape.height],
          "events": [{"label": e.label, "interval": [e.start, e.end], "region": e.region,
                      "location": list(xy)} for e, xy in zip(truth.events, truth.locations)]}


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
    labels[truth.video_id] = labels_entry(truth)
  for name, obj in (("uca.json", uca), ("labels.json", labels)):
    with open(os.path.join(out_dir, name + ".tmp"), "w") as f:
      json.dump(obj, f, indent=1)
    os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))
  return labels


if __name__ == "__main__":  # `python -m vaujax.data.synthetic` keeps working
  from vaujax.app import synthetic
  synthetic.run()
