"""`vaujax <command> [--flags]`: every command of the project behind one console script.

  vaujax train --config configs/vagpt_stage1.py:size=tiny --workdir runs/stage1 ...
  vaujax evaluate --run runs/stage2 --benchmark test_mc.json --feature_dir feats/
  vaujax infer --run runs/stage2 --video clip.mp4
  vaujax <command> --help     every flag of a command, with its meaning

`python -m vaujax.train`, `python -m vaujax.evaluate`, `python -m vaujax.infer` and
`python -m vaujax.demo` run the same code.
"""

from __future__ import annotations

import importlib
import sys

from vaujax.app import cli

# command -> (module, one-line summary)
COMMANDS = {
    "train": ("vaujax.app.train", "train VA-GPT (stage one / two) or the TETG classifier"),
    "evaluate": ("vaujax.app.evaluate", "score a run on an MC or open-QA benchmark (+ AUC/AP)"),
    "infer": ("vaujax.app.infer", "ask a run about one video"),
    "demo": ("vaujax.app.demo", "end-to-end VA-GPT on synthetic videos, on CPU"),
    "ablation": ("vaujax.app.ablation", "none / SETS / TETG / both and the K sweep"),
    "features": ("vaujax.app.features", "extract per-video feature files"),
    "synthetic": ("vaujax.app.synthetic", "write synthetic surveillance videos + annotations"),
    "convert-llama": ("vaujax.app.convert_llama", "HF LLaMA/Vicuna <-> vaujax params"),
    "convert-vision": ("vaujax.app.convert_vision", "CLIP / EVA / DINOv2 (or ONNX) -> params"),
    "convert-llamavid": ("vaujax.app.convert_llamavid", "a LLaMA-VID release -> vaujax params"),
}


def usage() -> str:
  width = max(map(len, COMMANDS))
  rows = "\n".join(f"  {name:{width}}  {summary}" for name, (_, summary) in COMMANDS.items())
  return f"{__doc__.strip()}\n\ncommands:\n{rows}\n"


def main(argv=None):
  if argv is None:
    cli.ends_the_process = True
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    sys.stdout.write(usage())
    raise SystemExit(0 if len(argv) >= 2 else 2)
  name = argv[1]
  if name not in COMMANDS:
    print(f"error: {name}: unknown command; one of {', '.join(COMMANDS)}", file=sys.stderr)
    raise SystemExit(2)
  module = importlib.import_module(COMMANDS[name][0])
  return module.run([f"vaujax {name}"] + argv[2:])


if __name__ == "__main__":
  main()
