"""Time to first answer: `vaujax infer --run R --video V` wall seconds, cold and warm.

A tiny run (synthetic videos, a TETG classifier, a few stage-one steps) is asked about one real
mp4 three times, each a fresh process as a user would start it:
  cold  an empty persistent compilation cache (every program compiles),
  warm  the same cache again (the programs load from it: nothing compiles),
  off   the cache turned off (VAUJAX_COMPILATION_CACHE=""), for comparison;
and once with a truncated mp4, which must fail before the model is loaded.
Rows: warm vs cold (ratio = cold / warm), and the bad video's seconds vs the cold answer.

  python -m benchmarks.time_to_answer [--steps 2] [--json out.json]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from absl import flags

from benchmarks import common


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("steps", 2, "stage-one steps of the tiny run", flag_values=fv)
  common.define_json_flag(fv)


def tiny_run(root: str, steps: int = 2) -> dict:
  """A tiny stage-one run with TETG hints under `root`: {"workdir", "videos", ...}."""
  from configs import tetg as tetg_configs
  from configs import vagpt_stage1
  from vaujax import testing
  from vaujax.train import loop
  paths = testing.make_tiny_vagpt_data(os.path.join(root, "data"), num_videos=6)
  tetg_dir = testing.train_tiny_tetg(paths, os.path.join(root, "tetg"),
                                     tetg_configs.get_config("epochs=2"))
  c = vagpt_stage1.get_config(f"size=tiny,frames=8,steps={steps}")
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.tetg_params, c.data.encoder = paths["tokenizer"], tetg_dir, "tiny:0"
  c.data.batch_size, c.progress, c.ckpt_every = 2, False, steps
  c.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  paths["workdir"] = os.path.join(root, "stage1")
  loop.train_and_evaluate(c, paths["workdir"])
  return paths


def ask(workdir: str, video: str, cache: str) -> tuple[float, subprocess.CompletedProcess]:
  """(wall seconds, process) of one `python -m vaujax.infer` call in a fresh process."""
  env = {**os.environ, "VAUJAX_COMPILATION_CACHE": cache, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": ""}
  for key in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
              "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"):
    env.pop(key, None)   # the command's own cache settings only
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "vaujax.infer", f"--run={workdir}",
                         f"--video={video}"], cwd=common.ROOT, env=env, text=True,
                        capture_output=True, timeout=600)
  return time.perf_counter() - start, proc


def main(steps: int = 2) -> list[dict]:
  root = tempfile.mkdtemp(prefix="vaujax_time_to_answer_")
  paths = tiny_run(root, steps)
  video = os.path.join(paths["videos"], sorted(os.listdir(paths["videos"]))[0])
  cache = os.path.join(root, "jax_cache")
  seconds = {}
  for name, cache_dir in (("cold", cache), ("warm", cache), ("off", "")):
    seconds[name], proc = ask(paths["workdir"], video, cache_dir)
    if proc.returncode:
      raise RuntimeError(f"infer ({name}) failed:\n{proc.stderr[-3000:]}")
  bad = os.path.join(root, "truncated.mp4")
  with open(video, "rb") as src, open(bad, "wb") as dst:
    dst.write(src.read()[:300])
  seconds["bad"], proc = ask(paths["workdir"], bad, cache)
  if proc.returncode != 2:
    raise RuntimeError(f"a truncated video should exit 2, got {proc.returncode}")
  print(f"infer on one video: cold {seconds['cold']:.1f} s, warm {seconds['warm']:.1f} s, "
        f"cache off {seconds['off']:.1f} s; a truncated video fails in {seconds['bad']:.1f} s",
        flush=True)
  return [dict(benchmark="time_to_answer", metric="infer wall s, warm cache vs cold",
               vaujax=seconds["warm"], reference=seconds["cold"],
               ratio=seconds["cold"] / seconds["warm"], cache_off_s=seconds["off"]),
          dict(benchmark="time_to_answer", metric="infer wall s, truncated video vs an answer",
               vaujax=seconds["bad"], reference=seconds["cold"],
               ratio=seconds["cold"] / seconds["bad"])]


def run(argv=None):
  return common.run_module(__doc__, define_flags, lambda fv: main(fv.steps), argv)


if __name__ == "__main__":
  run()
