"""Generation from prompts with video slots: VA-GPT embeds the prompt (visual tokens spliced
into the `<video>` slots), then the LLM's KV-cache sampler continues it."""

from __future__ import annotations

import functools
from typing import Optional

import jax

from vaujax.generation.sampler import GenerateOutput, Sampler, SamplingConfig
from vaujax.models.llama import Llama, LlamaConfig
from vaujax.models.vagpt import VAGPT, llm_params

Array = jax.Array


@functools.lru_cache(maxsize=16)
def _sampler(llm: LlamaConfig, dtype, param_dtype, sampling: SamplingConfig) -> Sampler:
  """One compiled sampler per (LLM, dtypes, sampling settings)."""
  return Sampler(Llama(llm, dtype, param_dtype), sampling)


def generate(model: VAGPT, params, prompt_ids: Array, prompt_mask: Array, tower_patches: Array,
             dino_patches: Optional[Array], rng: Array,
             sampling: SamplingConfig = SamplingConfig(), qformer_ids: Optional[Array] = None,
             qformer_mask: Optional[Array] = None) -> GenerateOutput:
  """Answers left-padded prompts [B, P] (with video slots) about their videos."""
  embeds = jax.jit(functools.partial(model.apply, method=VAGPT.embed_inputs))(
      params, prompt_ids, tower_patches, dino_patches, qformer_ids, qformer_mask)
  sampler = _sampler(model.config.llm, model.dtype, model.param_dtype, sampling)
  return sampler(llm_params(params), None, prompt_mask, rng, inputs_embeds=embeds)
