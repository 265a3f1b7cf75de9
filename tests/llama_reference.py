"""Shared builders for LLaMA parity tests: a random HF model and the matching vaujax params."""

import numpy as np
import torch
from transformers import LlamaConfig as HFLlamaConfig, LlamaForCausalLM

from vaujax.convert import llama as convert
from vaujax.models import llama


def hf_model(cfg: llama.LlamaConfig, seed: int = 0) -> LlamaForCausalLM:
  torch.manual_seed(seed)
  hf_cfg = {k: v for k, v in convert.config_to_hf(cfg).items()
            if k not in ("architectures", "torch_dtype")}
  model = LlamaForCausalLM(HFLlamaConfig(**hf_cfg)).eval()
  with torch.no_grad():  # HF inits norms to 1: randomise them so the norm weights are tested
    for name, p in model.named_parameters():
      if "norm" in name:
        p.add_(0.1 * torch.randn_like(p))
  return model


def state_dict(model) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def vaujax_params(model, cfg):
  params, _ = convert.params_from_state_dict(state_dict(model), cfg)
  return params
