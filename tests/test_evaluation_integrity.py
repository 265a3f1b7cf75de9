"""Evaluation integrity (issue 25): a resumed evaluation never mixes two models' or two
benchmarks' answers, a damaged resume file loses no finished answer, the benchmark readers refuse
repeated ids and malformed MC answers, the labels reader validates every interval, and the
`evaluate` command reports a bad benchmark or labels file in one line before loading a model.

No trained model is needed: a stand-in assistant answers from fixed scores, and the feature
files are one-frame arrays (the integration tests with a real run are in test_evaluate.py)."""

import dataclasses
import json
import os
from typing import Optional

import ml_collections
import numpy as np
import pytest

from vaujax.data import annotations, benchmark_files
from vaujax.errors import InputError
from vaujax.evaluate import evaluators, qa

OPTIONS = ["Explosion", "Road accident", "There is no anomaly.", "Arson"]
RUN_A = {"run": "/runs/a", "step": 6, "config_sha256": "1" * 64}


class Killed(Exception):
  """Stands for a SIGKILL in the middle of an evaluation."""


@dataclasses.dataclass
class FakeAssistant:
  """Answers MC questions by fixed option scores (option A wins) and open questions with "No";
  counts the questions it is asked; `die_after` batches, it is "killed"."""

  identity: Optional[dict] = None
  die_after: Optional[int] = None
  asked: int = 0
  batches: int = 0
  tetg: object = None
  classes: tuple = ("Explosion", "Arson")
  config: ml_collections.ConfigDict = dataclasses.field(
      default_factory=lambda: ml_collections.ConfigDict({"data": {"feature_dir": ""}}))

  def _tick(self, n):
    if self.die_after is not None and self.batches >= self.die_after:
      raise Killed()
    self.batches, self.asked = self.batches + 1, self.asked + n

  def score_options(self, chats, feats, options, rows=0):
    self._tick(len(chats))
    total = np.tile(np.array([0.0, -1.0, -2.0, -3.0]), (len(chats), 1))
    return total, total / 2

  def generate(self, chats, feats, max_new_tokens=24, rows=0):
    self._tick(len(chats))
    return ["No, there are no anomalies."] * len(chats)


def _mc(i, **over):
  return {"id": f"q{i}", "video": f"v{i % 3}.mp4", "question": "Which?", "options": OPTIONS,
          "answer": "ABCD"[i % 4], "category": "type", **over}


def _write(path, obj):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
  return str(path)


@pytest.fixture
def feature_dir(tmp_path):
  """One-frame feature files for videos v0, v1 and v2."""
  d = tmp_path / "features"
  d.mkdir()
  for v in range(3):
    np.savez(d / f"v{v}.npz", tower_patches=np.zeros((1, 1, 1), np.float32),
             timestamps=np.array([0.5]), dino_cls=np.zeros((1, 2), np.float32))
  return str(d)


def _killed_run(assistant, bench, feature_dir, out, batches=2):
  """An evaluation killed after `batches` batches of 2: leaves `<out>/<tag>.partial.jsonl`."""
  assistant.die_after = batches
  with pytest.raises(Killed):
    evaluators.evaluate_benchmark(assistant, bench, feature_dir, out, method="loglik",
                                  batch_size=2, progress=False)
  assistant.die_after = None


# -- 1. a partial file of another checkpoint or benchmark is refused ------------------------------

def test_partial_of_another_checkpoint_is_refused_and_the_same_one_resumes(tmp_path, feature_dir):
  bench = _write(tmp_path / "test_mc.json", [_mc(i) for i in range(8)])
  out = str(tmp_path / "eval")
  _killed_run(FakeAssistant(identity=RUN_A), bench, feature_dir, out)
  partial = os.path.join(out, "test_mc_loglik.partial.jsonl")
  before = open(partial, "rb").read()
  other = FakeAssistant(identity={**RUN_A, "step": 12})
  with pytest.raises(InputError) as e:
    evaluators.evaluate_benchmark(other, bench, feature_dir, out, method="loglik",
                                  batch_size=2, progress=False)
  message = str(e.value)
  assert message.startswith(partial + ": holds answers of another evaluation")
  assert "model.step: 6 in the file, 12 now" in message
  assert "another --out" in message and "delete this file" in message
  assert other.asked == 0 and open(partial, "rb").read() == before   # neither mixed nor rewritten
  resumed = FakeAssistant(identity=dict(RUN_A))
  summaries = evaluators.evaluate_benchmark(resumed, bench, feature_dir, out, method="loglik",
                                            batch_size=2, progress=False)
  assert resumed.asked == 8 - 4 and summaries["test_mc_loglik"]["num_questions"] == 8
  saved = json.load(open(os.path.join(out, "test_mc_loglik.json")))
  assert saved["identity"]["model"] == RUN_A
  assert saved["identity"]["benchmark"]["sha256"] == evaluators.benchmark_identity(
      bench, "test_mc_loglik", "loglik")["sha256"]
  assert not os.path.exists(partial)


def test_another_config_of_the_same_run_is_refused(tmp_path, feature_dir):
  bench = _write(tmp_path / "test_mc.json", [_mc(i) for i in range(6)])
  out = str(tmp_path / "eval")
  _killed_run(FakeAssistant(identity=RUN_A), bench, feature_dir, out, batches=1)
  with pytest.raises(InputError, match="model.config_sha256: 111111111111… in the file, "
                                       "222222222222… now"):
    evaluators.evaluate_benchmark(FakeAssistant(identity={**RUN_A, "config_sha256": "2" * 64}),
                                  bench, feature_dir, out, method="loglik", progress=False)


def test_two_benchmarks_with_the_same_file_name_never_mix(tmp_path, feature_dir):
  """a/test_mc.json and b/test_mc.json into one --out share the tag test_mc_loglik."""
  a = _write(tmp_path / "a" / "test_mc.json", [_mc(i) for i in range(6)])
  b = _write(tmp_path / "b" / "test_mc.json", [_mc(i, question="Another?") for i in range(6)])
  out = str(tmp_path / "eval")
  _killed_run(FakeAssistant(identity=RUN_A), a, feature_dir, out, batches=1)
  second = FakeAssistant(identity=RUN_A)
  with pytest.raises(InputError) as e:
    evaluators.evaluate_benchmark(second, b, feature_dir, out, method="loglik", progress=False)
  assert "benchmark.sha256:" in str(e.value) and "test_mc_loglik.partial.jsonl" in str(e.value)
  assert second.asked == 0
  # the `evaluate` command's check before it loads the model says the same
  with pytest.raises(InputError, match="benchmark.sha256"):
    evaluators.check_resumable(out, b, RUN_A, method="loglik")
  evaluators.check_resumable(out, a, RUN_A, method="loglik")   # its own file resumes


def test_the_same_bytes_elsewhere_are_the_same_benchmark(tmp_path, feature_dir):
  items = [_mc(i) for i in range(6)]
  a = _write(tmp_path / "a" / "test_mc.json", items)
  b = _write(tmp_path / "b" / "test_mc.json", items)
  out = str(tmp_path / "eval")
  _killed_run(FakeAssistant(identity=RUN_A), a, feature_dir, out, batches=1)
  resumed = FakeAssistant(identity=RUN_A)
  evaluators.evaluate_benchmark(resumed, b, feature_dir, out, method="loglik", batch_size=2,
                                progress=False)
  assert resumed.asked == 6 - 2


def test_a_partial_file_without_identity_header_is_refused(tmp_path, feature_dir):
  """A file from before the header (or with a damaged first line): whose answers it holds is
  unknown, so it is not resumed."""
  items = [_mc(i) for i in range(4)]
  partial = tmp_path / "mc.partial.jsonl"
  row = qa.grade_choice(items[0], 0, method="loglik")
  partial.write_text(json.dumps(row) + "\n")
  with pytest.raises(InputError, match="has no identity header"):
    qa.evaluate_mc(FakeAssistant(), items, "unused", resume_path=str(partial), progress=False)
  partial.write_text("{not json\n" + json.dumps(row) + "\n")
  with pytest.raises(InputError, match="has no identity header"):
    qa.evaluate_mc(FakeAssistant(), items, "unused", resume_path=str(partial), progress=False)


def test_direct_calls_record_the_items_and_method(tmp_path, feature_dir):
  """`qa.evaluate_mc` called without a benchmark file still refuses another method's or another
  question set's partial file."""
  items = [_mc(i) for i in range(4)]
  partial = str(tmp_path / "mc.partial.jsonl")
  a = FakeAssistant(die_after=1)
  with pytest.raises(Killed):
    qa.evaluate_mc(a, items, feature_dir, batch_size=2, resume_path=partial, progress=False)
  with pytest.raises(InputError, match="benchmark.method: loglik in the file, generate now"):
    qa.evaluate_mc(FakeAssistant(), items, feature_dir, method="generate", resume_path=partial,
                   progress=False)
  with pytest.raises(InputError, match="benchmark.items_sha256"):
    qa.evaluate_mc(FakeAssistant(), items[:3], feature_dir, resume_path=partial, progress=False)


def test_a_finished_result_of_another_evaluation_is_never_overwritten(tmp_path, feature_dir):
  """No partial file left, but `<tag>.json` in --out was written by another checkpoint or
  benchmark: refused, naming the file and both identities; the same evaluation rerun is a
  no-op (nothing asked, the file untouched)."""
  a = _write(tmp_path / "a" / "test_mc.json", [_mc(i) for i in range(6)])
  b = _write(tmp_path / "b" / "test_mc.json", [_mc(i, question="Another?") for i in range(6)])
  out = str(tmp_path / "eval")
  first = evaluators.evaluate_benchmark(FakeAssistant(identity=RUN_A), a, feature_dir, out,
                                        method="loglik", progress=False)
  result = os.path.join(out, "test_mc_loglik.json")
  before = open(result, "rb").read()
  other = FakeAssistant(identity={**RUN_A, "step": 12})
  with pytest.raises(InputError) as e:
    evaluators.evaluate_benchmark(other, a, feature_dir, out, method="loglik", progress=False)
  message = str(e.value)
  assert message.startswith(result + ": holds the finished results of another evaluation")
  assert "run /runs/a step 6 " in message and "run /runs/a step 12 " in message
  assert "model.step: 6 in the file, 12 now" in message and "another --out" in message
  assert other.asked == 0 and open(result, "rb").read() == before
  with pytest.raises(InputError, match="benchmark.sha256"):   # another benchmark, same tag
    evaluators.evaluate_benchmark(FakeAssistant(identity=RUN_A), b, feature_dir, out,
                                  method="loglik", progress=False)
  with pytest.raises(InputError, match="finished results of another evaluation"):
    evaluators.check_resumable(out, b, RUN_A, method="loglik")   # before a model is loaded
  assert open(result, "rb").read() == before
  same = FakeAssistant(identity=dict(RUN_A))
  evaluators.check_resumable(out, a, RUN_A, method="loglik")
  again = evaluators.evaluate_benchmark(same, a, feature_dir, out, method="loglik",
                                        progress=False)
  assert same.asked == 0 and open(result, "rb").read() == before
  assert json.dumps(again) == json.dumps(first)   # (NaN: no temporal questions)
  assert sorted(os.listdir(out)) == ["test_mc_loglik.json"]


# -- 2. a damaged line in the middle loses only itself --------------------------------------------

def test_a_corrupt_middle_line_keeps_every_valid_answer(tmp_path, feature_dir, capsys):
  items = [_mc(i) for i in range(8)]
  assistant = FakeAssistant(identity=RUN_A)
  identity = qa.evaluation_identity(assistant, items, "loglik")
  # finished answers the stand-in would not give (predicted "D"): kept, not recomputed
  done = {i: qa.grade_choice(items[i], 3, method="loglik", scores=[-9.0] * 4)
          for i in (0, 1, 2, 4, 5)}
  partial = tmp_path / "mc.partial.jsonl"
  partial.write_bytes(qa.partial_header(identity).encode()
                      + b"".join(json.dumps(done[i]).encode() + b"\n" for i in (0, 1, 2))
                      + b'{"id": "q3", "pred\xff\xfe\n'                    # damaged in the middle
                      + b"".join(json.dumps(done[i]).encode() + b"\n" for i in (4, 5))
                      + b'[1, 2]\n{"id": "q6", "predicted": "A", "cor')   # not a row; torn tail
  rows, summary = qa.evaluate_mc(assistant, items, feature_dir, batch_size=2,
                                 resume_path=str(partial), progress=False)
  assert assistant.asked == 3                                          # q3, q6, q7 only
  assert [r["id"] for r in rows] == [i["id"] for i in items]
  for i, row in done.items():
    assert rows[i] == json.loads(json.dumps(row))
  assert [rows[i]["predicted"] for i in (3, 6, 7)] == ["A"] * 3
  assert summary["num_questions"] == 8
  warning = capsys.readouterr().out
  assert f"warning: {partial}: dropped 3 unreadable line(s)" in warning
  assert "kept 5 finished answer(s)" in warning
  lines = partial.read_text().splitlines()
  assert json.loads(lines[0])["format"] == qa.PARTIAL_FORMAT
  assert sorted(json.loads(l)["id"] for l in lines[1:]) == [i["id"] for i in items]


def test_a_partial_file_whose_last_row_has_no_newline_is_not_glued_to_the_next(tmp_path,
                                                                                 feature_dir):
  items = [_mc(i) for i in range(4)]
  identity = qa.evaluation_identity(FakeAssistant(), items, "loglik")
  partial = tmp_path / "mc.partial.jsonl"
  first = qa.grade_choice(items[0], 3, method="loglik")
  partial.write_text(qa.partial_header(identity) + json.dumps(first))   # no trailing newline
  qa.evaluate_mc(FakeAssistant(), items, feature_dir, batch_size=2, resume_path=str(partial),
                 progress=False)
  rows = [json.loads(l) for l in partial.read_text().splitlines()[1:]]
  assert len(rows) == 4 and rows[0] == first


# -- 3 and 4. the benchmark readers --------------------------------------------------------------

@pytest.mark.parametrize("read, item", [
    (benchmark_files.read_mc, _mc(0)),
    (benchmark_files.read_ucf_qa, {"id": "q0", "video": "v0.mp4", "question": "Any?"}),
])
def test_a_repeated_question_id_is_refused(tmp_path, read, item):
  path = _write(tmp_path / "bench.json", [item, {**item, "video": "v9.mp4"}])
  with pytest.raises(InputError) as e:
    read(path)
  assert str(e.value) == (f"{path}: item q0: the id is used by more than one question (ids must "
                          "be unique)")


@pytest.mark.parametrize("answer", ["AB", "BCD", "", "a", "E", " A", 1, None, ["A"], True])
def test_an_mc_answer_is_exactly_one_option_letter(tmp_path, answer):
  path = _write(tmp_path / "mc.json", [_mc(0), _mc(1, answer=answer)])
  with pytest.raises(InputError) as e:
    benchmark_files.read_mc(path)
  assert str(e.value) == (f"{path}: item q1: answer {answer!r} is not one of "
                          "['A', 'B', 'C', 'D']")


@pytest.mark.parametrize("options", ["wxyz", ["a"], ["a", "b", "c", 4], {"A": "a"},
                                     ["a", "b", "c", " "], None, list("abcdefghi")])
def test_mc_options_are_two_to_eight_strings(tmp_path, options):
  path = _write(tmp_path / "mc.json", [_mc(3, options=options)])
  with pytest.raises(InputError, match=r"item q3: 'options' must be 2 to 8 non-empty strings"):
    benchmark_files.read_mc(path)


@pytest.mark.parametrize("read", [benchmark_files.read_mc, benchmark_files.read_ucf_qa])
@pytest.mark.parametrize("bad, problem", [
    ({"id": ["q"]}, "item #0: 'id' must be a non-empty string, got ['q']"),
    ({"id": ""}, "item #0: 'id' must be a non-empty string, got ''"),
    ({"video": 5}, "item q0: 'video' must be a non-empty string"),
    ({"question": None}, "item q0: 'question' must be a non-empty string"),
])
def test_ids_videos_and_questions_are_text(tmp_path, read, bad, problem):
  base = _mc(0) if read is benchmark_files.read_mc else {"id": "q0", "video": "v0.mp4",
                                                         "question": "Any?"}
  path = _write(tmp_path / "bench.json", [{**base, **bad}])
  with pytest.raises(InputError) as e:
    read(path)
  assert str(e.value) == f"{path}: {problem}"


def test_valid_benchmarks_still_read(tmp_path):
  from vaujax.data.annotations import VideoAnnotation
  videos = [VideoAnnotation("Arson001", 8.0, ((0.0, 8.0),), ("a scene",), "Arson",
                            ((2.0, 4.0),)),
            VideoAnnotation("Normal_Videos001", 8.0, ((0.0, 8.0),), ("a scene",))]
  mc = benchmark_files.multiple_choice(videos, ("Arson", "Explosion", "Fighting", "Stealing"))
  assert benchmark_files.read_mc(_write(tmp_path / "mc.json", mc)) == mc
  ucf = benchmark_files.ucf_qa(videos)
  assert benchmark_files.read_ucf_qa(_write(tmp_path / "qa.json", ucf)) == ucf


# -- 6. the labels reader ------------------------------------------------------------------------

GOOD_LABELS = {"v0": {"label": "Arson", "anomaly_intervals": [[1.0, 2.5], [3, 3]]},
               "v1": {"label": "Normal", "anomaly_intervals": []}}


@pytest.mark.parametrize("labels, problem", [
    ({}, "labels file lists no videos"),
    ({"v0": [[1, 2]]}, "v0: entry is not an object"),
    ({"v0": {"label": "Arson"}}, "v0: missing 'anomaly_intervals' ([] for a normal video)"),
    ({"v0": {"anomaly_intervals": [1, 2]}}, "v0: anomaly interval 0 is not a [start, end] pair "
                                            "of numbers"),
    ({"v0": {"anomaly_intervals": "1-2"}}, "v0: 'anomaly_intervals' must be a list of [start, "
                                           "end] pairs, got str"),
    ({"v0": {"anomaly_intervals": [[1, 2], ["1", 2]]}}, "v0: anomaly interval 1 is not a "
                                                        "[start, end] pair of numbers"),
    ({"v0": {"anomaly_intervals": [[1, 2, 3]]}}, "v0: anomaly interval 0 is not a [start, end] "
                                                 "pair of numbers"),
    ({"v0": {"anomaly_intervals": [[True, 2]]}}, "v0: anomaly interval 0 is not a [start, end] "
                                                 "pair of numbers"),
    ({"v0": {"anomaly_intervals": [[5, 2]]}}, "v0: anomaly interval 0 ends before it starts "
                                              "(5.0 > 2.0)"),
    ({"v0": {"anomaly_intervals": [[-1, 2]]}}, "v0: anomaly interval 0 [-1.0, 2.0] lies outside "
                                               "the video"),
])
def test_read_labels_refuses_malformed_entries(tmp_path, labels, problem):
  path = _write(tmp_path / "labels.json", labels)
  with pytest.raises(InputError) as e:
    annotations.read_labels(path)
  assert str(e.value) == f"{path}: {problem}"


def test_read_labels_refuses_nan_and_infinity(tmp_path):
  for text in ('{"v0": {"anomaly_intervals": [[NaN, 2]]}}',
               '{"v0": {"anomaly_intervals": [[0, Infinity]]}}'):
    path = _write(tmp_path / "labels.json", text)
    with pytest.raises(InputError, match="v0: anomaly interval 0 is not a"):
      annotations.read_labels(path)


def test_read_labels_keeps_a_valid_file_as_it_is(tmp_path):
  assert annotations.read_labels(_write(tmp_path / "labels.json", GOOD_LABELS)) == GOOD_LABELS


def test_the_frames_evaluator_and_tetg_trainer_use_the_labels_reader(tmp_path, feature_dir):
  from configs import tetg as tetg_configs
  from vaujax.train import tetg_trainer
  bad = _write(tmp_path / "labels.json", {"v0": {"anomaly_intervals": [["1", 2]]}})
  spec = {"kind": "frames", "labels": bad}
  with pytest.raises(InputError, match="anomaly interval 0 is not a"):
    evaluators.run_evaluator(FakeAssistant(), spec, feature_dir=feature_dir)
  with pytest.raises(InputError, match="anomaly interval 0 is not a"):
    evaluators.check_spec("frames", spec)                  # before training, not at step N
  config = tetg_configs.get_config("epochs=1")
  config.data.feature_dir, config.data.labels_json = feature_dir, bad
  with pytest.raises(InputError, match="anomaly interval 0 is not a"):
    tetg_trainer.run(config, str(tmp_path / "tetg_run"))


def test_labels_that_name_none_of_the_benchmarks_videos_are_an_input_error(tmp_path,
                                                                           feature_dir):
  bench = _write(tmp_path / "mc.json", [_mc(i) for i in range(4)])
  labels = _write(tmp_path / "labels.json", {"other": {"anomaly_intervals": []}})
  with pytest.raises(InputError, match="labels none of the benchmark's videos"):
    evaluators.run_evaluator(FakeAssistant(), {"kind": "frames", "labels": labels,
                                               "benchmark": bench}, feature_dir=feature_dir)


def test_check_spec_reads_the_benchmark_before_training(tmp_path):
  bench = _write(tmp_path / "mc.json", [_mc(0), _mc(0)])
  with pytest.raises(InputError, match="item q0: the id is used by more than one question"):
    evaluators.check_spec("mc", {"kind": "mc", "benchmark": bench})


# -- 5. the evaluate command: bad inputs are one line, before any model is loaded ----------------

def _evaluate_cli(tmp_path, capsys, benchmark, *extra):
  from vaujax.app import evaluate
  args = ["evaluate", f"--run={tmp_path / 'no_run'}", f"--benchmark={benchmark}",
          f"--feature_dir={tmp_path}", *extra]
  with pytest.raises(SystemExit) as e:
    evaluate.run(args)
  err = capsys.readouterr().err
  return e.value.code, err.strip().splitlines()


def _bench_cases(tmp_path):
  good = json.dumps([_mc(i) for i in range(3)])
  return {
      "missing": (str(tmp_path / "absent.json"), "benchmark file does not exist"),
      "truncated": (_write(tmp_path / "cut.json", good[:40]), "malformed JSON ("),
      "not_utf8": (str(tmp_path / "latin1.json"), "not a UTF-8 text file (invalid continuation "
                   "byte at byte 9)"),
      "directory": (str(tmp_path), "benchmark file is not a regular file"),
      "duplicate_id": (_write(tmp_path / "dup.json", [_mc(0), _mc(1), _mc(0)]),
                       "item q0: the id is used by more than one question (ids must be unique)"),
      "substring_answer": (_write(tmp_path / "ab.json", [_mc(0, answer="AB")]),
                           "item q0: answer 'AB' is not one of ['A', 'B', 'C', 'D']"),
      "numeric_answer": (_write(tmp_path / "num.json", [_mc(0, answer=2)]),
                         "item q0: answer 2 is not one of ['A', 'B', 'C', 'D']"),
  }


@pytest.mark.parametrize("case", ["missing", "truncated", "not_utf8", "directory",
                                  "duplicate_id", "substring_answer", "numeric_answer"])
def test_evaluate_cli_reports_a_bad_benchmark_in_one_line(tmp_path, capsys, case):
  (tmp_path / "latin1.json").write_bytes(b'[{"id": "\xe9t\xe9"}]')
  path, problem = _bench_cases(tmp_path)[case]
  code, lines = _evaluate_cli(tmp_path, capsys, path)
  assert code == 2 and len(lines) == 1
  if case == "truncated":                          # then the JSON parser's words, and where
    assert lines[0].startswith(f"error: {path}: {problem}") and "line 1 column" in lines[0]
  else:
    assert lines == [f"error: {path}: {problem}"]


@pytest.mark.parametrize("labels, problem", [
    ({"v0": {"anomaly_intervals": [[4, 1]]}}, "v0: anomaly interval 0 ends before it starts "
                                              "(4.0 > 1.0)"),
    ({"v0": {"label": "Arson"}}, "v0: missing 'anomaly_intervals' ([] for a normal video)"),
    ({"elsewhere": {"anomaly_intervals": []}}, "labels none of the benchmark's videos, so there "
                                               "are no frames to score"),
])
def test_evaluate_cli_reports_bad_labels_in_one_line(tmp_path, capsys, labels, problem):
  bench = _write(tmp_path / "mc.json", [_mc(i) for i in range(3)])
  path = _write(tmp_path / "labels.json", labels)
  code, lines = _evaluate_cli(tmp_path, capsys, bench, f"--labels={path}")
  assert code == 2 and lines == [f"error: {path}: {problem}"]


def test_evaluate_cli_validates_the_benchmark_before_the_run(tmp_path, capsys):
  """A good benchmark passes validation; the missing run is reported next (one line)."""
  bench = _write(tmp_path / "mc.json", [_mc(i) for i in range(3)])
  code, lines = _evaluate_cli(tmp_path, capsys, bench)
  assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'no_run'}")
