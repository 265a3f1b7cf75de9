"""HF `LlamaForCausalLM` checkpoints <-> vaujax `Llama` params, both ways.

  vaujax convert-llama --hf_dir DIR --out DIR        # HF directory -> orbax params
  vaujax convert-llama --params DIR --hf_out DIR     # orbax params -> HF safetensors directory

(`python -m vaujax.convert.llama` runs the same command.)
"""

from __future__ import annotations

import dataclasses

from absl import flags

from vaujax.app import cli
from vaujax.errors import InputError, require_dir


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("hf_dir", None, "HF LlamaForCausalLM directory (config.json + "
                      "safetensors/.bin shards) to import", flag_values=fv)
  flags.DEFINE_string("out", None, "output vaujax params directory (with --hf_dir)",
                      flag_values=fv)
  flags.DEFINE_string("params", None, "vaujax LLaMA params directory to export", flag_values=fv)
  flags.DEFINE_string("hf_out", None, "output HF directory (with --params)", flag_values=fv)


def main(fv: flags.FlagValues) -> None:
  if fv.hf_dir or fv.out:
    if fv.params or fv.hf_out:
      raise cli.fail("--hf_dir", "import (--hf_dir, --out) and export (--params, --hf_out) "
                                 "are separate runs")
    cli.require(fv, "hf_dir", "out")
    require_dir(fv.hf_dir, "HF model directory")
    from vaujax.convert import llama, params_io
    params, cfg = llama.load_hf(fv.hf_dir)
    params_io.write_params_dir(fv.out, params, metadata={"kind": "llama", "config": dataclasses.asdict(cfg)})
    print(f"wrote {fv.out} ({count_params(params):,} parameters)")
  elif fv.params or fv.hf_out:
    cli.require(fv, "params", "hf_out")
    require_dir(fv.params, "params directory")
    from vaujax.convert import llama, params_io
    from vaujax.models.llama import LlamaConfig
    params, meta = params_io.read_params_dir(fv.params)
    if meta.get("kind") != "llama":
      raise InputError(fv.params, f"not a LLaMA params checkpoint (kind={meta.get('kind')!r})")
    llama.save_hf(params, LlamaConfig(**meta["config"]), fv.hf_out)
    print(f"wrote {fv.hf_out}")
  else:
    raise cli.fail("--hf_dir", "use --hf_dir DIR --out DIR, or --params DIR --hf_out DIR")


def count_params(params) -> int:
  """Scalars in a converted (plain-array) parameter tree."""
  import jax
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
