r"""Evaluate a trained run on a benchmark file: MC (by option log-likelihood and/or
generate-then-parse) or UCF-Crime-style open QA, plus frame AUC / AP of TETG's scores.

  vaujax evaluate --run runs/stage2 --benchmark test_mc.json --feature_dir feats/ \
      [--labels labels.json] [--out runs/stage2/eval] [--method both|loglik|generate] \
      [--config.key=value ...]      # overrides of the run's saved config, each printed
  (`python -m vaujax.evaluate` is the same command)

Everything else comes from the run directory: its config, tokenizer, TETG classifier, class
list and MC prompt style (vaujax/runs/run_dir.py). The benchmark's kind is read from its items
(MC items have `options`). Writes `<out>/<name>_<method>.json` or `<out>/<name>.json`
({"identity", "summary", "results"}); a killed evaluation resumes from
`<out>/<tag>.partial.jsonl`, whose first line names the run, checkpoint step, config hash and
benchmark file hash it belongs to: a partial file of another evaluation is refused (use another
--out, or delete it), so two models' or two benchmarks' answers never mix.
"""

from __future__ import annotations

import json
import os

from absl import flags

from vaujax.app import cli


def define_flags(fv: flags.FlagValues, argv) -> None:
  cli.define_run_flags(fv, argv)
  flags.DEFINE_string("benchmark", None, "MC or open-QA benchmark JSON", flag_values=fv)
  flags.DEFINE_string("feature_dir", None, "directory of the benchmark videos' feature files "
                      "(made with the run's encoder by `vaujax features`: <folders>/<video>.npz;"
                      " a folder keyed by the bare video name works too)", flag_values=fv)
  flags.DEFINE_string("labels", None, "labels JSON {video: {anomaly_intervals}}: adds frame "
                      "AUC / AP of TETG's scores", flag_values=fv)
  flags.DEFINE_string("out", None, "output directory (default: <run>/eval)", flag_values=fv)
  flags.DEFINE_enum("method", "both", ["loglik", "generate", "both"],
                    "how MC questions are answered", flag_values=fv)
  flags.DEFINE_integer("batch_size", 8, "questions per batch", flag_values=fv)


def main(fv: flags.FlagValues) -> dict:
  from vaujax.errors import require_dir, require_file
  from vaujax.evaluate import evaluators
  cli.require(fv, "run", "benchmark", "feature_dir")
  require_file(fv.benchmark, "benchmark file")
  require_dir(fv.feature_dir, "feature directory")
  if fv.labels:
    require_file(fv.labels, "labels file")
  # Malformed inputs fail before the model is loaded.
  _, items = evaluators.read_benchmark(fv.benchmark, fv.feature_dir)
  if fv.labels:
    evaluators.read_frame_truth(fv.labels, items, fv.feature_dir)
  if fv.batch_size < 1:
    raise cli.fail("--batch_size", f"must be >= 1, got {fv.batch_size}")
  run = cli.load_run_from_flags(fv)
  out = fv.out or os.path.join(run.workdir, "eval")
  from vaujax.runs import run_dir
  evaluators.check_resumable(out, fv.benchmark, run_dir.identity(run), method=fv.method)
  from vaujax import cpu_runtime
  cpu_runtime.reuse_host_memory()
  from vaujax.inference.assistant import Assistant
  assistant = Assistant.from_run(run)
  summaries = evaluators.evaluate_benchmark(assistant, fv.benchmark, fv.feature_dir, out,
                                            method=fv.method, labels=fv.labels,
                                            batch_size=fv.batch_size)
  for tag, s in summaries.items():
    print(tag, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}))
  print(f"results in {out}")
  return summaries


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
