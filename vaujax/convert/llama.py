"""HF `LlamaForCausalLM` checkpoints <-> vaujax `Llama` params, both ways, declaratively.

    vaujax convert-llama --hf_dir DIR --out DIR        # HF -> orbax params
    vaujax convert-llama --params DIR --hf_out DIR     # orbax params -> HF safetensors

The mapping is one table of (vaujax path, HF key, to_vaujax hook, to_hf hook). HF stores Linear
weights as [out, in]; vaujax kernels are [in, out] with heads split out. HF LLaMA checkpoints
already use the rotate-half RoPE layout, so q/k need no permutation.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from vaujax.convert import weights
from vaujax.convert.mapping import LINEAR, Rule, export_state, import_state
from vaujax import files
from vaujax.errors import InputError
from vaujax.models.llama import LlamaConfig

# HF keys that carry no parameters (old checkpoints store RoPE buffers).
IGNORED_HF_SUFFIXES = (".rotary_emb.inv_freq",)
MAX_CONFIG_BYTES = 16 << 20   # a config.json is a few kB


def rules(cfg: LlamaConfig) -> list[Rule]:
  """The full vaujax <-> HF table for a config."""
  table = [Rule(("embed_tokens", "embedding"), "model.embed_tokens.weight"),
           Rule(("norm", "weight"), "model.norm.weight")]
  if not cfg.tie_word_embeddings:
    table.append(Rule(("lm_head", "kernel"), "lm_head.weight", **LINEAR))
  for i in range(cfg.num_layers):
    pre, hf = f"layers_{i}", f"model.layers.{i}"
    for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
      path = (pre, *name.split("."))
      table.append(Rule(path + ("kernel",), f"{hf}.{name}.weight", **LINEAR))
      if cfg.attention_bias and name.startswith("self_attn"):
        table.append(Rule(path + ("bias",), f"{hf}.{name}.bias"))
    for name in ("input_layernorm", "post_attention_layernorm"):
      table.append(Rule((pre, name, "weight"), f"{hf}.{name}.weight"))
  return table


def config_from_hf(hf_config: Mapping, source: str = "config.json") -> LlamaConfig:
  """Reads a HF LLaMA `config.json` dict (Vicuna v1.1/v1.5, LLaMA-2, LLaMA-VID's `llava`)."""
  required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads")
  missing = [k for k in required if k not in hf_config]
  if missing:
    raise InputError(source, f"missing LLaMA config fields {missing}")
  act = hf_config.get("hidden_act", "silu")
  if act != "silu":
    raise InputError(source, f"hidden_act {act!r} is not supported (LLaMA uses 'silu')")
  rope_factor = _linear_rope_factor(hf_config, source)
  try:
    return LlamaConfig(
        vocab_size=int(hf_config["vocab_size"]), hidden_size=int(hf_config["hidden_size"]),
        intermediate_size=int(hf_config["intermediate_size"]),
        num_layers=int(hf_config["num_hidden_layers"]),
        num_heads=int(hf_config["num_attention_heads"]),
        num_kv_heads=int(hf_config.get("num_key_value_heads") or hf_config["num_attention_heads"]),
        head_dim=_explicit_head_dim(hf_config),
        max_position_embeddings=int(hf_config.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(hf_config.get("rms_norm_eps", 1e-6)),
        rope_theta=float(hf_config.get("rope_theta",
                                       (hf_config.get("rope_parameters") or {}).get("rope_theta",
                                                                                     10000.0))),
        rope_scaling_factor=rope_factor,
        attention_bias=bool(hf_config.get("attention_bias", False)),
        tie_word_embeddings=bool(hf_config.get("tie_word_embeddings", False)),
        bos_token_id=int(hf_config.get("bos_token_id") or 1),
        eos_token_id=int(_first(hf_config.get("eos_token_id"), 2)),
        pad_token_id=int(hf_config.get("pad_token_id") or 0))
  except (TypeError, ValueError) as e:
    raise InputError(source, f"invalid LLaMA config: {e}") from e


def _linear_rope_factor(hf_config: Mapping, source: str) -> float:
  """The linear RoPE scaling factor (1.0: none) from either layout: `rope_scaling` ({"type"
  or "rope_type", "factor"}, transformers 4) or `rope_parameters` ({"rope_type", "factor",
  "rope_theta"}: what transformers 5 saves, even for a model built with `rope_scaling=`). Other
  types (llama3, dynamic, yarn, ...) raise InputError rather than convert to a different model,
  and so do the two layouts disagreeing."""
  found = {}
  for field, default in (("rope_scaling", "linear"), ("rope_parameters", "default")):
    scaling = hf_config.get(field)
    if not scaling:
      continue
    if not isinstance(scaling, Mapping):
      raise InputError(source, f"{field} must be an object, got {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", default))
    if kind not in ("linear", "default"):
      raise InputError(source, f"{field} type {kind!r} is not supported (only linear)")
    try:
      found[field] = float(scaling.get("factor", 1.0)) if kind == "linear" else 1.0
    except (TypeError, ValueError) as e:
      raise InputError(source, f"{field} factor {scaling.get('factor')!r} is not a number") from e
  if len(set(found.values())) > 1:
    raise InputError(source, "rope_scaling and rope_parameters disagree: "
                     + ", ".join(f"{field} factor {x}" for field, x in found.items()))
  return next(iter(found.values()), 1.0)


def _explicit_head_dim(hf_config: Mapping):
  """head_dim only when it differs from hidden_size // num_attention_heads (HF 5 always writes it)."""
  head_dim = hf_config.get("head_dim")
  default = int(hf_config["hidden_size"]) // int(hf_config["num_attention_heads"])
  return None if head_dim in (None, default) else int(head_dim)


def _first(x, default):
  if x is None:
    return default
  return x[0] if isinstance(x, (list, tuple)) else x


def config_to_hf(cfg: LlamaConfig) -> dict:
  out = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
         "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
         "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
         "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
         "head_dim": cfg.head_size, "max_position_embeddings": cfg.max_position_embeddings,
         "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_theta,
         "attention_bias": cfg.attention_bias, "tie_word_embeddings": cfg.tie_word_embeddings,
         "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
         "pad_token_id": cfg.pad_token_id, "torch_dtype": "float32"}
  out["rope_scaling"] = ({"type": "linear", "factor": cfg.rope_scaling_factor}
                         if cfg.rope_scaling_factor != 1.0 else None)
  return out


def params_from_state_dict(state: Mapping[str, np.ndarray], cfg: LlamaConfig, *,
                           prefix: str = "", source: str = "state dict",
                           strict: bool = True) -> tuple[dict, set[str]]:
  """HF state dict -> vaujax params {'params': ...}.

  `prefix` is prepended to HF keys (LLaMA-VID stores the LLM under the same names). Returns the
  params and the set of state keys it consumed. With `strict`, HF keys under the prefix that no
  rule consumes are an error (unknown key).
  """
  tied_head = prefix + "lm_head.weight"
  if cfg.tie_word_embeddings and tied_head in state:  # HF state dicts list tied weights twice
    if not np.array_equal(state[tied_head], state.get(prefix + "model.embed_tokens.weight")):
      raise InputError(source, f"config ties word embeddings but {tied_head!r} differs from "
                       "the input embeddings")
  tree, used = import_state(
      state, rules(cfg), source=source, prefix=prefix, strict=strict,
      expected=abstract_params(cfg),
      ignore=lambda k: k.endswith(IGNORED_HF_SUFFIXES) or (cfg.tie_word_embeddings
                                                           and k == tied_head))
  return {"params": tree}, used


def abstract_params(cfg: LlamaConfig):
  """Shapes of the vaujax params for `cfg` (no allocation)."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  from vaujax.models.llama import Llama
  shapes = jax.eval_shape(Llama(cfg).init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32))
  return nn.unbox(shapes)["params"]


def params_to_state_dict(params: Mapping, cfg: LlamaConfig, *, prefix: str = "") -> dict:
  """vaujax params -> HF state dict (numpy)."""
  tree = params["params"] if "params" in params else params
  return export_state(tree, rules(cfg), prefix=prefix)


def load_hf(hf_dir: str) -> tuple[dict, LlamaConfig]:
  """Reads a local HF LLaMA directory (config.json + safetensors/.bin shards)."""
  cfg_path = os.path.join(weights.require_dir(hf_dir, "HF model directory"), "config.json")
  cfg = config_from_hf(files.read_json(cfg_path, max_bytes=MAX_CONFIG_BYTES), cfg_path)
  state = weights.load_dir(hf_dir)
  params, _ = params_from_state_dict(state, cfg, source=hf_dir)
  return params, cfg


def save_hf(params, cfg: LlamaConfig, out_dir: str, max_shard_bytes: int = 5 << 30) -> None:
  """Writes a HF-loadable directory (config.json + safetensors shards)."""
  weights.save_safetensors_dir(params_to_state_dict(params, cfg), out_dir, max_shard_bytes)
  files.write_json(os.path.join(out_dir, "config.json"), config_to_hf(cfg), indent=2)


if __name__ == "__main__":  # `python -m vaujax.convert.llama` keeps working
  from vaujax.app import convert_llama
  convert_llama.run()
