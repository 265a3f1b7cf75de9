"""Train-step time and memory of the tiny VA-GPT vs frames per video and vs sequence length.

The trainer's step (stage one: batch 8, AdamW, context + content frame tokens, SETS K=0.5):
  frames   8, 16, 32, 64 per video at a fixed 239-token text (sequence 1 + 2T + 239)
  seq      128, 256, 512, 1024 tokens at 8 frames
Per setting: best step time (all settings timed interleaved), the compiled executable's
`memory_analysis()` (temp + argument bytes, and that per parameter), and host RSS right after
the setting compiled (peak from `resource.getrusage`, monotone over the process, so run this
module alone to read it; and current from /proc/self/statm).

  python -m benchmarks --only=scaling
"""

from __future__ import annotations

import os
import resource
import time

import jax
from absl import flags

from benchmarks import common
from benchmarks import train_step as ts

MIB = 1 << 20
FRAMES = (8, 16, 32, 64)
SEQS = (128, 256, 512, 1024)


def host_rss_mib() -> tuple[float, float]:
  """(peak, current) resident set size of this process in MiB."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024       # KiB on Linux
  try:
    with open("/proc/self/statm") as f:
      current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
  except OSError:
    current = float("nan")
  return peak, current


def setting(frames: int, seq: int, batch: int, size: str = "tiny", llm=None,
            params=None) -> dict:
  """Compiles one train step; memory numbers and a ready-to-time step.

  `params`: initial weights to copy (they do not depend on frames or length); default a fresh init.
  """
  cfg, cd = ts.vagpt_config(size, frames=frames, llm=llm)
  text_len = seq - 1 - cfg.num_video_tokens
  if text_len < 2:
    raise ValueError(f"seq {seq} leaves no text after {cfg.num_video_tokens} video tokens")
  data = ts.video_batch(cfg, cd.dino_dim, batch, text_len)
  if params is not None:
    params = jax.tree_util.tree_map(lambda x: x.copy(), params)   # each step donates its own
  _, params, step = ts.vagpt_step(cfg, data, params)
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  start = time.perf_counter()
  compiled = step.step.lower(step.state, step.batch).compile()
  compile_s = time.perf_counter() - start
  step.step = compiled
  step()                                            # warm-up
  mem = compiled.memory_analysis()
  temp, args = mem.temp_size_in_bytes, mem.argument_size_in_bytes
  peak, current = host_rss_mib()
  return dict(step=step, frames=frames, seq=data["input_ids"].shape[1], batch=batch,
              video_tokens=cfg.num_video_tokens, params=n_params, compile_s=compile_s,
              temp_mib=temp / MIB, argument_mib=args / MIB, output_mib=mem.output_size_in_bytes /
              MIB, alias_mib=mem.alias_size_in_bytes / MIB, device_mib=(temp + args) / MIB,
              bytes_per_param=(temp + args) / n_params, host_rss_peak_mib=peak,
              host_rss_mib=current)


def measure(frames=FRAMES, seqs=SEQS, batch: int = ts.TINY_BATCH, seq_at_frames: int = 256,
            frames_at_seq: int = 8, repeats: int = ts.STEPS, size: str = "tiny") -> list[dict]:
  """Rows per setting; a setting in both sweeps is compiled and timed once (listed twice)."""
  cfg, cd = ts.vagpt_config(size, frames=frames_at_seq)
  per_frame = cfg.num_video_tokens // frames_at_seq   # 2 (context + content); 1 + g*g with a grid
  # the frames sweep keeps the text of the `seq_at_frames` setting: its length grows by the frames
  wanted = [("frames", t, seq_at_frames + per_frame * (t - frames_at_seq)) for t in frames]
  wanted += [("seq", frames_at_seq, s) for s in seqs]
  init = ts.vagpt_params(cfg, ts.video_batch(cfg, cd.dino_dim, 1, 4))[1]   # one init for all
  runs = {}
  for _, t, s in wanted:
    if (t, s) not in runs:
      runs[(t, s)] = setting(t, s, batch, size, params=init)
  times = ts.interleave({key: r["step"] for key, r in runs.items()}, repeats)
  rows = []
  for sweep, t, s in wanted:
    r = runs[(t, s)]
    step_s = min(times[(t, s)])
    tokens = r["batch"] * r["seq"]
    extra = {k: v for k, v in r.items() if k != "step"}
    row = dict(benchmark="scaling",
               metric=f"{size} VA-GPT step ms, {r['frames']} frames, seq {r['seq']} "
                      f"({sweep} sweep)",
               vaujax=step_s * 1e3, reference="-", ratio="-", sweep=sweep, step_ms=step_s * 1e3,
               tokens_per_s=tokens / step_s, loadavg_1m=ts.load_average(), **extra)
    rows.append(row)
    print(f"{sweep:6s} frames {r['frames']:3d} seq {r['seq']:5d}: step {step_s * 1e3:7.1f} ms, "
          f"{tokens / step_s:8,.0f} tok/s, device temp {r['temp_mib']:7.1f} MiB + args "
          f"{r['argument_mib']:5.1f} MiB = {r['bytes_per_param']:,.0f} B/param; host RSS "
          f"{r['host_rss_mib']:,.0f} MiB (peak {r['host_rss_peak_mib']:,.0f})", flush=True)
  return rows


def main():
  return measure()


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("frames", [str(t) for t in FRAMES], "frames per video of the frames sweep "
                    "(text fixed, sequence 1 + 2T + text)", flag_values=fv)
  flags.DEFINE_list("seqs", [str(s) for s in SEQS], "sequence lengths of the sequence sweep "
                    "(8 frames)", flag_values=fv)
  flags.DEFINE_integer("batch", ts.TINY_BATCH, "examples per train step", lower_bound=1,
                       flag_values=fv)
  common.define_json_flag(fv)


def _rows(fv: flags.FlagValues) -> list[dict]:
  frames, seqs = common.int_list(fv, "frames"), common.int_list(fv, "seqs")
  return measure(frames=tuple(frames), seqs=tuple(seqs), batch=fv.batch)


def run(argv=None):
  """`python -m benchmarks.scaling`: main()'s sweeps, or those the flags give."""
  return common.run_module(__doc__, define_flags, _rows, argv)


if __name__ == "__main__":
  run()
