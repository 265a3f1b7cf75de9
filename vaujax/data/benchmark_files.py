"""Benchmark builders: the UCF-Crime QA set (in-domain) and XD-Violence-style 4-option multiple
choice (cross-domain), from annotations with classes and anomaly intervals.

MC item: {"id", "video", "question", "options": [2..8 strings], "answer": "A".. (one of the
item's own letters: "D" is no answer to a 3-option question), "category": "type" | "temporal" |
"spatial", "gt_interval": [s, e] | None, "label"}; a spatial item adds "gt_region" (a
`regions.REGIONS` name; its options are region names), and the items of a video with several
events of different classes add "events" (their count) and, on the per-event temporal and
spatial items whose question names the type, "event_label". Exactly one option is correct. The
builders here make 4 options, shuffled with a seeded RNG (per item, so items are independent of
order); benchmark files read may mix option counts.

Open-QA item (`ucf_qa`): {"id", "video", "question", "answer", "category", "gt_interval",
"label"}; "judgement" (the final question) adds "events" [{"label", "interval", "region"}],
"spatial" adds "gt_region", "temporal_event" (one per event of a several-event video, the type
named) has the event's `gt_interval` and `label`.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Sequence

import numpy as np

from vaujax.data import instructions
from vaujax.data.annotations import NORMAL, Event, VideoAnnotation, events_of
from vaujax.data.regions import REGIONS
from vaujax.errors import InputError
from vaujax.data.instructions import FINAL_QUESTION, anomaly_answer, clips_of, readable

LETTERS = "ABCDEFGH"   # option letters; a question has 2 to len(LETTERS) options
MIN_OPTIONS = 2
TYPE_QUESTION = "Which type of anomaly happens in the video?"
TEMPORAL_QUESTION = "When does the anomaly happen in the video?"
NO_ANOMALY = "There is no anomaly."


def ucf_qa(videos: Iterable[VideoAnnotation], video_ext: str = ".mp4", *,
           seed: int = 0) -> list[dict]:
  """Open QA items: the final question of each video (with every event); where the anomaly
  happens when its region is known; and, for several events of different classes, when each
  one happens with its type named. Question wording is a seeded per-video choice."""
  items = []
  for v in videos:
    clip = clips_of(v)[0]
    video = v.video_id + video_ext
    events = instructions.clip_events(clip) if clip.label != NORMAL else ()
    items.append({"id": f"{v.video_id}_q0", "video": video,
                  "question": FINAL_QUESTION, "answer": anomaly_answer(clip), "category": "judgement",
                  "gt_interval": list(clip.anomalies[0]) if clip.anomalies else None,
                  "label": v.label, "events": [_event_json(e) for e in events]})
    rng = instructions.phrasing_rng(seed, f"{v.video_id}:open")
    named = instructions.named_classes(events)
    if len(events) == 1 and events[0].region:
      items.append(_open_item(v, video, "spatial", rng.choice(instructions.WHERE_QUESTIONS),
                              instructions.where_answer(events[0].region), None, v.label,
                              gt_region=events[0].region))
    for k, e in enumerate(events if named else ()):
      name = readable(e.label).lower()
      items.append(_open_item(
          v, video, "temporal_event", rng.choice(instructions.NAMED_WHEN_QUESTIONS).format(
              name=name), instructions.when_answer(e.start, e.end), [e.start, e.end], e.label,
          suffix=f"_{k}"))
      if e.region:
        items.append(_open_item(
            v, video, "spatial", rng.choice(instructions.NAMED_WHERE_QUESTIONS).format(
                name=name), instructions.where_answer(e.region), None, e.label, suffix=f"_{k}",
            gt_region=e.region))
  return items


def _event_json(e: Event) -> dict:
  return {"label": e.label, "interval": [e.start, e.end], "region": e.region}


def _open_item(v, video, category, question, answer, interval, label, suffix="", **extra):
  return {"id": f"{v.video_id}_{category}{suffix}", "video": video, "question": question,
          "answer": answer, "category": category, "gt_interval": interval, "label": label,
          **extra}


def seeded_rng(seed: int, key: str) -> np.random.RandomState:
  """A stream of its own per (seed, key), e.g. per video: items do not shift when others change."""
  digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
  return np.random.RandomState(int.from_bytes(digest[:4], "little"))


def _interval_text(s: float, e: float) -> str:
  return f"From {s:.1f} to {e:.1f} seconds."


def _iou(a, b) -> float:
  inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
  union = max(a[1], b[1]) - min(a[0], b[0])
  return inter / union if union > 0 else 1.0


def _temporal_distractors(rng, interval, duration, taken=()) -> list[tuple[float, float]]:
  """Three intervals whose IoU with the truth and with each other is below 0.5.

  `taken`: distractors given first (the other events' intervals: the question names one event
  and they are its wrong answers). Candidates: every start on a 0.5 s grid with lengths L, L/2
  and 2L (L the true length), drawn in a seeded random order; when a long event leaves no room
  for three, shorter ones (L/4 and 1 s) are added after them, and in a video of a few seconds
  (a 0.5x-clock copy of a 5 s training video: 2.5 s) intervals of 0.2-0.4 s after those.

  The grid is shifted to the truth's start (as printed, to 0.1 s): every option's start has the
  same tenths modulo 0.5 s. On an unshifted grid the true start was the only one off x.0/x.5
  in 76-94% of questions, an answer readable from the digits alone (2026-12-06).
  """
  length = max(interval[1] - interval[0], 0.5)
  offset = round(round(float(interval[0]), 1) % 0.5, 1) % 0.5

  def grid(lengths):
    return [(round(a, 1), round(a + l, 1)) for l in lengths
            for a in np.arange(offset, duration - l + 1e-6, 0.5)]

  out = [tuple(t) for t in taken][:3]
  if len(out) == 3:
    return out
  for lengths in ((length, max(length / 2, 0.5), min(2 * length, duration)),
                  (max(length / 4, 0.5), 1.0), (0.4, 0.3, 0.2)):
    candidates = grid(lengths)
    for i in rng.permutation(len(candidates)):
      c = candidates[i]
      if c not in out and _iou(c, interval) < 0.5 and all(_iou(c, o) < 0.5 for o in out):
        out.append(c)
        if len(out) == 3:
          return out
  raise ValueError(f"cannot place 3 distractor intervals for {interval} in {duration} s")


def multiple_choice(videos: Iterable[VideoAnnotation], classes: Sequence[str], *, seed: int = 0,
                    video_ext: str = ".mp4") -> list[dict]:
  """MC questions per video: the type; for an anomaly, when (temporal) and, when its region is
  known, where (spatial). A video with several events of different classes gets one temporal
  and one spatial item per event, each naming the event's type, with the other events'
  intervals (regions) among the wrong options, and "events" (the count) on its items.
  One-event videos' type and temporal items are those before spatial items existed (same ids,
  questions and options for the same seed)."""
  items = []
  for v in videos:
    rng = seeded_rng(seed, v.video_id)
    events = events_of(v) if v.label != NORMAL else ()
    named = instructions.named_classes(events)
    extra = {"events": len(events)} if named else {}
    truth = NO_ANOMALY if v.label == NORMAL else readable(v.label)
    shown = {v.label} | {e.label for e in events}     # every class the video shows is right
    pool = [readable(c) for c in classes if c not in shown] + ([NO_ANOMALY] if v.label != NORMAL
                                                                else [])
    distractors = list(rng.choice(pool, 3, replace=False))
    items.append(_item(v, video_ext, "type", TYPE_QUESTION, truth, distractors, rng, None,
                       **extra))
    if named:
      items += _event_items(v, video_ext, events, seed)
      continue
    if v.anomaly_intervals:
      interval = v.anomaly_intervals[0]
      wrong = [_interval_text(*w) for w in _temporal_distractors(rng, interval, v.duration)]
      items.append(_item(v, video_ext, "temporal", TEMPORAL_QUESTION, _interval_text(*interval),
                         wrong, rng, list(interval)))
    if len(events) == 1 and events[0].region:
      srng = seeded_rng(seed, f"{v.video_id}:spatial")
      question = instructions.WHERE_QUESTIONS[srng.randint(len(instructions.WHERE_QUESTIONS))]
      items.append(_item(v, video_ext, "spatial", question, events[0].region,
                         _region_distractors(srng, events[0].region), srng, None,
                         gt_region=events[0].region))
  return items


def _event_items(v, ext, events, seed) -> list[dict]:
  """A temporal and (region known) a spatial item per event, the question naming its type."""
  out = []
  for k, e in enumerate(events):
    rng = seeded_rng(seed, f"{v.video_id}:event{k}")
    name = readable(e.label).lower()
    others = [o for o in events if o is not e]
    fields = dict(suffix=f"_{k}", event_label=e.label, events=len(events))
    question = instructions.NAMED_WHEN_QUESTIONS[rng.randint(
        len(instructions.NAMED_WHEN_QUESTIONS))].format(name=name)
    wrong = _temporal_distractors(rng, e.interval, v.duration, [o.interval for o in others])
    out.append(_item(v, ext, "temporal", question, _interval_text(*e.interval),
                     [_interval_text(*w) for w in wrong], rng, [e.start, e.end], **fields))
    if e.region:
      question = instructions.NAMED_WHERE_QUESTIONS[rng.randint(
          len(instructions.NAMED_WHERE_QUESTIONS))].format(name=name)
      wrong = _region_distractors(rng, e.region, [o.region for o in others if o.region])
      out.append(_item(v, ext, "spatial", question, e.region, wrong, rng, None,
                       gt_region=e.region, **fields))
  return out


def _region_distractors(rng, region: str, taken=()) -> list[str]:
  """Three other REGIONS names: `taken` first (the other events' places), the rest seeded."""
  out = [r for r in dict.fromkeys(taken) if r != region][:3]
  rest = [r for r in REGIONS if r != region and r not in out]
  return out + [rest[i] for i in rng.choice(len(rest), 3 - len(out), replace=False)]


def _item(v, ext, category, question, correct, wrong, rng, interval, suffix="", **extra):
  options = [correct] + [str(w) for w in wrong]
  order = rng.permutation(len(options))
  shuffled = [options[i] for i in order]
  return {"id": f"{v.video_id}_{category}{suffix}", "video": v.video_id + ext,
          "question": question, "options": shuffled,
          "answer": LETTERS[int(np.nonzero(order == 0)[0][0])],
          "category": category, "gt_interval": interval, "label": v.label, **extra}


LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
TEXT_INSTRUCTION = "Answer with the text of the correct option."
# by name, as a run records it (`data.mc_instruction`)
INSTRUCTIONS = {"letter": LETTER_INSTRUCTION, "text": TEXT_INSTRUCTION}


def mc_prompt(item: dict, instruction: str = LETTER_INSTRUCTION) -> str:
  """The human turn of an MC item (LLaMA-VID ScienceQA style; `TEXT_INSTRUCTION` asks for the
  option's text instead of its letter)."""
  options = "\n".join(f"{l}. {o}" for l, o in zip(LETTERS, item["options"]))
  return f"<video>\n{item['question']}\n{options}\n{instruction}"


def mc_training_items(mc_items: Iterable[dict], instruction: str = TEXT_INSTRUCTION) -> list[dict]:
  """MC items as LLaVA-format training conversations (answer = the correct option's text)."""
  out = []
  for item in mc_items:
    answer = item["options"][LETTERS.index(item["answer"])]
    out.append({"id": item["id"] + "_mc", "video": item["video"], "label": item.get("label"),
                "conversations": [{"from": "human", "value": mc_prompt(item, instruction)},
                                  {"from": "gpt", "value": answer}]})
  return out


def read_mc(path: str) -> list[dict]:
  """Reads and validates a multiple-choice benchmark file (a JSON list of MC items).

  Every item needs a unique id (a repeated one would leave a question unscored and the counts
  wrong), `options` as 2 to 8 distinct non-empty strings, and `answer` exactly one of their
  letters (the question's own count: "D" is not an answer to a 3-option question).
  """
  items = _read_list(path)
  seen = set()
  for i, item in enumerate(items):
    where = _where(item, i)
    if not isinstance(item, dict):
      raise InputError(path, f"{where}: not an object")
    missing = [k for k in ("id", "video", "question", "options", "answer") if k not in item]
    if missing:
      raise InputError(path, f"{where}: missing {missing}")
    _check_id(path, item, i, seen)
    _check_options(path, where, item["options"])
    _check_answer(path, where, item["answer"], item["options"])
    _check_region(path, where, item)
    count = item.get("events")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)
                              or count < 1):
      raise InputError(path, f"{where}: 'events' must be the video's number of events, got "
                       f"{count!r}")
  return items


def _check_region(path: str, where: str, item: dict) -> None:
  """A spatial item names its true region, one of the nine (`regions.REGIONS`)."""
  if "gt_region" not in item and item.get("category") != "spatial":
    return
  region = item.get("gt_region")
  if region not in REGIONS:
    raise InputError(path, f"{where}: 'gt_region' {region!r} is not one of the regions "
                     f"{list(REGIONS)}")


def _check_events(path: str, where: str, events) -> None:
  """A judgement item's events: [{"label", "interval": [s, e], "region": name | null}]."""
  if events is None:
    return
  if not isinstance(events, list):
    raise InputError(path, f"{where}: 'events' must be a list of events")
  for k, e in enumerate(events):
    if not isinstance(e, dict) or not isinstance(e.get("label"), str) or not _pair(
        e.get("interval")):
      raise InputError(path, f"{where}: event {k} needs a 'label' and an 'interval' [start, end]")
    if e.get("region") is not None and e["region"] not in REGIONS:
      raise InputError(path, f"{where}: event {k} region {e['region']!r} is not one of the "
                       f"regions {list(REGIONS)}")


def _where(item, i: int) -> str:
  """How an error names an item: by its id when it has a usable one, else by its position."""
  ident = item.get("id") if isinstance(item, dict) else None
  return f"item {ident}" if _usable_id(ident) else f"item #{i}"


def _usable_id(ident) -> bool:
  """Ids key the per-question results (and their resume file): non-empty strings."""
  return isinstance(ident, str) and ident.strip() != ""


def _check_id(path: str, item: dict, i: int, seen: set) -> None:
  """Each id once: results are keyed by id, so a repeated id leaves one question unscored and
  the counts wrong. `video` and `question` are text too (they go into the prompt)."""
  ident = item["id"]
  if not _usable_id(ident):
    raise InputError(path, f"item #{i}: 'id' must be a non-empty string, got {ident!r}")
  if ident in seen:
    raise InputError(path, f"item {ident}: the id is used by more than one question (ids must "
                     "be unique)")
  seen.add(ident)
  for key in ("video", "question"):
    if not isinstance(item[key], str) or not item[key].strip():
      raise InputError(path, f"item {ident}: {key!r} must be a non-empty string")


def _check_options(path: str, where: str, options) -> None:
  if (not isinstance(options, list) or not MIN_OPTIONS <= len(options) <= len(LETTERS)
      or not all(isinstance(o, str) and o.strip() for o in options)):
    raise InputError(path, f"{where}: 'options' must be {MIN_OPTIONS} to {len(LETTERS)} "
                     "non-empty strings")
  if len(set(options)) != len(options):
    raise InputError(path, f"{where}: options repeat, so the answer is ambiguous")


def _check_answer(path: str, where: str, answer, options) -> None:
  """The answer is one letter of the item's options: exact match, never a substring ("AB",
  "BCD" and "" are not answers) and never a non-string."""
  letters = list(LETTERS[:len(options)])
  if not isinstance(answer, str) or answer not in letters:
    raise InputError(path, f"{where}: answer {answer!r} is not one of {letters}")


def read_ucf_qa(path: str) -> list[dict]:
  """Reads and validates an open-QA benchmark file (`ucf_qa` items; ids unique)."""
  items = _read_list(path)
  seen = set()
  for i, item in enumerate(items):
    if not isinstance(item, dict) or not all(k in item for k in ("id", "video", "question")):
      raise InputError(path, f"item #{i}: needs 'id', 'video' and 'question'")
    _check_id(path, item, i, seen)
    gt = item.get("gt_interval")
    if gt is not None and not _pair(gt):
      raise InputError(path, f"item {item['id']}: 'gt_interval' must be [start, end] seconds")
    _check_region(path, f"item {item['id']}", item)
    _check_events(path, f"item {item['id']}", item.get("events"))
  return items


def _pair(gt) -> bool:
  return (isinstance(gt, list) and len(gt) == 2 and all(_finite_number(x) for x in gt)
          and gt[0] <= gt[1])


def _finite_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _read_list(path: str) -> list:
  from vaujax.files import read_json
  return read_json(path, "benchmark file", list)
