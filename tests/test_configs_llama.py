import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from configs import llama_tiny, vicuna_7b
from vaujax.models import config_dicts, llama


@pytest.mark.parametrize("arg,eps,positions", [(None, 1e-5, 4096), ("version=v1.5", 1e-5, 4096),
                                               ("version=v1.1", 1e-6, 2048)])
def test_vicuna_config_versions(arg, eps, positions):
  cfg = config_dicts.llama_config(vicuna_7b.get_config(arg))
  assert (cfg.rms_norm_eps, cfg.max_position_embeddings) == (eps, positions)
  assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size,
          cfg.vocab_size, cfg.rope_theta) == (4096, 32, 32, 11008, 32000, 10000.0)
  shapes = jax.eval_shape(llama.Llama(cfg).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
  assert llama.count_params(nn.unbox(shapes)) == 6_738_415_616


def test_config_overrides_and_errors():
  cd = vicuna_7b.get_config("rope_scaling=16")
  assert config_dicts.llama_config(cd).rope_scaling_factor == 16.0
  with pytest.raises(ValueError, match="unknown Vicuna version"):
    vicuna_7b.get_config("version=v9")
  with pytest.raises(ValueError, match="unknown config argument 'size'"):
    vicuna_7b.get_config("size=13b")
  tiny = config_dicts.llama_config(llama_tiny.get_config("layers=3"))
  assert tiny.num_layers == 3 and tiny.head_dim is None
  cd = llama_tiny.get_config()
  cd.unknown_key = 1
  with pytest.raises(ValueError, match="unknown LLaMA config keys"):
    config_dicts.llama_config(cd)
