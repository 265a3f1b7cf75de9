"""Writes the synthetic surveillance dataset: videos with known anomalies + annotations.

  vaujax synthetic --out DIR [--num_videos 40 --seconds 12 --fps 4 --seed 0]
                  [--max_events 3 --multi_fraction 0.5]   # several anomalies in some videos

Writes DIR/videos/*.mp4, DIR/uca.json (UCA-format timestamped sentences) and DIR/labels.json
(class, anomaly intervals, location and the events: class, interval and region of each).
Seeded and reproducible; videos already in DIR are kept. (`python -m vaujax.data.synthetic` runs the same command.)
"""

from __future__ import annotations

import os

from absl import flags

from vaujax.app import cli
from vaujax.data import synthetic
from vaujax.errors import InputError

_D = synthetic.SyntheticConfig()


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("out", None, "output directory (videos/, uca.json, labels.json)",
                      flag_values=fv)
  flags.DEFINE_integer("num_videos", _D.num_videos, "number of videos", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_float("seconds", _D.seconds, "length of every video in seconds", lower_bound=0,
                     flag_values=fv)
  flags.DEFINE_float("fps", _D.fps, "frames per second of the written videos", lower_bound=0,
                     flag_values=fv)
  flags.DEFINE_integer("size", _D.size, "frame width and height in pixels (even; a multiple of 16 suits h264)",
                       lower_bound=16, flag_values=fv)
  flags.DEFINE_float("normal_fraction", _D.normal_fraction, "share of videos without an anomaly",
                     lower_bound=0, upper_bound=1, flag_values=fv)
  flags.DEFINE_float("min_event_s", _D.min_event_s, "shortest anomaly, seconds", lower_bound=0,
                     flag_values=fv)
  flags.DEFINE_float("max_event_s", _D.max_event_s, "longest anomaly, seconds", lower_bound=0,
                     flag_values=fv)
  flags.DEFINE_integer("seed", _D.seed, "random seed (same seed, same files)", flag_values=fv)
  flags.DEFINE_float("anomaly_scale", _D.anomaly_scale, "size of the anomalies (1 = a few "
                     "patches at 112 px)", lower_bound=0, flag_values=fv)
  flags.DEFINE_float("max_seconds", None, "durations drawn per video from [seconds, max_seconds]",
                     lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("max_size", None, "frame heights drawn per video from [size, max_size]",
                       lower_bound=16, flag_values=fv)
  flags.DEFINE_list("aspects", ["1.0"], "frame aspects (width / height), one drawn per video, "
                    "e.g. 1,1.333,1.778", flag_values=fv)
  flags.DEFINE_list("event_fraction", None, "anomaly length as a fraction of the video, drawn "
                    "from LO,HI (default: min_event_s..max_event_s seconds)", flag_values=fv)
  flags.DEFINE_enum("look", _D.look, sorted(synthetic.LOOKS), "the scene: ucf (dusk road) or xd "
                    "(a night scene, for cross-domain tests)", flag_values=fv)
  flags.DEFINE_integer("max_events", _D.max_events, "most anomalies in one video (events of "
                       "different classes, times and regions)", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("multi_fraction", _D.multi_fraction, "share of anomalous videos with "
                     "2..max_events anomalies", lower_bound=0, upper_bound=1, flag_values=fv)
  flags.DEFINE_bool("spread_regions", _D.spread_regions, "one-anomaly videos: the region "
                    "uniform over the 3x3 grid (else the pixel centre uniform)", flag_values=fv)


def _floats(fv, name, count=None):
  values = fv[name].value
  if values is None:
    return None
  try:
    out = tuple(float(v) for v in values)
  except ValueError:
    raise cli.fail(f"--{name}", f"expected numbers, got {','.join(values)}") from None
  if count is not None and len(out) != count:
    raise cli.fail(f"--{name}", f"expected {count} numbers, got {len(out)}")
  return out


def main(fv: flags.FlagValues) -> dict:
  cli.require(fv, "out")
  if os.path.exists(fv.out) and not os.path.isdir(fv.out):
    raise InputError(fv.out, "output path exists and is not a directory")
  try:
    cfg = _config(fv)
  except InputError:
    raise
  except ValueError as e:      # SyntheticConfig's own checks
    raise cli.fail("flags", str(e)) from None
  labels = synthetic.generate(fv.out, cfg)
  print(f"wrote {len(labels)} videos to {fv.out}/videos, annotations to {fv.out}/uca.json")
  return labels


def _config(fv: flags.FlagValues) -> synthetic.SyntheticConfig:
  return synthetic.SyntheticConfig(
      num_videos=fv.num_videos, seconds=fv.seconds, fps=fv.fps, size=fv.size,
      normal_fraction=fv.normal_fraction, min_event_s=fv.min_event_s,
      max_event_s=fv.max_event_s, seed=fv.seed, anomaly_scale=fv.anomaly_scale,
      max_seconds=fv.max_seconds, max_size=fv.max_size, aspects=_floats(fv, "aspects"),
      event_fraction=_floats(fv, "event_fraction", 2), look=fv.look, max_events=fv.max_events,
      multi_fraction=fv.multi_fraction, spread_regions=fv.spread_regions)


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
