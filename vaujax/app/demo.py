"""End-to-end VA-GPT on CPU (the README's main command, `make demo`).

  vaujax demo --workdir demo_out [--check] [--seed 0] [--stage1_steps 8000 ...]
  (`python -m vaujax.demo` is the same command)

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

Stage one runs the held-out MC evaluator every half of its steps (`config.evals`), so its
metrics.jsonl shows accuracy climbing. Each stage's workdir is a complete run: the final
evaluation is exactly `vaujax evaluate --run WORKDIR/stage2 ...` (the README shows the call).
Everything lands in --workdir; rerunning reuses finished steps (videos, features, checkpoints).
"""

from __future__ import annotations

import dataclasses
import os
import time

import ml_collections
import numpy as np
from absl import flags

from vaujax import cpu_runtime, files
from vaujax.app import cli
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
    paths[f"test_{name}"] = files.write_json(os.path.join(root, f"test_{name}.json"), paths[name])
  paths["labels_json"] = os.path.join(root, "synthetic", "labels.json")
  paths["train_ids"] = [v.video_id for v in train]
  paths["test_ids"] = [v.video_id for v in test]
  hints = [conversation.hint_text(None, syn.classes),
           conversation.hint_text((1.5, 4.5), syn.classes)]
  texts = [conversation.SYSTEM] + hints + [t["value"] for i in train_items
                                           for t in i["conversations"]]
  paths["tokenizer"] = train_sentencepiece(texts * 3, os.path.join(root, "tokenizer"), 600)
  return paths


def stage_config(make, paths: dict, c: DemoConfig, steps: int, tetg_dir: str):
  c_ = make(f"size=tiny,frames={c.frames},steps={steps}")
  c_.data.train_json, c_.data.feature_dir = paths["train_json"], paths["features"]
  c_.data.tokenizer, c_.data.tetg_params = paths["tokenizer"], tetg_dir
  c_.data.classes, c_.data.encoder = ",".join(paths["classes"]), f"tiny:{c.seed}"
  c_.data.mc_instruction = "text"   # the MC training items ask for the option's text
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
  scorer = lambda f: tetg.frame_probabilities(result.params, result.model_config,  # noqa: E731
                                              f["dino_cls"])
  frame = qa.evaluate_frames(scorer, labels, paths["features"], paths["test_ids"])
  return out, result, frame


def run_demo(workdir: str, c: DemoConfig = DemoConfig(), log=print) -> dict:
  from configs import vagpt_stage1, vagpt_stage2
  from vaujax.evaluate import evaluators
  from vaujax.inference.assistant import Assistant
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
  s1.evals.mc = ml_collections.ConfigDict(dict(kind="mc", benchmark=paths["test_mc"],
                                               every=max(1, c.stage1_steps // 2)))
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
  # Exactly what `vaujax evaluate --run WORKDIR/stage2 --benchmark ...` computes.
  assistant = Assistant.from_run(os.path.join(workdir, "stage2"))
  evals = os.path.join(workdir, "eval")
  results = {}
  for name in ("mc", "ucf_qa"):
    results.update(evaluators.evaluate_benchmark(
        assistant, paths[f"test_{name}"], paths["features"], evals, name=name, progress=False))
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
    from vaujax.app import report
    summary["report"] = report.write_demo_report(workdir, summary, paths, assistant, tetg_result,
                                                 [h1, h2])
  except ImportError:
    pass
  files.write_json(os.path.join(workdir, "summary.json"), summary)
  log(f"MC accuracy {mc['total_acc']:.1%} (goal >= 90%), TETG frame AUC "
      f"{frame['frame_auc']:.3f} (goal >= 0.95); done in {summary['seconds']:.0f} s; "
      f"report: {summary.get('report', os.path.join(workdir, 'summary.json'))}")
  return summary


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", "demo_out", "where everything goes (reruns reuse it)",
                      flag_values=fv)
  helps = {"num_videos": "synthetic videos to write", "held_out": "fraction held out, by video",
           "seconds": "video length (s)", "fps": "video frame rate",
           "frames": "frames sampled per video", "stage1_steps": "stage-one training steps",
           "stage2_steps": "stage-two (SETS) steps",
           "mc_copies": "MC training questions per training video",
           "batch_size": "training batch size",
           "anomaly_scale": "size of the drawn anomalies (the tiny towers need them big)",
           "time_shifts": "time-shifted copies per anomalous training video",
           "seed": "seed of videos, split, towers and training"}
  definers = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
  for field in dataclasses.fields(DemoConfig):
    definers[type(field.default)](field.name, field.default, helps[field.name], flag_values=fv)
  flags.DEFINE_bool("check", False, f"exit 1 unless held-out MC accuracy >= {MC_GOAL:.0%} and "
                    f"TETG frame AUC >= {AUC_GOAL} (CI runs this on a fresh clone)",
                    flag_values=fv)


def main(fv: flags.FlagValues) -> dict:
  c = DemoConfig(**{f.name: fv[f.name].value for f in dataclasses.fields(DemoConfig)})
  for f in dataclasses.fields(DemoConfig):
    if getattr(c, f.name) < 0 or (f.name not in ("time_shifts", "mc_copies", "seed")
                                  and getattr(c, f.name) == 0):
      raise cli.fail(f"--{f.name}", f"must be positive, got {getattr(c, f.name)}")
  cpu_runtime.reuse_host_memory()   # XLA:CPU steps reuse their buffers (see cpu_runtime)
  summary = run_demo(fv.workdir, c)
  if fv.check:
    mc, auc = summary["results"]["mc_loglik"]["total_acc"], summary["tetg"]["frame_auc"]
    if mc < MC_GOAL or auc < AUC_GOAL:
      raise SystemExit(f"demo check failed: MC accuracy {mc:.1%} (goal {MC_GOAL:.0%}), TETG "
                       f"frame AUC {auc:.3f} (goal {AUC_GOAL})")
    print("demo check passed")
  return summary


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
