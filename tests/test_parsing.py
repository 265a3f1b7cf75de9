"""Generate-then-parse, pinned to the rules it implements (LLaMA-VID's ScienceQA letter rules,
then option text, then interval overlap), and the pure grading in evaluate/qa.py, with
hand-computed expected values. tests/test_evaluate.py has the benchmark-level checks."""

import math

import pytest

from vaujax.evaluate import parsing, qa

OPTIONS = ["Explosion", "Road accident", "There is no anomaly.", "Arson"]


# -- multiple-choice letters -----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    # a letter counts only bare, or followed by "." / ")" / ":" and a space
    ("A road accident", 1),                 # the article "A" is not option A
    ("A fire broke out.", None),            # ... and is not an answer at all
    ("B road accident", 1),                 # a bare "B" + word is no letter either: option text
    ("A. Explosion", 0), ("A) Explosion", 0), ("A: Explosion", 0), ("(A) Explosion", 0),
    ("A.", 0), ("A)", 0), ("A:", 0), ("(A)", 0), ("A", 0),
    ("  B  ", 1),                           # surrounding white space is ignored
    ("A.Explosion", 0),                     # no space after the letter: read as option text
    ("b", None),                            # letters are upper case
    ("AB", None), ("A B", None),
    ("I think the answer is C.", 2), ("The answer is (D)", 3), ("the answer is B", 1),
])
def test_letter_rules(text, expected):
  assert parsing.parse_choice(text, OPTIONS) == expected


def test_a_letter_beyond_the_options_is_no_answer():
  two = ["Explosion", "Arson"]
  assert parsing.parse_choice("B", two) == 1
  assert parsing.parse_choice("C", two) is None
  assert parsing.parse_choice("C. Arson", two) == 1     # the letter is rejected, the text read
  assert parsing.parse_choice("The answer is C", two) is None
  assert parsing.parse_choice("The answer is B", two) == 1
  assert parsing.parse_choice("D) nothing", two) is None


# -- option text ---------------------------------------------------------------------------------

NESTED = ["accident", "Road accident", "Arson", "Fire near the road"]


@pytest.mark.parametrize("options, text, expected", [
    (OPTIONS, "ROAD-ACCIDENT!", 1),                   # case and punctuation are ignored
    (OPTIONS, "...arson...", 3),                      # leading / trailing dots are stripped
    (OPTIONS, "there is no anomaly", 2),
    (NESTED, "accident", 0),                          # exact text of the shorter option
    (NESTED, "Road accident.", 1),                    # exact text of the longer option
    (NESTED, "a road accident happened", 1),          # both contained, one inside the other
    (NESTED, "an accident near the road", 0),         # only "accident" is contained
    (NESTED, "arson and an accident", None),          # two different answers
    (NESTED, "fire", None),                           # part of an option is not the option
    (OPTIONS, "!!!", None),                           # nothing left after normalising
    (OPTIONS, "   ", None),
])
def test_option_text_rules(options, text, expected):
  assert parsing.parse_choice(text, options) == expected


def test_duplicate_option_texts_pick_the_first():
  assert parsing.parse_choice("Arson", ["Arson", "arson.", "Fire", "Theft"]) == 0


# -- intervals -----------------------------------------------------------------------------------

def test_interval_options_pick_the_unique_best_overlap():
  opts = ["From 0.0 to 4.0 seconds.", "From 2.0 to 6.0 seconds."]
  # said [1, 3]: IoU with [0, 4] = 2/4, with [2, 6] = 1/5
  assert parsing.parse_choice("from 1.0 to 3.0 seconds", opts) == 0
  assert parsing.parse_choice("From 5 to 6.5 seconds.", opts) == 1    # 1/4.5 vs 0
  assert parsing.parse_choice("From 7 to 8 seconds.", opts) is None   # no overlap at all
  assert parsing.parse_choice("From 7 to 8 seconds.", opts[:1]) is None   # one option, IoU 0
  assert parsing.parse_choice("From 1 to 2 seconds.", opts[:1]) == 0
  assert parsing.parse_choice("From 1 to 2 seconds.", opts + ["Arson"]) is None  # not all spans
  assert parsing.parse_choice("Somewhere in the middle.", opts) is None


@pytest.mark.parametrize("text, expected", [
    ("Yes, from 2.5 to 4 seconds.", (2.5, 4.0)),
    ("FROM 1 s TO 2", (1.0, 2.0)),
    ("from 3sec to 5", (3.0, 5.0)),
    ("from 9.5 seconds to 7.25 seconds", (7.25, 9.5)),            # reversed ends are swapped
    ("from 1 to 2, then from 5 to 6", (1.0, 2.0)),                # the first one
    ("from -1 to 2", (-1.0, 2.0)),
    ("between 1 and 2", None), ("from 1 until 2", None), ("", None),
])
def test_parse_interval(text, expected):
  assert parsing.parse_interval(text) == expected


@pytest.mark.parametrize("a, b, expected", [
    ((0, 4), (2, 6), 2 / 6), ((2, 6), (0, 4), 2 / 6),
    ((1, 2), (0, 4), 1 / 4), ((0, 4), (1, 2), 1 / 4),
    ((0, 1), (1, 2), 0.0), ((0, 1), (3, 4), 0.0), ((3, 4), (0, 1), 0.0),
    ((2, 2), (2, 2), 1.0), ((2, 2), (3, 3), 0.0),                  # zero-length intervals
    ((0, 0.5), (0.25, 0.5), 0.5), ((0, 0.5), (0, 0.5), 1.0),      # unions shorter than 1 s
    (None, (1, 2), 0.0), ((1, 2), None, 0.0), (None, None, 0.0),
])
def test_interval_iou(a, b, expected):
  assert parsing.interval_iou(a, b) == pytest.approx(expected, abs=1e-12)


# -- judgement and class -------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Yes, there is a fight.", True), ("yes", True), ("  YES.", True), ("Yeah, a fire.", True),
    ("There is an explosion.", True), ("There are two fights.", True),
    ("There is one man stealing a bag.", True), ("There are some people fighting.", True),
    ("There is a car.", True),
    ("Yes, but there are no anomalies.", False),       # "no anomal" wins over "yes"
    ("There is no anomaly.", False),
    ("No.", False), ("no, everything is fine", False), ("No anomalies here.", False),
    ("Nothing unusual happens.", False), ("The street looks normal.", False),
    ("Nobody is there.", None),                        # "no" must be a word
    ("There is nothing.", None), ("There was a fight.", None), ("Maybe.", None), ("", None),
])
def test_parse_judgement(text, expected):
  assert parsing.parse_judgement(text) is expected


UCF = ("Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting",
       "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism")


@pytest.mark.parametrize("text, expected", [
    ("Yes, there is a road accident.", "RoadAccidents"),       # CamelCase split, plural dropped
    ("Two road accidents.", "RoadAccidents"),
    ("RoadAccidents", "RoadAccidents"), ("roadaccident", "RoadAccidents"),
    ("An ARSON attack.", "Arson"),
    ("arson.", "Arson"),
    ("Troubleshooting the camera.", None),                     # "shooting" must start a word
    ("Arson and robbery.", None),                               # two classes
    ("Nothing happens.", None), ("", None),
])
def test_parse_class(text, expected):
  assert parsing.parse_class(text, UCF) == expected


def test_parse_class_plural_rule_is_a_single_trailing_s():
  assert parsing.parse_class("a fight", ["Fights", "Arson"]) == "Fights"
  assert parsing.parse_class("one glass", ["Glasses", "Arson"]) is None     # "glasse" only
  assert parsing.parse_class("the bus", ["Bus", "Arson"]) == "Bus"          # no trailing s


def test_choose_by_scores():
  assert parsing.choose_by_scores([-3.0, -1.0, -2.0]) == 1
  assert parsing.choose_by_scores([-1.0, -3.0, -2.0]) == 0
  assert parsing.choose_by_scores([-3.0, -2.0, -1.0]) == 2
  assert parsing.choose_by_scores([-1.0, -3.0, -1.0]) is None
  assert parsing.choose_by_scores([2.0]) == 0


# -- grading (evaluate/qa.py) --------------------------------------------------------------------

def test_grade_choice_rows():
  item = {"id": "q7", "category": "temporal", "answer": "C", "options": OPTIONS}
  assert qa.grade_choice(item, 2, method="loglik") == {
      "id": "q7", "category": "temporal", "answer": "C", "predicted": "C", "correct": True,
      "method": "loglik"}
  assert qa.grade_choice(item, 0) == {"id": "q7", "category": "temporal", "answer": "C",
                                      "predicted": "A", "correct": False}
  none = qa.grade_choice({"id": "q8", "answer": "A"}, None)
  assert none == {"id": "q8", "category": None, "answer": "A", "predicted": None,
                  "correct": False}


def test_summarize_mc_counts():
  rows = [{"category": "type", "correct": True, "predicted": "A"},
          {"category": "type", "correct": False, "predicted": None},
          {"category": "temporal", "correct": True, "predicted": "B"},
          {"category": "other", "correct": False, "predicted": "C"}]
  s = qa.summarize_mc(rows)
  assert math.isnan(s.pop("spatial_acc")) and math.isnan(s.pop("event_temporal_acc"))
  assert s == {"total_acc": 0.5, "temporal_acc": 1.0, "type_acc": 0.5, "num_questions": 4,
               "num_temporal": 1, "num_spatial": 0, "num_event_temporal": 0, "no_answer": 1}
  empty = qa.summarize_mc([])
  assert math.isnan(empty["total_acc"]) and math.isnan(empty["temporal_acc"])
  assert math.isnan(empty["type_acc"]) and empty["num_questions"] == 0
  only_type = qa.summarize_mc(rows[:1])
  assert math.isnan(only_type["temporal_acc"]) and only_type["type_acc"] == 1.0


CLASSES = ("Explosion", "Fighting")


def test_grade_open_rows():
  item = {"id": "a", "label": "Explosion", "gt_interval": [2.0, 4.0]}
  text = "Yes, there is an explosion from 2.0 to 5.0 seconds."
  assert qa.grade_open(item, text, CLASSES) == {
      "id": "a", "label": "Explosion", "output": text, "judgement": True, "class": "Explosion",
      "interval": [2.0, 5.0], "iou": pytest.approx(2 / 3), "correct": True,
      "temporal_correct": True}
  normal = {"id": "n", "label": "Normal", "gt_interval": None}
  said_no = "No, there are no anomalies."
  assert qa.grade_open(normal, said_no, CLASSES) == {
      "id": "n", "label": "Normal", "output": said_no, "judgement": False, "class": None,
      "interval": None, "iou": None, "correct": True, "temporal_correct": None}
  # a "yes" on a normal video is wrong, whatever class and interval it names
  wrong = qa.grade_open(normal, "Yes, there is fighting from 1 to 2 seconds.", CLASSES)
  assert wrong["correct"] is False and wrong["iou"] is None and wrong["class"] == "Fighting"
  # a "no" on an anomalous video: wrong, and the interval it states is not read
  missed = qa.grade_open(item, "No, nothing from 2.0 to 4.0 seconds.", CLASSES)
  assert missed["correct"] is False and missed["interval"] is None and missed["class"] is None
  assert missed["iou"] == 0.0 and missed["temporal_correct"] is False
  # unparsable: neither right nor wrong judgement, so not correct
  lost = qa.grade_open(normal, "Hmm.", CLASSES)
  assert lost["judgement"] is None and lost["correct"] is False
  # right judgement, wrong class
  assert qa.grade_open(item, "Yes, a fight.", CLASSES)["correct"] is False
  # a class named in a "no" answer is not read either
  assert qa.grade_open(normal, "No explosion, nothing unusual.", CLASSES)["class"] is None


@pytest.mark.parametrize("said, ok", [
    ("from 2.0 to 6.0", True),        # IoU 2/4 = 0.5 exactly counts
    ("from 2.0 to 3.0", True),        # 1/2
    ("from 2.0 to 2.99", False),      # 0.99/2 < 0.5
    ("from 0.0 to 4.0", True),        # 2/4
    ("from 0.0 to 4.01", False),
])
def test_temporal_iou_boundary(said, ok):
  item = {"id": "a", "label": "Explosion", "gt_interval": [2.0, 4.0]}
  assert qa.grade_open(item, f"Yes, an explosion {said} seconds.", CLASSES)[
      "temporal_correct"] is ok


def test_the_float_tolerance_of_the_iou_threshold_is_inclusive():
  item = {"id": "a", "label": "Explosion", "gt_interval": [0.0, 1.0]}
  edge = qa.TEMPORAL_IOU - 1e-9                     # 0.499999999, exactly representable here
  assert f"{edge!r}" == "0.499999999"
  at = qa.grade_open(item, f"Yes, an explosion from 0.0 to {edge!r} seconds.", CLASSES)
  assert at["iou"] == edge and at["temporal_correct"] is True
  below = qa.grade_open(item, "Yes, an explosion from 0.0 to 0.4999999 seconds.", CLASSES)
  assert below["temporal_correct"] is False


def test_summarize_open_counts():
  rows = [
      {"iou": 0.6, "temporal_correct": True, "judgement": True, "correct": True},
      {"iou": 0.2, "temporal_correct": False, "judgement": True, "correct": False},
      {"iou": 0.0, "temporal_correct": False, "judgement": False, "correct": False},
      {"iou": None, "temporal_correct": None, "judgement": False, "correct": True},
      {"iou": None, "temporal_correct": None, "judgement": None, "correct": False},
  ]
  s = qa.summarize_open(rows)
  assert all(math.isnan(s.pop(k)) for k in ("spatial_acc", "event_temporal_acc",
                                            "named_event_temporal_acc"))
  assert s == {"total_acc": 0.4, "temporal_acc": pytest.approx(1 / 3),
               "judgement_acc": 0.6, "mean_iou": pytest.approx(0.8 / 3), "num_questions": 5,
               "num_anomalous": 3, "num_spatial": 0, "num_event_temporal": 0, "unparsed": 1}
  normal_only = qa.summarize_open(rows[3:])
  assert math.isnan(normal_only["temporal_acc"]) and math.isnan(normal_only["mean_iou"])
  assert normal_only["judgement_acc"] == 0.5 and normal_only["num_anomalous"] == 0
  empty = qa.summarize_open([])
  assert all(math.isnan(empty[k]) for k in ("total_acc", "temporal_acc", "judgement_acc",
                                            "mean_iou"))
  assert (empty["num_questions"], empty["unparsed"]) == (0, 0)


def test_frame_metrics_pool_the_videos_in_key_order():
  scores = {"b": [0.9, 0.1], "a": [0.2, 0.8]}
  labels = {"b": [1, 0], "a": [0, 1]}
  m = qa.frame_metrics(scores, labels)
  assert m == {"frame_auc": 1.0, "frame_ap": 1.0, "num_frames": 4, "num_videos": 2}
  # pooled, not averaged per video: 0.6 normal in "a" outranks 0.5 anomalous in "b"
  m = qa.frame_metrics({"a": [0.6, 0.7], "b": [0.5, 0.1]}, {"a": [0, 1], "b": [1, 0]})
  assert m["frame_auc"] == pytest.approx(3 / 4)
  assert m["frame_ap"] == pytest.approx((1 + 2 / 3) / 2)


def test_empty_summaries_are_nan_without_numpy_warnings():
  """An empty split is reported as NaN by choice, not by averaging nothing (which numpy warns
  about)."""
  import warnings
  normal_only = [{"iou": None, "temporal_correct": None, "judgement": False, "correct": True}]
  type_only = [{"category": "type", "correct": True, "predicted": "A"}]
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for s in (qa.summarize_mc([]), qa.summarize_mc(type_only), qa.summarize_open([]),
              qa.summarize_open(normal_only)):
      assert any(isinstance(v, float) and math.isnan(v) for v in s.values())
