"""Evaluation wall time with and without length buckets (the Assistant's `length_bucket`).

Without buckets every batch of MC questions has its own prompt length (TETG hints with and
without an interval, options of different lengths) and the last batch its own row count, so
the jitted scorer compiles again for most batches; with buckets (prompts padded to a multiple of
32 tokens, the last batch to the full batch size) it compiles once per bucket. Both sides score the same questions with the same tiny VA-GPT (random weights: only
speed is measured here; `tests/test_evaluate.py` checks the scores are equal).

  python -m benchmarks --only=eval_buckets
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

from absl import flags

from benchmarks import common


def measure(num_videos: int = 24, batch_size: int = 5) -> dict:
  """Scores the same MC questions unbucketed, then bucketed; one row."""
  import flax.linen as nn
  import jax

  from configs import tetg as tetg_configs
  from configs import vagpt_stage2
  from vaujax import sharding, testing
  from vaujax.data import annotations, benchmark_files, synthetic
  from vaujax.data.tokenizer import Tokenizer
  from vaujax.files import read_json
  from vaujax.evaluate import qa
  from vaujax.inference.assistant import Assistant, _option_logprobs
  from vaujax.models import vagpt
  from vaujax.runs import run_dir
  from vaujax.runs.tetg_files import TrainedTETG
  from vaujax.train import tetg_trainer, vagpt_task

  root = tempfile.mkdtemp(prefix="vaujax_eval_buckets_")
  paths = testing.make_tiny_vagpt_data(root, num_videos=num_videos)
  config = vagpt_stage2.get_config("size=tiny,frames=8,steps=1")
  config.data.tokenizer = paths["tokenizer"]
  tokenizer = Tokenizer.load(paths["tokenizer"])
  model = vagpt.VAGPT(run_dir.model_config(config, tokenizer.vocab_size))
  batch = vagpt_task.dummy_batch(model.config, config, 1)
  params = nn.unbox(jax.jit(vagpt_task.init_fn(model))(jax.random.key(0), batch))
  mesh = sharding.make_mesh(data=1, fsdp=1, tensor=1, devices=jax.devices()[:1])
  labels = read_json(paths["labels_json"], "labels", dict)
  config.data.classes = ",".join(synthetic.CLASSES)
  videos = [annotations.VideoAnnotation(v, 8.0, ((0.0, 8.0),), ("a scene",), lab["label"],
                                        tuple(map(tuple, lab["anomaly_intervals"])))
            for v, lab in sorted(labels.items())]
  mc = benchmark_files.multiple_choice(videos, synthetic.CLASSES, seed=0)
  # a quickly trained TETG, so prompts carry hints of different lengths as in the demo
  x, y = tetg_trainer.frames_from_features(paths["features"], labels)
  tetg = tetg_trainer.train(x, y, tetg_configs.get_config("epochs=60,momentum=0.9"))
  bucketed = Assistant(config, model, params, tokenizer, TrainedTETG(tetg.params, tetg.model_config),
                       classes=synthetic.CLASSES, mesh=mesh)
  exact = dataclasses.replace(bucketed, length_bucket=1)
  out = {}
  for name, assistant in (("exact", exact), ("bucketed", bucketed)):
    _option_logprobs.clear_cache()
    start = time.perf_counter()
    qa.evaluate_mc(assistant, mc, paths["features"], method="loglik", batch_size=batch_size,
                   progress=False)
    out[name] = (time.perf_counter() - start, _option_logprobs._cache_size())
  row = dict(benchmark="eval_buckets",
             metric=f"MC log-lik evaluation wall s ({len(mc)} questions, batch {batch_size})",
             vaujax=out["bucketed"][0], reference=out["exact"][0],
             ratio=out["exact"][0] / out["bucketed"][0], compiles_bucketed=out["bucketed"][1],
             compiles_exact=out["exact"][1], questions=len(mc))
  print(f"MC evaluation of {len(mc)} questions: {out['exact'][0]:.1f} s with "
        f"{out['exact'][1]} compiles unbucketed, {out['bucketed'][0]:.1f} s with "
        f"{out['bucketed'][1]} bucketed ({row['ratio']:.2f}x)", flush=True)
  return row


def main() -> list[dict]:
  return [measure()]


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("num_videos", 24, "synthetic videos whose MC questions are scored",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("batch_size", 5, "questions scored per batch", lower_bound=1,
                       flag_values=fv)
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.eval_buckets`: one row, at the sizes the flags give."""
  return common.run_module(
      __doc__, define_flags, lambda fv: [measure(fv.num_videos, fv.batch_size)], argv)


if __name__ == "__main__":
  run()
