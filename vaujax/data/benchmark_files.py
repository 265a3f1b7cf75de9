"""Benchmark builders: the UCF-Crime QA set (in-domain) and XD-Violence-style 4-option multiple
choice (cross-domain), from annotations with classes and anomaly intervals.

MC item: {"id", "video", "question", "options": [2..8 strings], "answer": "A".. (one of the
item's own letters: "D" is no answer to a 3-option question), "category": "type" | "temporal",
"gt_interval": [s, e] | None, "label"}. Exactly one option is correct. The builders here make 4
options, shuffled with a seeded RNG (per item, so items are independent of order); benchmark
files read may mix option counts.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Sequence

import numpy as np

from vaujax.data.annotations import NORMAL, VideoAnnotation
from vaujax.errors import InputError
from vaujax.data.instructions import FINAL_QUESTION, anomaly_answer, clips_of, readable

LETTERS = "ABCDEFGH"   # option letters; a question has 2 to len(LETTERS) options
MIN_OPTIONS = 2
TYPE_QUESTION = "Which type of anomaly happens in the video?"
TEMPORAL_QUESTION = "When does the anomaly happen in the video?"
NO_ANOMALY = "There is no anomaly."


def ucf_qa(videos: Iterable[VideoAnnotation], video_ext: str = ".mp4") -> list[dict]:
  """Open QA items: the final question of each video and, for anomalies, type and time."""
  items = []
  for v in videos:
    clip = clips_of(v)[0]
    items.append({"id": f"{v.video_id}_q0", "video": v.video_id + video_ext,
                  "question": FINAL_QUESTION, "answer": anomaly_answer(clip), "category": "judgement",
                  "gt_interval": list(clip.anomalies[0]) if clip.anomalies else None,
                  "label": v.label})
  return items


def _rng(seed: int, key: str) -> np.random.RandomState:
  digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
  return np.random.RandomState(int.from_bytes(digest[:4], "little"))


def _interval_text(s: float, e: float) -> str:
  return f"From {s:.1f} to {e:.1f} seconds."


def _iou(a, b) -> float:
  inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
  union = max(a[1], b[1]) - min(a[0], b[0])
  return inter / union if union > 0 else 1.0


def _temporal_distractors(rng, interval, duration) -> list[tuple[float, float]]:
  """Three intervals whose IoU with the truth and with each other is below 0.5.

  Candidates: every start on a 0.5 s grid with lengths L, L/2 and 2L (L the true length),
  drawn in a seeded random order; when a long event leaves no room for three, shorter ones
  (L/4 and 1 s) are added after them.
  """
  length = max(interval[1] - interval[0], 0.5)

  def grid(lengths):
    return [(round(a, 1), round(a + l, 1)) for l in lengths
            for a in np.arange(0.0, duration - l + 1e-6, 0.5)]

  out = []
  for lengths in ((length, max(length / 2, 0.5), min(2 * length, duration)),
                  (max(length / 4, 0.5), 1.0)):
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
  """Two MC questions per anomalous video (type, temporal), one (type) per normal video."""
  items = []
  for v in videos:
    rng = _rng(seed, v.video_id)
    truth = NO_ANOMALY if v.label == NORMAL else readable(v.label)
    pool = [readable(c) for c in classes if c != v.label] + ([NO_ANOMALY] if v.label != NORMAL
                                                              else [])
    distractors = list(rng.choice(pool, 3, replace=False))
    items.append(_item(v, video_ext, "type", TYPE_QUESTION, truth, distractors, rng, None))
    if v.anomaly_intervals:
      interval = v.anomaly_intervals[0]
      wrong = [_interval_text(*w) for w in _temporal_distractors(rng, interval, v.duration)]
      items.append(_item(v, video_ext, "temporal", TEMPORAL_QUESTION, _interval_text(*interval),
                         wrong, rng, list(interval)))
  return items


def _item(v, ext, category, question, correct, wrong, rng, interval):
  options = [correct] + [str(w) for w in wrong]
  order = rng.permutation(4)
  shuffled = [options[i] for i in order]
  return {"id": f"{v.video_id}_{category}", "video": v.video_id + ext, "question": question,
          "options": shuffled, "answer": LETTERS[int(np.nonzero(order == 0)[0][0])],
          "category": category, "gt_interval": interval, "label": v.label}


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
  return items


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
    if gt is not None and (not isinstance(gt, list) or len(gt) != 2
                           or not all(_finite_number(x) for x in gt) or gt[1] < gt[0]):
      raise InputError(path, f"item {item['id']}: 'gt_interval' must be [start, end] seconds")
  return items


def _finite_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _read_list(path: str) -> list:
  from vaujax.files import read_json
  return read_json(path, "benchmark file", list)
