"""Vicuna-7B, the LLM of VA-GPT / LLaMA-VID.

  configs/vicuna_7b.py               v1.5 (LLaMA-2 based; LLaMA-VID's choice): RMSNorm eps 1e-5, 4096 positions
  configs/vicuna_7b.py:version=v1.1  v1.1 (LLaMA-1 based): RMSNorm eps 1e-6, 2048 positions
  configs/vicuna_7b.py:rope_scaling=16  LLaMA-VID's long-video checkpoint (linear RoPE scaling)
"""

from configs.common import parse_arg
from vaujax.models import config_dicts, llama


def get_config(arg=None):
  args = parse_arg(arg, version="v1.5", rope_scaling=1.0)
  makers = {"v1.5": llama.vicuna_7b_v15, "v1.1": llama.vicuna_7b_v11}
  if args.version not in makers:
    raise ValueError(f"unknown Vicuna version {args.version!r}; choose from {sorted(makers)}")
  cfg = config_dicts.to_config_dict(makers[args.version]())
  cfg.rope_scaling_factor = args.rope_scaling
  return cfg
