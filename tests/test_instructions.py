"""Instruction data and benchmark builders on the synthetic dataset and hand-made annotations."""

import json
from collections import Counter

import pytest

from vaujax.data import annotations as ann
from vaujax.data import benchmark_files as bench
from vaujax.data import instructions as ins
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
