"""Vision towers: published checkpoints <-> vaujax `ViT` params, both ways.

    vaujax convert-vision --kind clip   --src DIR_OR_FILE --out DIR
    vaujax convert-vision --kind dinov2 --src DIR_OR_FILE --out DIR
    vaujax convert-vision --kind eva    --src eva_vit_g.pth --out DIR
    vaujax convert-vision --params DIR --export FILE.safetensors

Formats: HF `CLIPVisionModel` / `CLIPModel` (exported under `vision_model.`, the hub layout that
transformers loads into either class; read with or without the prefix), HF `Dinov2Model` and
`Dinov2WithRegistersModel` (transformers 5 names `attention.{q,k,v,o}_proj` and the 4.x names
`attention.attention.{query,key,value}` / `attention.output.dense`), and the LAVIS EVA ViT-g
state dict that LLaMA-VID loads (`blocks.i.attn.qkv` fused with `q_bias`/`v_bias`). The EVA file
carries one more block than LAVIS runs; like LLaMA-VID's `load_state_dict(strict=False)` the
extra blocks are dropped and reported.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Mapping

import numpy as np

from vaujax.convert import weights
from vaujax.convert.mapping import CONV, LINEAR, Rule, export_state, import_state, reshaper
from vaujax import files
from vaujax.errors import InputError
from vaujax.models import vit

KINDS = ("clip", "dinov2", "eva")


def _block_rules(cfg: vit.ViTConfig, i: int, src: str, names: Mapping[str, str]) -> list[Rule]:
  pre = f"layers_{i}"
  out = []
  for ours, theirs in names.items():
    if ours.startswith(("norm", "final")):
      out += [Rule((pre, ours, "scale"), f"{src}.{theirs}.weight"),
              Rule((pre, ours, "bias"), f"{src}.{theirs}.bias")]
    elif ours.startswith("layer_scale"):
      out.append(Rule((pre, ours), f"{src}.{theirs}"))
    else:
      group, leaf = ours.split(".")
      has_bias = not (leaf == "k" and cfg.qkv_bias == "qv") and (
          group == "mlp" or cfg.qkv_bias != "none")
      out.append(Rule((pre, group, leaf, "kernel"), f"{src}.{theirs}.weight", **LINEAR))
      if has_bias:
        out.append(Rule((pre, group, leaf, "bias"), f"{src}.{theirs}.bias"))
  return out


def rules(kind: str, cfg: vit.ViTConfig) -> list[Rule]:
  """The vaujax <-> published key table of one tower kind."""
  d, r = cfg.hidden_size, cfg.num_registers
  ln = lambda ours, theirs: [Rule((ours, "scale"), f"{theirs}.weight"),  # noqa: E731
                             Rule((ours, "bias"), f"{theirs}.bias")]
  if kind == "clip":
    table = [Rule(("class_embedding",), "vision_model.embeddings.class_embedding"),
             Rule(("patch_embedding", "kernel"), "vision_model.embeddings.patch_embedding.weight",
                  **CONV),
             Rule(("position_embedding",), "vision_model.embeddings.position_embedding.weight"),
             *ln("pre_layernorm", "vision_model.pre_layrnorm"),
             *ln("post_layernorm", "vision_model.post_layernorm")]
    names = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.q": "self_attn.q_proj",
             "attn.k": "self_attn.k_proj", "attn.v": "self_attn.v_proj",
             "attn.out": "self_attn.out_proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    block_src = "vision_model.encoder.layers.{i}"
  elif kind == "dinov2":
    table = [Rule(("class_embedding",), "embeddings.cls_token", reshaper((d,)),
                  reshaper((1, 1, d))),
             Rule(("mask_token",), "embeddings.mask_token", reshaper((d,)), reshaper((1, d))),
             Rule(("position_embedding",), "embeddings.position_embeddings",
                  reshaper((-1, d)), lambda w: w[None]),
             Rule(("patch_embedding", "kernel"), "embeddings.patch_embeddings.projection.weight",
                  **CONV),
             Rule(("patch_embedding", "bias"), "embeddings.patch_embeddings.projection.bias"),
             *ln("final_layernorm", "layernorm")]
    if r:
      table.append(Rule(("register_tokens",), "embeddings.register_tokens",
                        reshaper((r, d)), reshaper((1, r, d))))
    mlp = ({"mlp.fc1": "mlp.weights_in", "mlp.fc2": "mlp.weights_out"} if cfg.act == "swiglu"
           else {"mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"})
    names = {"norm1": "norm1", "norm2": "norm2", "attn.q": "attention.q_proj",
             "attn.k": "attention.k_proj", "attn.v": "attention.v_proj",
             "attn.out": "attention.o_proj", "layer_scale1": "layer_scale1.lambda1",
             "layer_scale2": "layer_scale2.lambda1", **mlp}
    block_src = "encoder.layer.{i}"
  elif kind == "eva":
    table = [Rule(("class_embedding",), "cls_token", reshaper((d,)), reshaper((1, 1, d))),
             Rule(("position_embedding",), "pos_embed", reshaper((-1, d)), lambda w: w[None]),
             Rule(("patch_embedding", "kernel"), "patch_embed.proj.weight", **CONV),
             Rule(("patch_embedding", "bias"), "patch_embed.proj.bias")]
    names = {"norm1": "norm1", "norm2": "norm2", "attn.q": "attn.q", "attn.k": "attn.k",
             "attn.v": "attn.v", "attn.out": "attn.proj", "mlp.fc1": "mlp.fc1",
             "mlp.fc2": "mlp.fc2"}
    block_src = "blocks.{i}"
  else:
    raise ValueError(f"unknown tower kind {kind!r}; choose from {KINDS}")
  if cfg.patch_bias and kind == "clip":
    table.append(Rule(("patch_embedding", "bias"), "vision_model.embeddings.patch_embedding.bias"))
  for i in range(cfg.num_layers):
    table += _block_rules(cfg, i, block_src.format(i=i), names)
  return table


# --- format normalisers: published layouts that fuse, rename or nest tensors -------------------

_DINOV2_OLD = (("attention.attention.query", "attention.q_proj"),
               ("attention.attention.key", "attention.k_proj"),
               ("attention.attention.value", "attention.v_proj"),
               ("attention.output.dense", "attention.o_proj"))


def normalise(kind: str, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Brings a published state dict to the key layout `rules` speaks."""
  state = dict(state)
  if kind == "clip":
    # Hub checkpoints (CLIPModel, older CLIPVisionModel) prefix `vision_model.`, transformers 5
    # saves CLIPVisionModel without it; a CLIPModel also holds the text tower, which we drop.
    if any(k.startswith("vision_model.") for k in state):
      return {k: v for k, v in state.items() if k.startswith("vision_model.")}
    return {"vision_model." + k: v for k, v in state.items()}
  if kind == "dinov2":
    out = {}
    for k, v in state.items():
      k = k[len("dinov2."):] if k.startswith("dinov2.") else k
      for old, new in _DINOV2_OLD:
        k = k.replace(old, new)
      out[k] = v
    return out
  if kind == "eva":  # split the fused qkv into q/k/v with LAVIS's implicit zero k bias
    out = {}
    for k, v in state.items():
      m = re.fullmatch(r"blocks\.(\d+)\.attn\.qkv\.weight", k)
      if m:
        q, kk, vv = np.split(np.asarray(v), 3, axis=0)
        base = f"blocks.{m.group(1)}.attn"
        out.update({f"{base}.q.weight": q, f"{base}.k.weight": kk, f"{base}.v.weight": vv})
      elif k.endswith((".attn.q_bias", ".attn.v_bias")):
        out[k.replace(".attn.q_bias", ".attn.q.bias").replace(".attn.v_bias", ".attn.v.bias")] = v
      else:
        out[k] = v
    return out
  raise ValueError(f"unknown tower kind {kind!r}")


def denormalise(kind: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Inverse of `normalise` for export (EVA: re-fuse qkv; others unchanged)."""
  if kind != "eva":
    return state
  out = {}
  for k, v in state.items():
    m = re.fullmatch(r"blocks\.(\d+)\.attn\.([qkv])\.weight", k)
    if m:
      if m.group(2) == "q":
        base = f"blocks.{m.group(1)}.attn"
        out[f"{base}.qkv.weight"] = np.concatenate(
            [state[f"{base}.q.weight"], state[f"{base}.k.weight"], state[f"{base}.v.weight"]])
    elif k.endswith((".attn.q.bias", ".attn.v.bias")):
      out[k.replace(".attn.q.bias", ".attn.q_bias").replace(".attn.v.bias", ".attn.v_bias")] = v
    else:
      out[k] = v
  return out


def _abstract(cfg: vit.ViTConfig):
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  size = cfg.native_grid * cfg.patch_size
  shapes = jax.eval_shape(vit.ViT(cfg).init, jax.random.key(0), jnp.zeros((1, size, size, 3)))
  return nn.unbox(shapes)["params"]


def _ignored(kind: str, cfg: vit.ViTConfig):
  def ignore(key: str) -> bool:
    if kind == "eva":  # blocks LAVIS builds no module for (its strict=False load)
      m = re.match(r"blocks\.(\d+)\.", key)
      return bool(m) and int(m.group(1)) >= cfg.num_layers
    return key.endswith("position_ids")
  return ignore


def params_from_state_dict(kind: str, state: Mapping[str, np.ndarray], cfg: vit.ViTConfig, *,
                           source: str = "state dict") -> tuple[dict, list[str]]:
  """Published state dict -> ({'params': ...}, sorted keys that were dropped as unused)."""
  state = normalise(kind, state)
  ignore = _ignored(kind, cfg)
  tree, used = import_state(state, rules(kind, cfg), source=source, expected=_abstract(cfg),
                            ignore=ignore)
  dropped = sorted(k for k in state if k not in used and ignore(k))
  return {"params": tree}, dropped


def params_to_state_dict(kind: str, params: Mapping, cfg: vit.ViTConfig) -> dict:
  tree = params["params"] if "params" in params else params
  return denormalise(kind, export_state(tree, rules(kind, cfg)))


def config_from_hf(kind: str, hf: Mapping, source: str) -> vit.ViTConfig:
  """A ViTConfig from a HF `config.json` (CLIP: vision_config of a CLIPModel)."""
  hf = hf.get("vision_config", hf)
  try:
    if kind == "clip":
      return dataclasses.replace(
          vit.clip_vit_l14(), hidden_size=hf["hidden_size"], num_layers=hf["num_hidden_layers"],
          num_heads=hf["num_attention_heads"], mlp_dim=hf["intermediate_size"],
          patch_size=hf["patch_size"], image_size=hf["image_size"],
          act=hf.get("hidden_act", "quick_gelu"), layer_norm_eps=hf.get("layer_norm_eps", 1e-5))
    if kind == "dinov2":
      width = hf["hidden_size"]
      swiglu = hf.get("use_swiglu_ffn", False)
      mlp = int(width * hf.get("mlp_ratio", 4))
      regs = int(hf.get("num_register_tokens", 0))
      return dataclasses.replace(
          vit.dinov2("base", regs), hidden_size=width, num_layers=hf["num_hidden_layers"],
          num_heads=hf["num_attention_heads"], patch_size=hf["patch_size"],
          image_size=hf["image_size"], layer_norm_eps=hf.get("layer_norm_eps", 1e-6),
          act="swiglu" if swiglu else "gelu",
          mlp_dim=((int(mlp * 2 / 3) + 7) // 8 * 8) if swiglu else mlp,
          qkv_bias="qkv" if hf.get("qkv_bias", True) else "none")
  except KeyError as e:
    raise InputError(source, f"missing field {e.args[0]!r} in a {kind} config") from e
  raise InputError(source, f"kind {kind!r} has no HF config.json (EVA is configured in code)")


def eva_config_from_state(state: Mapping[str, np.ndarray], source: str) -> vit.ViTConfig:
  """EVA ViT-g geometry read off a LAVIS state dict (LAVIS runs all blocks but the last)."""
  try:
    width = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    mlp = state["blocks.0.mlp.fc1.weight"].shape[0]
  except KeyError as e:
    raise InputError(source, f"not a LAVIS EVA state dict (missing {e.args[0]!r})") from e
  depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
  heads = 16 if width == 1408 else max(1, width // 64)
  return dataclasses.replace(vit.eva_vit_g14(), hidden_size=width, num_layers=depth - 1,
                             num_heads=heads, mlp_dim=mlp, patch_size=patch,
                             image_size=grid * patch)


def load_tower(kind: str, src: str, cfg: vit.ViTConfig | None = None):
  """Reads a tower from a HF directory or a single weights file -> (params, cfg, dropped)."""
  if os.path.isdir(src):
    state = weights.load_dir(src)
    if cfg is None and kind != "eva":
      path = os.path.join(src, "config.json")
      cfg = config_from_hf(kind, files.read_json(path), path)
  else:
    state = weights.load_file(src)
  if cfg is None:
    if kind != "eva":
      raise InputError(src, f"a single {kind} weights file needs an explicit config")
    cfg = eva_config_from_state(state, src)
  params, dropped = params_from_state_dict(kind, state, cfg, source=src)
  return params, cfg, dropped


if __name__ == "__main__":  # `python -m vaujax.convert.vision` keeps working
  from vaujax.app import convert_vision
  convert_vision.run()
