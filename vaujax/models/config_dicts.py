"""ml_collections ConfigDict <-> the frozen model config dataclasses."""

from __future__ import annotations

import dataclasses

import ml_collections

from vaujax.models.llama import LlamaConfig


def to_config_dict(cfg) -> ml_collections.ConfigDict:
  """A dataclass config as a ConfigDict (None fields become placeholders of their type)."""
  out = ml_collections.ConfigDict()
  for f in dataclasses.fields(cfg):
    value = getattr(cfg, f.name)
    out[f.name] = ml_collections.FieldReference(value, field_type=int) if (
        value is None and f.name == "head_dim") else value
  return out


def llama_config(cd: ml_collections.ConfigDict) -> LlamaConfig:
  """Builds a LlamaConfig from a ConfigDict; unknown keys are an error."""
  fields = {f.name for f in dataclasses.fields(LlamaConfig)}
  unknown = sorted(set(cd.keys()) - fields)
  if unknown:
    raise ValueError(f"unknown LLaMA config keys {unknown}")
  return LlamaConfig(**{k: cd[k] for k in cd.keys()})
