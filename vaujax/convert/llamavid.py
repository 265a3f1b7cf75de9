"""A LLaMA-VID release checkpoint <-> a vaujax VA-GPT checkpoint (and back).

  vaujax convert-llamavid --release_dir llama-vid-7b-full-224-video-fps-1 \\
      --out ckpt/vagpt [--eva eva_vit_g.pth --eva_out ckpt/eva] [--num_frames 8 --sets_ratio 0.5]
  vaujax convert-llamavid --params ckpt/vagpt --release_out exported/

Release layout (HF-style shards + `config.json`, key names read from LLaMA-VID's code):
  model.embed_tokens / model.layers.{i}.* / model.norm / lm_head      Vicuna-7B v1.5 (the LLM)
  model.mm_projector.{0,2}.{weight,bias}                             content projector mlp2x_gelu
  model.vlm_att_projector / vlm_att_key_projector / vlm_att_val_projector  context attention
  model.vlm_att_ln.{weight,bias}                                     LayerNorm before the Q-Former
  model.vlm_att_query [1, Q, H]                                      learned query tokens
  model.vlm_att_encoder.bert.*                                       the BERT Q-Former
  model.vision_tower.* (when saved with the model)                   ignored: the tower runs
                                                                     separately (`--eva`)
The frozen EVA ViT-g comes from LAVIS' `eva_vit_g.pth`; it is converted with the vision
converter into its own params directory (features are extracted outside the LLM model).

Every key of the release must be consumed (RoPE buffers, position_ids and the vision tower are
excused), every expected key present and every shape fit, else an InputError names key and
file. The import report lists what was ignored.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

import numpy as np

from vaujax.convert import llama as llama_convert
from vaujax.convert import params_io, weights
from vaujax.convert import qformer as qformer_convert
from vaujax.convert.mapping import LINEAR, Rule, export_state, import_state
from vaujax import files
from vaujax.errors import InputError
from vaujax.models import qformer, vagpt
from vaujax.models.frame_tokens import FrameTokensConfig

IGNORED_PREFIXES = ("model.vision_tower.",)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq", "position_ids")


def frame_token_rules() -> list[Rule]:
  """Projectors and the pre-Q-Former LayerNorm (vaujax path under params <-> release key)."""
  lin = lambda path, key: [Rule((*path, "kernel"), f"{key}.weight", **LINEAR),  # noqa: E731
                           Rule((*path, "bias"), f"{key}.bias")]
  ftg = "frame_token_generator"
  return [*lin((ftg, "mm_projector", "fc1"), "model.mm_projector.0"),
          *lin((ftg, "mm_projector", "fc2"), "model.mm_projector.2"),
          *lin((ftg, "vlm_att_projector"), "model.vlm_att_projector"),
          *lin((ftg, "vlm_att_key_projector"), "model.vlm_att_key_projector"),
          *lin((ftg, "vlm_att_val_projector"), "model.vlm_att_val_projector"),
          Rule(("vlm_att_ln", "scale"), "model.vlm_att_ln.weight"),
          Rule(("vlm_att_ln", "bias"), "model.vlm_att_ln.bias")]


def qformer_config_from_state(state: Mapping[str, np.ndarray], source: str
                              ) -> qformer.QFormerConfig:
  """The Q-Former's sizes, read off the tensors (the release config.json does not carry them)."""
  pre = "model.vlm_att_encoder.bert."
  need = [pre + "embeddings.word_embeddings.weight", pre + "embeddings.position_embeddings.weight",
          "model.vlm_att_query", pre + "encoder.layer.0.intermediate.dense.weight",
          pre + "encoder.layer.0.crossattention.self.key.weight"]
  for key in need:
    if key not in state:
      raise InputError(source, f"missing key {key!r}")
  layers = sorted({int(k[len(pre) + len("encoder.layer."):].split(".")[0]) for k in state
                   if k.startswith(pre + "encoder.layer.")})
  cross = sorted({int(k[len(pre) + len("encoder.layer."):].split(".")[0]) for k in state
                  if k.startswith(pre + "encoder.layer.") and ".crossattention." in k})
  freq = cross[1] - cross[0] if len(cross) > 1 else max(len(layers), 1)
  vocab, hidden = state[need[0]].shape
  queries = np.asarray(state["model.vlm_att_query"])
  head_dim = 64 if hidden % 64 == 0 else hidden  # BERT's 64-wide heads; `num_heads=` overrides
  return qformer.QFormerConfig(
      hidden_size=int(hidden), num_layers=len(layers), num_heads=int(hidden // head_dim),
      intermediate_size=int(state[need[3]].shape[0]),
      max_position_embeddings=int(state[need[1]].shape[0]), vocab_size=int(vocab),
      encoder_width=int(state[need[4]].shape[1]), cross_attention_freq=int(freq),
      num_query_tokens=int(queries.shape[-2]))


def model_config(hf_config: Mapping, state: Mapping[str, np.ndarray], source: str, *,
                 num_frames: int = 8, num_patches: Optional[int] = None,
                 dino_patches: Optional[int] = None, use_sets: bool = True,
                 sets_ratio: float = 0.5, num_heads: Optional[int] = None) -> vagpt.VAGPTConfig:
  """VAGPTConfig of a release (LLM from config.json, frame tokens / Q-Former from the tensors)."""
  llm = llama_convert.config_from_hf(hf_config, source)
  if "model.mm_projector.0.weight" not in state:
    raise InputError(source, "missing key 'model.mm_projector.0.weight' (not a LLaMA-VID "
                     "checkpoint?)")
  vision_dim = int(state["model.mm_projector.0.weight"].shape[1])
  qcfg = None
  if any(k.startswith("model.vlm_att_encoder.") for k in state):
    qcfg = qformer_config_from_state(state, source)
    if num_heads:
      qcfg = dataclasses.replace(qcfg, num_heads=num_heads)
  query_dim = qcfg.hidden_size if qcfg else int(np.asarray(state["model.vlm_att_query"]).shape[-1])
  num_queries = qcfg.num_query_tokens if qcfg else int(
      np.asarray(state["model.vlm_att_query"]).shape[-2])
  patches = num_patches or 256
  return vagpt.VAGPTConfig(
      llm=llm, frame_tokens=FrameTokensConfig(vision_dim, llm.hidden_size, query_dim),
      num_frames=num_frames, num_patches=patches, dino_patches=dino_patches or patches,
      num_queries=num_queries, use_sets=use_sets, sets_ratio=sets_ratio, qformer=qcfg)


def _abstract(cfg: vagpt.VAGPTConfig, dino_dim: int = 8):
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  b, t = 1, cfg.num_frames
  shapes = jax.eval_shape(vagpt.VAGPT(cfg).init, jax.random.key(0), jnp.zeros((b, 4), jnp.int32),
                          jnp.zeros((b, t, cfg.num_patches, cfg.frame_tokens.vision_dim)),
                          jnp.zeros((b, t, cfg.dino_patches, dino_dim)),
                          None, None, jnp.zeros((b, 3), jnp.int32))
  return nn.unbox(shapes)["params"]


def params_from_state_dict(state: Mapping[str, np.ndarray], cfg: vagpt.VAGPTConfig, *,
                           source: str = "state dict") -> tuple[dict, dict]:
  """Release state dict -> ({'params': VA-GPT tree}, report {'used', 'ignored'})."""
  expected = _abstract(cfg)
  llm, used = llama_convert.params_from_state_dict(state, cfg.llm, source=source, strict=False)
  tree = {"llm": llm["params"]}
  ft_rules = [r for r in frame_token_rules() if cfg.qformer is not None or r.path[0] != "vlm_att_ln"]
  ft, ft_used = import_state(state, ft_rules, source=source, expected=expected, strict=False)
  tree.update(ft)
  used |= ft_used
  if cfg.qformer is not None:
    q, queries = qformer_convert.params_from_state_dict(state, cfg.qformer, source=source,
                                                        layout="llamavid")
    tree["vlm_att_encoder"] = q["params"]
    prefix = qformer_convert.LAYOUTS["llamavid"][0]
    used |= {prefix + r.key for r in qformer_convert.rules(cfg.qformer, "bert")}
  else:
    queries = np.asarray(state["model.vlm_att_query"]).reshape(
        cfg.num_queries, cfg.frame_tokens.query_dim)
  tree["vlm_att_query"] = queries
  used.add("model.vlm_att_query")
  ignored = sorted(k for k in state if k not in used and (k.startswith(IGNORED_PREFIXES)
                                                          or k.endswith(IGNORED_SUFFIXES)))
  unknown = sorted(k for k in state if k not in used and k not in set(ignored))
  if unknown:
    raise InputError(source, f"unknown key {unknown[0]!r} ({len(unknown)} unknown in all)")
  _check_shapes(tree, expected, source)
  return {"params": tree}, {"used": len(used), "ignored": ignored}


def _check_shapes(tree, expected, source, path=()):
  for k, v in expected.items():
    if k not in tree:
      raise InputError(source, f"no weights for {'/'.join(path + (k,))}")
    if isinstance(v, Mapping):
      _check_shapes(tree[k], v, source, path + (k,))
    elif tuple(np.shape(tree[k])) != tuple(v.shape):
      raise InputError(source, f"{'/'.join(path + (k,))} has shape {np.shape(tree[k])}, "
                       f"expected {tuple(v.shape)}")


def params_to_state_dict(params: Mapping, cfg: vagpt.VAGPTConfig) -> dict[str, np.ndarray]:
  """VA-GPT params -> release state dict (inverse of `params_from_state_dict`)."""
  tree = params["params"] if "params" in params else params
  out = llama_convert.params_to_state_dict({"params": tree["llm"]}, cfg.llm)
  rules = [r for r in frame_token_rules() if cfg.qformer is not None or r.path[0] != "vlm_att_ln"]
  out.update(export_state(tree, rules))
  queries = np.asarray(tree["vlm_att_query"])
  if cfg.qformer is not None:
    out.update(qformer_convert.params_to_state_dict({"params": tree["vlm_att_encoder"]},
                                                    cfg.qformer, layout="llamavid",
                                                    queries=queries))
  else:
    out["model.vlm_att_query"] = queries.reshape(1, *queries.shape)
  return out


def config_to_dict(cfg: vagpt.VAGPTConfig) -> dict:
  return dataclasses.asdict(cfg)


def config_from_dict(d: Mapping) -> vagpt.VAGPTConfig:
  from vaujax.models.llama import LlamaConfig
  d = dict(d)
  q = d.pop("qformer")
  return vagpt.VAGPTConfig(llm=LlamaConfig(**d.pop("llm")),
                           frame_tokens=FrameTokensConfig(**d.pop("frame_tokens")),
                           qformer=None if q is None else qformer.QFormerConfig(**q), **d)


def import_release(release_dir: str, out_dir: str, **config_kwargs) -> dict:
  """Release directory -> vaujax params directory (kind 'vagpt'); returns the report."""
  from vaujax.errors import require_dir
  require_dir(release_dir, "LLaMA-VID release directory")
  hf_config = files.read_json(os.path.join(release_dir, "config.json"))
  state = weights.load_dir(release_dir)
  cfg = model_config(hf_config, state, os.path.join(release_dir, "config.json"), **config_kwargs)
  params, report = params_from_state_dict(state, cfg, source=release_dir)
  params_io.write_params_dir(out_dir, params, {"kind": "vagpt", "config": config_to_dict(cfg),
                                   "source": os.path.abspath(release_dir),
                                   "ignored_keys": report["ignored"]})
  return report


def read_converted(path: str) -> tuple[dict, vagpt.VAGPTConfig]:
  params, meta = params_io.read_params_dir(path)
  if meta.get("kind") != "vagpt":
    raise InputError(path, f"not a VA-GPT params directory (kind={meta.get('kind')!r})")
  return params, config_from_dict(meta["config"])


def export_release(params_dir: str, out_dir: str) -> list[str]:
  """vaujax VA-GPT params directory -> release-style safetensors directory + config.json."""
  params, cfg = read_converted(params_dir)
  written = weights.save_safetensors_dir(params_to_state_dict(params, cfg), out_dir)
  hf = llama_convert.config_to_hf(cfg.llm)
  hf.update({"architectures": ["LlavaLlamaAttForCausalLM"],
             "mm_hidden_size": cfg.frame_tokens.vision_dim, "mm_projector_type": "mlp2x_gelu",
             "num_query": cfg.num_queries, "compress_type": "mean"})
  files.write_json(os.path.join(out_dir, "config.json"), hf, indent=2)
  return written


if __name__ == "__main__":  # `python -m vaujax.convert.llamavid` keeps working
  from vaujax.app import convert_llamavid
  convert_llamavid.run()
