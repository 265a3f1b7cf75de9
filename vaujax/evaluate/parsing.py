"""Turning generated answers into benchmark predictions (generate-then-parse, as the paper).

Multiple choice follows LLaMA-VID's ScienceQA rules: the answer is a bare letter ("B"), starts
with "B." / "B)" / "(B)", or says "The answer is B". Beyond those, an answer that contains the
text of exactly one option (case and punctuation ignored) picks that option, so a model trained
to answer with option text is scored too; when all options are intervals ("From 1.0 to 3.0
seconds."), an answer stating an interval picks the option it overlaps most (unique best IoU > 0);
when options name regions ("top left"), an answer naming one region in other words ("the upper
left corner") picks the option of that region.
Anything else is unparsable (None) and counts as wrong.

Open answers to "Are there any anomalies?" give a judgement (yes / no), the class named in the
text and the interval "from <s> to <e> (seconds)"; an answer naming several anomalies splits
into events (`parse_events`: class, interval and region of each), and a "where" answer gives a
region (`vaujax.data.regions.parse_region`).
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from vaujax.data.benchmark_files import LETTERS   # a question's own count bounds the letter
from vaujax.data.regions import parse_region

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
  return _closest_interval(answer, options) if _is_interval_question(options) \
      else _same_region(answer, options)


def _is_interval_question(options: Sequence[str]) -> bool:
  return all(parse_interval(o) is not None for o in options)


def _same_region(text: str, options: Sequence[str]) -> Optional[int]:
  """For region options ("top left", ...): the one option naming the region the text names
  ("in the upper left corner")."""
  said = parse_region(text)
  picked = [i for i, o in enumerate(options) if said is not None and parse_region(o) == said]
  return picked[0] if len(picked) == 1 else None


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


def _class_variants(name: str) -> set[str]:
  """The readable spellings of a class name: "RoadAccidents" -> "roadaccidents", "road
  accidents", "roadaccident", "road accident" (one trailing "s" dropped, as `parse_class`)."""
  variants = {_normal(name), _normal(re.sub(r"(?<!^)([A-Z])", r" \1", name))}
  return {v for v in variants | {v[:-1] for v in variants if v.endswith("s")} if v}


def _class_mentions(text: str, classes: Sequence[str]) -> list[tuple[int, int, str]]:
  """(start, end, class) of every class mention in the text, in text order; a mention inside a
  longer one (of another class) is dropped."""
  lower = text.lower()
  found = []
  for name in classes:
    for v in _class_variants(name):
      words = r"[^a-z0-9]+".join(re.escape(w) for w in v.split())
      found += [(m.start(), m.end(), name)
                for m in re.finditer(rf"(?<![a-z0-9]){words}", lower)]
  found.sort(key=lambda m: (m[0], -m[1]))
  kept = []
  for m in found:
    if not kept or m[0] >= kept[-1][1]:
      kept.append(m)
  return kept


Event = tuple[Optional[str], Optional[tuple[float, float]], Optional[str]]


def parse_events(text: str, classes: Sequence[str]) -> list[Event]:
  """The anomalies a (final) answer names: [(class, (start, end) | None, region | None)] in
  text order.

  Each class mention owns the text up to the next class mention: the first "from <s> to <e>"
  and the region words (`regions.parse_region`) in it are that event's ("... a fighting from
  1.0 to 3.0 seconds at the top left of the scene, and an explosion from 5.0 to 7.0 seconds at
  the centre of the scene."). A later mention of a class already named fills what that event
  lacks ("The fighting is on the left."), unless both state an interval: then it is another
  event of the same class ("an arrest from 1 to 3 s, and an arrest from 5 to 7 s"). A text
  with one event reads what its part lacks from the whole text ("From 1.0 to 3.0 seconds, a
  fighting."), as `parse_class` / `parse_interval` do. A text naming no class gives one event
  per stated interval (class None), or none.
  """
  mentions = _class_mentions(text, classes)
  if mentions:
    bounds = [m[0] for m in mentions[1:]] + [len(text)]
    pieces = [(m[2], text[m[1]:end]) for m, end in zip(mentions, bounds)]
  else:
    starts = [m.start() for m in _INTERVAL.finditer(text)]
    pieces = [(None, text[a:b]) for a, b in zip(starts, starts[1:] + [len(text)])]
  events: list[list] = []
  for name, piece in pieces:
    interval, region = parse_interval(piece), parse_region(piece)
    same = [e for e in events if name is not None and e[0] == name]
    if same and (same[-1][1] is None or interval is None):
      same[-1][1], same[-1][2] = same[-1][1] or interval, same[-1][2] or region
    else:
      events.append([name, interval, region])
  if len(events) == 1 and mentions:
    name, interval, region = events[0]
    events = [[name, interval or parse_interval(text), region or parse_region(text)]]
  return [tuple(e) for e in events]


def interval_iou(a: Optional[Sequence[float]], b: Optional[Sequence[float]]) -> float:
  """Temporal IoU of two [start, end] intervals (0 when either is missing)."""
  if a is None or b is None:
    return 0.0
  inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
  union = max(a[1], b[1]) - min(a[0], b[0])
  return inter / union if union > 0 else float(a[0] == b[0])
