"""Benchmark evaluators: parsing and grading on hand-made predictions with known accuracies,
frame AUC / AP against scikit-learn, option scoring against a plain forward pass, the structured
answer schema, and the inference CLI on a real (synthetic) video file."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import jsonschema
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vaujax import testing
from vaujax.data import conversation
from vaujax.evaluate import parsing, qa

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = ["Explosion", "Road accident", "There is no anomaly.", "Arson"]


@pytest.mark.parametrize("text, expected", [
    ("B", 1), ("(C)", 2), ("D.", 3), ("A. Explosion", 0), ("B) Road accident", 1),
    ("I think the answer is C.", 2), ("The answer is D.", 3), ("Road accident.", 1),
    ("road  ACCIDENT", 1), ("There is no anomaly.", 2), ("Explosion or arson", None),
    ("", None), ("E", None), ("a road accident near the road", 1), ("Fire", None),
])
def test_parse_choice(text, expected):
  assert parsing.parse_choice(text, OPTIONS) == expected


def test_parse_interval_judgement_class():
  assert parsing.parse_interval("Yes, a fight from 2.5 to 4.0 seconds.") == (2.5, 4.0)
  assert parsing.parse_interval("from 6 s to 3 s") == (3.0, 6.0)
  assert parsing.parse_interval("at some point") is None
  assert parsing.parse_judgement("Yes, there is an explosion from 1.0 to 2.0 seconds.")
  assert parsing.parse_judgement("No, there are no anomalies in the video.") is False
  assert parsing.parse_judgement("Hmm.") is None
  assert parsing.parse_judgement("A black vehicle moves slowly from the left.") is None
  assert parsing.parse_judgement("There is a fight near the road.")
  classes = ("Explosion", "RoadAccidents", "Fighting")
  assert parsing.parse_class("Yes, there is a road accident", classes) == "RoadAccidents"
  assert parsing.parse_class("an explosion and fighting", classes) is None
  assert parsing.parse_class("nothing", classes) is None


def test_choose_by_scores_tie_is_no_answer():
  assert parsing.choose_by_scores([-3.0, -1.0, -2.0, -5.0]) == 1
  assert parsing.choose_by_scores([-1.0, -1.0, -2.0, -5.0]) is None


def _mc_items():
  # 3 type questions + 2 temporal questions; answers A, B, C, D, A
  cats = ["type", "type", "type", "temporal", "temporal"]
  return [{"id": f"q{i}", "options": OPTIONS, "answer": "ABCDA"[i], "category": c}
          for i, c in enumerate(cats)]


def test_grade_mc_known_accuracies():
  items = _mc_items()
  texts = ["A", "Road accident.", "???", "D. Arson", "The answer is B."]   # right right none right wrong
  results = [qa.grade_choice(i, parsing.parse_choice(t, i["options"])) for i, t in
             zip(items, texts)]
  s = qa.summarize_mc(results)
  assert s["total_acc"] == pytest.approx(3 / 5)
  assert s["type_acc"] == pytest.approx(2 / 3)
  assert s["temporal_acc"] == pytest.approx(1 / 2)
  assert s["no_answer"] == 1 and s["num_temporal"] == 2
  scores = [[0, -1, -2, -3], [-1, 0, 0, -3], [-1, -1, 0, -3], [-4, -3, -2, -1], [0, -1, -1, -1]]
  results = [qa.grade_choice(i, parsing.choose_by_scores(s)) for i, s in zip(items, scores)]
  s = qa.summarize_mc(results)   # q1 is a tie -> wrong
  assert s["total_acc"] == pytest.approx(4 / 5) and s["type_acc"] == pytest.approx(2 / 3)
  assert s["temporal_acc"] == 1.0


# 2, 3, 4 and 5 options in one benchmark: (options, answer, log-likelihood pick, generated text)
MIXED = [(["Explosion", "Arson"], "B", 1, "B"),                                   # right, right
         (["Explosion", "Arson", "Fighting"], "C", 2, "D"),                       # right, none
         (["Explosion", "Arson", "Fighting"], "A", 1, "The answer is C"),         # wrong, wrong
         (OPTIONS, "D", 3, "D. Arson"),                                           # right, right
         (OPTIONS + ["Shooting"], "E", 4, "E"),                                   # right, right
         (["Stealing", "Arson"], "A", 1, "The answer is Arson")]                  # wrong, wrong


class _ScoresByQuestion:
  """Stands in for an Assistant: log-likelihood scores that pick MIXED's choice, texts as
  MIXED's; a batch must hold one option count (the real model scores a [B, K] array)."""

  identity = None
  config = None

  def score_options(self, chats, feats, options, rows=0):
    assert len({len(o) for o in options}) == 1, "a batch mixes option counts"
    total = np.array([[0.0 if k == self.pick[c[0]["value"]] else -1.0 for k in range(len(o))]
                      for c, o in zip(chats, options)])
    return total, total

  def generate(self, chats, feats, max_new_tokens=24, rows=0):
    return [self.text[c[0]["value"]] for c in chats]


def test_mc_questions_with_two_to_five_options(tmp_path):
  from vaujax.data import benchmark_files
  from vaujax.errors import InputError
  items = [{"id": f"q{i}", "video": "v0.mp4", "question": f"Which {i}?", "options": o,
            "answer": a, "category": "type"} for i, (o, a, _, _) in enumerate(MIXED)]
  bench = tmp_path / "mixed.json"
  bench.write_text(json.dumps(items))
  assert benchmark_files.read_mc(str(bench)) == items
  for options, answer, problem in [
      (["Explosion", "Arson", "Fighting"], "D", "answer 'D' is not one of ['A', 'B', 'C']"),
      (["Explosion"], "A", "'options' must be 2 to 8 non-empty strings"),
      ([f"o{i}" for i in range(9)], "A", "'options' must be 2 to 8 non-empty strings")]:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**items[0], "options": options, "answer": answer}]))
    with pytest.raises(InputError, match=re.escape(f"item q0: {problem}")):
      benchmark_files.read_mc(str(bad))
  assert "E. Shooting\n" in benchmark_files.mc_prompt(items[4])
  feature_dir = tmp_path / "features"
  feature_dir.mkdir()
  np.savez(feature_dir / "v0.npz", tower_patches=np.zeros((1, 1, 1), np.float32),
           timestamps=np.array([0.5]), dino_cls=np.zeros((1, 2), np.float32))
  fake = _ScoresByQuestion()
  prompts = [qa.mc_chat(item)[0]["value"] for item in items]
  fake.pick = {p: pick for p, (_, _, pick, _) in zip(prompts, MIXED)}
  fake.text = {p: text for p, (*_, text) in zip(prompts, MIXED)}
  rows, s = qa.evaluate_mc(fake, items, str(feature_dir), method="loglik", batch_size=2,
                           progress=False)
  assert [r["predicted"] for r in rows] == ["B", "C", "B", "D", "E", "B"]
  assert s["total_acc"] == pytest.approx(4 / 6) and s["num_questions"] == 6
  rows, s = qa.evaluate_mc(fake, items, str(feature_dir), method="generate", batch_size=2,
                           progress=False)
  assert [r["predicted"] for r in rows] == ["B", None, "C", "D", "E", "B"]
  assert s["total_acc"] == pytest.approx(3 / 6) and s["no_answer"] == 1
  with pytest.raises(ValueError, match="option index 3 for a question with 3 options"):
    qa.grade_choice(items[1], 3)


def test_grade_open_known_accuracies_and_iou_boundary():
  classes = ("Explosion", "Fighting")
  items = [{"id": "a", "label": "Explosion", "gt_interval": [2.0, 4.0]},
           {"id": "b", "label": "Fighting", "gt_interval": [1.0, 3.0]},
           {"id": "c", "label": "Normal", "gt_interval": None},
           {"id": "d", "label": "Explosion", "gt_interval": [0.0, 2.0]}]
  texts = ["Yes, there is an explosion from 2.0 to 5.0 seconds.",   # IoU 2/3: right, temporal ok
           "Yes, there is an explosion from 1.0 to 2.0 seconds.",   # wrong class; IoU exactly 0.5
           "No, there are no anomalies in the video.",              # right
           "Yes, there is an explosion."]                           # right; no interval
  results = [qa.grade_open(i, t, classes) for i, t in zip(items, texts)]
  assert [r["correct"] for r in results] == [True, False, True, True]
  assert [r["temporal_correct"] for r in results] == [True, True, None, False]
  s = qa.summarize_open(results)
  assert s["total_acc"] == 0.75 and s["temporal_acc"] == pytest.approx(2 / 3)
  assert s["judgement_acc"] == 1.0 and s["num_anomalous"] == 3
  just_below = qa.grade_open(items[1], "Yes, a fight from 1.0 to 1.99 seconds.", classes)
  assert just_below["temporal_correct"] is False


def test_frame_metrics_match_sklearn():
  rng = np.random.RandomState(0)
  labels = {f"v{i}": (rng.rand(20) < 0.3).astype(int) for i in range(5)}
  scores = {k: np.round(rng.rand(20) * 0.5 + 0.4 * v, 2) for k, v in labels.items()}  # ties too
  m = qa.frame_metrics(scores, labels)
  y = np.concatenate([labels[k] for k in sorted(labels)])
  s = np.concatenate([scores[k] for k in sorted(labels)])
  assert m["frame_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
  assert m["frame_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
  assert m["num_frames"] == 100


# -- with a trained tiny model ------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A tiny stage-one run (a few steps) with its data and TETG classifier."""
  from configs import tetg as tetg_configs
  from configs import vagpt_stage1
  from vaujax.train import loop, tetg_trainer
  from vaujax.files import read_json
  root = tmp_path_factory.mktemp("run")
  paths = testing.make_tiny_vagpt_data(str(root / "data"), num_videos=8, num_frames=4)
  labels = read_json(paths["labels_json"])
  x, y = tetg_trainer.frames_from_features(paths["features"], labels)
  tetg_dir = str(root / "tetg")
  tetg_trainer.save(tetg_dir, tetg_trainer.train(x, y, tetg_configs.get_config("epochs=5")))
  c = vagpt_stage1.get_config("size=tiny,frames=4,steps=6")
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.tetg_params, c.data.batch_size = paths["tokenizer"], tetg_dir, 4
  c.progress, c.ckpt_every = False, 6
  c.mesh.update(dict(data=2, fsdp=2, tensor=2))
  loop.train_and_evaluate(c, str(root / "stage1"))
  return {"config": c, "workdir": str(root / "stage1"), "paths": paths, "labels": labels,
          "root": root}


def _feats(run, vid):
  from vaujax.data import features
  return features.read_features(os.path.join(run["paths"]["features"], vid + ".npz"))


def test_score_options_equal_plain_forward(run):
  """Batched, padded, sharded option scores == log-probs from one unpadded forward per pair."""
  from vaujax.inference.assistant import Assistant
  from vaujax.models.vagpt import VAGPT
  a = Assistant.from_run(run["workdir"])
  vids = sorted(run["labels"])[:3]
  feats = [_feats(run, v) for v in vids]
  chats = [[{"from": "human", "value": f"<video>\nQuestion {i}?"}] for i in range(3)]
  options = [["Explosion", "A road accident.", "No.", "Fire near the road"]] * 3
  total, mean = a.score_options(chats, feats, options)
  assert total.shape == (3, 4) and np.all(total < 0)
  k = a.model.config.num_video_tokens
  for b in range(3):
    chat = conversation.insert_hint(chats[b], a.hint(feats[b]))
    prompt = conversation.tokenize_prompt(chat, a.tokenizer, num_video_tokens=k)
    for o, text in enumerate(options[b]):
      cont = a.tokenizer.encode(text) + [a.tokenizer.eos_id]
      ids = jnp.asarray(np.concatenate([prompt, cont])[None], jnp.int32)
      logits = a.model.apply(a.params, ids, feats[b]["tower_patches"][None],
                             feats[b]["dino_patches"][None])
      logp = jax.nn.log_softmax(logits[0, len(prompt) - 1:-1])
      want = float(sum(logp[i, t] for i, t in enumerate(cont)))
      assert total[b, o] == pytest.approx(want, abs=1e-3)
      assert mean[b, o] == pytest.approx(want / len(cont), abs=1e-3)
  assert VAGPT  # the model class used above


def test_length_buckets_give_the_same_answers_with_one_compile(run):
  """Prompts of different lengths and batch sizes share one compiled scorer when bucketed, and
  bucketing changes neither the option scores nor the greedy answers."""
  import dataclasses

  from vaujax.inference.assistant import Assistant, _option_logprobs
  bucketed = Assistant.from_run(run["workdir"])
  exact = dataclasses.replace(bucketed, length_bucket=1)
  vids = sorted(run["labels"])
  options = [["Explosion", "A road accident.", "No.", "Fire near the road"]]
  # three lengths a few tokens apart (so most share a bucket), batches of 1, 3 and 2
  questions = [("<video>\nWhat happens?", 1), ("<video>\nWhat happens in the video here?", 3),
               ("<video>\nWhat happens here?", 2)]
  scores = {}
  for name, a in (("bucketed", bucketed), ("exact", exact)):
    _option_logprobs.clear_cache()
    out = []
    for text, n in questions:
      chats = [[{"from": "human", "value": text}]] * n
      feats = [_feats(run, vids[0])] * n     # one video: its hint's length is the same in each
      out.append(a.score_options(chats, feats, options * n, rows=3)[0])
    scores[name] = (out, _option_logprobs._cache_size())
  for b, e in zip(scores["bucketed"][0], scores["exact"][0]):
    np.testing.assert_allclose(b, e, atol=2e-4)
  # one compile per prompt width: exact widths without buckets, widths rounded up with them
  # (the prompts' lengths depend on the data's hints, so the widths are measured, not assumed)
  widths = [exact._batch([[{"from": "human", "value": text}]] * n,
                         [_feats(run, vids[0])] * n, 3)[0][0].shape[1]
            for text, n in questions]
  buckets = {-(-w // bucketed.length_bucket) for w in widths}
  assert len(set(widths)) == 3, widths                 # three prompt lengths ...
  assert scores["exact"][1] == 3 and scores["bucketed"][1] == len(buckets) < 3   # ... fewer
  # compiles with buckets
  chats = [[{"from": "human", "value": "<video>\nAre there any anomalies?"}]] * 3
  feats = [_feats(run, v) for v in vids[:3]]
  assert bucketed.generate(chats, feats, max_new_tokens=6, rows=4) == exact.generate(
      chats, feats, max_new_tokens=6)


def test_evaluate_mc_and_open_write_results(run, tmp_path):
  from vaujax.data import annotations, benchmark_files
  from vaujax.inference.assistant import Assistant
  import dataclasses
  a = dataclasses.replace(Assistant.from_run(run["workdir"]), classes=(
      "Explosion", "Fighting", "RoadAccidents", "Stealing", "Arson"))
  labels = run["labels"]
  videos = [annotations.VideoAnnotation(v, 8.0, ((0.0, 8.0),), ("a scene",), labels[v]["label"],
                                        tuple(map(tuple, labels[v]["anomaly_intervals"])))
            for v in sorted(labels)]
  mc = benchmark_files.multiple_choice(videos, a.classes, seed=0)
  feature_dir = run["paths"]["features"]
  rows, summary = qa.evaluate_mc(a, mc, feature_dir, method="loglik", batch_size=3,
                                 progress=False)
  assert len(rows) == len(mc) and summary["num_questions"] == len(mc)
  assert all(len(r["scores"]) == 4 for r in rows)
  # the summary is exactly what grading the per-question rows gives
  assert summary["total_acc"] == pytest.approx(np.mean([r["predicted"] == i["answer"]
                                                        for r, i in zip(rows, mc)]))
  rows_g, summary_g = qa.evaluate_mc(a, mc, feature_dir, method="generate", batch_size=4,
                                     progress=False, max_new_tokens=6)
  assert all("output" in r for r in rows_g) and summary_g["num_questions"] == len(mc)
  ucf = benchmark_files.ucf_qa(videos)
  rows_o, summary_o = qa.evaluate_open(a, ucf, feature_dir, batch_size=8, progress=False,
                                       max_new_tokens=8)
  assert len(rows_o) == len(ucf) and 0.0 <= summary_o["total_acc"] <= 1.0
  path = qa.write_results(str(tmp_path), "mc", rows, summary)
  saved = json.load(open(path))
  assert json.dumps(saved["summary"], sort_keys=True) == json.dumps(summary, sort_keys=True)
  assert len(saved["results"]) == len(mc)


def test_structured_answer_schema():
  from vaujax.inference.assistant import structured_answer, validate_answer
  ts = np.array([0.5, 1.5, 2.5])
  good = structured_answer("Yes, there is an explosion from 1.0 to 2.0 seconds.",
                           np.array([0.1, 0.9, 0.8]), ts, (1.5, 2.5), ("Explosion", "Arson"))
  validate_answer(good)
  assert good["anomaly"] and good["class"] == "Explosion" and good["start_s"] == 1.5
  assert [f["t"] for f in good["frame_scores"]] == [0.5, 1.5, 2.5]
  none = structured_answer("No, there are no anomalies.", None, ts, None, ("Explosion",))
  validate_answer(none)
  assert none == {"anomaly": False, "class": None, "start_s": None, "end_s": None,
                  "frame_scores": [], "explanation": "No, there are no anomalies."}
  for bad in ({**good, "anomaly": "yes"}, {**none, "class": "Explosion"},
              {**good, "extra": 1}, {**good, "frame_scores": [{"t": 0.5, "score": 1.5}]}):
    with pytest.raises(jsonschema.ValidationError):
      validate_answer(bad)


def _infer(run, *extra):
  args = [sys.executable, "-m", "vaujax.infer", *extra]
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_infer_cli_on_a_real_video_and_bad_inputs(run, tmp_path):
  vid = sorted(run["labels"])[0]
  video = os.path.join(run["paths"]["videos"], vid + ".mp4")
  fig, out = str(tmp_path / "fig.png"), str(tmp_path / "answer.json")
  r = _infer(run, f"--run={run['workdir']}", f"--video={video}", f"--figure={fig}",
             f"--json={out}", "--gt=1.0,3.0")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "A: " in r.stdout and "interval:" in r.stdout
  with open(fig, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  from vaujax.inference.assistant import validate_answer
  answer = json.load(open(out))
  validate_answer(answer)
  assert len(answer["frame_scores"]) == 4
  missing = _infer(run, f"--run={run['workdir']}", f"--video={tmp_path / 'nope.mp4'}")
  assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
      f"error: {tmp_path / 'nope.mp4'}: video does not exist"]
  corrupt = tmp_path / "corrupt.mp4"
  corrupt.write_bytes(open(video, "rb").read()[:300])
  bad_video = _infer(run, f"--run={run['workdir']}", f"--video={corrupt}")
  assert bad_video.returncode == 2 and "corrupt.mp4" in bad_video.stderr
  assert len(bad_video.stderr.strip().splitlines()) == 1
  no_run = _infer(run, f"--run={tmp_path}", f"--video={video}")
  assert no_run.returncode == 2 and no_run.stderr.strip().splitlines() == [
      f"error: {tmp_path}: not a vaujax run: no run/config.json (runs written by `vaujax train` "
      "have one)"]


def test_infer_second_call_compiles_nothing_and_prints_no_library_noise(run, tmp_path):
  """The persistent compilation cache: the first call on a run fills it, the second call loads
  every program from it (no new entry); orbax's and JAX's routine warnings stay quiet."""
  vid = sorted(run["labels"])[0]
  video = os.path.join(run["paths"]["videos"], vid + ".mp4")
  cache = tmp_path / "cache"
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT")
         and k != "JAX_COMPILATION_CACHE_DIR"}
  env.update(PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="",
             VAUJAX_COMPILATION_CACHE=str(cache))
  args = [sys.executable, "-m", "vaujax.infer", f"--run={run['workdir']}", f"--video={video}"]
  first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  entries = sorted(os.listdir(cache))
  assert len(entries) >= 3
  second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
  assert second.returncode == 0 and second.stdout == first.stdout
  assert sorted(os.listdir(cache)) == entries
  for noise in ("read only", "Metadata file does not exist", "backend 'tpu'", "WARNING"):
    assert noise not in second.stderr, second.stderr[-2000:]


def test_parse_choice_closest_interval():
  options = ["From 3.0 to 6.5 seconds.", "From 4.5 to 8.0 seconds.", "From 1.0 to 4.5 seconds.",
             "From 0.5 to 2.2 seconds."]
  assert parsing.parse_choice("From 1.0 to 4.0 seconds.", options) == 2
  assert parsing.parse_choice("from 7.9 to 8.0", options) == 1
  assert parsing.parse_choice("From 9.0 to 10.0 seconds.", options) is None      # no overlap
  assert parsing.parse_choice("From 1.0 to 4.0 seconds.", OPTIONS) is None        # not intervals
  tie = ["From 0.0 to 2.0 seconds.", "From 2.0 to 4.0 seconds.", "From 5.0 to 6.0 seconds.",
         "From 6.0 to 7.0 seconds."]
  assert parsing.parse_choice("from 1.0 to 3.0", tie) is None


def test_ablation_variants_and_table():
  from vaujax.app import ablation
  rows = ablation.variants((0.1, 0.5, 0.9))
  assert [r["name"] for r in rows][:4] == ["none", "SETS", "TETG", "SETS + TETG"]
  assert [r["sets"] for r in rows] == [None, 0.5, None, 0.5, 0.1, 0.9]
  s = {"total_acc": 0.5, "temporal_acc": float("nan")}
  q = {"total_acc": 0.25, "temporal_acc": 1.0}
  by_set = {"in_range": {"mc": s, "open_qa": q}, "longer": {"mc": q, "open_qa": s}}
  text = ablation.table([{**r, "mc": s, "open_qa": q, "sets_by_name": by_set} for r in rows])
  lines = text.splitlines()
  assert len(lines) == 2 + len(rows)
  assert lines[0] == ("| SETS | TETG | K | paper Total / Temporal | in_range: MC | in_range: QA "
                      "| longer: MC | longer: QA |")
  # the paper's numbers beside ours: K=0.1 is 23.61 / 29.03 in its K sweep
  assert "| ✓ | ✓ | 0.1 | 23.61 / 29.03 | 50.0 / n/a | 25.0 / 100.0 | 25.0 / 100.0 | " \
         "50.0 / n/a |" in text
  assert lines[2].startswith("|  |  | - | 14.83 / 26.70 |")
  assert ablation.paper_row({"name": "SETS + TETG, K=0.25", "sets": 0.25}) is None


def test_ablation_orderings_name_each_verdict_and_its_size():
  from vaujax.app import ablation
  accs = {"none": (0.50, 0.40), "SETS": (0.55, 0.40), "TETG": (0.80, 0.70),
          "SETS + TETG": (0.80, 0.75), 0.1: (0.90, 0.80), 0.9: (0.70, 0.60)}
  rows = []
  for r in ablation.variants((0.1, 0.5, 0.9)):
    total, temporal = accs[r["name"]] if r["name"] in accs else accs[r["sets"]]
    rows.append({**r, "mc": {"total_acc": total, "temporal_acc": temporal,
                             "num_questions": 100, "num_temporal": 20}})
  assert ablation.orderings(rows) == [
      "TETG > none: holds (80.0 / 70.0 against 50.0 / 40.0; +30 of 100 questions, "
      "+6 of 20 temporal)",
      "SETS > none: holds on Total Acc only, tie on Temporal (55.0 / 40.0 against 50.0 / 40.0; +5 of 100 questions, "
      "+0 of 20 temporal)",
      "SETS + TETG > TETG: holds on Temporal Acc only, tie on Total (80.0 / 75.0 against 80.0 / 70.0; +0 of 100 questions, "
      "+1 of 20 temporal)",
      "SETS + TETG > SETS: holds (80.0 / 75.0 against 55.0 / 40.0; +25 of 100 questions, "
      "+7 of 20 temporal)",
      "K = 0.5 best of K = 0.1, 0.5, 0.9: does not hold (best: K = 0.1, 90.0 / 80.0; "
      "K = 0.5: 80.0 / 75.0)"]
  worse = [dict(r, mc={**r["mc"], "temporal_acc": 0.1}) if r["name"] == "TETG" else r
           for r in rows]
  assert ablation.orderings(worse)[0].startswith("TETG > none: does not hold")
  same = [dict(r, mc=rows[0]["mc"]) if r["name"] == "SETS" else r for r in rows]
  assert ablation.orderings(same)[1].startswith("SETS > none: tie (50.0 / 40.0")


def _mc_for_run(run):
  from vaujax.data import annotations, benchmark_files
  labels = run["labels"]
  videos = [annotations.VideoAnnotation(v, 8.0, ((0.0, 8.0),), ("a scene",), labels[v]["label"],
                                        tuple(map(tuple, labels[v]["anomaly_intervals"])))
            for v in sorted(labels)]
  return benchmark_files.multiple_choice(videos, ("Explosion", "Fighting", "RoadAccidents",
                                                  "Stealing", "Arson"), seed=1)


def test_killed_evaluation_resumes_without_redoing_finished_questions(run, tmp_path):
  from vaujax.inference.assistant import Assistant
  a = Assistant.from_run(run["workdir"])
  mc = _mc_for_run(run)
  feature_dir = run["paths"]["features"]
  full, summary = qa.evaluate_mc(a, mc, feature_dir, batch_size=2, progress=False)
  partial = tmp_path / "mc.partial.jsonl"
  done = 5                               # as if killed after 5 questions, mid-way through a line
  partial.write_text(qa.partial_header(qa.evaluation_identity(a, mc, "loglik"))
                     + "".join(json.dumps(r) + "\n" for r in full[:done]) + '{"id": "torn')

  class Counting:
    def __init__(self, inner):
      self.inner, self.scored, self.identity = inner, 0, inner.identity

    def score_options(self, chats, feats, options, rows=0):
      self.scored += len(chats)
      return self.inner.score_options(chats, feats, options, rows=rows)

  counting = Counting(a)
  resumed, summary2 = qa.evaluate_mc(counting, mc, feature_dir, batch_size=2, progress=False,
                                     resume_path=str(partial))
  assert counting.scored == len(mc) - done
  assert [r["id"] for r in resumed] == [i["id"] for i in mc]
  assert [r["predicted"] for r in resumed] == [r["predicted"] for r in full]
  # equal, NaN included (an accuracy over no questions: NaN != NaN as floats)
  assert json.dumps(summary2, sort_keys=True) == json.dumps(summary, sort_keys=True)
  lines = partial.read_text().splitlines()
  assert len(lines) == 1 + len(mc) and all(json.loads(l) for l in lines)
  assert json.loads(lines[0])["identity"]["model"] == a.identity


def test_evaluation_cli_writes_results_and_frame_metrics(run, tmp_path):
  mc = _mc_for_run(run)
  bench = tmp_path / "test_mc.json"
  bench.write_text(json.dumps(mc))
  labels = tmp_path / "labels.json"
  labels.write_text(json.dumps(run["labels"]))
  args = [sys.executable, "-m", "vaujax.evaluate", f"--run={run['workdir']}",
          f"--benchmark={bench}",
          f"--feature_dir={run['paths']['features']}", f"--out={tmp_path / 'eval'}",
          f"--labels={labels}", "--batch_size=4"]
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  from vaujax.runs import run_dir
  identity = run_dir.identity(run_dir.load_run(run["workdir"]))
  assert identity["step"] == 6
  for method in ("loglik", "generate"):
    saved = json.load(open(tmp_path / "eval" / f"test_mc_{method}.json"))
    assert len(saved["results"]) == len(mc)
    assert not (tmp_path / "eval" / f"test_mc_{method}.partial.jsonl").exists()
    assert saved["identity"]["model"] == {**identity, "run": os.path.realpath(run["workdir"])}
    assert saved["identity"]["benchmark"]["tag"] == f"test_mc_{method}"
  assert "frame_auc" in r.stdout


def test_evaluation_cli_refuses_a_partial_file_of_another_checkpoint(run, tmp_path, capsys):
  """A killed evaluation of checkpoint 3 left its partial file in --out; evaluating the run's
  newest checkpoint (6) into the same --out stops with one line before loading the model,
  and leaves the file as it was."""
  from vaujax.app import evaluate
  from vaujax.evaluate import evaluators
  from vaujax.runs import run_dir
  mc = _mc_for_run(run)
  bench = tmp_path / "test_mc.json"
  bench.write_text(json.dumps(mc))
  out = tmp_path / "eval"
  out.mkdir()
  older = {**run_dir.identity(run_dir.load_run(run["workdir"])), "step": 3}
  tag = "test_mc_loglik"
  identity = {"model": older, "benchmark": evaluators.benchmark_identity(str(bench), tag,
                                                                         "loglik")}
  row = qa.grade_choice(mc[0], 0, method="loglik", scores=[0.0] * 4)
  partial = out / f"{tag}.partial.jsonl"
  partial.write_text(qa.partial_header(identity) + json.dumps(row) + "\n")
  before = partial.read_bytes()
  with pytest.raises(SystemExit) as e:
    evaluate.run(["evaluate", f"--run={run['workdir']}", f"--benchmark={bench}",
                  f"--feature_dir={run['paths']['features']}", f"--out={out}",
                  "--method=loglik"])
  lines = capsys.readouterr().err.strip().splitlines()
  assert e.value.code == 2 and len(lines) == 1
  assert lines[0].startswith(f"error: {partial}: holds answers of another evaluation "
                             "(model.step: 3 in the file, 6 now)")
  assert lines[0].endswith("pass another --out, or delete this file to start the evaluation "
                           "over")
  assert partial.read_bytes() == before and not (out / f"{tag}.json").exists()


def test_frame_metrics_find_features_in_mirrored_folders(tmp_path):
  """Benchmark videos under subfolders: the frame metrics read `cam1/<id>.npz`, not a flat name."""
  from vaujax.data import features
  from vaujax.evaluate import evaluators
  stamps = np.arange(6) + 0.5
  labels = {"Arson001_x264": {"label": "Arson", "anomaly_intervals": [[2.0, 4.0]]},
            "Normal_Videos_002_x264": {"label": "Normal", "anomaly_intervals": []}}
  items = []
  for cam, vid, score in (("cam1", "Arson001_x264", [0.1, 0.2, 0.9, 0.8, 0.3, 0.1]),
                          ("cam2", "Normal_Videos_002_x264", [0.2, 0.1, 0.4, 0.1, 0.2, 0.1])):
    os.makedirs(tmp_path / "features" / cam, exist_ok=True)
    features.write_features(str(tmp_path / "features" / cam / f"{vid}.npz"),
                            {"dino_cls": np.asarray(score, np.float32)[:, None],
                             "timestamps": stamps})
    items.append({"id": vid, "video": f"videos/{cam}/{vid}.mp4"})
  (tmp_path / "labels.json").write_text(json.dumps(labels))
  truth, vids = evaluators.read_frame_truth(str(tmp_path / "labels.json"), items,
                                            str(tmp_path / "features"))
  out = qa.evaluate_frames(lambda f: f["dino_cls"][:, 0], truth, str(tmp_path / "features"),
                           vids)
  # frames 2.5 and 3.5 s are anomalous and score 0.9 / 0.8, above all ten others: AUC 1
  assert out["frame_auc"] == 1.0 and out["num_frames"] == 12
