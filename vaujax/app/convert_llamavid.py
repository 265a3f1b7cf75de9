r"""A LLaMA-VID release checkpoint <-> a vaujax VA-GPT params directory (and back).

  vaujax convert-llamavid --release_dir llama-vid-7b-full-224-video-fps-1 --out ckpt/vagpt \\
      [--eva eva_vit_g.pth --eva_out ckpt/eva] [--num_frames 8 --sets_ratio 0.5]
  vaujax convert-llamavid --params ckpt/vagpt --release_out exported/

Import prints which release keys were used and which were ignored (RoPE buffers, position ids,
the vision tower). (`python -m vaujax.convert.llamavid` runs the same command.)
"""

from __future__ import annotations

import dataclasses
import json

from absl import flags

from vaujax.app import cli
from vaujax.errors import require_dir, require_file


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("release_dir", None, "LLaMA-VID release directory (config.json + "
                      "shards) to import", flag_values=fv)
  flags.DEFINE_string("out", None, "output vaujax VA-GPT params directory (with --release_dir)",
                      flag_values=fv)
  flags.DEFINE_string("eva", None, "LAVIS eva_vit_g.pth to convert alongside (optional)",
                      flag_values=fv)
  flags.DEFINE_string("eva_out", None, "output directory of the converted EVA tower (default: "
                      "--out + '_eva')", flag_values=fv)
  flags.DEFINE_integer("num_frames", 8, "frames per video the converted model is configured "
                       "for", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("sets_ratio", 0.5, "SETS keep ratio K of the converted model", lower_bound=0,
                     upper_bound=1, flag_values=fv)
  flags.DEFINE_string("params", None, "vaujax VA-GPT params directory to export", flag_values=fv)
  flags.DEFINE_string("release_out", None, "output release-style directory (with --params)",
                      flag_values=fv)


def main(fv: flags.FlagValues) -> None:
  if fv.params or fv.release_out:
    if fv.release_dir or fv.out or fv.eva or fv.eva_out:
      raise cli.fail("--params", "import (--release_dir, --out) and export (--params, "
                                 "--release_out) are separate runs")
    cli.require(fv, "params", "release_out")
    require_dir(fv.params, "params directory")
    from vaujax.convert import llamavid
    files = llamavid.export_release(fv.params, fv.release_out)
    print(f"wrote {len(files)} shard(s) to {fv.release_out}")
    return
  if not (fv.release_dir or fv.out):
    raise cli.fail("--release_dir", "use --release_dir DIR --out DIR, or --params DIR "
                                    "--release_out DIR")
  cli.require(fv, "release_dir", "out")
  if fv.eva_out and not fv.eva:
    raise cli.fail("--eva_out", "needs --eva")
  require_dir(fv.release_dir, "LLaMA-VID release directory")
  if fv.eva:
    require_file(fv.eva, "EVA weights file")
  from vaujax.convert import llamavid, params_io
  report = llamavid.import_release(fv.release_dir, fv.out, num_frames=fv.num_frames,
                                   sets_ratio=fv.sets_ratio)
  print(json.dumps({"used_keys": report["used"], "ignored_keys": report["ignored"]}, indent=1))
  if fv.eva:
    from vaujax.convert import vision
    eva_out = fv.eva_out or fv.out + "_eva"
    params, cfg, _ = vision.load_tower("eva", fv.eva)
    params_io.write_params_dir(eva_out, params, {"kind": "vit/eva", "config": dataclasses.asdict(cfg)})
    print(f"EVA tower -> {eva_out}")


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
