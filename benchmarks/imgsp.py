"""What LLaMA-VID's `imgsp` layout does on VA-GPT's three-question clips: later-question accuracy
and train-step time, data.imgsp off vs on.

Two tiny runs (configs/vagpt_stage1.py:size=tiny with the Q-Former) on the same synthetic clips,
seed and steps, differ only in data.imgsp. Each is read back from its run directory
(`Assistant.from_run`: the layout comes from the run, no flag) and asked, on held-out clips, the
second and third question with the earlier turns and their reference answers in the prompt: the
reference answer against the same turn's answer of another held-out clip that differs, by mean
log-likelihood (chance 0.5). Step time is the median `step_time` of the run's logged steps after
the first (compiles).

  python -m benchmarks.imgsp --steps=120 --seeds=0,1
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile

import numpy as np
from absl import flags

from benchmarks import common


def _data(root: str, num_videos: int) -> tuple[dict, list, list]:
  """Synthetic clips: 2/3 of the videos train, the rest are held out."""
  from vaujax import testing
  paths = testing.make_tiny_vagpt_data(root, num_videos=num_videos, num_frames=4)
  with open(paths["train_json"]) as f:
    items = json.load(f)
  videos = sorted({i["video"] for i in items})
  held = set(videos[::3])
  train = [i for i in items if i["video"] not in held]
  test = [i for i in items if i["video"] in held]
  paths["train_json"] = os.path.join(root, "train_split.json")
  with open(paths["train_json"], "w") as f:
    json.dump(train, f)
  words = sorted(set(re.findall(r"[a-z0-9]+", json.dumps(items).lower())))
  paths["bert_vocab"] = os.path.join(root, "vocab.txt")
  with open(paths["bert_vocab"], "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "'"] + words))
  return paths, train, test


def _train(paths: dict, workdir: str, imgsp: bool, steps: int, seed: int) -> list[dict]:
  from configs import vagpt_stage1
  from vaujax.train import loop
  c = vagpt_stage1.get_config(f"size=tiny,frames=4,steps={steps}")
  c.model.qformer, c.data.imgsp, c.seed = True, imgsp, seed
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.bert_vocab = paths["tokenizer"], paths["bert_vocab"]
  c.data.batch_size = 8
  c.progress, c.ckpt_every, c.log_every = False, steps, 1
  return loop.train_and_evaluate(c, workdir)


def _later_question_accuracy(workdir: str, paths: dict, test: list) -> dict:
  """Accuracy on turns 2 and 3 (reference answer vs another clip's differing answer)."""
  from vaujax.data import features
  from vaujax.inference.assistant import Assistant
  a = Assistant.from_run(workdir)
  rng = np.random.default_rng(0)
  out = {}
  for turn in (1, 2):
    chats, feats, options = [], [], []
    for item in test:
      conv = item["conversations"]
      gold = conv[2 * turn + 1]["value"]
      others = [o["conversations"][2 * turn + 1]["value"] for o in test]
      others = sorted({o for o in others if o != gold})
      if not others:
        continue
      chats.append(conv[:2 * turn + 1])
      feats.append(features.read_features(os.path.join(
          paths["features"], os.path.splitext(os.path.basename(item["video"]))[0] + ".npz")))
      options.append([gold, others[rng.integers(len(others))]])
    right = 0
    for start in range(0, len(chats), 8):
      _, mean = a.score_options(chats[start:start + 8], feats[start:start + 8],
                                options[start:start + 8])
      right += int((mean[:, 0] > mean[:, 1]).sum())
    out[f"turn{turn + 1}"] = right / max(len(chats), 1)
    out[f"turn{turn + 1}_n"] = len(chats)
  out["imgsp_from_run"] = bool(a.config.data.get("imgsp", False))
  return out


def measure(steps: int = 120, seeds=(0,), num_videos: int = 24) -> list[dict]:
  rows = []
  with tempfile.TemporaryDirectory() as root:
    paths, train, test = _data(os.path.join(root, "data"), num_videos)
    print(f"{len(train)} training clips, {len(test)} held out", flush=True)
    results = {}
    for seed in seeds:
      for imgsp in (False, True):
        workdir = os.path.join(root, f"run_{int(imgsp)}_{seed}")
        history = _train(paths, workdir, imgsp, steps, seed)
        times = [h["step_time"] for h in history[1:] if "step_time" in h]
        acc = _later_question_accuracy(workdir, paths, test)
        assert acc["imgsp_from_run"] == imgsp
        results[(imgsp, seed)] = dict(
            step_ms=statistics.median(times) * 1e3,
            loss_last10=float(np.mean([h["loss"] for h in history[-10:]])), **acc)
        print(f"seed {seed} imgsp={imgsp}: {results[(imgsp, seed)]}", flush=True)
  for metric in ("turn2", "turn3", "step_ms", "loss_last10"):
    on = float(np.mean([results[(True, s)][metric] for s in seeds]))
    off = float(np.mean([results[(False, s)][metric] for s in seeds]))
    rows.append(dict(benchmark="imgsp", metric=f"{metric}, imgsp on vs off", vaujax=on,
                     reference=off, ratio=on / off if off else float("nan"), steps=steps,
                     seeds=list(seeds), held_out=results[(True, seeds[0])]["turn2_n"],
                     per_seed={str(s): {"on": results[(True, s)][metric],
                                        "off": results[(False, s)][metric]} for s in seeds}))
  return rows


def main():
  return measure()


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("steps", 120, "train steps per run", lower_bound=1, flag_values=fv)
  flags.DEFINE_list("seeds", ["0"], "run seeds (one pair of runs each)", flag_values=fv)
  flags.DEFINE_integer("videos", 24, "synthetic videos (a third held out)", lower_bound=6,
                       flag_values=fv)
  common.define_json_flag(fv)


def _rows(fv: flags.FlagValues) -> list[dict]:
  return measure(steps=fv.steps, seeds=tuple(int(s) for s in fv.seeds), num_videos=fv.videos)


def run(argv=None):
  """`python -m benchmarks.imgsp`: main()'s rows at the flags' settings."""
  return common.run_module(__doc__, define_flags, _rows, argv)


if __name__ == "__main__":
  run()
