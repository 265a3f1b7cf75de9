"""Turning generated answers into benchmark predictions (generate-then-parse, as the paper).

Multiple choice follows LLaMA-VID's ScienceQA rules: the answer is a bare letter ("B"), starts
with "B." / "B)" / "(B)", or says "The answer is B". Beyond those, an answer that contains the
text of exactly one option (case and punctuation ignored) picks that option, so a model trained
to answer with option text is scored too; when all options are intervals ("From 1.0 to 3.0
seconds."), an answer stating an interval picks the option it overlaps most (unique best IoU > 0).
Anything else is unparsable (None) and counts as wrong.

Open answers to "Are there any anomalies?" give a judgement (yes / no), the class named in the
text and the interval "from <s> to <e> (seconds)".
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from vaujax.data.benchmark_files import LETTERS   # a question's own count bounds the letter

_BARE = re.compile(rf"^\(?([{LETTERS}])\)?[.):]?$")
_PREFIX = re.compile(rf"^\(?([{LETTERS}])[.):]\s")
_ANSWER_IS = re.compile(rf"[Tt]he answer is \(?([{LETTERS}])(?![A-Za-z])\)?")
_INTERVAL = re.compile(r"from\s+(-?\d+(?:\.\d+)?)\s*(?:s|sec|seconds)?\s+to\s+(-?\d+(?:\.\d+)?)",
                       re.IGNORECASE)


def _normal(text: str) -> str:
  return " ".join(re.sub(r"[^a-z0-9. ]+", " ", text.lower()).split()).strip(" .")


def parse_choice(text: str, options: Sequence[str]) -> Optional[int]:
  """Index of the option a generated answer picks, or None when it cannot be told."""
  answer = text.strip()
  for pattern in (_BARE, _PREFIX):
    m = pattern.match(answer)
    if m and LETTERS.index(m.group(1)) < len(options):
      return LETTERS.index(m.group(1))
  m = _ANSWER_IS.search(answer)
  if m and LETTERS.index(m.group(1)) < len(options):
    return LETTERS.index(m.group(1))
  said = _normal(answer)
  if not said:
    return None
  normal_options = [_normal(o) for o in options]
  exact = [i for i, o in enumerate(normal_options) if o == said]
  if len(exact) == 1:
    return exact[0]
  contained = [i for i, o in enumerate(normal_options) if o and o in said]
  # The longest contained option wins only if no other contained option is a different answer
  # that is not part of it (e.g. "Road accident" vs "accident" both inside one sentence).
  if len(contained) == 1:
    return contained[0]
  if contained:
    longest = max(contained, key=lambda i: len(normal_options[i]))
    if all(normal_options[i] in normal_options[longest] for i in contained):
      return longest
  return _closest_interval(answer, options)


def _closest_interval(text: str, options: Sequence[str]) -> Optional[int]:
  """For interval options: the one option that overlaps the stated interval most (IoU > 0)."""
  said = parse_interval(text)
  spans = [parse_interval(o) for o in options]
  if said is None or any(s is None for s in spans):
    return None
  ious = [interval_iou(said, s) for s in spans]
  best = max(ious)
  return ious.index(best) if best > 0 and ious.count(best) == 1 else None


def choose_by_scores(scores: Sequence[float]) -> Optional[int]:
  """Index of the unique best score; None on a tie for the top (no answer is given)."""
  best = max(scores)
  top = [i for i, s in enumerate(scores) if s == best]
  return top[0] if len(top) == 1 else None


def parse_interval(text: str) -> Optional[tuple[float, float]]:
  """The first "from <s> to <e>" in the text (seconds), or None; reversed ends are swapped."""
  m = _INTERVAL.search(text)
  if not m:
    return None
  a, b = float(m.group(1)), float(m.group(2))
  return (min(a, b), max(a, b))


def parse_judgement(text: str) -> Optional[bool]:
  """True for an answer that says there is an anomaly, False for one that says there is none."""
  t = text.strip().lower()
  if re.match(r"^(yes|yeah|there (is|are) (an?|one|some|two) )", t) and "no anomal" not in t:
    return True
  if re.match(r"^no\b", t) or "no anomal" in t or "nothing unusual" in t or "looks normal" in t:
    return False
  return None


def parse_class(text: str, classes: Sequence[str]) -> Optional[str]:
  """The one class whose (readable) name the text mentions, or None for none / several."""
  said = f" {_normal(text)} "
  hits = []
  for name in classes:
    variants = {_normal(name), _normal(re.sub(r"(?<!^)([A-Z])", r" \1", name))}
    variants |= {v[:-1] for v in variants if v.endswith("s")}  # "RoadAccidents" -> "road accident"
    if any(f" {v}" in said for v in variants if v):
      hits.append(name)
  return hits[0] if len(hits) == 1 else None


def interval_iou(a: Optional[Sequence[float]], b: Optional[Sequence[float]]) -> float:
  """Temporal IoU of two [start, end] intervals (0 when either is missing)."""
  if a is None or b is None:
    return 0.0
  inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
  union = max(a[1], b[1]) - min(a[0], b[0])
  return inter / union if union > 0 else float(a[0] == b[0])
