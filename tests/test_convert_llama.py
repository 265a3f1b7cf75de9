"""HF <-> vaujax LLaMA conversion through files and the CLI; bad checkpoints give clear errors."""

import json
import os

import jax
import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from tests.llama_reference import hf_model, state_dict
from vaujax.app import convert_llama
from vaujax.convert import llama as convert
from vaujax.convert import params_io
from vaujax.errors import InputError
from vaujax.models import llama

CFG = llama.tiny_llama()


@pytest.fixture(scope="module")
def hf():
  return hf_model(CFG, seed=2)


@pytest.mark.parametrize("save_kwargs", [dict(), dict(safe_serialization=False),
                                         dict(max_shard_size="60KB")],
                         ids=["safetensors", "bin", "sharded"])
def test_cli_round_trip_is_bit_exact(tmp_path, hf, save_kwargs):
  hf.save_pretrained(tmp_path / "hf", **save_kwargs)
  files = os.listdir(tmp_path / "hf")
  if save_kwargs.get("max_shard_size"):
    assert "model.safetensors.index.json" in files
  convert_llama.run(["vaujax convert-llama", "--hf_dir", str(tmp_path / "hf"), "--out",
                     str(tmp_path / "vj")])
  convert_llama.run(["vaujax convert-llama", "--params", str(tmp_path / "vj"), "--hf_out",
                     str(tmp_path / "back")])
  reloaded = LlamaForCausalLM.from_pretrained(tmp_path / "back").eval()
  original, back = state_dict(hf), state_dict(reloaded)
  assert original.keys() == back.keys()
  for key in original:
    np.testing.assert_array_equal(back[key], original[key], err_msg=key)
  ids = torch.tensor([[1, 5, 9, 33, 70]])
  with torch.no_grad():
    np.testing.assert_array_equal(hf(ids).logits.numpy(), reloaded(ids).logits.numpy())


def test_sharded_export_reloads(tmp_path, hf):
  params, _ = convert.params_from_state_dict(state_dict(hf), CFG)
  convert.save_hf(params, CFG, tmp_path / "out", max_shard_bytes=50_000)
  assert os.path.exists(tmp_path / "out" / "model.safetensors.index.json")
  loaded, cfg = convert.load_hf(str(tmp_path / "out"))
  assert cfg == CFG
  flat_a = jax.tree_util.tree_leaves_with_path(loaded)
  flat_b = dict(jax.tree_util.tree_leaves_with_path(params))
  assert len(flat_a) == len(flat_b)
  for path, value in flat_a:
    np.testing.assert_array_equal(np.asarray(value), np.asarray(flat_b[path]))


def test_vicuna_configs_read_from_hf_json():
  v15 = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
         "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
         "rms_norm_eps": 1e-5, "max_position_embeddings": 4096, "hidden_act": "silu",
         "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "rope_scaling": None}
  assert convert.config_from_hf(v15) == llama.vicuna_7b_v15()
  v11 = dict(v15, rms_norm_eps=1e-6, max_position_embeddings=2048)
  assert convert.config_from_hf(v11) == llama.vicuna_7b_v11()
  long_video = dict(v15, rope_scaling={"type": "linear", "factor": 16.0})
  assert convert.config_from_hf(long_video).rope_scaling_factor == 16.0


def _write_hf(tmp_path, hf):
  hf.save_pretrained(tmp_path)
  return tmp_path


def test_missing_directory(tmp_path):
  with pytest.raises(InputError, match="nope: HF model directory does not exist"):
    convert.load_hf(str(tmp_path / "nope"))


def test_missing_config(tmp_path, hf):
  d = _write_hf(tmp_path, hf)
  os.remove(d / "config.json")
  with pytest.raises(InputError, match=r"config.json: JSON file does not exist"):
    convert.load_hf(str(d))


def test_malformed_config(tmp_path, hf):
  d = _write_hf(tmp_path, hf)
  (d / "config.json").write_text('{"hidden_size": 64,')
  with pytest.raises(InputError, match=r"config.json: malformed JSON"):
    convert.load_hf(str(d))
  (d / "config.json").write_text('{"hidden_size": 64}')
  with pytest.raises(InputError, match=r"config.json: missing LLaMA config fields"):
    convert.load_hf(str(d))


def test_no_weights(tmp_path, hf):
  d = _write_hf(tmp_path, hf)
  os.remove(d / "model.safetensors")
  with pytest.raises(InputError, match="no \\*.safetensors or \\*.bin weight files"):
    convert.load_hf(str(d))


def test_truncated_safetensors(tmp_path, hf):
  d = _write_hf(tmp_path, hf)
  path = d / "model.safetensors"
  path.write_bytes(path.read_bytes()[:5000])
  with pytest.raises(InputError, match="model.safetensors: not a readable safetensors file"):
    convert.load_hf(str(d))


def test_shape_mismatch_names_key(tmp_path, hf):
  d = _write_hf(tmp_path, hf)
  cfg = json.loads((d / "config.json").read_text())
  cfg["intermediate_size"] = 96
  (d / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(InputError, match=r"'model.layers.0.mlp.gate_proj.weight' has shape "
                                       r"\(128, 64\), which does not fit the config's "
                                       r"layers_0/mlp/gate_proj/kernel \(64, 96\)"):
    convert.load_hf(str(d))


def test_unknown_and_missing_keys(tmp_path, hf):
  sd = state_dict(hf)
  with pytest.raises(InputError, match="unknown key 'model.extra.weight'"):
    convert.params_from_state_dict({**sd, "model.extra.weight": np.zeros(3)}, CFG,
                                   source="ckpt")
  del sd["model.norm.weight"]
  with pytest.raises(InputError, match="ckpt: missing key 'model.norm.weight'"):
    convert.params_from_state_dict(sd, CFG, source="ckpt")


def test_untrusted_pickle_in_bin_is_refused(tmp_path):
  import pickle

  class Evil:
    def __reduce__(self):
      return (os.system, (f"touch {tmp_path / 'pwned'}",))

  (tmp_path / "config.json").write_text(json.dumps(convert.config_to_hf(CFG)))
  with open(tmp_path / "pytorch_model.bin", "wb") as f:
    pickle.dump({"model.norm.weight": Evil()}, f)
  with pytest.raises(InputError, match="pytorch_model.bin: not a loadable PyTorch weights file"):
    convert.load_hf(str(tmp_path))
  assert not (tmp_path / "pwned").exists()


def test_params_dir_without_metadata_is_incomplete(tmp_path):
  (tmp_path / "params").mkdir()
  with pytest.raises(InputError, match="no vaujax.json; incomplete conversion"):
    params_io.read_params_dir(str(tmp_path))
