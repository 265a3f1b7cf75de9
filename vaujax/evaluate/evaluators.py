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

import os
from typing import Mapping, Optional

from vaujax import files
from vaujax.data import benchmark_files
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


def read_benchmark(path: str) -> tuple[str, list[dict]]:
  """(kind, validated items) of a benchmark file: MC items have `options`, open QA not."""
  raw = files.read_json(path, "benchmark file", list)
  is_mc = any(isinstance(i, dict) and "options" in i for i in raw)
  items = (benchmark_files.read_mc if is_mc else benchmark_files.read_ucf_qa)(path)
  return ("mc" if is_mc else "open_qa"), items


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
    if spec.get(key) and not os.path.exists(spec[key]):
      raise InputError(spec[key], f"does not exist ({where}.{key})")


def run_evaluator(assistant, spec: Mapping, *, feature_dir: Optional[str] = None,
                  out_dir: Optional[str] = None, name: str = "eval",
                  progress: bool = False) -> dict:
  """Runs one evaluator spec -> flat metrics (and per-question JSON in `out_dir`, if given)."""
  kind = spec["kind"]
  feature_dir = spec.get("feature_dir") or feature_dir or assistant.config.data.feature_dir
  batch_size = int(spec.get("batch_size", 8))
  if kind == "frames":
    labels = files.read_json(spec["labels"], "labels file")
    if spec.get("benchmark"):
      _, items = read_benchmark(spec["benchmark"])
      from vaujax.data.pipeline import video_key
      vids = sorted({video_key(i) for i in items} & set(labels))
    else:
      vids = sorted(v for v in labels if os.path.exists(os.path.join(feature_dir, v + ".npz")))
    return qa.evaluate_frames(assistant.frame_scores, labels, feature_dir, vids)
  _, items = read_benchmark(spec["benchmark"])
  if kind == "mc":
    method = spec.get("method", "loglik")
    rows, summary = qa.evaluate_mc(assistant, items, feature_dir, method=method,
                                   batch_size=batch_size, progress=progress,
                                   instruction=mc_instruction(assistant.config))
  else:
    rows, summary = qa.evaluate_open(assistant, items, feature_dir, batch_size=batch_size,
                                     progress=progress)
  if out_dir:
    qa.write_results(out_dir, name, rows, summary)
  return summary


def numeric(summary: Mapping) -> dict:
  """The summary's numbers (what goes to metrics.jsonl and TensorBoard)."""
  return {k: float(v) for k, v in summary.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool)}


def evaluate_benchmark(assistant, benchmark: str, feature_dir: str, out_dir: str, *,
                       method: str = "both", labels: Optional[str] = None,
                       batch_size: int = 8, name: Optional[str] = None,
                       progress: bool = True) -> dict[str, dict]:
  """A run on one benchmark file, as the `evaluate` command and the demo do it.

  MC by `method` (loglik | generate | both), or open QA (the kind is read from the items); with
  `labels`, frame AUC / AP of TETG's scores over the benchmark's videos. Writes
  `<out_dir>/<name>_<method>.json` (MC) or `<out_dir>/<name>.json` (open QA), each
  {"summary", "results"}; finished questions go to `<name>*.partial.jsonl` as they complete, so
  a killed evaluation resumes. Returns {tag: summary}.
  """
  kind, items = read_benchmark(benchmark)
  name = name or os.path.splitext(os.path.basename(benchmark))[0]
  os.makedirs(out_dir, exist_ok=True)
  summaries = {}
  if kind == "mc":
    instruction = mc_instruction(assistant.config)
    for m in (list(METHODS) if method == "both" else [method]):
      tag = f"{name}_{m}"
      partial = os.path.join(out_dir, tag + ".partial.jsonl")
      rows, summaries[tag] = qa.evaluate_mc(assistant, items, feature_dir, method=m,
                                            batch_size=batch_size, instruction=instruction,
                                            resume_path=partial, progress=progress)
      qa.write_results(out_dir, tag, rows, summaries[tag])
      os.remove(partial)
  else:
    partial = os.path.join(out_dir, name + ".partial.jsonl")
    rows, summaries[name] = qa.evaluate_open(assistant, items, feature_dir,
                                             batch_size=batch_size, resume_path=partial,
                                             progress=progress)
    qa.write_results(out_dir, name, rows, summaries[name])
    os.remove(partial)
  if labels and assistant.tetg is not None:
    from vaujax.data.pipeline import video_key
    truth = files.read_json(labels, "labels file")
    vids = sorted({video_key(i) for i in items} & set(truth))
    summaries["frames"] = qa.evaluate_frames(assistant.frame_scores, truth, feature_dir, vids)
  return summaries
