"""Evaluators by name, as a training config lists them (big_vision's `config.evals`) and as the
`evaluate` command runs them:

    config.evals.mc = dict(kind="mc", benchmark="test_mc.json", every=2000, method="loglik")
    config.evals.qa = dict(kind="open_qa", benchmark="test_ucf_qa.json", every=2000)
    config.evals.frames = dict(kind="frames", labels="labels.json", benchmark="test_mc.json")

Keys: `kind` (mc | open_qa | frames), `benchmark` (the benchmark JSON; for frames, whose videos
to score: optional, default every labelled video with a feature file), `feature_dir` (default
`config.data.feature_dir`), `labels` (frames), `method` (mc: loglik | generate), `every` (steps,
training only), `batch_size` (8). Each evaluator takes an Assistant (anything with
`score_options` / `generate` / `frame_scores` / `classes` / `config`) and returns flat numeric
metrics; the MC prompt style is the run's `data.mc_instruction`.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Mapping, Optional

from vaujax import files
from vaujax.data import annotations, benchmark_files
from vaujax.errors import InputError
from vaujax.evaluate import qa

KINDS = ("mc", "open_qa", "frames")
METHODS = ("loglik", "generate")


def mc_instruction(config) -> str:
  name = config.data.get("mc_instruction", "letter")
  if name not in benchmark_files.INSTRUCTIONS:
    raise InputError("--config.data.mc_instruction",
                     f"{name!r} is not one of {sorted(benchmark_files.INSTRUCTIONS)}")
  return benchmark_files.INSTRUCTIONS[name]


def read_benchmark(path: str, feature_dir: Optional[str] = None) -> tuple[str, list[dict]]:
  """(kind, validated items) of a benchmark file: MC items have `options`, open QA not. With
  `feature_dir`, two different videos that would read one feature file are refused."""
  raw = files.read_json(path, "benchmark file", list)
  is_mc = any(isinstance(i, dict) and "options" in i for i in raw)
  items = (benchmark_files.read_mc if is_mc else benchmark_files.read_ucf_qa)(path)
  if feature_dir:
    from vaujax.data.pipeline import check_unique_keys
    check_unique_keys(items, path, feature_dir)
  return ("mc" if is_mc else "open_qa"), items


def benchmark_identity(path: str, tag: str, method: str) -> dict:
  """Which questions an evaluation answers: the sha256 of the benchmark file's bytes, with the
  tag its results are written under and the method (`file` is shown, not compared: the same
  bytes elsewhere are the same benchmark). Two benchmarks that share a file name (and so a
  tag) still differ here."""
  with files.open_file(path, "rb") as f:   # a local file or a gs:// object
    digest = hashlib.sha256(f.read()).hexdigest()
  return {"file": files.absolute(path), "sha256": digest, "tag": tag, "method": method}


def result_tags(kind: str, name: str, method: str = "both") -> dict[str, str]:
  """{tag: method} of the result files an evaluation of `kind` writes (`<tag>.json`, and
  `<tag>.partial.jsonl` while it runs)."""
  if kind != "mc":
    return {name: "open"}
  return {f"{name}_{m}": m for m in (list(METHODS) if method == "both" else [method])}


def check_resumable(out_dir: str, benchmark: str, model_identity: Optional[dict], *,
                    method: str = "both", name: Optional[str] = None) -> None:
  """Raises InputError when a partial-results file in `out_dir` that this evaluation would
  resume, or a finished `<tag>.json` it would write, holds another evaluation's answers
  (another run, checkpoint, config or benchmark): the `evaluate` command checks this before
  loading the model."""
  kind, _ = read_benchmark(benchmark)
  name = name or default_name(benchmark)
  for tag, m in result_tags(kind, name, method).items():
    identity = {"model": model_identity, "benchmark": benchmark_identity(benchmark, tag, m)}
    qa.check_partial(os.path.join(out_dir, tag + ".partial.jsonl"), identity)
    qa.check_finished(os.path.join(out_dir, tag + ".json"), identity)


def default_name(benchmark: str) -> str:
  """Results are named after the benchmark file: test_mc.json -> test_mc_<method>.json."""
  return os.path.splitext(os.path.basename(benchmark))[0]


def read_frame_truth(labels: str, items: Optional[list[dict]], feature_dir: str
                     ) -> tuple[dict, list[str] | dict[str, str]]:
  """(validated labels, the videos to score): the benchmark's labelled videos ({id: its video
  path}, so features in mirrored folders are found), or (no
  benchmark) every labelled video with a feature file. None to score is an InputError, not
  an empty concatenation deep inside the metrics."""
  truth = annotations.read_labels(labels)
  if items is not None:
    from vaujax.data.pipeline import video_key
    videos = {video_key(i): i["video"] for i in items if video_key(i) in truth}
    vids = {k: videos[k] for k in sorted(videos)}   # id -> its video, found in mirrored folders
    if not vids:
      raise InputError(labels, "labels none of the benchmark's videos, so there are no frames "
                       "to score")
  else:
    vids = sorted(v for v in truth if files.exists(os.path.join(feature_dir, v + ".npz")))
    if not vids:
      raise InputError(labels, f"none of its videos has a feature file in {feature_dir}")
  return truth, vids


def check_spec(name: str, spec: Mapping) -> None:
  """Raises a one-line error for an evaluator spec that cannot run (before any training)."""
  where = f"--config.evals.{name}"
  kind = spec.get("kind")
  if kind not in KINDS:
    raise InputError(where, f"kind {kind!r} is not one of {KINDS}")
  if kind != "frames" and not spec.get("benchmark"):
    raise InputError(where, "needs a 'benchmark' file")
  if kind == "frames" and not spec.get("labels"):
    raise InputError(where, "needs a 'labels' file")
  if spec.get("method", "loglik") not in METHODS:
    raise InputError(where, f"method {spec.get('method')!r} is not one of {METHODS}")
  for key in ("benchmark", "labels", "feature_dir"):
    if spec.get(key) and not files.exists(spec[key]):
      raise InputError(spec[key], f"does not exist ({where}.{key})")
  if spec.get("benchmark"):        # a malformed file fails now, not at the first evaluation
    read_benchmark(spec["benchmark"])
  if spec.get("labels"):
    annotations.read_labels(spec["labels"])


def run_evaluator(assistant, spec: Mapping, *, feature_dir: Optional[str] = None,
                  out_dir: Optional[str] = None, name: str = "eval",
                  progress: bool = False) -> dict:
  """Runs one evaluator spec -> flat metrics (and per-question JSON in `out_dir`, if given)."""
  kind = spec["kind"]
  feature_dir = spec.get("feature_dir") or feature_dir or assistant.config.data.feature_dir
  batch_size = int(spec.get("batch_size", 8))
  if kind == "frames":
    items = read_benchmark(spec["benchmark"])[1] if spec.get("benchmark") else None
    labels, vids = read_frame_truth(spec["labels"], items, feature_dir)
    return qa.evaluate_frames(assistant.frame_scores, labels, feature_dir, vids)
  _, items = read_benchmark(spec["benchmark"], feature_dir)
  method = spec.get("method", "loglik") if kind == "mc" else "open"
  bench = benchmark_identity(spec["benchmark"], name, method)
  identity = qa.evaluation_identity(assistant, items, method, bench)
  saved = qa.check_finished(os.path.join(out_dir, name + ".json"), identity) if out_dir else None
  if saved is not None:   # never overwritten; the same evaluation's is its answer
    return saved["summary"]
  if kind == "mc":
    rows, summary = qa.evaluate_mc(assistant, items, feature_dir, method=method,
                                   batch_size=batch_size, progress=progress,
                                   instruction=mc_instruction(assistant.config),
                                   benchmark_identity=bench)
  else:
    rows, summary = qa.evaluate_open(assistant, items, feature_dir, batch_size=batch_size,
                                     progress=progress, benchmark_identity=bench)
  if out_dir:
    qa.write_results(out_dir, name, rows, summary, identity)
  return summary


def numeric(summary: Mapping) -> dict:
  """The summary's numbers (what goes to metrics.jsonl and TensorBoard). An accuracy over no
  questions (NaN, e.g. Spatial Acc of a benchmark that asks no where-question) is left out:
  it is no measurement, and NaN is not JSON."""
  return {k: float(v) for k, v in summary.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def evaluate_benchmark(assistant, benchmark: str, feature_dir: str, out_dir: str, *,
                       method: str = "both", labels: Optional[str] = None,
                       batch_size: int = 8, name: Optional[str] = None,
                       progress: bool = True) -> dict[str, dict]:
  """A run on one benchmark file, as the `evaluate` command and the demo do it.

  MC by `method` (loglik | generate | both), or open QA (the kind is read from the items); with
  `labels`, frame AUC / AP of TETG's scores over the benchmark's videos. Writes
  `<out_dir>/<name>_<method>.json` (MC) or `<out_dir>/<name>.json` (open QA), each
  {"identity", "summary", "results"}; finished questions go to `<tag>.partial.jsonl` as they
  complete, so a killed evaluation resumes. A partial or finished file of another identity
  (another run, checkpoint, config, benchmark file or method) is refused with an InputError,
  never resumed or overwritten; a finished file of this identity is kept and its summary
  returned (a rerun is a no-op). A write that finds no room (disk full) is an InputError naming
  the file; the lines written before stay whole and the rerun resumes. Returns {tag: summary}.
  """
  with files.writing(out_dir):
    return _evaluate_benchmark(assistant, benchmark, feature_dir, out_dir, method=method,
                               labels=labels, batch_size=batch_size, name=name,
                               progress=progress)


def _evaluate_benchmark(assistant, benchmark, feature_dir, out_dir, *, method, labels,
                        batch_size, name, progress) -> dict[str, dict]:
  kind, items = read_benchmark(benchmark, feature_dir)
  name = name or default_name(benchmark)
  frames = (read_frame_truth(labels, items, feature_dir)         # a bad labels file fails now
            if labels and assistant.tetg is not None else None)
  files.makedirs(out_dir)   # files.*: a local folder or a gs:// URL
  summaries = {}
  for tag, m in result_tags(kind, name, method).items():
    partial = os.path.join(out_dir, tag + ".partial.jsonl")
    bench = benchmark_identity(benchmark, tag, m)
    identity = qa.evaluation_identity(assistant, items, m, bench)
    qa.check_partial(partial, identity)
    saved = qa.check_finished(os.path.join(out_dir, tag + ".json"), identity)
    if saved is not None:   # this evaluation finished before: nothing to do
      summaries[tag] = saved["summary"]
      if files.exists(partial):   # of this identity (checked): a kill before its removal
        files.remove(partial)
      continue
    if kind == "mc":
      rows, summaries[tag] = qa.evaluate_mc(
          assistant, items, feature_dir, method=m, batch_size=batch_size,
          instruction=mc_instruction(assistant.config), resume_path=partial, progress=progress,
          benchmark_identity=bench)
    else:
      rows, summaries[tag] = qa.evaluate_open(assistant, items, feature_dir,
                                              batch_size=batch_size, resume_path=partial,
                                              progress=progress, benchmark_identity=bench)
    qa.write_results(out_dir, tag, rows, summaries[tag], identity)
    files.remove(partial)
  if frames is not None:
    truth, vids = frames
    summaries["frames"] = qa.evaluate_frames(assistant.frame_scores, truth, feature_dir, vids)
  return summaries
