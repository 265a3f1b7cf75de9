"""Annotation formats of the anomaly datasets VA-GPT uses.

- UCA (UCF-Crime Annotation, CVPR'24): `{video_id: {"duration": s, "timestamps": [[s, e], ...],
  "sentences": [...]}}`, seconds; sentences describe every event, normal or not.
- UCF-Crime test temporal ground truth (`Temporal_Anomaly_Annotation_for_Testing_Videos.txt`):
  `Arson011_x264.mp4  Arson  s1 e1 s2 e2` with frame indices, -1 when absent.
- Labels (the synthetic generator's `labels.json`): `{video_id: {"label", "anomaly_intervals",
  ..., "events": [{"label", "interval": [s, e], "region", "location": [x, y]}, ...]}}`; "events"
  (issue 29: several anomalies per video, each with its place) is optional.
- Class names: UCF-Crime's 13 anomaly classes (+ Normal) come from the video-id prefix;
  XD-Violence encodes up to three labels in the file name (`..._label_B4-0-0.mp4`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Optional

from vaujax.data.regions import REGIONS
from vaujax.files import read_json
from vaujax.errors import InputError, require_file

NORMAL = "Normal"
UCF_CRIME_CLASSES = ("Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting",
                     "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing",
                     "Vandalism")
XD_VIOLENCE_LABELS = {"A": NORMAL, "B1": "Fighting", "B2": "Shooting", "B4": "Riot",
                      "B5": "Abuse", "B6": "Car accident", "G": "Explosion"}
XD_VIOLENCE_CLASSES = ("Fighting", "Shooting", "Riot", "Abuse", "Car accident", "Explosion")

__all__ = ["UCF_CRIME_CLASSES", "XD_VIOLENCE_CLASSES", "NORMAL", "Event", "VideoAnnotation",
           "events_of", "with_events", "read_labels", "read_uca", "read_ucf_temporal_gt",
           "ucf_crime_class", "xd_violence_classes"]


@dataclasses.dataclass(frozen=True)
class Event:
  """One anomaly: its class, [start, end] in seconds and where it happens (a
  `regions.REGIONS` name, or None when unknown, as on real UCF-Crime)."""

  label: str
  start: float
  end: float
  region: Optional[str] = None

  @property
  def interval(self) -> tuple[float, float]:
    return self.start, self.end


@dataclasses.dataclass(frozen=True)
class VideoAnnotation:
  """One video's timestamped sentences and (optional) anomaly intervals, in seconds.

  `label` is the video's class (with several events, the first one's by start) and
  `anomaly_intervals` every event's interval; `events` (empty when only the intervals are
  known) adds each event's own class and region: read them through `events_of`.
  """

  video_id: str
  duration: float
  timestamps: tuple[tuple[float, float], ...]
  sentences: tuple[str, ...]
  label: str = NORMAL
  anomaly_intervals: tuple[tuple[float, float], ...] = ()
  events: tuple[Event, ...] = ()


def events_of(v: VideoAnnotation) -> tuple[Event, ...]:
  """The video's events: `v.events` when set, else one per anomaly interval with the video's
  class and an unknown region."""
  if v.events:
    return v.events
  return tuple(Event(v.label, float(s), float(e), None) for s, e in v.anomaly_intervals)


def with_events(videos, labels: dict) -> list[VideoAnnotation]:
  """`videos` with class, anomaly intervals and events from a labels dict (`read_labels`, or
  what `synthetic.generate` returns); videos it does not list are kept as they are."""
  out = []
  for v in videos:
    entry = labels.get(v.video_id)
    if entry is None:
      out.append(v)
      continue
    events = tuple(_event_of(e) for e in entry.get("events") or ())
    out.append(dataclasses.replace(
        v, label=entry.get("label", v.label), events=events,
        anomaly_intervals=tuple((float(s), float(e)) for s, e in entry["anomaly_intervals"])))
  return out


def _event_of(entry: dict) -> Event:
  start, end = entry["interval"]
  return Event(entry["label"], float(start), float(end), entry.get("region"))


def ucf_crime_class(video_id: str) -> str:
  """`Abuse001_x264` -> 'Abuse'; `Normal_Videos_003_x264` / `Normal_Videos003_x264` -> 'Normal'."""
  name = os.path.splitext(os.path.basename(video_id))[0]
  if name.startswith("Normal"):
    return NORMAL
  match = re.match(r"^([A-Za-z]+?)\d", name)
  if not match or match.group(1) not in UCF_CRIME_CLASSES:
    raise ValueError(f"{video_id!r} does not start with a UCF-Crime class name")
  return match.group(1)


def xd_violence_classes(filename: str) -> tuple[str, ...]:
  """`v=Hnfy9XhlIPM__#1_label_B4-0-0.mp4` -> ('Riot',); `..._label_A.mp4` -> ('Normal',)."""
  match = re.search(r"_label_([A-Z0-9-]+)", os.path.basename(filename))
  if not match:
    raise ValueError(f"{filename!r} has no XD-Violence '_label_' part")
  codes = [c for c in match.group(1).split("-") if c != "0"]
  unknown = [c for c in codes if c not in XD_VIOLENCE_LABELS]
  if unknown or not codes:
    raise ValueError(f"{filename!r}: unknown XD-Violence label codes {unknown or codes}")
  return tuple(XD_VIOLENCE_LABELS[c] for c in codes)


def _interval(path, video_id, i, pair, duration, what="timestamp"):
  if (not isinstance(pair, (list, tuple)) or len(pair) != 2
      or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                 for x in pair)):
    raise InputError(path, f"{video_id}: {what} {i} is not a [start, end] pair of numbers")
  start, end = float(pair[0]), float(pair[1])
  if end < start:
    raise InputError(path, f"{video_id}: {what} {i} ends before it starts ({start} > {end})")
  if start < 0 or (duration is not None and end > duration + 1e-6):
    length = "" if duration is None else f" (duration {duration} s)"
    raise InputError(path, f"{video_id}: {what} {i} [{start}, {end}] lies outside the "
                     f"video{length}")
  return start, end


def read_labels(path: str) -> dict[str, dict]:
  """Reads and validates a frame-labels file: `{video_id: {"anomaly_intervals": [[s, e], ...],
  ...}}` in seconds (`[]` for a normal video; other keys, such as "label", are kept).

  TETG's trainer and the frame AUC / AP read it; a malformed entry used to surface as a
  KeyError or TypeError deep inside them, or (an interval of strings, a reversed interval) as
  silently wrong frame labels. Raises InputError naming the file and the video.
  """
  data = read_json(path, "labels file")
  if not data:
    raise InputError(path, "labels file lists no videos")
  for video_id, entry in data.items():
    if not isinstance(entry, dict):
      raise InputError(path, f"{video_id}: entry is not an object")
    if "anomaly_intervals" not in entry:
      raise InputError(path, f"{video_id}: missing 'anomaly_intervals' ([] for a normal video)")
    intervals = entry["anomaly_intervals"]
    if not isinstance(intervals, list):
      raise InputError(path, f"{video_id}: 'anomaly_intervals' must be a list of [start, end] "
                       f"pairs, got {type(intervals).__name__}")
    for i, pair in enumerate(intervals):
      _interval(path, video_id, i, pair, None, "anomaly interval")
    _check_events(path, video_id, entry.get("events"))
  return data


def _check_events(path, video_id, events) -> None:
  """An optional "events" list: objects with a class, an interval and a region (or null)."""
  if events is None:
    return
  if not isinstance(events, list):
    raise InputError(path, f"{video_id}: 'events' must be a list, got {type(events).__name__}")
  for i, event in enumerate(events):
    if not isinstance(event, dict) or not isinstance(event.get("label"), str) or \
        not event["label"]:
      raise InputError(path, f"{video_id}: event {i} needs a 'label' (the class name)")
    if "interval" not in event:
      raise InputError(path, f"{video_id}: event {i} has no 'interval'")
    _interval(path, video_id, i, event["interval"], None, "event interval")
    region = event.get("region")
    if region is not None and region not in REGIONS:
      raise InputError(path, f"{video_id}: event {i} region {region!r} is not one of {REGIONS}")


def read_uca(path: str, *, anomaly_intervals: dict | None = None, labels: dict | None = None,
             skip_bad: bool = False) -> tuple[list[VideoAnnotation], list[str]]:
  """Reads a UCA JSON file -> (annotations, problems skipped when `skip_bad`).

  `anomaly_intervals`: optional {video_id: [[s, e], ...]} (e.g. HIVAU `events`); UCA alone says
  which events happen, not which are anomalous. `labels`: optional labels dict (a labels.json
  as `read_labels` returns it, or `synthetic.generate`'s result): each listed video gets its
  class, anomaly intervals and events from it (`with_events`).
  """
  if labels is not None:
    anomaly_intervals = {**(anomaly_intervals or {}),
                         **{k: v["anomaly_intervals"] for k, v in labels.items()}}
  data = read_json(path)
  out, problems = [], []
  for video_id, entry in data.items():
    try:
      out.append(_uca_entry(path, video_id, entry, (anomaly_intervals or {}).get(video_id, ())))
    except InputError as e:
      if not skip_bad:
        raise
      problems.append(e.problem)
  return (with_events(out, labels) if labels is not None else out), problems


def _uca_entry(path, video_id, entry, anomalies) -> VideoAnnotation:
  if not isinstance(entry, dict):
    raise InputError(path, f"{video_id}: entry is not an object")
  missing = [k for k in ("duration", "timestamps", "sentences") if k not in entry]
  if missing:
    raise InputError(path, f"{video_id}: missing {missing}")
  duration = entry["duration"]
  if not isinstance(duration, (int, float)) or not duration > 0:
    raise InputError(path, f"{video_id}: duration must be a positive number, got {duration!r}")
  stamps, sentences = entry["timestamps"], entry["sentences"]
  if not isinstance(stamps, list) or not isinstance(sentences, list):
    raise InputError(path, f"{video_id}: timestamps and sentences must be lists")
  if len(stamps) != len(sentences):
    raise InputError(path, f"{video_id}: {len(stamps)} timestamps but {len(sentences)} sentences")
  if any(not isinstance(s, str) or not s.strip() for s in sentences):
    raise InputError(path, f"{video_id}: empty or non-text sentence")
  intervals = tuple(_interval(path, video_id, i, p, duration) for i, p in enumerate(stamps))
  events = tuple(_interval(path, video_id, i, p, duration) for i, p in enumerate(anomalies))
  try:
    label = ucf_crime_class(video_id)
  except ValueError:
    label = entry.get("label", NORMAL)
  label = entry.get("label", label)
  return VideoAnnotation(video_id, float(duration), intervals,
                         tuple(s.strip() for s in sentences), label, events)


def read_ucf_temporal_gt(path: str, fps: float = 30.0) -> dict[str, tuple[str, tuple]]:
  """UCF-Crime test GT txt -> {video_id: (class, ((start_s, end_s), ...))} (frames / fps)."""
  require_file(path, "temporal annotation file")
  out = {}
  try:
    from vaujax.files import open_file
    with open_file(path, encoding="utf-8") as f:
      lines = f.readlines()
  except UnicodeDecodeError as e:
    raise InputError(path, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from e
  for lineno, line in enumerate(lines, 1):
    parts = line.split()
    if not parts:
      continue
    if len(parts) != 6:
      raise InputError(path, f"line {lineno}: expected 'video class s1 e1 s2 e2', got {line!r}")
    name, label, *frames = parts
    try:
      s1, e1, s2, e2 = (int(x) for x in frames)
    except ValueError:
      raise InputError(path, f"line {lineno}: frame indices must be integers") from None
    events = []
    for s, e in ((s1, e1), (s2, e2)):
      if s == -1 and e == -1:
        continue
      if s < 0 or e < s:
        raise InputError(path, f"line {lineno}: bad interval [{s}, {e}]")
      events.append((s / fps, e / fps))
    out[os.path.splitext(name)[0]] = (label, tuple(events))
  return out
