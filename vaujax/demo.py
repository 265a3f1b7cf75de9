"""End-to-end VA-GPT on CPU (the README's main command, `make demo`).

  python -m vaujax.demo --workdir demo_out

1. writes synthetic surveillance videos with known anomalies (real mp4 files + UCA annotations)
   and splits them by video into train and held-out sets,
2. extracts per-video features with tiny (random, frozen) vision towers (plus time-shifted
   copies of the anomalous training videos, see `vaujax/data/augment.py`),
3. builds the training data (three QA per clip + MC questions of the training videos), the
   held-out benchmarks (UCF-Crime-style open QA, 4-option MC) and a tokenizer,
4. trains the TETG frame classifier and reports frame AUC / AP on the held-out videos,
5. trains VA-GPT stage one (all tokens, TETG hints), then stage two (SETS, K=0.5) from it,
6. evaluates the held-out benchmarks (MC by log-likelihood and by generate-then-parse; open QA)
   and writes `report.md` with figures (loss curves, TETG score curves, SETS maps, results).

Everything lands in --workdir; rerunning reuses finished steps (videos, features, checkpoints).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from vaujax import cpu_runtime
from vaujax.data import (annotations, augment, benchmark_files, conversation, features,
                         instructions, synthetic)
from vaujax.data.tokenizer import train_sentencepiece
from vaujax.models import tetg

FRAMES = 8
MC_GOAL, AUC_GOAL = 0.90, 0.95   # held-out MC accuracy (chance 25%) and TETG frame AUC


@dataclasses.dataclass
class DemoConfig:
  num_videos: int = 240
  held_out: float = 0.25        # fraction of videos held out (by video)
  seconds: float = 8.0
  fps: float = 4.0
  frames: int = FRAMES
  # 3000 steps reached 94-100% MC until a rounding-level change (the vision tower's attention,
  # 2026-11-30) sent seed 0 along a trajectory that ends at 86%. At 4000, seed 2 told only one
  # class of five apart (MC 86.9%, open QA 60%); at 8000 seeds 0/1/2 reach 95.1/91.1/94.9% MC
  # and 95/95/90% open QA (BUILD.md, Demo figures)
  stage1_steps: int = 8000
  stage2_steps: int = 120
  mc_copies: int = 3            # MC training questions per training video (distinct seeds)
  batch_size: int = 8
  anomaly_scale: float = 3.0   # anomalies big enough for the tiny random towers to see
  time_shifts: int = 2          # time-shifted training copies per anomalous video (augment.py)
  seed: int = 0


def prepare_data(root: str, c: DemoConfig, log=print) -> dict:
  """Videos, features, train/held-out split, training JSON, benchmarks and tokenizer."""
  syn = synthetic.SyntheticConfig(num_videos=c.num_videos, seconds=c.seconds, fps=c.fps,
                                  seed=c.seed, anomaly_scale=c.anomaly_scale)
  labels = synthetic.generate(os.path.join(root, "synthetic"), syn)
  paths = {"videos": os.path.join(root, "synthetic", "videos"),
           "features": os.path.join(root, "features"),
           "labels": labels, "classes": list(syn.classes)}
  features.extract_folder(paths["videos"], paths["features"], features.tiny_encoder(c.seed),
                          num_frames=c.frames, log=log)
  videos, _ = annotations.read_uca(os.path.join(root, "synthetic", "uca.json"),
                                   anomaly_intervals={k: v["anomaly_intervals"]
                                                      for k, v in labels.items()})
  videos = [dataclasses.replace(v, label=labels[v.video_id]["label"]) for v in videos]
  rng = np.random.RandomState(c.seed)
  order = rng.permutation(len(videos))
  n_test = max(1, int(round(c.held_out * len(videos))))
  test = [videos[i] for i in sorted(order[:n_test])]
  train = [videos[i] for i in sorted(order[n_test:])]
  # Shifted copies exist for training only: they keep the model from memorising each training
  # video's interval and make it read the frames and the TETG hint instead.
  train_all = train + augment.write_time_shifted(paths["features"], train, c.time_shifts,
                                                 seed=c.seed)
  train_items = instructions.build_instructions(train_all, video_dir_prefix="videos/")
  train_items += instructions.single_turn_items(train_items)
  for copy in range(c.mc_copies):
    mc = benchmark_files.multiple_choice(train_all, syn.classes, seed=1000 + copy)
    train_items += benchmark_files.mc_training_items(mc)
  paths["train_json"] = os.path.join(root, "train.json")
  instructions.write_json(paths["train_json"], train_items)
  paths["mc"] = benchmark_files.multiple_choice(test, syn.classes, seed=c.seed)
  paths["ucf_qa"] = benchmark_files.ucf_qa(test)
  for name in ("mc", "ucf_qa"):
    with open(os.path.join(root, f"test_{name}.json"), "w") as f:
      json.dump(paths[name], f, indent=1)
  paths["train_ids"] = [v.video_id for v in train]
  paths["test_ids"] = [v.video_id for v in test]
  hints = [tetg.hint_text(None, syn.classes), tetg.hint_text((1.5, 4.5), syn.classes)]
  texts = [conversation.SYSTEM] + hints + [t["value"] for i in train_items
                                           for t in i["conversations"]]
  paths["tokenizer"] = train_sentencepiece(texts * 3, os.path.join(root, "tokenizer"), 600)
  return paths


def stage_config(make, paths: dict, c: DemoConfig, steps: int, tetg_dir: str):
  c_ = make(f"size=tiny,frames={c.frames},steps={steps}")
  c_.data.train_json, c_.data.feature_dir = paths["train_json"], paths["features"]
  c_.data.tokenizer, c_.data.tetg_params = paths["tokenizer"], tetg_dir
  c_.data.classes, c_.data.encoder = tuple(paths["classes"]), f"tiny:{c.seed}"
  c_.data.batch_size, c_.data.max_length = c.batch_size, 320
  # Length buckets cost a compile per length (~5 s here) and save ~15% a step: worth it over
  # stage one's thousands of steps, not stage two's hundred.
  c_.data.length_bucket = 32 if steps >= 1000 else 0
  c_.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  c_.ckpt_every, c_.progress = steps, False
  c_.log_every = max(1, steps // 20)
  return c_


def train_tetg(paths: dict, workdir: str, log=print):
  from configs import tetg as tetg_configs
  from vaujax.evaluate import qa
  from vaujax.train import tetg_trainer
  labels = paths["labels"]
  x, y = tetg_trainer.frames_from_features(paths["features"],
                                           {k: labels[k] for k in paths["train_ids"]})
  result = tetg_trainer.train(x, y, tetg_configs.get_config("epochs=200,momentum=0.9"))
  out = os.path.join(workdir, "tetg", "tetg")
  if not os.path.exists(out):
    tetg_trainer.save(out, result)
  scorer = lambda f: tetg_trainer.predict_probs(result.params, result.model_config,  # noqa: E731
                                                f["dino_cls"])
  frame = qa.evaluate_frames(scorer, labels, paths["features"], paths["test_ids"])
  return out, result, frame


def run(workdir: str, c: DemoConfig = DemoConfig(), log=print) -> dict:
  from configs import vagpt_stage1, vagpt_stage2
  from vaujax.evaluate import qa
  from vaujax.infer import Assistant
  from vaujax.train import loop
  start = time.perf_counter()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  timings = {}

  def lap(name, t0):
    timings[name] = round(time.perf_counter() - t0, 1)

  t0 = time.perf_counter()
  paths = prepare_data(os.path.join(workdir, "data"), c, log=lambda s: None)
  lap("data", t0)
  log(f"[1/6] {c.num_videos} synthetic videos ({len(paths['train_ids'])} train, "
      f"{len(paths['test_ids'])} held out) in {paths['videos']}")
  log(f"[2/6] features in {paths['features']}")
  log(f"[3/6] training data {paths['train_json']}; held-out benchmarks: {len(paths['mc'])} MC "
      f"questions, {len(paths['ucf_qa'])} open questions")
  t0 = time.perf_counter()
  tetg_dir, tetg_result, frame = train_tetg(paths, workdir)
  lap("tetg", t0)
  log(f"[4/6] TETG on held-out videos: frame AUC {frame['frame_auc']:.3f}, "
      f"AP {frame['frame_ap']:.3f} ({frame['num_frames']} frames)")
  t0 = time.perf_counter()
  s1 = stage_config(vagpt_stage1.get_config, paths, c, c.stage1_steps, tetg_dir)
  h1 = loop.train_and_evaluate(s1, os.path.join(workdir, "stage1"))
  lap("stage1", t0)
  t0 = time.perf_counter()
  s2 = stage_config(vagpt_stage2.get_config, paths, c, c.stage2_steps, tetg_dir)
  s2.init_from = os.path.join(workdir, "stage1")
  h2 = loop.train_and_evaluate(s2, os.path.join(workdir, "stage2"))
  lap("stage2", t0)
  log(f"[5/6] stage one loss {h1[0]['loss']:.3f} -> {h1[-1]['loss']:.3f}; "
      f"stage two (SETS K=0.5) loss {h2[0]['loss']:.3f} -> {h2[-1]['loss']:.3f}")
  t0 = time.perf_counter()
  assistant = Assistant.load(s2, os.path.join(workdir, "stage2"))
  results = {}
  evals = os.path.join(workdir, "eval")
  for method in ("loglik", "generate"):
    rows, summary = qa.evaluate_mc(assistant, paths["mc"], paths["features"], method=method,
                                   instruction=benchmark_files.TEXT_INSTRUCTION, progress=False)
    qa.write_results(evals, f"mc_{method}", rows, summary)
    results[f"mc_{method}"] = summary
  rows, summary = qa.evaluate_open(assistant, paths["ucf_qa"], paths["features"], progress=False)
  qa.write_results(evals, "ucf_qa", rows, summary)
  results["ucf_qa"] = summary
  lap("evaluate", t0)
  mc = results["mc_loglik"]
  log(f"[6/6] held-out MC (log-likelihood): Total Acc {mc['total_acc']:.1%}, Temporal Acc "
      f"{mc['temporal_acc']:.1%} ({mc['num_questions']} questions, chance 25%); "
      f"generate-then-parse Total Acc {results['mc_generate']['total_acc']:.1%}; "
      f"open QA Total Acc {results['ucf_qa']['total_acc']:.1%}, Temporal Acc "
      f"{results['ucf_qa']['temporal_acc']:.1%}")
  summary = {"config": dataclasses.asdict(c), "tetg": frame, "results": results,
             "stage1_loss": [h1[0]["loss"], h1[-1]["loss"]],
             "stage2_loss": [h2[0]["loss"], h2[-1]["loss"]], "timings_s": timings,
             "seconds": round(time.perf_counter() - start, 1)}
  try:
    from vaujax.evaluate import report
    summary["report"] = report.write_demo_report(workdir, summary, paths, assistant, tetg_result,
                                                 [h1, h2])
  except ImportError:
    pass
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  log(f"MC accuracy {mc['total_acc']:.1%} (goal >= 90%), TETG frame AUC "
      f"{frame['frame_auc']:.3f} (goal >= 0.95); done in {summary['seconds']:.0f} s; "
      f"report: {summary.get('report', os.path.join(workdir, 'summary.json'))}")
  return summary


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", default="demo_out")
  for field in dataclasses.fields(DemoConfig):
    parser.add_argument(f"--{field.name}", type=type(field.default), default=field.default)
  parser.add_argument("--check", action="store_true",
                      help=f"exit 1 unless held-out MC accuracy >= {MC_GOAL:.0%} and TETG frame "
                      f"AUC >= {AUC_GOAL} (CI runs this on a fresh clone)")
  args = parser.parse_args(argv)
  cpu_runtime.reuse_host_memory()   # XLA:CPU steps reuse their buffers (see cpu_runtime)
  c = DemoConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)})
  summary = run(args.workdir, c)
  if args.check:
    mc, auc = summary["results"]["mc_loglik"]["total_acc"], summary["tetg"]["frame_auc"]
    if mc < MC_GOAL or auc < AUC_GOAL:
      raise SystemExit(f"demo check failed: MC accuracy {mc:.1%} (goal {MC_GOAL:.0%}), TETG "
                       f"frame AUC {auc:.3f} (goal {AUC_GOAL})")
    print("demo check passed")


if __name__ == "__main__":
  main()
