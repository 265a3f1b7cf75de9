"""Annotations -> clips -> three questions per clip -> LLaVA-format instruction JSON.

Every clip gets three question/answer pairs; the last question is always "Are there any
anomalies?", answered with every anomaly's class, interval and (when known) region. Anomalous
clips are also asked what and when, and where (issue 29: spatial questions; with several
anomalies of different classes, the question names the type). Generation is pluggable:
`TemplateQA` (deterministic, the default) or `LLMQA`, which hands a prompt to any callable
`str -> str` (the paper used GPT-4, then human review) and parses its JSON reply.

Output items: {"id", "video", "clip": [start_s, end_s], "label", "anomaly_intervals",
"conversations": [{"from": "human", "value": "<video>\\nQ1"}, {"from": "gpt", ...}, ...]}.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from typing import Callable, Iterable, Protocol, Sequence

from vaujax.data.annotations import NORMAL, Event, VideoAnnotation, events_of
from vaujax.data.conversation import VIDEO_PLACEHOLDER
from vaujax.data.conversation import readable_class as readable
from vaujax.data.regions import REGIONS, region_text
from vaujax import files
from vaujax.errors import InputError

FINAL_QUESTION = "Are there any anomalies?"
# Phrasings, one picked per clip (seeded): the model learns the question, not one sentence.
# "{name}" is the anomaly's readable class in lower case ("the road accident"). The first of
# each is the wording before issue 29; the others are no longer (instruction lengths stay).
DESCRIBE_QUESTIONS = ("What happens in the video?", "What goes on in the video?",
                      "What is going on in the video?")
NORMAL_QUESTIONS = ("Is anything unusual happening in the video?",
                    "Does anything unusual happen in the video?",
                    "Is anything abnormal in the video?")
TYPE_WHEN_QUESTIONS = ("What type of anomaly happens in the video, and when?",
                       "Which anomaly happens in the video, and when?",
                       "What anomaly occurs, and at what time?")
WHERE_QUESTIONS = ("Where in the scene does the anomaly happen?",
                   "Where does the anomaly happen?",
                   "In which part of the scene does the anomaly take place?",
                   "Where is the anomaly in the scene?")
NAMED_WHEN_QUESTIONS = ("When does the {name} happen?", "When does the {name} happen in the video?",
                        "At what time does the {name} take place?")
NAMED_WHERE_QUESTIONS = ("Where does the {name} happen?",
                         "Where in the scene does the {name} happen?",
                         "In which part of the scene does the {name} take place?")
_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
           9: "nine"}


@dataclasses.dataclass(frozen=True)
class Clip:
  video_id: str
  start: float
  end: float
  sentences: tuple[str, ...]
  label: str                                     # the video's class (Normal or an anomaly)
  anomalies: tuple[tuple[float, float], ...]     # anomaly intervals inside the clip, clip-relative
  events: tuple[Event, ...] = ()                 # the anomalies with class and region, likewise


class QAGenerator(Protocol):
  def __call__(self, clip: Clip) -> list[tuple[str, str]]:
    """Three (question, answer) pairs; the third question is FINAL_QUESTION."""


def clips_of(video: VideoAnnotation, clip_seconds: float | None = None) -> list[Clip]:
  """Cuts a video into consecutive clips (the whole video when `clip_seconds` is None)."""
  length = clip_seconds or video.duration
  out, start = [], 0.0
  while start < video.duration - 1e-6:
    end = min(start + length, video.duration)
    sentences = tuple(s for (a, b), s in zip(video.timestamps, video.sentences)
                      if a < end and b > start)
    anomalies = tuple((round(max(a, start) - start, 1), round(min(b, end) - start, 1))
                      for a, b in video.anomaly_intervals if a < end and b > start)
    events = tuple(sorted((dataclasses.replace(e, start=round(max(e.start, start) - start, 1),
                                               end=round(min(e.end, end) - start, 1))
                           for e in events_of(video) if e.start < end and e.end > start),
                          key=lambda e: e.start))
    if sentences:
      label = events[0].label if events and anomalies else (
          video.label if anomalies or video.label == NORMAL else NORMAL)
      out.append(Clip(video.video_id, start, end, sentences, label, anomalies, events))
    start = end
  return out


def article(word: str) -> str:
  return "an" if word[0].lower() in "aeiou" else "a"


def clip_events(clip: Clip) -> tuple[Event, ...]:
  """The clip's anomalies as events (a hand-made clip without `events`: one per interval, with
  the clip's class and no region)."""
  if clip.events:
    return clip.events
  return tuple(Event(clip.label, s, e) for s, e in clip.anomalies)


def event_phrase(event: Event) -> str:
  """"a fighting from 1.0 to 3.0 seconds at the top left of the scene" (no place when the
  region is unknown)."""
  name = readable(event.label).lower()
  where = f" at {region_text(event.region)}" if event.region else ""
  return f"{article(name)} {name} from {event.start:.1f} to {event.end:.1f} seconds{where}"


def anomaly_answer(clip: Clip) -> str:
  """Canonical answer to FINAL_QUESTION (also what the template generator says): every event
  with its interval and (when known) region, in time order."""
  events = clip_events(clip)
  if clip.label == NORMAL or not events:
    return "No, there are no anomalies in the video."
  if len(events) == 1:
    return f"Yes, there is {event_phrase(events[0])}."
  phrases = [event_phrase(e) for e in events]
  count = _COUNTS.get(len(events), str(len(events)))
  return (f"Yes, there are {count} anomalies: {', '.join(phrases[:-1])}, and {phrases[-1]}.")


def when_answer(start: float, end: float) -> str:
  return f"From {start:.1f} to {end:.1f} seconds."


def where_answer(region: str) -> str:
  return f"At {region_text(region)}."


def named_classes(events: Sequence[Event]) -> bool:
  """Several events of different classes: a question can name its event by its type."""
  return len(events) > 1 and len({e.label for e in events}) == len(events)


def phrasing_rng(seed: int, key: str) -> random.Random:
  """The seeded choice of phrasings (and events asked about) for one clip or item."""
  return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8],
                                      "little"))


class _FirstPhrasing:
  """A phrasing chooser that always takes the first phrasing; events are still drawn."""

  def __init__(self, rng: random.Random):
    self.randrange = rng.randrange

  @staticmethod
  def choice(options):
    return options[0]


@dataclasses.dataclass(frozen=True)
class TemplateQA:
  """Deterministic questions, each phrased by a seeded per-clip choice.

  Normal clip: description, "anything unusual?", final. Anomalous clip: the type/when question
  (one event, or several of one class: the first) or, with several events of different
  classes, "When does the <type> happen?" about one of them; then, when the regions are known,
  where it happens (the type named likewise), else the description first; last the final
  question, whose answer names every event, its interval and region (`anomaly_answer`).
  """

  seed: int = 0
  vary: bool = True     # False: always each list's first phrasing (the wording before issue 29)

  def __call__(self, clip: Clip) -> list[tuple[str, str]]:
    seeded = phrasing_rng(self.seed, f"{clip.video_id}:{clip.start}")
    rng = seeded if self.vary else _FirstPhrasing(seeded)
    describe = (rng.choice(DESCRIBE_QUESTIONS), " ".join(clip.sentences))
    events = clip_events(clip)
    if clip.label == NORMAL or not events:
      return [describe, (rng.choice(NORMAL_QUESTIONS), "No, everything in the video looks normal."),
              (FINAL_QUESTION, anomaly_answer(clip))]
    named = named_classes(events)
    if named:
      event = events[rng.randrange(len(events))]
      when = (rng.choice(NAMED_WHEN_QUESTIONS).format(name=readable(event.label).lower()),
              when_answer(event.start, event.end))
    else:
      event = events[0]
      when = (rng.choice(TYPE_WHEN_QUESTIONS),
              f"{readable(event.label)}, from {event.start:.1f} to {event.end:.1f} seconds.")
    located = [e for e in events if e.region] if named or len(events) == 1 else []
    if not located:
      return [describe, when, (FINAL_QUESTION, anomaly_answer(clip))]
    event = located[rng.randrange(len(located))]
    question = (rng.choice(NAMED_WHERE_QUESTIONS).format(name=readable(event.label).lower())
                if named else rng.choice(WHERE_QUESTIONS))
    return [when, (question, where_answer(event.region)), (FINAL_QUESTION, anomaly_answer(clip))]


@dataclasses.dataclass
class LLMQA:
  """Asks an LLM callable for the first two Q/A pairs as JSON; the final pair stays canonical.

  The callable gets a prompt and must return `[{"q": ..., "a": ...}, {"q": ..., "a": ...}]`.
  """

  llm: Callable[[str], str]

  def __call__(self, clip: Clip) -> list[tuple[str, str]]:
    prompt = ("You write instruction data for a video anomaly assistant. Events in the clip "
              f"(seconds): {list(zip(clip.sentences, clip.anomalies or [None]))}. "
              f"Class: {clip.label}. Write two question/answer pairs as JSON "
              '[{"q": ..., "a": ...}, {"q": ..., "a": ...}].')
    reply = self.llm(prompt)
    try:
      items = json.loads(reply)
      pairs = [(str(i["q"]).strip(), str(i["a"]).strip()) for i in items][:2]
    except (json.JSONDecodeError, TypeError, KeyError) as e:
      raise ValueError(f"LLM reply is not the requested JSON: {reply[:200]!r}") from e
    if len(pairs) != 2 or not all(q and a for q, a in pairs):
      raise ValueError(f"LLM reply needs two non-empty pairs, got {pairs}")
    return pairs + [(FINAL_QUESTION, anomaly_answer(clip))]


def build_instructions(videos: Iterable[VideoAnnotation], *, video_dir_prefix: str = "",
                       video_ext: str = ".mp4", clip_seconds: float | None = None,
                       generator: QAGenerator | None = None) -> list[dict]:
  """LLaVA-format items, three Q/A pairs per clip."""
  generator = generator or TemplateQA()
  items = []
  for video in videos:
    for k, clip in enumerate(clips_of(video, clip_seconds)):
      pairs = generator(clip)
      if len(pairs) != 3 or pairs[-1][0] != FINAL_QUESTION:
        raise ValueError(f"{video.video_id}: a QA generator must return three pairs ending with "
                         f"{FINAL_QUESTION!r}")
      conversations = []
      for i, (q, a) in enumerate(pairs):
        conversations.append({"from": "human",
                              "value": f"{VIDEO_PLACEHOLDER}\n{q}" if i == 0 else q})
        conversations.append({"from": "gpt", "value": a})
      items.append({"id": f"{video.video_id}_clip{k}", "video": video_dir_prefix + video.video_id
                    + video_ext, "clip": [clip.start, clip.end], "label": clip.label,
                    "anomaly_intervals": [list(a) for a in clip.anomalies],
                    "conversations": conversations})
  return items


def single_turn_items(items: Iterable[dict]) -> list[dict]:
  """Each question of multi-turn items as its own one-turn item (video placeholder first), so a
  model also learns to answer any of the questions without the earlier turns."""
  out = []
  for item in items:
    conv = item["conversations"]
    for k in range(0, len(conv) - 1, 2):
      question = conv[k]["value"].replace(VIDEO_PLACEHOLDER, "").strip()
      out.append({**item, "id": f"{item['id']}_turn{k // 2}",
                  "conversations": [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{question}"},
                                    dict(conv[k + 1])]})
  return out


def attach_events(items: Iterable[dict], videos: Iterable[VideoAnnotation]) -> list[dict]:
  """Each item of one of `videos` with that video's annotated events, `"events": [{"label",
  "start", "end", "region"}]` in seconds of the video ([] for a normal video): what
  data.train_hint_labels reads. Items of other videos (images) are left as they are."""
  by_id = {v.video_id: [{"label": e.label, "start": float(e.start), "end": float(e.end),
                         "region": e.region} for e in events_of(v)] for v in videos}
  from vaujax.data.pipeline import video_key   # the key hints and feature files go by
  out = []
  for item in items:
    key = video_key(item) if item.get("video") else None
    out.append({**item, "events": by_id[key]} if key in by_id else item)
  return out


def write_json(path: str, items: Sequence[dict]) -> None:
  files.write_json(path, list(items))


def read_instructions(path: str, *, skip_bad: bool = False) -> tuple[list[dict], list[str]]:
  """Reads and validates an instruction JSON list -> (items, problems skipped when skip_bad)."""
  from vaujax.files import read_json
  data = read_json(path, "instruction file", list)
  items, problems = [], []
  for i, item in enumerate(data):
    problem = _problem(item)
    if problem is None:
      items.append(item)
      continue
    where = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
    if not skip_bad:
      raise InputError(path, f"example {where}: {problem}")
    problems.append(f"example {where}: {problem}")
  return items, problems


def _problem(item) -> str | None:
  if not isinstance(item, dict):
    return "not an object"
  conv = item.get("conversations")
  if not isinstance(conv, list) or not conv:
    return "missing 'conversations'"
  values = [t.get("value") if isinstance(t, dict) else None for t in conv]
  if any(not isinstance(v, str) for v in values):
    return "a turn has no text 'value'"
  # What the placeholder shows: a "video", an "image" (a one-frame feature file), or one cut
  # frame of a video ("video" + "frame_s", seconds). Either spelling of the placeholder fits
  # either source (LLaMA-VID's video data writes <image>).
  image, video = item.get("image"), item.get("video")
  if image is not None and (not isinstance(image, str) or not image.strip()):
    return f"'image' must be the path of an image file, got {image!r}"
  if image and video:
    return ("has both 'image' and 'video' (an image example names its image; a cut frame of "
            "a video names the video and 'frame_s')")
  if "frame_s" in item:
    frame_s = item["frame_s"]
    if not video:
      return "has 'frame_s' but no 'video' (a cut frame names the video it is cut from)"
    if isinstance(frame_s, bool) or not isinstance(frame_s, (int, float)) \
        or not 0 <= frame_s < float("inf"):   # NaN fails the comparison too
      return f"'frame_s' must be a finite number of seconds >= 0, got {frame_s!r}"
  if any("<video>" in v for v in values) and not (video or image):
    return "has a <video> placeholder but no 'video'"
  if any("<image>" in v for v in values) and not (video or image):
    return "has an <image> placeholder but no 'image' (or 'video' and 'frame_s' for a cut frame)"
  for turn, v in zip(conv, values):
    if turn.get("from") == "human" and not v.replace("<video>", "").replace("<image>", "").strip():
      return "empty question"
  if "events" in item:
    return _events_problem(item["events"])
  return None


def _events_problem(events) -> str | None:
  """What is wrong with an item's optional annotated `events` (see `attach_events`), or None."""
  if not isinstance(events, list):
    return f"'events' must be a list of events, got {type(events).__name__}"
  for k, e in enumerate(events):
    if not isinstance(e, dict):
      return f"events[{k}] is not an object"
    start, end = e.get("start"), e.get("end")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x < float("inf")
           for x in (start, end)):
      return f"events[{k}]: 'start' and 'end' must be finite seconds >= 0, got {start!r}, {end!r}"
    if end < start:
      return f"events[{k}] ends before it starts ({start} > {end})"
    if e.get("label") is not None and (not isinstance(e["label"], str) or not e["label"]):
      return f"events[{k}]: 'label' must be a class name, got {e['label']!r}"
    if e.get("region") is not None and e["region"] not in REGIONS:
      return f"events[{k}]: unknown region {e['region']!r} (one of {', '.join(REGIONS)})"
  return None
