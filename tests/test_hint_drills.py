"""Text-only hint drills (vaujax/data/hint_drills.py): every drill's hint answers its question,
a reader that ignores the hint does not, and the items are valid text-only instruction items."""

import collections
import json
import re

import numpy as np
import pytest

from vaujax.data import benchmark_files, conversation, hint_drills, instructions, regions

CLASSES = ("Explosion", "Fighting", "RoadAccidents", "Stealing", "Arson")


def _hint_and_question(item):
  human = item["conversations"][0]["value"]
  question_start = human.index(next(q for q in (
      benchmark_files.TYPE_QUESTION, benchmark_files.TEMPORAL_QUESTION,
      *instructions.WHERE_QUESTIONS, *(q.split("{name}")[0] for q in
                                       instructions.NAMED_WHEN_QUESTIONS
                                       + instructions.NAMED_WHERE_QUESTIONS))
      if q in human))
  hint, rest = human[:question_start].strip(), human[question_start:]
  lines = rest.split("\n")
  return hint, lines[0], [line[3:] for line in lines[1:-1]], item["conversations"][1]["value"]


def _read_spans(hint):
  """[(type or None, start, end, region text or None)] said by a hint."""
  said = hint.split("occurring", 1)[1] if "occurring" in hint else ""
  out = []
  for m in re.finditer(r"(?:(?::|,|and) )?(?:(\w+(?: \w+)?) )?from (\d+\.\d) to (\d+\.\d) "
                       r"seconds(?: near (the [\w ]+?))?(?=,| and|\.$|\. )", said):
    kind = m.group(1) if m.group(1) not in (None, "and") else None
    out.append((kind, float(m.group(2)), float(m.group(3)), m.group(4)))
  return out


def _answer_from_hint(item) -> str:
  """What a perfect reader of the hint answers: the option nearest the (named) span, the named
  span's region, or the type the hint names."""
  hint, question, options, _ = _hint_and_question(item)
  spans = _read_spans(hint)
  named = [s for s in spans if s[0] and s[0] in question.lower()]
  kind, start, end, where = (named or spans)[0]
  if options[0].startswith("From "):
    dist = [abs(float(o.split()[1]) - start) + abs(float(o.split()[3]) - end) for o in options]
    return options[int(np.argmin(dist))]
  if question == benchmark_files.TYPE_QUESTION:
    return next(o for o in options if o.lower() == kind)
  return next(o for o in options if regions.region_text(o) == where)


@pytest.mark.parametrize("kw", [dict(), dict(regions=True),
                                dict(regions=True, types=True, multi_fraction=0.4)])
def test_every_drill_is_answered_by_its_hint_and_not_without_it(kw):
  items = hint_drills.drill_items(hint_drills.DrillConfig(150, CLASSES, **kw))
  assert items == hint_drills.drill_items(hint_drills.DrillConfig(150, CLASSES, **kw))
  kinds = collections.Counter(i["id"].split("_", 1)[1] for i in items)
  assert kinds["temporal_mc"] > 50
  assert (kinds["spatial_mc"] > 50) == bool(kw.get("regions"))
  assert (kinds["type_mc"] == 150) == bool(kw.get("types"))
  assert (kinds["temporal_1_mc"] > 20) == bool(kw.get("multi_fraction"))
  right = [_answer_from_hint(i) == i["conversations"][1]["value"] for i in items]
  assert all(right)
  # the hint is needed: the option a reader without it would guess (the first) is right ~1/4
  first = np.mean([_hint_and_question(i)[2][0] == i["conversations"][1]["value"] for i in items])
  assert 0.1 < first < 0.4
  # the hint is the run's own sentence, and it is inexact: not the truth digit for digit
  hints = [_hint_and_question(i)[0] for i in items]
  assert all(h.startswith(conversation.hint_text(None, CLASSES) + " ") for h in hints)
  temporal = [i for i in items if i["id"].endswith("temporal_mc")]
  exact = [re.search(r"from (\d+\.\d) to (\d+\.\d) seconds", _hint_and_question(i)[0]).groups()
           == tuple(i["conversations"][1]["value"].split()[1:4:2]) for i in temporal]
  assert np.mean(exact) < 0.2
  # durations reach past the training videos' 16 s, and below their 4 s
  ends = [float(i["conversations"][1]["value"].split()[3].rstrip(".")) for i in temporal]
  assert max(ends) > 25 and min(ends) < 4


def test_drills_are_valid_text_only_instruction_items(tmp_path):
  items = hint_drills.drill_items(hint_drills.DrillConfig(20, CLASSES, regions=True, seed=3))
  path = tmp_path / "drills.json"
  path.write_text(json.dumps(items))
  read, problems = instructions.read_instructions(str(path))
  assert read == items and problems == []
  assert all("video" not in i and "image" not in i for i in items)
  assert not any(conversation.has_placeholder(t["value"]) for i in items
                 for t in i["conversations"])
  assert len({i["id"] for i in items}) == len(items)
  other = hint_drills.drill_items(hint_drills.DrillConfig(20, CLASSES, regions=True, seed=4))
  assert other != items


def test_fixed_frame_runs_and_bad_configs():
  fixed = hint_drills.drill_items(hint_drills.DrillConfig(30, CLASSES, sample_fps=0.0, frames=8))
  assert all(_answer_from_hint(i) == i["conversations"][1]["value"] for i in fixed)
  for kw, message in ((dict(multi_fraction=0.3), "two-event drills need typed hints"),
                      (dict(classes=("Normal", "Arson")), "at least two anomaly classes"),
                      (dict(count=-1), "count must be >= 0"),
                      (dict(seconds=(0.5, 10.0)), "at least min_event_s"),
                      (dict(event_fraction=(0.2, 0.8)), "must lie in")):
    args = {"count": 5, "classes": CLASSES, **kw}
    with pytest.raises(ValueError, match=message):
      hint_drills.DrillConfig(**args)


def test_drills_sample_frames_as_the_run_does_with_min_frames():
  # a 3 s video written at 2 fps: 1 fps gives 3 frames; min_frames 8 takes all 6 it has
  plain = hint_drills.DrillConfig(5, CLASSES)
  dense = hint_drills.DrillConfig(5, CLASSES, min_frames=8)
  np.testing.assert_allclose(hint_drills._frame_times(plain, 3.0), [0.0, 1.0, 2.0])
  np.testing.assert_allclose(hint_drills._frame_times(dense, 3.0), np.arange(6) * 0.5)
  np.testing.assert_allclose(hint_drills._frame_times(dense, 30.0),
                             hint_drills._frame_times(plain, 30.0))   # 12 frames either way
  drills = hint_drills.drill_items(hint_drills.DrillConfig(40, CLASSES, seconds=(2.0, 4.0),
                                                           min_frames=8))
  assert all(_answer_from_hint(i) == i["conversations"][1]["value"] for i in drills)
  from vaujax.app import demo
  assert demo.drill_config(demo.DemoConfig(hint_drills=1, min_frames=8), CLASSES,
                           3).min_frames == 8
  assert demo.drill_config(demo.DemoConfig(hint_drills=1, min_frames=8, frames=4), CLASSES,
                           3).min_frames == 4         # capped at the run's frames


def test_demo_drills_span_the_clock_copies_durations():
  from vaujax.app import demo
  c = demo.DemoConfig(hint_drills=33)
  cfg = demo.drill_config(c, CLASSES, 180)
  assert cfg.count == 33 * 180                  # per training video
  assert cfg.seconds == (2.0, 48.0) and cfg.frames == 12 and cfg.sample_fps == 1.0
  assert not cfg.regions and not cfg.types and cfg.multi_fraction == 0
  typed = dict(hint_drills=5, hint_types=1, hint_regions=1, max_events=2,
               slow_clock_seconds=40.0, fast_clock_seconds=1.5)
  every = demo.drill_config(demo.DemoConfig(**typed, hint_intervals="all"), CLASSES, 10)
  # the copies' durations: faster ones from 1.5 s, slower ones drawn up to 40 s (not 16 x 3)
  assert every.seconds == (1.5, 40.0) and every.types and every.regions
  assert every.multi_fraction == 0.3
  # the strongest run alone: no hint lists two events, so no drill does
  assert demo.drill_config(demo.DemoConfig(**typed), CLASSES, 10).multi_fraction == 0
