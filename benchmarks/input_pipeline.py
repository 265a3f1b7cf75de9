"""Grain prefetching in the real training loop: wall time per step with and without it.

The demo's stage-one loop (tiny VA-GPT, batch 8 x 320 tokens, TETG hints computed per example
from the feature files) on generated data, once per input setting:
  none      read_threads=-1: each batch is prepared in the loop, between train steps
  grain     grain's own defaults, 16 threads and 500 batches ahead
  auto      the pipeline's default: half the host's cores, two batches per thread
  buckets   auto, and each batch trimmed to its longest example rounded up to 32 tokens
            (data.length_bucket; one compile per distinct length)
  mixed     buckets, on the same videos' items plus as many text-only hint drills
            (data/hint_drills.py; the demo's training data is 46% drills), shuffled together
  grouped   mixed, with every batch all drills or all videos (data.group_by_modality)
Wall per step = `data_time` (waiting for the batch) + `step_time` (the jitted step and its
metrics), the median over the steps after the first WARMUP (so a late compile of a new length
is not counted; `compiles` says how many lengths there were); mixed and grouped are compared
by the mean wall per step over the same steps less each length's first (their steps are of two
kinds, so a median says little); host memory growth is the resident
set at the last step (the pipeline's buffer alive) minus before the run. Each run is a fresh
process; the settings run one after another, VAUJAX_INPUT_REPEATS times (default 1) in
alternation, and each figure is from the fastest of its runs.

  python -m benchmarks --only=input_pipeline
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from absl import flags

from benchmarks import common
from benchmarks.common import json_from_child
from benchmarks.scaling import host_rss_mib

STEPS, WARMUP = 80, 20
REPEATS = int(os.environ.get("VAUJAX_INPUT_REPEATS", "1"))   # runs per setting (best kept)
# (read_threads, prefetch_buffer, length_bucket, with drills, grouped by modality)
SETTINGS = {"none": (-1, 0, 0, 0, 0), "grain": (16, 500, 0, 0, 0), "auto": (0, 0, 0, 0, 0),
            "buckets": (0, 0, 32, 0, 0), "mixed": (0, 0, 32, 1, 0), "grouped": (0, 0, 32, 1, 1)}


def make_data(root: str, num_videos: int = 24) -> dict:
  from configs import tetg as tetg_configs
  from vaujax import testing
  from vaujax.data import synthetic
  from vaujax.train import tetg_trainer
  paths = testing.make_tiny_vagpt_data(root, num_videos=num_videos)
  with open(paths["labels_json"]) as f:
    labels = json.load(f)
  x, y = tetg_trainer.frames_from_features(paths["features"], labels)
  paths["tetg"] = os.path.join(root, "tetg")
  tetg_trainer.save(paths["tetg"], tetg_trainer.train(x, y, tetg_configs.get_config("epochs=3")))
  from vaujax.data import hint_drills, instructions
  items = instructions.read_instructions(paths["train_json"])[0]
  drills = hint_drills.drill_items(hint_drills.DrillConfig(
      len(items), tuple(c for c in synthetic.SyntheticConfig().classes if c != "Normal"),
      seconds=(4.0, 16.0), sample_fps=0.0, frames=8))
  paths["train_drills_json"] = os.path.join(root, "train_drills.json")
  instructions.write_json(paths["train_drills_json"], items + drills)
  return paths


def run_loop(paths: dict, workdir: str, threads: int, buffer: int, bucket: int = 0,
             drills: int = 0, grouped: int = 0, steps: int = STEPS, warmup: int = WARMUP) -> dict:
  from configs import vagpt_stage1
  from vaujax.data import synthetic
  from vaujax.train import loop
  c = vagpt_stage1.get_config(f"size=tiny,frames=8,steps={steps}")
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.tetg_params = paths["tokenizer"], paths["tetg"]
  c.data.classes = ",".join(synthetic.SyntheticConfig().classes)
  c.data.max_length, c.data.read_threads, c.data.prefetch_buffer = 320, threads, buffer
  c.data.length_bucket = bucket
  if drills:
    c.data.train_json = paths["train_drills_json"]
  c.data.group_by_modality = bool(grouped)
  c.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  c.ckpt_every, c.progress, c.log_every = steps, False, steps
  rss = []
  c.eval.every = steps      # the hook runs at the last step, with the pipeline's buffer alive

  def record_rss(step, params):
    rss.append(host_rss_mib()[1])
    return {}

  before = host_rss_mib()[1]
  full = loop.train_and_evaluate(c, workdir, hooks=[record_rss])
  history = full[warmup:]
  data = float(np.median([h["data_time"] for h in history]))
  step = float(np.median([h["step_time"] for h in history]))
  wall = float(np.median([h["data_time"] + h["step_time"] for h in history]))
  firsts = {}
  for h in full:
    firsts.setdefault(h["seq_len"], h["step"])
  steady = [h["data_time"] + h["step_time"] for h in history if h["step"] not in
            firsts.values()] or [h["data_time"] + h["step_time"] for h in history]
  return {"wall_ms": 1e3 * wall, "mean_wall_ms": 1e3 * float(np.mean(steady)),
          "data_ms": 1e3 * data, "step_ms": 1e3 * step,
          "rss_growth_mib": rss[-1] - before, "compiles": len({h["seq_len"] for h in full}),
          "mean_seq_len": float(np.mean([h["seq_len"] for h in full]))}


def run_in_child(paths: dict, workdir: str, threads: int, buffer: int, bucket: int = 0,
                 drills: int = 0, grouped: int = 0, steps: int = STEPS,
                 warmup: int = WARMUP) -> dict:
  """`run_loop` in a fresh process, so that one setting's freed buffers do not hide another's."""
  return json_from_child("benchmarks.input_pipeline", f"--child={json.dumps(paths)}",
                         f"--workdir={workdir}", f"--threads={threads}", f"--buffer={buffer}",
                         f"--bucket={bucket}", f"--drills={drills}", f"--grouped={grouped}",
                         f"--steps={steps}", f"--warmup={warmup}")


def main():
  return measure()


def measure(repeats: int = REPEATS, steps: int = STEPS, warmup: int = WARMUP) -> list[dict]:
  """main()'s rows: every setting `repeats` times, `steps` steps of which `warmup` uncounted."""
  with tempfile.TemporaryDirectory() as root:
    paths = make_data(os.path.join(root, "data"))
    results = {name: [] for name in SETTINGS}
    for repeat in range(repeats):
      for name, setting in SETTINGS.items():
        results[name].append(run_in_child(paths, os.path.join(root, f"{name}{repeat}"),
                                          *setting, steps=steps, warmup=warmup))
  best = {name: min(runs, key=lambda r: r["mean_wall_ms" if name in ("mixed", "grouped")
                                            else "wall_ms"]) for name, runs in results.items()}
  for name, r in best.items():
    print(f"{name:5s}: {r['wall_ms']:.1f} ms/step (waiting for data {r['data_ms']:.1f} ms, "
          f"step {r['step_ms']:.1f} ms); host memory +{r['rss_growth_mib']:.0f} MiB at the "
          f"last step; {r['compiles']} compile(s), mean length {r['mean_seq_len']:.0f}",
          flush=True)
  cores = os.cpu_count()
  rows = []
  for ref in ("none", "grain"):
    rows.append(dict(benchmark="input_pipeline",
                     metric=f"ms/step of the tiny stage-one loop, auto prefetch vs {ref} "
                            f"({cores} cores)",
                     vaujax=best["auto"]["wall_ms"], reference=best[ref]["wall_ms"],
                     ratio=best[ref]["wall_ms"] / best["auto"]["wall_ms"],
                     **{f"{name}_{k}": v for name, r in best.items() for k, v in r.items()}))

  def row(metric, ours, reference):   # ratio > 1: ours is smaller (faster, less memory)
    return dict(benchmark="input_pipeline", metric=metric, vaujax=ours, reference=reference,
                ratio=reference / max(ours, 1))

  rows.append(row(f"median ms/step, length buckets of 32 vs padding to 320 (mean length "
                  f"{best['buckets']['mean_seq_len']:.0f}, {best['buckets']['compiles']} "
                  "compile(s) vs 1)", best["buckets"]["wall_ms"], best["auto"]["wall_ms"]))
  rows.append(row(f"mean ms/step, videos + as many text-only drills: batches of one kind vs "
                  f"mixed (mean length {best['grouped']['mean_seq_len']:.0f} vs "
                  f"{best['mixed']['mean_seq_len']:.0f})", best["grouped"]["mean_wall_ms"],
                  best["mixed"]["mean_wall_ms"]))
  rows.append(row("host memory growth (MiB) by the last step, auto vs grain's defaults",
                  best["auto"]["rss_growth_mib"], best["grain"]["rss_growth_mib"]))
  return rows


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("repeats", REPEATS, "runs of every setting, the fastest kept (env "
                       "VAUJAX_INPUT_REPEATS)", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("steps", STEPS, "train steps per run", lower_bound=2, flag_values=fv)
  flags.DEFINE_integer("warmup", WARMUP, "first steps of a run left out of the medians",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_string("child", None, "internal: run one setting's loop in this process on the "
                      "data these JSON paths name, and print its figures as JSON",
                      flag_values=fv)
  flags.DEFINE_string("workdir", None, "with --child: the run's work directory", flag_values=fv)
  flags.DEFINE_integer("threads", 0, "with --child: data.read_threads (-1 none, 0 auto)",
                       lower_bound=-1, flag_values=fv)
  flags.DEFINE_integer("buffer", 0, "with --child: data.prefetch_buffer (0 auto)", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_integer("bucket", 0, "with --child: data.length_bucket (0 none)", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_integer("drills", 0, "with --child: 1 = train on the items plus text-only "
                       "drills", lower_bound=0, upper_bound=1, flag_values=fv)
  flags.DEFINE_integer("grouped", 0, "with --child: data.group_by_modality (1 = on)",
                       lower_bound=0, upper_bound=1, flag_values=fv)
  common.define_json_flag(fv)


def _rows(fv: flags.FlagValues):
  from vaujax.app import cli
  if fv.warmup >= fv.steps:
    raise cli.fail("--warmup", f"must be below --steps ({fv.steps}), got {fv.warmup}")
  if not fv.child:
    return measure(fv.repeats, fv.steps, fv.warmup)
  cli.require(fv, "workdir")
  try:
    paths = json.loads(fv.child)
  except json.JSONDecodeError as e:
    raise cli.fail("--child", f"not JSON ({e.msg})") from None
  from vaujax import cpu_runtime
  cpu_runtime.reuse_host_memory()       # as `python -m vaujax.train` does
  out = run_loop(paths, fv.workdir, fv.threads, fv.buffer, fv.bucket, fv.drills, fv.grouped,
                 fv.steps, fv.warmup)
  print(json.dumps(out))
  return out


def run(argv=None):
  """`python -m benchmarks.input_pipeline`: main(), with the settings the flags give."""
  return common.run_module(__doc__, define_flags, _rows, argv)


if __name__ == "__main__":
  run()
