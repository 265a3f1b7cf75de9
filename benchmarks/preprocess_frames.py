"""Frame preprocessing for a folder of videos of many sizes: the host path
(`preprocess.preprocess_frames`: exact float64 matmuls, nothing compiled per size) against the
jitted one (`preprocess.preprocess`: one program per frame size).

Feature extraction (`vaujax features`, the demo's data step) preprocesses every video's frames
before the towers. The demo's synthetic videos come in a hundred sizes (96-256 px, three
aspects) and 4-32-frame chunks; compiling the bit-exact PIL resize for each (frames, height,
width) cost about as much as running it. Both paths here start cold on the same frames, compile
included, and their crops are checked equal bit for bit.
  python -m benchmarks --only=preprocess_frames
"""

import time

import jax
import numpy as np

from benchmarks import common

VIDEOS = 60
ASPECTS = (1.0, 4 / 3, 16 / 9)


def video_shapes(count: int, seed: int = 0) -> list[tuple[int, int, int]]:
  """(frames, height, width) like the demo's videos: 4-16 frames (chunks of 4, 8 or 16 after
  padding), the short side 96-256 px, landscape or portrait."""
  rng = np.random.RandomState(seed)
  shapes = []
  for _ in range(count):
    short = int(rng.randint(96, 257)) // 2 * 2
    long_ = int(short * ASPECTS[rng.randint(len(ASPECTS))]) // 2 * 2
    h, w = (short, long_) if rng.rand() < 0.8 else (long_, short)
    shapes.append((int(1 << rng.randint(2, 5)), h, w))
  return shapes


def measure(count: int = VIDEOS, size: int = 112, seed: int = 0) -> list[dict]:
  from vaujax.data import preprocess
  spec = preprocess.PreprocessSpec(size, size, preprocess.IMAGENET_MEAN, preprocess.IMAGENET_STD)
  rng = np.random.RandomState(seed + 1)
  videos = [rng.randint(0, 256, s + (3,), dtype=np.uint8) for s in video_shapes(count, seed)]

  def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = [np.asarray(jax.block_until_ready(fn(v))) for v in videos]
    return out, time.perf_counter() - start, time.process_time() - cpu

  per_size, per_size_s, per_size_cpu = timed(lambda v: preprocess.preprocess(v, spec))
  host, host_s, host_cpu = timed(lambda v: preprocess.preprocess_frames(v, spec))
  if not all(np.array_equal(a, b) for a, b in zip(per_size, host)):
    raise AssertionError("the host preprocessing differs from the jitted one")
  shapes = {v.shape for v in videos}
  print(f"preprocess {count} videos ({len(shapes)} shapes) to {size} px, compile included: "
        f"jitted per size {per_size_s:.2f} s ({per_size_cpu:.2f} CPU-s), host {host_s:.2f} s "
        f"({host_cpu:.2f} CPU-s), {per_size_s / host_s:.2f}x; outputs equal", flush=True)
  return [dict(benchmark="preprocess_frames",
               metric=f"videos/s, {count} videos of {len(shapes)} shapes, cold",
               vaujax=count / host_s, reference=count / per_size_s,
               ratio=per_size_s / host_s, cpu_ratio=per_size_cpu / host_cpu,
               shapes=len(shapes), note="reference: the jitted preprocess, one program per frame size")]


def main():
  return measure()


def define_flags(fv) -> None:
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.preprocess_frames`: main(), and --json to keep its rows."""
  return common.run_module(__doc__, define_flags, lambda fv: main(), argv)


if __name__ == "__main__":
  run()
