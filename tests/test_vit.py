"""Vision towers: parity with HF CLIP / DINOv2 and the LAVIS EVA layout; conversion round trips."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import (CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model,
                          Dinov2WithRegistersConfig, Dinov2WithRegistersModel)

from tests.vision_reference import EvaViT
from vaujax import sharding
from vaujax.convert import vision as convert
from vaujax.errors import InputError
from vaujax.models import vit
from vaujax.models.params import count_params


def _randomise(model):
  torch.manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or "lambda" in name or "bias" in name:
        p.copy_(p + 0.1 * torch.randn_like(p))
  return model.eval()


def _state(model):
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _images(n, size, seed=0):
  return np.random.RandomState(seed).randn(n, size, size, 3).astype(np.float32)


def _to_torch(images):
  return torch.tensor(images).permute(0, 3, 1, 2)


def _clip(**kw):
  torch.manual_seed(0)
  hf_cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                            num_attention_heads=4, image_size=56, patch_size=14, **kw)
  return _randomise(CLIPVisionModel(hf_cfg)), hf_cfg


def test_clip_penultimate_patch_features_match_hf():
  hf, hf_cfg = _clip()
  cfg = convert.config_from_hf("clip", hf_cfg.to_dict(), "cfg")
  assert cfg.layers_run == 2 and cfg.pre_layernorm and cfg.act == "quick_gelu"
  params, dropped = convert.params_from_state_dict("clip", _state(hf), cfg)
  assert dropped == []
  images = _images(2, 56)
  out = vit.ViT(cfg).apply(params, jnp.asarray(images))
  with torch.no_grad():
    ref = hf(_to_torch(images), output_hidden_states=True)
  np.testing.assert_allclose(out["tokens"], ref.hidden_states[-2].numpy(), atol=1e-5)
  np.testing.assert_allclose(out["patches"], ref.hidden_states[-2][:, 1:].numpy(), atol=1e-5)
  full = vit.ViT(dataclasses.replace(cfg, feature_layer=-1)).apply(params, jnp.asarray(images))
  np.testing.assert_allclose(full["tokens"], ref.last_hidden_state.numpy(), atol=1e-5)
  np.testing.assert_allclose(full["pooled"], ref.pooler_output.numpy(), atol=1e-5)


@pytest.mark.parametrize("registers,size", [(0, 56), (0, 70), (4, 56), (4, 42)])
def test_dinov2_matches_hf_with_registers_and_other_sizes(registers, size):
  torch.manual_seed(0)
  common = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, image_size=56,
                patch_size=14, layerscale_value=0.5)
  if registers:
    hf = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=registers,
                                                            **common))
  else:
    hf = Dinov2Model(Dinov2Config(**common))
  hf = _randomise(hf)
  cfg = convert.config_from_hf("dinov2", hf.config.to_dict(), "cfg")
  assert cfg.num_registers == registers
  params, _ = convert.params_from_state_dict("dinov2", _state(hf), cfg)
  images = _images(2, size, seed=size)
  out = vit.ViT(cfg).apply(params, jnp.asarray(images))
  with torch.no_grad():
    ref = hf(_to_torch(images))
  assert out["patches"].shape == (2, (size // 14) ** 2, 32)
  np.testing.assert_allclose(out["tokens"], ref.last_hidden_state.numpy(), atol=1e-5)
  np.testing.assert_allclose(out["cls"], ref.pooler_output.numpy(), atol=1e-5)


def test_chunked_attention_towers_match_hf_at_224_pixels():
  """257 and 261 tokens (CLIP; DINOv2 with 4 registers) run the attention in 3 query chunks."""
  torch.manual_seed(0)
  clip = _randomise(CLIPVisionModel(CLIPVisionConfig(
      hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
      image_size=224, patch_size=14)))
  dino = _randomise(Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=224, patch_size=14,
      num_register_tokens=4, layerscale_value=0.5)))
  images = _images(2, 224, seed=3)
  for kind, hf in (("clip", clip), ("dinov2", dino)):
    cfg = dataclasses.replace(convert.config_from_hf(kind, hf.config.to_dict(), "cfg"),
                              feature_layer=-1)
    params, _ = convert.params_from_state_dict(kind, _state(hf), cfg)
    out = vit.ViT(cfg).apply(params, jnp.asarray(images))
    with torch.no_grad():
      ref = hf(_to_torch(images)).last_hidden_state.numpy()
    if kind == "clip":
      assert out["tokens"].shape[1] == 257
    else:
      assert out["tokens"].shape[1] == 261
    np.testing.assert_allclose(out["tokens"], ref, atol=2e-5)


@pytest.mark.parametrize("tokens,max_rows", [(17, 128), (257, 128), (261, 64), (50, 8)])
def test_attention_chunks_equal_one_softmax_block(tokens, max_rows):
  rng = np.random.RandomState(tokens)
  q, k, v = (rng.randn(2, tokens, 3, 8).astype(np.float32) * 3 for _ in range(3))
  out = vit.attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), 8 ** -0.5, max_rows)
  logits = np.einsum("bqhd,bkhd->bhqk", q.astype(np.float64), k) * 8 ** -0.5
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  np.testing.assert_allclose(out, np.einsum("bhqk,bkhd->bqhd", probs, v), atol=2e-5)


def test_dinov2_transformers4_key_names_are_accepted():
  torch.manual_seed(0)
  hf = _randomise(Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, image_size=28, patch_size=14)))
  new = _state(hf)
  old = {}
  for k, v in new.items():
    for legacy, current in convert._DINOV2_OLD:
      k = k.replace(current, legacy)
    old["dinov2." + k] = v
  cfg = convert.config_from_hf("dinov2", hf.config.to_dict(), "cfg")
  a, _ = convert.params_from_state_dict("dinov2", new, cfg)
  b, _ = convert.params_from_state_dict("dinov2", old, cfg)
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_eva_matches_lavis_layout_and_drops_the_extra_block():
  torch.manual_seed(0)
  ref = _randomise(EvaViT(depth=3))
  state = _state(ref)
  extra = _state(_randomise(EvaViT(depth=4)))  # the checkpoint holds one block more
  state.update({k: v for k, v in extra.items() if k.startswith("blocks.3.")})
  cfg = convert.eva_config_from_state(state, "eva.pth")
  assert (cfg.num_layers, cfg.qkv_bias, cfg.act, cfg.final_layernorm) == (3, "qv", "gelu", False)
  params, dropped = convert.params_from_state_dict("eva", state, dataclasses.replace(
      cfg, num_heads=4))
  assert dropped and all(k.startswith("blocks.3.") for k in dropped)
  assert "bias" not in params["params"]["layers_0"]["attn"]["k"]
  images = _images(2, 56)
  out = vit.ViT(dataclasses.replace(cfg, num_heads=4)).apply(params, jnp.asarray(images))
  with torch.no_grad():
    expected = ref(_to_torch(images)).numpy()
  np.testing.assert_allclose(out["tokens"], expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["clip", "dinov2", "eva"])
def test_convert_export_round_trip_is_bit_exact(kind, tmp_path):
  if kind == "clip":
    hf, hf_cfg = _clip()
    state, cfg = _state(hf), convert.config_from_hf("clip", hf_cfg.to_dict(), "c")
  elif kind == "dinov2":
    hf = _randomise(Dinov2WithRegistersModel(Dinov2WithRegistersConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=28, patch_size=14,
        num_register_tokens=2)))
    state, cfg = _state(hf), convert.config_from_hf("dinov2", hf.config.to_dict(), "c")
  else:
    state = _state(_randomise(EvaViT(depth=3)))
    cfg = dataclasses.replace(convert.eva_config_from_state(state, "e"), num_layers=3,
                              num_heads=4)
  params, _ = convert.params_from_state_dict(kind, state, cfg)
  back = convert.params_to_state_dict(kind, params, cfg)
  expected = {k: v for k, v in convert.normalise(kind, state).items()
              if not k.endswith("position_ids")}
  expected = convert.denormalise(kind, expected)
  assert back.keys() == expected.keys()
  for k in back:
    np.testing.assert_array_equal(back[k], expected[k], err_msg=k)


def test_cli_round_trip(tmp_path):
  hf, _ = _clip()
  hf.save_pretrained(tmp_path / "hf")
  from vaujax.app import convert_vision
  convert_vision.run(["vaujax convert-vision", "--kind", "clip", "--src", str(tmp_path / "hf"),
                      "--out", str(tmp_path / "vj")])
  convert_vision.run(["vaujax convert-vision", "--params", str(tmp_path / "vj"), "--export",
                      str(tmp_path / "out.safetensors")])
  from safetensors.numpy import load_file
  back = load_file(tmp_path / "out.safetensors")
  original = {"vision_model." + k: v for k, v in _state(hf).items()}
  for k, v in back.items():
    np.testing.assert_array_equal(v, original[k])
  assert set(original) - set(back) <= {"vision_model.embeddings.position_ids"}
  from transformers import CLIPVisionModel as HF
  import safetensors.numpy
  (tmp_path / "re").mkdir()
  hf.config.save_pretrained(tmp_path / "re")
  safetensors.numpy.save_file(back, tmp_path / "re" / "model.safetensors")
  reloaded = HF.from_pretrained(tmp_path / "re")
  for k, v in hf.state_dict().items():
    assert torch.equal(reloaded.state_dict()[k], v), k


def test_bad_checkpoints_name_file_and_key(tmp_path):
  hf, hf_cfg = _clip()
  cfg = convert.config_from_hf("clip", hf_cfg.to_dict(), "c")
  state = {"vision_model." + k: v for k, v in _state(hf).items()}
  bad = dict(state)
  bad["vision_model.encoder.layers.0.mlp.fc1.weight"] = np.zeros((65, 32), np.float32)
  with pytest.raises(InputError, match=r"clip.bin: key 'vision_model.encoder.layers.0.mlp.fc1"
                                       r".weight' has shape \(65, 32\)"):
    convert.params_from_state_dict("clip", bad, cfg, source="clip.bin")
  with pytest.raises(InputError, match="unknown key 'vision_model.extra'"):
    convert.params_from_state_dict("clip", {**state, "vision_model.extra": np.zeros(1)}, cfg,
                                   source="clip.bin")
  missing = {k: v for k, v in state.items() if "post_layernorm" not in k}
  with pytest.raises(InputError, match="missing key 'vision_model.post_layernorm.weight'"):
    convert.params_from_state_dict("clip", missing, cfg, source="clip.bin")
  with pytest.raises(InputError, match="not a LAVIS EVA state dict"):
    convert.eva_config_from_state({"x": np.zeros(1)}, "eva.pth")


def test_bf16_tower_close_to_fp32():
  cfg = vit.tiny_vit("dinov2")
  images = jnp.asarray(_images(2, 56))
  params = vit.ViT(cfg).init(jax.random.key(0), images)
  fp32 = vit.ViT(cfg).apply(params, images)["tokens"]
  bf16 = vit.ViT(cfg, dtype=jnp.bfloat16).apply(params, images)["tokens"]
  assert bf16.dtype == jnp.bfloat16
  assert float(jnp.abs(bf16.astype(jnp.float32) - fp32).max()) < 0.1


def test_sharded_frames_equal_unsharded(mesh8):
  cfg = vit.tiny_vit("eva")
  frames = jnp.asarray(_images(8, 56))
  boxed = vit.ViT(cfg).init(jax.random.key(0), frames)
  params = nn.unbox(boxed)
  expected = vit.ViT(cfg).apply(params, frames)["patches"]
  shardings = sharding.logical_to_mesh_sharding(boxed, mesh8)
  with jax.set_mesh(mesh8), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    out = jax.jit(lambda p, x: vit.ViT(cfg).apply(p, x)["patches"],
                  in_shardings=(shardings, sharding.batch_sharding(mesh8, 4)))(
        jax.device_put(params, shardings), frames)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


@pytest.mark.parametrize("name", ["clip_l14_224", "clip_l14_336", "dinov2_small",
                                  "dinov2_base_reg", "dinov2_giant"])
def test_published_configs_match_hf_parameter_counts(name):
  """Full-size towers: abstract init (no allocation) vs HF models built on the meta device."""
  hf_cfgs = {
      "clip_l14_224": (vit.clip_vit_l14(224), lambda: CLIPVisionModel(CLIPVisionConfig(
          hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
          image_size=224, patch_size=14))),
      "clip_l14_336": (vit.clip_vit_l14(336), lambda: CLIPVisionModel(CLIPVisionConfig(
          hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
          image_size=336, patch_size=14))),
      "dinov2_small": (vit.dinov2("small"), lambda: Dinov2Model(Dinov2Config(
          hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518))),
      "dinov2_base_reg": (vit.dinov2("base", 4), lambda: Dinov2WithRegistersModel(
          Dinov2WithRegistersConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                    image_size=518, patch_size=14, num_register_tokens=4))),
      "dinov2_giant": (vit.dinov2("giant"), lambda: Dinov2Model(Dinov2Config(
          hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, image_size=518,
          use_swiglu_ffn=True))),
  }
  cfg, make_hf = hf_cfgs[name]
  with torch.device("meta"):
    hf = make_hf()
  size = cfg.native_grid * cfg.patch_size
  shapes = jax.eval_shape(vit.ViT(cfg).init, jax.random.key(0), jnp.zeros((1, size, size, 3)))
  assert count_params(shapes) == sum(p.numel() for p in hf.parameters())


def test_eva_g_published_geometry():
  cfg = vit.eva_vit_g14()
  size = cfg.native_grid * cfg.patch_size
  shapes = nn.unbox(jax.eval_shape(vit.ViT(cfg).init, jax.random.key(0),
                                   jnp.zeros((1, size, size, 3))))["params"]
  assert shapes["position_embedding"].shape == (257, 1408)
  assert shapes["layers_38"]["mlp"]["fc1"]["kernel"].shape == (1408, 6144)
  assert "layers_39" not in shapes and "bias" not in shapes["layers_0"]["attn"]["k"]
  # 39 blocks: q/k/v/out kernels, q/v/out biases (no k bias), 2 LayerNorms, the MLP
  d, f = 1408, 6144
  block = 4 * d * d + 3 * d + 2 * 2 * d + 2 * d * f + f + d
  embed = 14 * 14 * 3 * d + d + d + 257 * d
  assert count_params(shapes) == 39 * block + embed
