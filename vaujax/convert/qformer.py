"""Q-Former checkpoints <-> vaujax `QFormer` params (and the learned query tokens), both ways.

Layouts read (auto-detected from the keys; `layout=` forces one):
  hf           HF `InstructBlipQFormerModel` state dict: `embeddings.layernorm`,
               `encoder.layer.{i}.attention.attention.{query,key,value}`, no query tokens.
  instructblip HF `InstructBlipForConditionalGeneration` / `InstructBlipModel`: the above
               under `qformer.`, query tokens `query_tokens` [1, Q, H].
  lavis        LAVIS InstructBLIP (`instruct_blip_vicuna7b_trimmed.pth`): BERT names
               (`embeddings.LayerNorm`, `attention.self.*`) under `Qformer.bert.`, `query_tokens`.
  llamavid     LLaMA-VID / VA-GPT: BERT names under `model.vlm_att_encoder.bert.`, query tokens
               `model.vlm_att_query` [1, Q, H].
Keys outside the Q-Former prefix (LLM, vision tower, projectors) are left alone; inside it every
key must be consumed (position_ids buffers excepted), every expected key present and every shape
fit the config, else an InputError names the key.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from vaujax.convert.mapping import LINEAR, Rule, export_state, import_state, reshaper
from vaujax.errors import InputError
from vaujax.models import qformer

# layout -> (Q-Former key prefix, naming, query-token key)
LAYOUTS = {
    "hf": ("", "hf", None),
    "instructblip": ("qformer.", "hf", "query_tokens"),
    "lavis": ("Qformer.bert.", "bert", "query_tokens"),
    "llamavid": ("model.vlm_att_encoder.bert.", "bert", "model.vlm_att_query"),
}

# naming -> (self-attention module name, embedding LayerNorm name)
_NAMES = {"hf": ("attention", "layernorm"), "bert": ("self", "LayerNorm")}


def rules(cfg: qformer.QFormerConfig, naming: str = "hf") -> list[Rule]:
  """The vaujax <-> published key table (`naming`: 'hf' or 'bert'), without any prefix."""
  attn, emb_norm = _NAMES[naming]
  ln = lambda path, key: [Rule((*path, "scale"), f"{key}.weight"),  # noqa: E731
                          Rule((*path, "bias"), f"{key}.bias")]
  lin = lambda path, key: [Rule((*path, "kernel"), f"{key}.weight", **LINEAR),  # noqa: E731
                           Rule((*path, "bias"), f"{key}.bias")]
  table = [Rule(("word_embeddings", "embedding"), "embeddings.word_embeddings.weight"),
           Rule(("position_embeddings", "embedding"), "embeddings.position_embeddings.weight"),
           *ln(("embed_norm",), f"embeddings.{emb_norm}")]
  for i in range(cfg.num_layers):
    pre, src = f"layers_{i}", f"encoder.layer.{i}"
    blocks = ["attention"] + (["crossattention"] if cfg.has_cross_attention(i) else [])
    for block in blocks:
      for name in ("query", "key", "value"):
        table += lin((pre, block, name), f"{src}.{block}.{attn}.{name}")
      table += lin((pre, block, "out"), f"{src}.{block}.output.dense")
      table += ln((pre, block, "norm"), f"{src}.{block}.output.LayerNorm")
    for ours, (inter, out) in (("ffn_text", ("intermediate", "output")),
                               ("ffn_query", ("intermediate_query", "output_query"))):
      table += lin((pre, ours, "fc1"), f"{src}.{inter}.dense")
      table += lin((pre, ours, "fc2"), f"{src}.{out}.dense")
      table += ln((pre, ours, "norm"), f"{src}.{out}.LayerNorm")
  return table


def detect_layout(state: Mapping[str, np.ndarray], source: str = "state dict") -> str:
  """Which published layout a state dict uses (see the module docstring)."""
  for layout in ("llamavid", "lavis", "instructblip"):
    prefix = LAYOUTS[layout][0]
    if any(k.startswith(prefix + "embeddings.") or k.startswith(prefix + "encoder.")
           for k in state):
      return layout
  if any(k.startswith(("embeddings.", "encoder.layer.")) for k in state):
    return "hf" if "embeddings.layernorm.weight" in state else "bert"
  raise InputError(source, "no Q-Former keys found (expected HF InstructBLIP, LAVIS or "
                   "LLaMA-VID names, e.g. 'model.vlm_att_encoder.bert.embeddings.*')")


def _abstract(cfg: qformer.QFormerConfig):
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  shapes = jax.eval_shape(
      qformer.QFormer(cfg).init, jax.random.key(0),
      jnp.zeros((1, cfg.num_query_tokens, cfg.hidden_size)),
      jnp.zeros((1, 1, cfg.encoder_width)), jnp.zeros((1, 1), jnp.int32))
  return nn.unbox(shapes)["params"]


def params_from_state_dict(state: Mapping[str, np.ndarray], cfg: qformer.QFormerConfig, *,
                           source: str = "state dict", layout: Optional[str] = None,
                           ) -> tuple[dict, Optional[np.ndarray]]:
  """Published state dict -> ({'params': QFormer tree}, query tokens [Q, H] or None).

  `layout` None: detected; 'bert' is a bare LAVIS/LLaMA-VID `BertModel` (no prefix, no queries).
  The query tokens are returned when the layout carries them; a missing or mis-shaped one raises.
  """
  layout = layout or detect_layout(state, source)
  if layout == "bert":
    prefix, naming, query_key = "", "bert", None
  elif layout in LAYOUTS:
    prefix, naming, query_key = LAYOUTS[layout]
  else:
    raise ValueError(f"unknown Q-Former layout {layout!r}; choose from {sorted(LAYOUTS)} or 'bert'")
  tree, _ = import_state(state, rules(cfg, naming), source=source, prefix=prefix,
                         expected=_abstract(cfg), ignore=lambda k: k.endswith("position_ids"))
  queries = None
  if query_key is not None:
    if query_key not in state:
      raise InputError(source, f"missing key {query_key!r} (the learned query tokens)")
    queries = np.asarray(state[query_key])
    want = (cfg.num_query_tokens, cfg.hidden_size)
    if queries.shape not in (want, (1, *want)):
      raise InputError(source, f"key {query_key!r} has shape {queries.shape}, which does not fit "
                       f"the config's query tokens {(1, *want)}")
    queries = queries.reshape(want)
  return {"params": tree}, queries


def params_to_state_dict(params: Mapping, cfg: qformer.QFormerConfig, *, layout: str = "hf",
                         queries: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
  """vaujax params (+ query tokens [Q, H]) -> state dict in `layout` (inverse of the above)."""
  prefix, naming, query_key = (("", "bert", None) if layout == "bert" else LAYOUTS[layout])
  tree = params["params"] if "params" in params else params
  out = export_state(tree, rules(cfg, naming), prefix=prefix)
  if queries is not None and query_key is not None:
    out[query_key] = reshaper((1, cfg.num_query_tokens, cfg.hidden_size))(np.asarray(queries))
  return out


def config_from_hf(hf: Mapping, source: str = "config.json",
                   num_query_tokens: Optional[int] = None) -> qformer.QFormerConfig:
  """A QFormerConfig from HF `InstructBlipQFormerConfig` (or `InstructBlipConfig`) fields."""
  nested = hf.get("qformer_config")
  q = num_query_tokens or hf.get("num_query_tokens", 32)
  hf = nested if nested is not None else hf
  act = hf.get("hidden_act", "gelu")
  if act != "gelu":
    raise InputError(source, f"hidden_act {act!r} is not supported (the Q-Former uses 'gelu')")
  try:
    return qformer.QFormerConfig(
        hidden_size=int(hf["hidden_size"]), num_layers=int(hf["num_hidden_layers"]),
        num_heads=int(hf["num_attention_heads"]),
        intermediate_size=int(hf["intermediate_size"]),
        layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        max_position_embeddings=int(hf.get("max_position_embeddings", 512)),
        vocab_size=int(hf["vocab_size"]),
        encoder_width=int(hf.get("encoder_hidden_size", hf.get("encoder_width", 1408))),
        cross_attention_freq=int(hf.get("cross_attention_frequency",
                                        hf.get("cross_attention_freq", 2))),
        num_query_tokens=int(q))
  except KeyError as e:
    raise InputError(source, f"missing field {e.args[0]!r} in a Q-Former config") from e
