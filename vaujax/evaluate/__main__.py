"""Evaluate a trained VA-GPT on a benchmark file.

  python -m vaujax.evaluate --config configs/vagpt_stage2.py:size=tiny --checkpoint runs/stage2 \
      --benchmark test_mc.json --feature_dir feats/ --out eval/ [--method loglik|generate|both]
      [--labels labels.json]   # + frame AUC / AP of TETG's scores over the benchmark's videos

The benchmark kind is read from the items (MC items have `options`; open QA items do not).
Writes `<out>/<name>.json` ({"summary", "results"}) per method; finished questions are appended
to `<out>/<name>.partial.jsonl` as it goes, so a killed run resumes where it stopped.
"""

import json
import os
import sys

from absl import flags
from ml_collections import config_flags


def main(argv=None):
  f = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "stage config", flag_values=f)
  flags.DEFINE_string("checkpoint", None, "training workdir", flag_values=f)
  flags.DEFINE_string("benchmark", None, "MC or open-QA benchmark JSON", flag_values=f)
  flags.DEFINE_string("feature_dir", None, "per-video feature files", flag_values=f)
  flags.DEFINE_string("out", "eval", "output directory", flag_values=f)
  flags.DEFINE_enum("method", "both", ["loglik", "generate", "both"], "MC method", flag_values=f)
  flags.DEFINE_enum("instruction", "letter", ["letter", "text"], "MC answer instruction",
                    flag_values=f)
  flags.DEFINE_string("labels", None, "labels JSON {video: {anomaly_intervals}} for AUC/AP",
                      flag_values=f)
  flags.DEFINE_integer("batch_size", 8, "questions per batch", flag_values=f)
  f(argv or sys.argv)
  from vaujax import cpu_runtime
  cpu_runtime.reuse_host_memory()
  if not (f.config and f.checkpoint and f.benchmark and f.feature_dir):
    raise SystemExit("need --config, --checkpoint, --benchmark and --feature_dir")
  from vaujax.data import benchmark_files
  from vaujax.evaluate import qa
  from vaujax.infer import Assistant
  with open(f.benchmark) as fh:
    is_mc = any("options" in i for i in json.load(fh) if isinstance(i, dict))
  items = (benchmark_files.read_mc if is_mc else benchmark_files.read_ucf_qa)(f.benchmark)
  assistant = Assistant.load(f.config, f.checkpoint)
  name = os.path.splitext(os.path.basename(f.benchmark))[0]
  os.makedirs(f.out, exist_ok=True)
  summaries = {}
  if is_mc:
    instruction = (benchmark_files.LETTER_INSTRUCTION if f.instruction == "letter"
                   else benchmark_files.TEXT_INSTRUCTION)
    for method in (["loglik", "generate"] if f.method == "both" else [f.method]):
      tag = f"{name}_{method}"
      partial = os.path.join(f.out, tag + ".partial.jsonl")
      rows, summary = qa.evaluate_mc(assistant, items, f.feature_dir, method=method,
                                     batch_size=f.batch_size, instruction=instruction,
                                     resume_path=partial)
      summaries[tag] = summary
      qa.write_results(f.out, tag, rows, summary)
      os.remove(partial)
  else:
    partial = os.path.join(f.out, name + ".partial.jsonl")
    rows, summary = qa.evaluate_open(assistant, items, f.feature_dir, batch_size=f.batch_size,
                                     resume_path=partial)
    summaries[name] = summary
    qa.write_results(f.out, name, rows, summary)
    os.remove(partial)
  if f.labels and assistant.tetg_params is not None:
    from vaujax.convert.weights import read_json
    from vaujax.data.pipeline import video_key
    labels = read_json(f.labels)
    vids = sorted({video_key(i) for i in items} & set(labels))
    summaries["frames"] = qa.evaluate_frames(assistant.frame_scores, labels, f.feature_dir, vids)
  for tag, s in summaries.items():
    print(tag, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}))
  return summaries


if __name__ == "__main__":
  main()
