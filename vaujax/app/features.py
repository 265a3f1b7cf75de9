"""Extracts one feature file per video of a folder (what VA-GPT trains on instead of pixels).

  vaujax features --videos DIR --out DIR --encoder TOWER_DIR,DINO_DIR [--fps 1]
  vaujax features --videos DIR --out DIR --encoder tiny --num_frames 8   # seeded tiny towers

--encoder is `tiny` / `tiny:SEED` (the demo's seeded random towers), two params directories
converted with `vaujax convert-vision` (the vision tower's, then DINOv2's), `tiny[:SEED],DINO_DIR
[@SIZE]` (the tiny tower beside a converted DINOv2 on SIZE-px crops) or
`dinov2-patches:WIDTH[:SEED],DINO_DIR[@SIZE]` (that DINOv2 alone, its patch tokens projected to
WIDTH as the vision tower's; `features.encoder_from_spec`). Extraction resumes:
finished videos are skipped, and a video that fails to decode is reported and counted (exit
status 1 at the end), not fatal. Every video under the folder is read, subfolders too (links
to folders are not followed); each gets its own feature file, named by its path without the
extension, folders kept (`cam1/001.mp4` -> OUT/cam1/001.npz, beside OUT/cam2/001.npz); two
videos of one folder that differ only in the extension keep it (`001.mp4.npz`,
`001.avi.npz`). Training and evaluation find a video's file by its path (a folder keyed by
the bare video name, as written before, is still read). Frames larger
than full HD are scaled down while decoding. Image files of the folder (.jpg, .jpeg, .png)
are extracted too, each into a one-frame feature file (timestamps [0.0]) keyed by the same
rule (`frames/x.jpg` -> OUT/frames/x.npz), for image examples (`{"image": "frames/x.jpg"}`);
a corrupt image, or one declaring more than 40 M pixels, is reported like a bad video.
--tetg_fps R also writes TETG's own frames (DINOv2 class embeddings at R frames a second, no
cap) into each video's file where they outnumber the model's: TETG then finds the interval on
every sampled second of a long video, while the LLM keeps its capped frames (a run's
data.tetg_fps). OUT/extraction.json records the frame sampling; extracting into OUT again with
another (--fps, --num_frames, --max_frames, --min_frames, --tetg_fps) is refused before
anything is read.
(`python -m vaujax.data.features` runs the same command.)
"""

from __future__ import annotations

from absl import flags

from vaujax.app import cli
from vaujax.errors import InputError, require_dir


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("videos", None, "folder of video files (.mp4, .avi, .mkv, ...) and image "
                      "files (.jpg, .png: one-frame feature files)",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "output folder of <folders>/<video>.npz feature files",
                      flag_values=fv)
  flags.DEFINE_string("encoder", None, "frozen towers: 'tiny[:SEED]', 'TOWER_DIR,DINO_DIR' "
                      "(params directories from `vaujax convert-vision`), "
                      "'tiny[:SEED],DINO_DIR[@SIZE]' or "
                      "'dinov2-patches:WIDTH[:SEED],DINO_DIR[@SIZE]' (DINOv2's patches, "
                      "projected to WIDTH, as the vision tower's)", flag_values=fv)
  flags.DEFINE_float("fps", None, "frames sampled per second of video (default: every frame, "
                     "or --num_frames)", lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("num_frames", None, "frames sampled uniformly per video", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("max_frames", None, "with --fps: at most this many frames, sampled "
                       "uniformly when --fps would give more (a run's data.sample_fps and "
                       "model.num_frames)", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("min_frames", None, "with --fps: a video that would give fewer frames "
                       "gives this many, sampled faster (a run's data.min_frames)",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_float("tetg_fps", None, "also TETG's own frames at this rate, uncapped, where "
                     "they outnumber the model's (a run's data.tetg_fps)", lower_bound=0,
                     flag_values=fv)


def encoder(spec: str):
  """`--encoder` -> the FrameEncoder; checks the directories before any tower is built."""
  from vaujax.data import features
  parts = spec.split(",")
  # TOWER_DIR,DINO_DIR: both directories are checked before either tower is read (the tiny and
  # DINOv2-only forms check their DINO_DIR in the library before any tower is built)
  if parts[0].split(":")[0] not in ("tiny", features.PROJECTED_DINOV2):
    if len(parts) != 2:
      raise cli.fail("--encoder", f"must be 'tiny[:SEED]', 'TOWER_DIR,DINO_DIR', "
                     f"'tiny[:SEED],DINO_DIR[@SIZE]' or "
                     f"'{features.PROJECTED_DINOV2}:WIDTH[:SEED],DINO_DIR[@SIZE]', got {spec!r}")
    for part in parts:
      require_dir(part, "params directory")
  try:
    return features.encoder_from_spec(spec)
  except InputError as e:
    if e.source and e.source.startswith("--"):   # the library names the config key
      raise cli.fail("--encoder", e.problem) from None
    raise


def main(fv: flags.FlagValues) -> dict:
  cli.require(fv, "videos", "out", "encoder")
  require_dir(fv.videos, "video directory")
  from vaujax.data import features
  if fv.min_frames and fv.max_frames and fv.min_frames > fv.max_frames:
    raise cli.fail("--min_frames", f"{fv.min_frames} is more than --max_frames {fv.max_frames}")
  report = features.extract_folder(fv.videos, fv.out, encoder(fv.encoder), fps=fv.fps,
                                   max_frames=fv.max_frames, min_frames=fv.min_frames,
                                   tetg_fps=fv.tetg_fps,
                                   num_frames=fv.num_frames)
  if report["failed"]:
    raise SystemExit(1)
  return report


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
