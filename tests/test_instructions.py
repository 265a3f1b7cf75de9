"""Instruction data and benchmark builders on the synthetic dataset and hand-made annotations."""

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

from vaujax.data import annotations as ann
from vaujax.data import benchmark_files as bench
from vaujax.data import instructions as ins
from vaujax.data import regions
from vaujax.data import synthetic
from vaujax.errors import InputError


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
  out = tmp_path_factory.mktemp("syn")
  labels = synthetic.generate(str(out), synthetic.SyntheticConfig(num_videos=10, seconds=8.0))
  intervals = {k: v["anomaly_intervals"] for k, v in labels.items()}
  vids, _ = ann.read_uca(str(out / "uca.json"), anomaly_intervals=intervals)
  return vids


def test_three_questions_per_clip_last_is_always_the_anomaly_question(videos):
  items = ins.build_instructions(videos, video_dir_prefix="videos/")
  assert len(items) == len(videos)
  for item in items:
    conv = item["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt"] * 3
    assert conv[0]["value"].startswith("<video>\n")
    assert conv[4]["value"] == "Are there any anomalies?"
    assert conv[5]["value"].startswith("Yes" if item["anomaly_intervals"] else "No")
    assert item["video"].startswith("videos/") and item["video"].endswith(".mp4")


def test_clips_split_long_videos():
  v = ann.VideoAnnotation("Arson001_x264", 20.0, ((1.0, 4.0), (12.0, 15.0)),
                          ("A man walks.", "A fire starts."), "Arson", ((12.0, 15.0),))
  clips = ins.clips_of(v, clip_seconds=10.0)
  assert [(c.start, c.end, c.label, c.anomalies) for c in clips] == [
      (0.0, 10.0, "Normal", ()), (10.0, 20.0, "Arson", ((2.0, 5.0),))]
  assert ins.anomaly_answer(clips[1]) == "Yes, there is an arson from 2.0 to 5.0 seconds."


def test_llm_generator_plugs_in_and_is_validated(videos):
  calls = []

  def fake_llm(prompt):
    calls.append(prompt)
    return json.dumps([{"q": "Who is there?", "a": "People."}, {"q": "Where?", "a": "Street."}])

  items = ins.build_instructions(videos[:2], generator=ins.LLMQA(fake_llm))
  assert len(calls) == 2 and items[0]["conversations"][2]["value"] == "Where?"
  with pytest.raises(ValueError, match="not the requested JSON"):
    ins.build_instructions(videos[:1], generator=ins.LLMQA(lambda p: "sure!"))


def test_mc_items_have_one_correct_shuffled_answer(videos):
  classes = synthetic.CLASSES
  items = bench.multiple_choice(videos, classes, seed=1)
  assert items == bench.multiple_choice(videos, classes, seed=1)            # seeded
  assert items != bench.multiple_choice(videos, classes, seed=2)
  letters = Counter(i["answer"] for i in items)
  assert len(letters) >= 3                                                 # really shuffled
  for item in items:
    assert len(item["options"]) == 4 == len(set(item["options"]))
    correct = item["options"]["ABCD".index(item["answer"])]
    if item["category"] == "type":
      assert correct == (bench.NO_ANOMALY if item["label"] == "Normal"
                         else ins.readable(item["label"]))
    else:
      s, e = item["gt_interval"]
      assert correct == f"From {s:.1f} to {e:.1f} seconds."
  assert {i["category"] for i in items} == {"type", "temporal"}
  assert "A. " in bench.mc_prompt(items[0]) and bench.mc_prompt(items[0]).startswith("<video>\n")
  qa = bench.ucf_qa(videos)
  assert all(q["question"] == "Are there any anomalies?" for q in qa)


@pytest.mark.parametrize("bad,problem", [
    ("[{\"id\": 1, \"video\": \"a\"", "malformed JSON"),
    (json.dumps([{"id": "x", "video": "v.mp4"}]), "example x: missing 'conversations'"),
    (json.dumps([{"id": "x", "conversations": [{"from": "human", "value": "<video>\nq"}]}]),
     "example x: has a <video> placeholder but no 'video'"),
    (json.dumps([{"id": "x", "video": "v", "conversations": [{"from": "human", "value": " "}]}]),
     "example x: empty question"),
])
def test_bad_instruction_files(tmp_path, bad, problem):
  path = tmp_path / "train.json"
  path.write_text(bad)
  with pytest.raises(InputError, match=f"train.json: {problem}"):
    ins.read_instructions(str(path))


def test_skip_bad_examples_and_count(tmp_path, videos):
  good = ins.build_instructions(videos[:3])
  path = tmp_path / "train.json"
  path.write_text(json.dumps(good + [{"id": "broken", "video": "v.mp4"}]))
  items, problems = ins.read_instructions(str(path), skip_bad=True)
  assert len(items) == 3 and problems == ["example broken: missing 'conversations'"]


def test_single_turn_items_split_every_question():
  from vaujax.data import instructions as ins
  conv = [{"from": "human", "value": "<video>\nQ1"}, {"from": "gpt", "value": "A1"},
          {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]
  out = ins.single_turn_items([{"id": "x", "video": "v.mp4", "conversations": conv}])
  assert [o["id"] for o in out] == ["x_turn0", "x_turn1"]
  assert out[1]["conversations"] == [{"from": "human", "value": "<video>\nQ2"},
                                     {"from": "gpt", "value": "A2"}]
  assert all(o["video"] == "v.mp4" for o in out)


def test_temporal_distractors_fit_around_a_long_event():
  from vaujax.data import benchmark_files as bench
  from vaujax.data.annotations import VideoAnnotation
  v = VideoAnnotation("Arson001", 8.0, ((0.0, 8.0),), ("fire",), "Arson", ((1.7, 5.7),))
  items = bench.multiple_choice([v], ("Arson", "Explosion", "Fighting", "Stealing"), seed=3)
  temporal = [i for i in items if i["category"] == "temporal"][0]
  from vaujax.evaluate.parsing import interval_iou, parse_interval
  spans = [parse_interval(o) for o in temporal["options"]]
  truth = spans["ABCD".index(temporal["answer"])]
  assert truth == (1.7, 5.7)
  others = [s for s in spans if s != truth]
  assert len(others) == 3 and all(interval_iou(s, truth) < 0.5 for s in others)
  assert all(interval_iou(a, b) < 0.5 for a in others for b in others if a != b)


def test_temporal_distractors_fit_in_videos_of_a_few_seconds():
  """A 0.5x-clock copy of a 5 s training video (2.5 s, a 1 s event at 1.1 s) left room for two
  distractors only, and the demo stopped with a traceback (2026-12-06). Every short video now
  gets three, on the truth's start grid, inside the video, apart from the truth and each other."""
  from vaujax.evaluate.parsing import interval_iou, parse_interval
  from vaujax.data.annotations import VideoAnnotation
  rng = np.random.RandomState(1)
  cases = [(2.5, (1.1, 2.1))] + [
      (d, (s, round(s + ln, 1))) for d, ln, s in
      ((d, ln, round(float(rng.uniform(0, d - ln)), 1)) for d, ln in
       ((d, round(float(rng.uniform(0.5, 0.6 * d)), 1)) for d in rng.uniform(1.5, 4.0, 300)))]
  for k, (duration, interval) in enumerate(cases):
    v = VideoAnnotation(f"Arson{k:03d}", duration, ((0.0, duration),), ("fire",), "Arson",
                        (interval,))
    (item,) = [i for i in bench.multiple_choice([v], CLASSES5, seed=k)
               if i["category"] == "temporal"]
    spans = [parse_interval(o) for o in item["options"]]
    truth = spans[bench.LETTERS.index(item["answer"])]
    others = [sp for sp in spans if sp != truth]
    assert truth == interval and len(others) == 3, (duration, interval, spans)
    assert all(0 <= a < b <= duration + 0.05 for a, b in spans), (duration, spans)   # to 0.1 s
    assert all(interval_iou(o, truth) < 0.5 for o in others)
    assert all(interval_iou(a, b) < 0.5 for a in others for b in others if a != b)
    assert len({round(a * 10) % 5 for a, _ in spans}) == 1


# -- spatial questions and several events (issue 29) ------------------------------------------

def _video(*events, label=None):
  stamps = tuple(e.interval for e in events)
  return ann.VideoAnnotation(f"{(label or events[0].label)}007_x264", 10.0, stamps,
                             tuple(f"event {i}" for i in range(len(events))),
                             label or events[0].label, stamps, tuple(events))


FIGHT = ann.Event("Fighting", 1.0, 3.0, "top left")
BLAST = ann.Event("Explosion", 5.0, 7.0, "centre")


def test_final_answer_names_every_event_interval_and_region():
  one = ins.clips_of(_video(FIGHT))[0]
  assert ins.anomaly_answer(one) == ("Yes, there is a fighting from 1.0 to 3.0 seconds at the "
                                     "top left of the scene.")
  two = ins.clips_of(_video(FIGHT, BLAST))[0]
  assert ins.anomaly_answer(two) == (
      "Yes, there are two anomalies: a fighting from 1.0 to 3.0 seconds at the top left of the "
      "scene, and an explosion from 5.0 to 7.0 seconds at the centre of the scene.")
  three = ins.clips_of(_video(FIGHT, BLAST, ann.Event("RoadAccidents", 8.0, 9.0, None)))[0]
  assert ins.anomaly_answer(three).endswith(
      "at the centre of the scene, and a road accident from 8.0 to 9.0 seconds.")
  assert ins.anomaly_answer(three).startswith("Yes, there are three anomalies: a fighting")
  # a clip holding only the second event is that event's clip
  late = ins.clips_of(_video(FIGHT, BLAST), clip_seconds=5.0)[1]
  assert late.label == "Explosion" and late.events == (ann.Event("Explosion", 0.0, 2.0, "centre"),)


def test_real_data_one_event_keeps_its_answers():
  """No region (real UCF-Crime): today's answers, only the questions' wording varies."""
  v = ann.VideoAnnotation("Arson011_x264", 20.0, ((1.0, 4.0), (12.0, 15.0)),
                          ("A man walks.", "A fire starts."), "Arson", ((12.0, 15.0),))
  pairs = ins.TemplateQA()(ins.clips_of(v)[0])
  assert [a for _, a in pairs] == ["A man walks. A fire starts.",
                                   "Arson, from 12.0 to 15.0 seconds.",
                                   "Yes, there is an arson from 12.0 to 15.0 seconds."]
  assert pairs[0][0] in ins.DESCRIBE_QUESTIONS and pairs[1][0] in ins.TYPE_WHEN_QUESTIONS


def test_one_event_clip_asks_type_when_and_where():
  pairs = ins.TemplateQA()(ins.clips_of(_video(FIGHT))[0])
  assert pairs[0][0] in ins.TYPE_WHEN_QUESTIONS
  assert pairs[0][1] == "Fighting, from 1.0 to 3.0 seconds."
  assert pairs[1][0] in ins.WHERE_QUESTIONS and pairs[1][1] == "At the top left of the scene."
  assert pairs[2] == (ins.FINAL_QUESTION, ins.anomaly_answer(ins.clips_of(_video(FIGHT))[0]))


def test_two_event_clip_asks_about_a_named_type():
  asked = set()
  for k in range(12):
    v = dataclasses.replace(_video(FIGHT, BLAST), video_id=f"Fighting{k:03d}_x264")
    pairs = ins.TemplateQA()(ins.clips_of(v)[0])
    (when_q, when_a), (where_q, where_a), (final_q, _) = pairs
    event = FIGHT if "fighting" in when_q else BLAST
    assert f"the {event.label.lower()}" in when_q
    assert when_a == f"From {event.start:.1f} to {event.end:.1f} seconds."
    event = FIGHT if "fighting" in where_q else BLAST
    assert f"the {event.label.lower()}" in where_q
    assert where_a == f"At the {event.region} of the scene." and final_q == ins.FINAL_QUESTION
    asked.add((when_q.split(" the ")[1].split()[0], where_q.split(" the ")[1].split()[0]))
  assert len(asked) == 4          # both events asked about, in both questions


def test_wording_is_a_seeded_per_clip_choice():
  videos = [dataclasses.replace(_video(FIGHT), video_id=f"Fighting{k:03d}_x264")
            for k in range(16)]
  questions = lambda seed: [tuple(q for q, _ in ins.TemplateQA(seed)(ins.clips_of(v)[0]))  # noqa
                            for v in videos]
  assert questions(0) == questions(0)                   # deterministic
  assert questions(0) != questions(1)                   # the seed picks the wording
  assert len({q[0] for q in questions(0)}) >= 2 and len({q[1] for q in questions(0)}) >= 2
  answers = lambda seed: [tuple(a for _, a in ins.TemplateQA(seed)(ins.clips_of(v)[0]))  # noqa
                          for v in videos]
  assert answers(0) == answers(1)                       # the answers do not depend on it


CLASSES5 = ("Explosion", "Fighting", "RoadAccidents", "Stealing", "Arson")
# multiple_choice's items of these two videos before issue 29 (seed 0), copied from its output;
# the temporal distractors since their grid follows the truth's start (2026-12-06)
BEFORE_29 = [
    {"id": "Arson003_x264_type", "video": "Arson003_x264.mp4",
     "question": "Which type of anomaly happens in the video?",
     "options": ["There is no anomaly.", "Road accident", "Arson", "Stealing"], "answer": "C",
     "category": "type", "gt_interval": None, "label": "Arson"},
    {"id": "Arson003_x264_temporal", "video": "Arson003_x264.mp4",
     "question": "When does the anomaly happen in the video?",
     "options": ["From 0.1 to 6.5 seconds.", "From 2.1 to 5.3 seconds.",
                 "From 4.1 to 5.7 seconds.", "From 6.6 to 8.2 seconds."], "answer": "B",
     "category": "temporal", "gt_interval": [2.1, 5.3], "label": "Arson"},
    {"id": "Normal_Videos_004_x264_type", "video": "Normal_Videos_004_x264.mp4",
     "question": "Which type of anomaly happens in the video?",
     "options": ["Stealing", "Explosion", "There is no anomaly.", "Fighting"], "answer": "C",
     "category": "type", "gt_interval": None, "label": "Normal"}]


def test_one_event_mc_items_are_unchanged_plus_a_spatial_item():
  arson = ann.VideoAnnotation("Arson003_x264", 9.0, ((2.1, 5.3),), ("fire",), "Arson",
                              ((2.1, 5.3),))
  normal = ann.VideoAnnotation("Normal_Videos_004_x264", 6.0, ((0.0, 6.0),), ("cars",))
  assert bench.multiple_choice([arson, normal], CLASSES5, seed=0) == BEFORE_29   # no region
  placed = dataclasses.replace(arson, events=(ann.Event("Arson", 2.1, 5.3, "bottom left"),))
  items = bench.multiple_choice([placed, normal], CLASSES5, seed=0)
  assert [i for i in items if i["category"] != "spatial"] == BEFORE_29
  (spatial,) = [i for i in items if i["category"] == "spatial"]
  assert spatial["id"] == "Arson003_x264_spatial" and spatial["gt_region"] == "bottom left"
  assert spatial["question"] in ins.WHERE_QUESTIONS
  options = spatial["options"]
  assert len(set(options)) == 4 and set(options) <= set(regions.REGIONS)
  assert options[bench.LETTERS.index(spatial["answer"])] == "bottom left"


def test_spatial_distractors_are_three_of_the_other_eight_seeded():
  wrong = set()
  for k in range(40):
    v = ann.VideoAnnotation(f"Arson{k:03d}_x264", 9.0, ((2.0, 5.0),), ("fire",), "Arson",
                            ((2.0, 5.0),), (ann.Event("Arson", 2.0, 5.0, "centre"),))
    (item,) = [i for i in bench.multiple_choice([v], CLASSES5, seed=0)
               if i["category"] == "spatial"]
    assert item == [i for i in bench.multiple_choice([v], CLASSES5, seed=0)
                    if i["category"] == "spatial"][0]
    wrong |= set(item["options"]) - {"centre"}
    assert "centre" in item["options"] and len(set(item["options"])) == 4
  assert wrong == set(regions.REGIONS) - {"centre"}      # every other region is drawn


def test_two_event_mc_items_name_each_type(tmp_path):
  from vaujax.evaluate.parsing import interval_iou, parse_interval
  v = _video(FIGHT, BLAST)
  items = bench.multiple_choice([v], CLASSES5, seed=2)
  by_id = {i["id"]: i for i in items}
  assert set(by_id) == {"Fighting007_x264_type", "Fighting007_x264_temporal_0",
                        "Fighting007_x264_spatial_0", "Fighting007_x264_temporal_1",
                        "Fighting007_x264_spatial_1"}
  assert all(i["events"] == 2 for i in items)
  kind = by_id["Fighting007_x264_type"]
  right = kind["options"][bench.LETTERS.index(kind["answer"])]
  assert right == "Fighting" and "Explosion" not in kind["options"]   # both shown: never wrong
  for k, event in enumerate((FIGHT, BLAST)):
    other = BLAST if k == 0 else FIGHT
    temporal = by_id[f"Fighting007_x264_temporal_{k}"]
    spatial = by_id[f"Fighting007_x264_spatial_{k}"]
    assert f"the {event.label.lower()}" in temporal["question"]
    assert temporal["event_label"] == spatial["event_label"] == event.label
    spans = [parse_interval(o) for o in temporal["options"]]
    assert spans[bench.LETTERS.index(temporal["answer"])] == event.interval
    assert temporal["gt_interval"] == list(event.interval) and other.interval in spans
    assert all(interval_iou(s, event.interval) < 0.5 for s in spans if s != event.interval)
    assert spatial["options"][bench.LETTERS.index(spatial["answer"])] == event.region
    assert spatial["gt_region"] == event.region and other.region in spatial["options"]
  assert bench.read_mc(tmp_json(tmp_path, items)) == items


def tmp_json(tmp_path, obj):
  path = tmp_path / "bench.json"
  path.write_text(json.dumps(obj))
  return str(path)


def test_open_qa_asks_where_and_when_each_event_happens(tmp_path):
  one = ann.VideoAnnotation("Arson003_x264", 9.0, ((2.1, 5.3),), ("fire",), "Arson",
                            ((2.1, 5.3),), (ann.Event("Arson", 2.1, 5.3, "bottom left"),))
  normal = ann.VideoAnnotation("Normal_Videos_004_x264", 6.0, ((0.0, 6.0),), ("cars",))
  real = ann.VideoAnnotation("Arson011_x264", 9.0, ((2.1, 5.3),), ("fire",), "Arson",
                             ((2.1, 5.3),))
  items = bench.ucf_qa([one, normal, real, _video(FIGHT, BLAST)])
  by_id = {i["id"]: i for i in items}
  assert by_id["Arson003_x264_q0"]["events"] == [
      {"label": "Arson", "interval": [2.1, 5.3], "region": "bottom left"}]
  assert by_id["Normal_Videos_004_x264_q0"]["events"] == []
  assert by_id["Arson011_x264_q0"]["answer"] == "Yes, there is an arson from 2.1 to 5.3 seconds."
  assert "Arson011_x264_spatial" not in by_id                       # no region, no question
  spatial = by_id["Arson003_x264_spatial"]
  assert (spatial["category"], spatial["gt_region"], spatial["answer"]) == (
      "spatial", "bottom left", "At the bottom left of the scene.")
  assert regions.parse_region(spatial["answer"]) == "bottom left"
  judgement = by_id["Fighting007_x264_q0"]
  assert judgement["answer"].startswith("Yes, there are two anomalies: a fighting")
  assert [e["label"] for e in judgement["events"]] == ["Fighting", "Explosion"]
  for k, event in enumerate((FIGHT, BLAST)):
    when, where = by_id[f"Fighting007_x264_temporal_event_{k}"], by_id[
        f"Fighting007_x264_spatial_{k}"]
    assert when["category"] == "temporal_event" and when["label"] == event.label
    assert when["gt_interval"] == list(event.interval)
    assert f"the {event.label.lower()}" in when["question"] and when["question"] in [
        q.format(name=event.label.lower()) for q in ins.NAMED_WHEN_QUESTIONS]
    assert where["gt_region"] == event.region and where["label"] == event.label
  assert bench.read_ucf_qa(tmp_json(tmp_path, items)) == items
  assert bench.ucf_qa([one], seed=0) == bench.ucf_qa([one], seed=0)


@pytest.mark.parametrize("read,item,problem", [
    (bench.read_mc, {"category": "spatial", "gt_region": "upper left"},
     "item q: 'gt_region' 'upper left' is not one of the regions"),
    (bench.read_mc, {"category": "spatial"}, "item q: 'gt_region' None is not one of"),
    (bench.read_mc, {"events": 0}, "item q: 'events' must be the video's number of events"),
    (bench.read_ucf_qa, {"category": "spatial", "gt_region": "left"},
     "item q: 'gt_region' 'left' is not one of"),
    (bench.read_ucf_qa, {"events": [{"label": "Arson", "interval": [3, 1]}]},
     "item q: event 0 needs a 'label' and an 'interval'"),
    (bench.read_ucf_qa, {"events": [{"label": "Arson", "interval": [1, 3], "region": "top"}]},
     "item q: event 0 region 'top' is not one of"),
])
def test_bad_spatial_fields_name_file_and_item(tmp_path, read, item, problem):
  base = {"id": "q", "video": "v.mp4", "question": "Where?", "options": ["centre", "top left"],
          "answer": "A"}
  path = tmp_path / "bench.json"
  path.write_text(json.dumps([{**base, **item}]))
  with pytest.raises(InputError) as e:
    read(str(path))
  assert str(e.value).startswith(f"{path}: {problem}")


def test_generated_events_flow_into_instructions_and_benchmarks(tmp_path):
  cfg = synthetic.SyntheticConfig(num_videos=4, seconds=5.0, fps=1.0, size=32,
                                  normal_fraction=0.0, max_events=2, multi_fraction=0.5, seed=1)
  labels = synthetic.generate(str(tmp_path), cfg)
  videos, _ = ann.read_uca(str(tmp_path / "uca.json"), labels=labels)
  counts = [len(ann.events_of(v)) for v in videos]
  assert sorted(set(counts)) == [1, 2]
  items = ins.build_instructions(videos)
  for item, v in zip(items, videos):
    final = item["conversations"][5]["value"]
    for e in ann.events_of(v):
      assert f"from {e.start:.1f} to {e.end:.1f} seconds at the {e.region} of the scene" in final
  mc = bench.multiple_choice(videos, cfg.classes, seed=0)
  assert sum(i["category"] == "spatial" for i in mc) == sum(counts)
  assert bench.read_mc(tmp_json(tmp_path, mc)) == mc


def test_template_without_varied_wording_asks_the_first_phrasings():
  """`TemplateQA(vary=False)`: every clip gets the wording used before issue 29."""
  from vaujax.data.annotations import VideoAnnotation
  v = VideoAnnotation("Fighting001_x264", 8.0, ((2.0, 4.0),), ("Two people fight.",),
                      "Fighting", ((2.0, 4.0),))
  normal = VideoAnnotation("Normal_Videos_002_x264", 8.0, ((0.0, 8.0),), ("Traffic.",))
  for seed in range(5):
    qa = ins.TemplateQA(seed=seed, vary=False)
    assert qa(ins.clips_of(v)[0]) == [
        ("What happens in the video?", "Two people fight."),
        ("What type of anomaly happens in the video, and when?",
         "Fighting, from 2.0 to 4.0 seconds."),
        ("Are there any anomalies?", "Yes, there is a fighting from 2.0 to 4.0 seconds.")]
    assert qa(ins.clips_of(normal)[0])[1] == (
        "Is anything unusual happening in the video?", "No, everything in the video looks normal.")
  varied = {ins.TemplateQA(seed=s)(ins.clips_of(v)[0])[0][0] for s in range(8)}
  assert len(varied) > 1


def test_temporal_options_cannot_be_told_apart_by_their_digits():
  """Every option's start has the truth's tenths modulo 0.5 s, so the true start is never the
  one off the distractors' grid (before: a text-only rule found it in 76-94% of questions)."""
  from vaujax.evaluate.parsing import parse_interval
  rng = np.random.RandomState(0)
  unique_residue = 0
  for k in range(200):
    duration = float(rng.uniform(2.0, 40.0))
    length = max(1.5, float(rng.uniform(0.25, 0.45)) * duration)   # as the generator's
    start = round(float(rng.uniform(0.0, duration - length)), 1)
    v = ann.VideoAnnotation(f"Arson{k:03d}", duration, ((0.0, duration),), ("fire",), "Arson",
                            ((start, round(start + length, 1)),))
    (item,) = [i for i in bench.multiple_choice([v], CLASSES5, seed=k)
               if i["category"] == "temporal"]
    tenths = [round(parse_interval(o)[0] * 10) % 5 for o in item["options"]]
    assert len(set(tenths)) == 1, item["options"]
    unique_residue += tenths.count(tenths[bench.LETTERS.index(item["answer"])]) == 1
  assert unique_residue == 0
