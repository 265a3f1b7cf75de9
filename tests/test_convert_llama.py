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


# -- the table, one direction at a time ------------------------------------------------------------

def _hf_names(cfg):
  """Every HF LlamaForCausalLM weight and the vaujax param it is, written out from the two
  formats: HF nn.Linear stores [out, in], a flax Dense kernel is [in, out]; embeddings and norm
  weights are stored as they are."""
  names = {"model.embed_tokens.weight": (("embed_tokens", "embedding"), False),
           "model.norm.weight": (("norm", "weight"), False),
           "lm_head.weight": (("lm_head", "kernel"), True)}
  for i in range(cfg.num_layers):
    for proj in ("q", "k", "v", "o"):
      names[f"model.layers.{i}.self_attn.{proj}_proj.weight"] = (
          (f"layers_{i}", "self_attn", f"{proj}_proj", "kernel"), True)
      if cfg.attention_bias:
        names[f"model.layers.{i}.self_attn.{proj}_proj.bias"] = (
            (f"layers_{i}", "self_attn", f"{proj}_proj", "bias"), False)
    for proj in ("gate", "up", "down"):
      names[f"model.layers.{i}.mlp.{proj}_proj.weight"] = (
          (f"layers_{i}", "mlp", f"{proj}_proj", "kernel"), True)
    for norm in ("input_layernorm", "post_attention_layernorm"):
      names[f"model.layers.{i}.{norm}.weight"] = ((f"layers_{i}", norm, "weight"), False)
  return names


def _at(tree, path):
  for part in path:
    tree = tree[part]
  return np.asarray(tree)


@pytest.mark.parametrize("cfg", [CFG, llama.tiny_llama(attention_bias=True)],
                         ids=["plain", "attention_bias"])
def test_import_puts_every_hf_weight_at_its_own_param(cfg):
  """Distinct random values per key, so a swap of two same-shaped tensors (k/v with
  num_kv_heads < num_heads, gate/up, the two norms) that a round trip would undo is caught."""
  rng = np.random.RandomState(0)
  shapes = {k: v.shape for k, v in state_dict(hf_model(cfg, seed=3)).items()}
  names = _hf_names(cfg)
  assert set(shapes) == set(names)
  sd = {k: rng.randn(*shape).astype(np.float32) for k, shape in shapes.items()}
  params, used = convert.params_from_state_dict(sd, cfg)
  assert used == set(names)
  n_leaves = len(jax.tree_util.tree_leaves(params))
  assert n_leaves == len(names)
  for key, (path, linear) in names.items():
    want = sd[key].T if linear else sd[key]
    np.testing.assert_array_equal(_at(params["params"], path), want, err_msg=key)


@pytest.mark.parametrize("cfg", [CFG, llama.tiny_llama(attention_bias=True)],
                         ids=["plain", "attention_bias"])
def test_export_writes_every_param_under_its_own_hf_key(cfg):
  """vaujax params made here (not by the importer) -> HF keys, each value from its own param."""
  names = _hf_names(cfg)
  abstract = convert.abstract_params(cfg)
  rng = np.random.RandomState(1)
  params = jax.tree_util.tree_map(lambda s: rng.randn(*s.shape).astype(np.float32), abstract)
  sd = convert.params_to_state_dict({"params": params}, cfg)
  assert set(sd) == set(names)
  for key, (path, linear) in names.items():
    want = _at(params, path).T if linear else _at(params, path)
    np.testing.assert_array_equal(sd[key], want, err_msg=key)
    assert sd[key].flags["C_CONTIGUOUS"]
  with_prefix = convert.params_to_state_dict(params, cfg, prefix="model.llm.")
  assert set(with_prefix) == {"model.llm." + k for k in names}


def test_the_k_projection_is_hfs_k_projection():
  """The same check through the models: vaujax's k_proj applied to x equals HF's k_proj(x)."""
  hf = hf_model(CFG, seed=4)
  params, _ = convert.params_from_state_dict(state_dict(hf), CFG)
  x = np.random.RandomState(5).randn(3, CFG.hidden_size).astype(np.float32)
  attn = hf.model.layers[1].self_attn
  with torch.no_grad():
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
      layer = getattr(attn, proj)
      xin = x if proj != "o_proj" else np.random.RandomState(6).randn(
          3, layer.in_features).astype(np.float32)
      want = layer(torch.from_numpy(xin)).numpy()
      got = xin @ np.asarray(params["params"]["layers_1"]["self_attn"][proj]["kernel"])
      np.testing.assert_allclose(got, want, atol=1e-5, err_msg=proj)


def test_tied_head_and_old_rotary_buffers():
  """HF state dicts list a tied `lm_head.weight` beside the embeddings (one tensor, saved
  twice): accepted when equal, refused when it differs, and exported once (as the embeddings).
  Old checkpoints carry `rotary_emb.inv_freq` buffers, which are not weights; any other unknown
  key under the prefix is still an error."""
  cfg = llama.tiny_llama(tie_word_embeddings=True)
  rng = np.random.RandomState(7)
  params = jax.tree_util.tree_map(lambda s: rng.randn(*s.shape).astype(np.float32),
                                  convert.abstract_params(cfg))
  p = "model.llm."
  sd = convert.params_to_state_dict({"params": params}, cfg, prefix=p)
  assert p + "lm_head.weight" not in sd and p + "model.embed_tokens.weight" in sd
  full = {**sd, p + "lm_head.weight": sd[p + "model.embed_tokens.weight"].copy(),
          p + "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(4, np.float32)}
  back, used = convert.params_from_state_dict(full, cfg, prefix=p, source="ckpt")
  assert used == set(sd)
  assert "lm_head" not in back["params"]
  np.testing.assert_array_equal(back["params"]["embed_tokens"]["embedding"],
                                params["embed_tokens"]["embedding"])
  differs = {**full, p + "lm_head.weight": full[p + "lm_head.weight"] + 1}
  with pytest.raises(InputError, match=r"^ckpt: config ties word embeddings but "
                                       r"'model.llm.lm_head.weight' differs from the input "
                                       r"embeddings$"):
    convert.params_from_state_dict(differs, cfg, prefix=p, source="ckpt")
  other = {**full, p + "model.layers.0.self_attn.rotary_emb.freq": np.ones(4, np.float32)}
  with pytest.raises(InputError, match=r"^state dict: unknown key 'model.llm.model.layers.0."
                                       r"self_attn.rotary_emb.freq' \(1 unknown in all\)$"):
    convert.params_from_state_dict(other, cfg, prefix=p)           # the default source name
  _, used = convert.params_from_state_dict(other, cfg, prefix=p, strict=False)
  assert used == set(sd)                                            # not strict: left unread
  _, used = convert.params_from_state_dict(sd, cfg, prefix=p)       # no lm_head copy at all
  assert used == set(sd)
