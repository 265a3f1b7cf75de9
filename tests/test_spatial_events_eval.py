"""Issue 29's evaluation: where an anomaly happens (Spatial Acc) and several anomalies in one
video (answers split into events, per-event Temporal Acc, frame AUC / AP over every event), on
hand-made items and answers with hand-counted accuracies."""

import json
import math

import numpy as np
import pytest

from vaujax.evaluate import evaluators, parsing, qa

CLASSES = ("Explosion", "Fighting", "RoadAccidents", "Arson", "Arrest")
TWO = ("Yes, there are two anomalies: a fighting from 1.0 to 3.0 seconds at the top left of the "
       "scene, and an explosion from 5.0 to 7.0 seconds at the centre of the scene.")


# -- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (TWO, [("Fighting", (1.0, 3.0), "top left"), ("Explosion", (5.0, 7.0), "centre")]),
    # one event: interval and region anywhere in the text (as parse_class / parse_interval)
    ("Yes, there is a fighting from 1.0 to 3.0 seconds at the top left of the scene.",
     [("Fighting", (1.0, 3.0), "top left")]),
    ("From 2 to 4 seconds, in the lower right, a road accident.",
     [("RoadAccidents", (2.0, 4.0), "bottom right")]),
    ("Yes, there is an explosion.", [("Explosion", None, None)]),
    # several: each mention owns the text up to the next; a missing part stays None
    ("Yes: a road-accident from 1 to 2 s, then arson on the left.",
     [("RoadAccidents", (1.0, 2.0), None), ("Arson", None, "middle left")]),
    # a class named again fills what its event lacks ...
    ("An explosion from 1 to 2, fighting from 3 to 4 at the bottom. The explosion was at the "
     "top.", [("Explosion", (1.0, 2.0), "top centre"), ("Fighting", (3.0, 4.0), "bottom centre")]),
    # ... but with an interval of its own it is another event of that class
    ("Yes, there are two anomalies: an arrest from 1.0 to 3.0 seconds, and an arrest from 5.0 "
     "to 7.0 seconds at the right.", [("Arrest", (1.0, 3.0), None),
                                      ("Arrest", (5.0, 7.0), "middle right")]),
    # no class: one event per stated interval
    ("from 1 to 2 on the left and from 3 to 4 at the bottom",
     [(None, (1.0, 2.0), "middle left"), (None, (3.0, 4.0), "bottom centre")]),
    ("No, there are no anomalies.", []),
    ("Nothing happens.", []),
])
def test_parse_events(text, expected):
  assert parsing.parse_events(text, CLASSES) == expected


def test_parse_events_reads_the_longer_of_two_overlapping_class_names():
  classes = ("Road", "RoadAccidents")
  assert parsing.parse_events("a road accident from 1 to 2", classes) == [
      ("RoadAccidents", (1.0, 2.0), None)]


def test_region_options_are_picked_by_the_region_the_answer_names():
  options = ["top left", "centre", "bottom right", "middle left"]
  assert parsing.parse_choice("In the upper left corner.", options) == 0
  assert parsing.parse_choice("The bottom right of the scene.", options) == 2
  assert parsing.parse_choice("Near the middle.", options) == 1
  assert parsing.parse_choice("At the top.", options) is None        # top centre: no option
  assert parsing.parse_choice("top left or bottom right", options) is None


# -- multiple choice -----------------------------------------------------------------------------

REGION_OPTIONS = ["top left", "centre", "bottom right", "middle left"]
SPANS = ["From 1.0 to 3.0 seconds.", "From 5.0 to 7.0 seconds.", "From 0.0 to 1.0 seconds.",
         "From 8.0 to 9.0 seconds."]


def _mc_items():
  spatial = [{"id": f"s{i}", "category": "spatial", "options": REGION_OPTIONS, "answer": a,
              "gt_region": REGION_OPTIONS["ABCD".index(a)]} for i, a in enumerate("ABCD")]
  # two events of one video (type named), then a one-event video's temporal question
  temporal = [
      {"id": "t0", "category": "temporal", "options": SPANS, "answer": "A",
       "gt_interval": [1.0, 3.0], "event_label": "Fighting", "events": 2},
      {"id": "t1", "category": "temporal", "options": SPANS, "answer": "B",
       "gt_interval": [5.0, 7.0], "event_label": "Explosion", "events": 2},
      {"id": "t2", "category": "temporal", "options": SPANS, "answer": "A",
       "gt_interval": [1.0, 3.0]}]
  kind = [{"id": "k0", "category": "type", "options": list(CLASSES), "answer": "B"}]
  return spatial + temporal + kind


def test_mc_spatial_and_per_event_accuracy_by_generated_text():
  items = _mc_items()
  texts = ["The top left of the scene.",   # s0 right
           "centre",                       # s1 right
           "At the lower right.",          # s2 right
           "C",                            # s3 wrong (answer D)
           "From 1.0 to 3.0 seconds.",     # t0 right
           "From 1.0 to 3.0 seconds.",     # t1 wrong: the other event's interval
           "A",                            # t2 right (one-event video: not per-event)
           "Fighting."]                    # k0 right
  rows = [qa.grade_choice(i, parsing.parse_choice(t, i["options"])) for i, t in zip(items, texts)]
  assert [r["correct"] for r in rows] == [True, True, True, False, True, False, True, True]
  assert [r.get("events") for r in rows[4:7]] == [2, 2, None]
  s = qa.summarize_mc(rows)
  assert s["spatial_acc"] == 0.75 and s["num_spatial"] == 4
  assert s["event_temporal_acc"] == 0.5 and s["num_event_temporal"] == 2
  assert s["temporal_acc"] == pytest.approx(2 / 3) and s["type_acc"] == 1.0
  assert s["total_acc"] == pytest.approx(6 / 8) and s["no_answer"] == 0


def test_mc_spatial_and_per_event_accuracy_by_scores():
  items = _mc_items()
  scores = [[0, -1, -2, -3], [-1, -1, -2, -3],    # s0 right, s1 a tie: no answer
            [-3, -2, -1, -4], [-3, -2, -1, -0.5],  # s2 right, s3 right
            [-1, -2, -3, -4], [-1, -2, -3, -4],    # t0 right, t1 wrong
            [-5, -1, -3, -4], [-9, 0, -1, -2]]     # t2 wrong, k0 right
  rows = [qa.grade_choice(i, parsing.choose_by_scores(s)) for i, s in zip(items, scores)]
  s = qa.summarize_mc(rows)
  assert s["spatial_acc"] == 0.75 and s["event_temporal_acc"] == 0.5
  assert s["temporal_acc"] == pytest.approx(1 / 3) and s["no_answer"] == 1


def test_mc_without_new_categories_reports_nan():
  s = qa.summarize_mc([{"category": "type", "correct": True, "predicted": "A"}])
  assert math.isnan(s["spatial_acc"]) and math.isnan(s["event_temporal_acc"])
  assert (s["num_spatial"], s["num_event_temporal"]) == (0, 0)


# -- open questions ------------------------------------------------------------------------------

def test_open_spatial_accuracy():
  items = [{"id": f"w{i}", "category": "spatial", "question": "Where does the anomaly happen?",
            "label": "Fighting", "gt_region": g}
           for i, g in enumerate(["top left", "centre", "bottom right", "middle left"])]
  texts = ["At the top left of the scene.",        # right
           "In the middle of the scene.",          # right: "middle" alone is the centre
           "Near the lower right corner.",         # right
           "At the top left of the scene."]        # wrong
  rows = [qa.grade_open(i, t, CLASSES) for i, t in zip(items, texts)]
  assert [r["region"] for r in rows] == ["top left", "centre", "bottom right", "top left"]
  assert [r["correct"] for r in rows] == [True, True, True, False]
  assert rows[0] == {"id": "w0", "category": "spatial", "label": "Fighting", "output": texts[0],
                     "region": "top left", "gt_region": "top left", "correct": True}
  s = qa.summarize_open(rows)
  assert s["spatial_acc"] == 0.75 and s["num_spatial"] == 4
  assert s["num_questions"] == 0 and math.isnan(s["total_acc"])   # no final question here
  unsure = qa.grade_open(items[0], "Somewhere at the top, or the bottom.", CLASSES)
  assert unsure["region"] is None and unsure["correct"] is False
  # the type named in the question: the region the answer gives that type
  named = {"id": "w4", "category": "spatial", "label": "Explosion", "gt_region": "centre",
           "question": "Where does the explosion happen?"}
  assert qa.grade_open(named, TWO, CLASSES)["region"] == "centre"
  assert qa.grade_open(dict(named, label="Fighting", gt_region="top left"), TWO, CLASSES)[
      "correct"] is True


def test_open_type_named_interval_questions():
  items = [{"id": "e0", "category": "temporal_event", "label": "Fighting",
            "question": "When does the fighting happen?", "gt_interval": [1.0, 3.0]},
           {"id": "e1", "category": "temporal_event", "label": "Explosion",
            "question": "When does the explosion happen?", "gt_interval": [5.0, 7.0]},
           {"id": "e2", "category": "temporal_event", "label": "Explosion",
            "question": "When does the explosion happen?", "gt_interval": [5.0, 7.0]}]
  texts = ["From 1.0 to 3.0 seconds.",                        # IoU 1
           "The fighting is from 1 to 3 s and the explosion from 5.0 to 6.0 seconds.",  # 0.5
           "From 1.0 to 3.0 seconds."]                        # the other event's: IoU 0
  rows = [qa.grade_open(i, t, CLASSES) for i, t in zip(items, texts)]
  assert [r["iou"] for r in rows] == [1.0, 0.5, 0.0]
  assert rows[1]["interval"] == [5.0, 6.0]
  assert [r["temporal_correct"] for r in rows] == [True, True, False]
  s = qa.summarize_open(rows)
  assert s["event_temporal_acc"] == pytest.approx(2 / 3)
  assert s["named_event_temporal_acc"] == pytest.approx(2 / 3) and s["num_event_temporal"] == 3


EVENTS = [{"label": "Fighting", "interval": [1.0, 3.0], "region": "top left"},
          {"label": "Explosion", "interval": [5.0, 7.0], "region": "centre"}]
FINAL = {"id": "f0", "label": "Fighting", "gt_interval": [1.0, 3.0], "events": EVENTS,
         "question": "Are there any anomalies?"}


def test_final_answer_about_two_anomalies_is_graded_per_event():
  row = qa.grade_open(FINAL, TWO, CLASSES)
  assert row["correct"] is True and row["classes"] == ["Explosion", "Fighting"]
  assert row["iou"] == 1.0 and row["temporal_correct"] is True
  assert [(e["label"], e["iou"], e["region_correct"]) for e in row["events"]] == [
      ("Fighting", 1.0, True), ("Explosion", 1.0, True)]
  # the events in the other order, the explosion's interval half right, its region wrong
  swapped = ("Yes, there are two anomalies: an explosion from 5.0 to 9.0 seconds at the top "
             "right of the scene, and a fighting from 1.0 to 3.0 seconds at the top left.")
  row = qa.grade_open(FINAL, swapped, CLASSES)
  assert row["correct"] is True
  assert [(e["iou"], e["temporal_correct"], e["region_correct"]) for e in row["events"]] == [
      (1.0, True, True), (0.5, True, False)]
  # one of the two named: wrong answer; the missing event has no interval (IoU 0)
  one = qa.grade_open(FINAL, "Yes, there is a fighting from 1.0 to 3.0 seconds.", CLASSES)
  assert one["correct"] is False and [e["iou"] for e in one["events"]] == [1.0, 0.0]
  # a third, wrong class: wrong answer, the two true events still graded
  extra = qa.grade_open(FINAL, TWO + " Also arson from 8 to 9.", CLASSES)
  assert extra["correct"] is False and [e["iou"] for e in extra["events"]] == [1.0, 1.0]
  # "no": wrong, nothing read
  no = qa.grade_open(FINAL, "No, there are no anomalies.", CLASSES)
  assert no["correct"] is False and no["judgement"] is False
  assert [e["iou"] for e in no["events"]] == [0.0, 0.0] and no["iou"] == 0.0


def test_several_anomalies_of_one_class_are_matched_in_order():
  item = {"id": "r0", "label": "Arrest", "gt_interval": [1.0, 3.0],
          "events": [{"label": "Arrest", "interval": [1.0, 3.0], "region": None},
                     {"label": "Arrest", "interval": [5.0, 7.0], "region": None}]}
  both = qa.grade_open(item, "Yes, there are two anomalies: an arrest from 1.0 to 3.0 seconds, "
                       "and an arrest from 5.0 to 6.0 seconds.", CLASSES)
  assert both["correct"] is True and [e["iou"] for e in both["events"]] == [1.0, 0.5]
  assert [e["region_correct"] for e in both["events"]] == [None, None]   # no region known
  one = qa.grade_open(item, "Yes, there is an arrest from 1.0 to 3.0 seconds.", CLASSES)
  assert one["correct"] is True and [e["iou"] for e in one["events"]] == [1.0, 0.0]


def test_open_summary_over_every_category():
  normal = {"id": "n", "label": "Normal", "gt_interval": None, "events": []}
  one = {"id": "o", "label": "Arson", "gt_interval": [2.0, 4.0],
         "events": [{"label": "Arson", "interval": [2.0, 4.0], "region": None}]}
  spatial = {"id": "w", "category": "spatial", "label": "Fighting", "gt_region": "top left"}
  named = {"id": "e", "category": "temporal_event", "label": "Explosion",
           "gt_interval": [5.0, 7.0]}
  half = ("Yes, there are two anomalies: a fighting from 1.0 to 3.0 seconds, and an explosion "
          "from 0.0 to 1.0 seconds.")           # the explosion's interval is wrong (IoU 0)
  rows = [qa.grade_open(FINAL, TWO, CLASSES),                             # right, 2/2 events
          qa.grade_open(dict(FINAL, id="f1"), half, CLASSES),             # right, 1/2 events
          qa.grade_open(normal, "No, there are no anomalies.", CLASSES),  # right
          qa.grade_open(one, "Yes, arson from 2.0 to 3.0 seconds.", CLASSES),  # right, IoU 0.5
          qa.grade_open(spatial, "At the bottom.", CLASSES),              # wrong
          qa.grade_open(named, "From 5.0 to 7.0 seconds.", CLASSES)]      # right
  # a one-event final answer is graded as before: no per-event rows
  assert "events" not in rows[3] and rows[3]["temporal_correct"] is True
  s = qa.summarize_open(rows)
  assert s["total_acc"] == 1.0 and s["num_questions"] == 4 and s["num_anomalous"] == 3
  assert s["judgement_acc"] == 1.0 and s["temporal_acc"] == 1.0
  assert s["mean_iou"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
  assert s["spatial_acc"] == 0.0 and s["num_spatial"] == 1
  # events: 2 + 1 of the four in the final answers, and the named question
  assert s["event_temporal_acc"] == pytest.approx(4 / 5) and s["num_event_temporal"] == 5
  assert s["named_event_temporal_acc"] == 1.0


# -- frame AUC / AP ------------------------------------------------------------------------------

def test_frame_metrics_label_every_event_of_a_video(tmp_path):
  """A video with two events: the frames of both are anomalous (labels carry every interval).
  Scoring the second event highest gives AUC 1 only when its frames are labelled anomalous."""
  from vaujax.data import features
  stamps = np.arange(8) + 0.5
  scores = np.asarray([0.1, 0.7, 0.2, 0.1, 0.2, 0.9, 0.3, 0.1], np.float32)   # 1.5 s, 5.5 s
  features.write_features(str(tmp_path / "two.npz"), {"dino_cls": scores[:, None],
                                                      "timestamps": stamps})
  entry = {"label": "Fighting", "anomaly_intervals": [[1.0, 2.0], [5.0, 6.0]],
           "events": [{"label": "Fighting", "interval": [1.0, 2.0], "region": "top left",
                       "location": [10, 10]},
                      {"label": "Arson", "interval": [5.0, 6.0], "region": "centre",
                       "location": [50, 50]}]}
  (tmp_path / "labels.json").write_text(json.dumps({"two": entry}))
  labels, vids = evaluators.read_frame_truth(str(tmp_path / "labels.json"), None, str(tmp_path))
  assert vids == ["two"]
  out = qa.evaluate_frames(lambda f: f["dino_cls"][:, 0], labels, str(tmp_path), vids)
  assert out["frame_auc"] == 1.0 and out["frame_ap"] == 1.0 and out["num_frames"] == 8
  first_only = {"two": {"anomaly_intervals": [[1.0, 2.0]]}}
  old = qa.evaluate_frames(lambda f: f["dino_cls"][:, 0], first_only, str(tmp_path), ["two"])
  assert old["frame_auc"] == pytest.approx(6 / 7)


# -- the benchmark builders' own answers are graded right ----------------------------------------

def _videos():
  from vaujax.data.annotations import Event, VideoAnnotation
  two = VideoAnnotation("two", 10.0, ((0.0, 10.0),), ("Things happen.",), "Fighting",
                        ((1.0, 3.0), (5.0, 7.0)),
                        (Event("Fighting", 1.0, 3.0, "top left"),
                         Event("RoadAccidents", 5.0, 7.0, "bottom right")))
  one = VideoAnnotation("one", 10.0, ((0.0, 10.0),), ("A fire.",), "Arson", ((2.0, 4.0),),
                        (Event("Arson", 2.0, 4.0, "middle left"),))
  normal = VideoAnnotation("calm", 10.0, ((0.0, 10.0),), ("Nothing.",))
  return [two, one, normal]


def test_the_reference_answers_of_the_open_benchmark_are_graded_right():
  from vaujax.data import benchmark_files
  items = benchmark_files.ucf_qa(_videos())
  rows = [qa.grade_open(i, i["answer"], CLASSES) for i in items]
  assert all(r["correct"] for r in rows), [(i["answer"], r) for i, r in zip(items, rows)
                                           if not r["correct"]]
  s = qa.summarize_open(rows)
  assert s["total_acc"] == s["temporal_acc"] == s["spatial_acc"] == 1.0
  assert s["event_temporal_acc"] == 1.0 and s["num_event_temporal"] == 4   # 2 named + 2 events
  assert s["num_spatial"] == 3                                             # 2 named + 1


def test_the_right_options_of_the_mc_benchmark_are_graded_right():
  from vaujax.data import benchmark_files
  items = benchmark_files.multiple_choice(_videos(), CLASSES)
  right = [i["options"][benchmark_files.LETTERS.index(i["answer"])] for i in items]
  rows = [qa.grade_choice(i, parsing.parse_choice(t, i["options"])) for i, t in zip(items, right)]
  assert all(r["correct"] for r in rows)
  s = qa.summarize_mc(rows)
  assert s["spatial_acc"] == s["event_temporal_acc"] == 1.0
  assert (s["num_spatial"], s["num_event_temporal"]) == (3, 2)


def test_in_training_metrics_leave_out_accuracies_over_no_questions():
  """metrics.jsonl and TensorBoard get numbers only: a benchmark without where-questions has
  no Spatial Acc (NaN in the summary), which is neither logged nor written as invalid JSON."""
  import json
  from vaujax.evaluate import evaluators, qa
  items = [{"id": "a", "options": ["x", "y"], "answer": "A", "category": "type"},
           {"id": "b", "options": ["x", "y"], "answer": "B", "category": "temporal"}]
  summary = qa.summarize_mc([qa.grade_choice(items[0], 0), qa.grade_choice(items[1], 0)])
  logged = evaluators.numeric(summary)
  assert logged["total_acc"] == 0.5 and logged["num_spatial"] == 0.0
  assert "spatial_acc" not in logged and "event_temporal_acc" not in logged
  json.loads(json.dumps(logged, allow_nan=False))
