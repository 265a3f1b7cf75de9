"""End-to-end VA-GPT on CPU in a few minutes (the README's main command, `make demo`).

  python -m vaujax.demo --workdir demo_out

1. writes synthetic surveillance videos with known anomalies (real mp4 files + UCA annotations),
2. extracts per-video features with tiny (random, frozen) vision towers,
3. trains the TETG frame classifier and reports its frame AUC on held-out videos,
4. trains VA-GPT stage one (all tokens), then stage two (SETS, K=0.5) from stage one,
5. holds a three-turn conversation about each held-out video (the model's own answers are fed
   back) and prints its answer to the last question, "Are there any anomalies?".

Everything lands in --workdir. This is the pipeline at toy scale; the benchmark evaluators,
report and figures come with the evaluation issue.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from configs import tetg as tetg_configs
from configs import vagpt_stage1, vagpt_stage2
from vaujax import testing
from vaujax.convert.weights import read_json
from vaujax.data import conversation, features
from vaujax.data.tokenizer import Tokenizer
from vaujax.evaluate import metrics
from vaujax.generation.sampler import SamplingConfig, left_pad
from vaujax.models import vagpt
from vaujax.train import loop, tetg_trainer, vagpt_task

FRAMES = 8


def _split(paths: dict, workdir: str, held_out: int) -> tuple[str, list[dict]]:
  items = json.load(open(paths["train_json"]))
  train, test = items[:-held_out], items[-held_out:]
  path = os.path.join(workdir, "train_split.json")
  with open(path, "w") as f:
    json.dump(train, f)
  return path, test


def _stage_config(make, paths, train_json, steps):
  c = make(f"size=tiny,frames={FRAMES},steps={steps}")
  c.data.train_json, c.data.feature_dir = train_json, paths["features"]
  c.data.tokenizer = paths["tokenizer"]
  c.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  c.ckpt_every = steps
  return c


def run(workdir: str, num_videos: int = 30, held_out: int = 6, steps: int = 150) -> dict:
  start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  paths = testing.make_tiny_vagpt_data(os.path.join(workdir, "data"), num_videos=num_videos,
                                       num_frames=FRAMES)
  labels = read_json(paths["labels_json"])
  print(f"[1/5] {num_videos} synthetic videos in {paths['videos']}")
  print(f"[2/5] features in {paths['features']}")
  train_json, test_items = _split(paths, workdir, held_out)
  test_ids = {os.path.splitext(os.path.basename(i["video"]))[0] for i in test_items}
  train_labels = {k: v for k, v in labels.items() if k not in test_ids}
  x, y = tetg_trainer.frames_from_features(paths["features"], train_labels)
  xe, ye = tetg_trainer.frames_from_features(
      paths["features"], {k: v for k, v in labels.items() if k in test_ids})
  tcfg = tetg_configs.get_config("epochs=200,momentum=0.9")
  result = tetg_trainer.train(x, y, tcfg)
  probs = tetg_trainer.predict_probs(result.params, result.model_config, xe)
  auc = metrics.roc_auc(ye, probs) if 0 < ye.sum() < len(ye) else float("nan")
  print(f"[3/5] TETG frame AUC on held-out videos: {auc:.3f} ({len(ye)} frames)")
  s1 = _stage_config(vagpt_stage1.get_config, paths, train_json, steps)
  h1 = loop.train_and_evaluate(s1, os.path.join(workdir, "stage1"))
  s2 = _stage_config(vagpt_stage2.get_config, paths, train_json, steps // 3)
  s2.init_from = os.path.join(workdir, "stage1")
  h2 = loop.train_and_evaluate(s2, os.path.join(workdir, "stage2"))
  print(f"[4/5] stage one loss {h1[0]['loss']:.3f} -> {h1[-1]['loss']:.3f}; "
        f"stage two (SETS) loss {h2[0]['loss']:.3f} -> {h2[-1]['loss']:.3f}")
  answers = _answer(s2, os.path.join(workdir, "stage2"), paths, test_items)
  correct = 0
  for video_id, answer in answers.items():
    truth = labels[video_id]
    says_yes = answer.strip().lower().startswith("yes")
    correct += says_yes == bool(truth["anomaly_intervals"])
    print(f"      {video_id:28s} truth={truth['label']:13s} {truth['anomaly_intervals']} "
          f"-> {answer!r}")
  summary = {"tetg_frame_auc": auc, "stage1_loss": [h1[0]["loss"], h1[-1]["loss"]],
             "stage2_loss": [h2[0]["loss"], h2[-1]["loss"]],
             "held_out_judgement_accuracy": correct / len(answers), "answers": answers,
             "seconds": time.perf_counter() - start}
  print(f"[5/5] yes/no judgement on {len(answers)} held-out videos: {correct}/{len(answers)}; "
        f"done in {summary['seconds']:.0f} s; summary in {workdir}/summary.json")
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary


def _answer(config, workdir, paths, items) -> dict[str, str]:
  """Greedy answers of the trained model to the final question of each held-out item."""
  import orbax.checkpoint as ocp
  tok = Tokenizer.load(paths["tokenizer"])
  cfg = vagpt_task.model_config(config, tok.vocab_size)
  model = vagpt.VAGPT(cfg)
  manager = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                  options=ocp.CheckpointManagerOptions(read_only=True))
  state = manager.restore(manager.latest_step(),
                          args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))["state"]
  params = {"params": state["params"]["params"]}
  feats = [features.load(os.path.join(paths["features"], os.path.splitext(
      os.path.basename(i["video"]))[0] + ".npz")) for i in items]
  tower = np.stack([f["tower_patches"] for f in feats])
  dino = np.stack([f["dino_patches"] for f in feats])
  # Ask the three questions in the order the model was trained on, feeding back its own answers.
  questions = [t["value"].replace("<video>\n", "") for t in items[0]["conversations"][0::2]]
  chats = [[] for _ in items]
  for turn, question in enumerate(questions):
    for chat in chats:
      chat.append({"from": "human", "value": ("<video>\n" if turn == 0 else "") + question})
    prompts = [conversation.tokenize_prompt(c, tok, num_video_tokens=cfg.num_video_tokens)
               for c in chats]
    ids, mask = left_pad([p.tolist() for p in prompts], tok.pad_id)
    out = vagpt.generate(model, params, ids, mask, tower, dino, jax.random.key(turn),
                         SamplingConfig(max_new_tokens=48))
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    for i, chat in enumerate(chats):
      text = tok.decode([t for t in tokens[i, :lengths[i]] if t != tok.eos_id])
      chat.append({"from": "gpt", "value": text})
  return {os.path.splitext(os.path.basename(item["video"]))[0]: chat[-1]["value"]
          for item, chat in zip(items, chats)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", default="demo_out")
  parser.add_argument("--num_videos", type=int, default=30)
  parser.add_argument("--steps", type=int, default=150)
  args = parser.parse_args(argv)
  run(args.workdir, num_videos=args.num_videos, steps=args.steps)


if __name__ == "__main__":
  main()
