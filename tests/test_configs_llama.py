import jax
import jax.numpy as jnp
import pytest

from vaujax.models import llama
from vaujax.models.params import count_params


@pytest.mark.parametrize("name,eps,positions", [("vicuna_7b_v15", 1e-5, 4096),
                                                ("vicuna_7b_v11", 1e-6, 2048)])
def test_vicuna_configs_by_name(name, eps, positions):
  """The LLM registry (`model.llm` in configs/vagpt.py): v1.5 and v1.1 differ in RMSNorm eps and
  positions only."""
  cfg = llama.llm_config(name)
  assert (cfg.rms_norm_eps, cfg.max_position_embeddings) == (eps, positions)
  assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size,
          cfg.vocab_size, cfg.rope_theta) == (4096, 32, 32, 11008, 32000, 10000.0)
  shapes = jax.eval_shape(llama.Llama(cfg).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
  assert count_params(shapes) == 6_738_415_616


def test_unknown_llm_names_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown LLM 'vicuna_13b'.*tiny.*vicuna_7b_v11"):
    llama.llm_config("vicuna_13b")
  assert llama.llm_config("tiny") == llama.tiny_llama()
