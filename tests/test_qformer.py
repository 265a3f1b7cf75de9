"""Q-Former: parity with HF `InstructBlipQFormerModel`, masks, layouts, converter errors, jit."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

from vaujax import sharding
from vaujax.convert import qformer as convert
from vaujax.errors import InputError
from vaujax.models import qformer
from vaujax.models.params import count_params

B, Q, L, N = 3, 8, 7, 10
TEXT_MASK = np.array([[1] * 7, [1] * 5 + [0] * 2, [1] * 2 + [0] * 5], np.int64)


@pytest.fixture(scope="module")
def hf():
  """A random tiny HF Q-Former (eval), its numpy state dict and the matching vaujax config."""
  torch.manual_seed(0)
  hf_cfg = InstructBlipQFormerConfig(
      hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
      encoder_hidden_size=48, cross_attention_frequency=2, vocab_size=100,
      max_position_embeddings=64, attn_implementation="eager")
  model = InstructBlipQFormerModel(hf_cfg).eval()
  with torch.no_grad():  # larger than the 0.02 init, and non-trivial LayerNorms
    for name, p in model.named_parameters():
      p.copy_(0.1 * torch.randn_like(p) + (1.0 if "orm.weight" in name else 0.0))
  state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
  cfg = convert.config_from_hf(hf_cfg.to_dict(), num_query_tokens=Q)
  return model, state, cfg


def _inputs(seed=0):
  rs = np.random.RandomState(seed)
  return dict(query_embeds=rs.randn(B, Q, 64).astype(np.float32),
              image_embeds=rs.randn(B, N, 48).astype(np.float32),
              input_ids=rs.randint(1, 100, (B, L)).astype(np.int64))


def _hf_run(model, x, text_mask=None, image_mask=None, with_text=True):
  kw = dict(query_embeds=torch.tensor(x["query_embeds"]),
            encoder_hidden_states=torch.tensor(x["image_embeds"]))
  if with_text:
    kw["input_ids"] = torch.tensor(x["input_ids"])
    if text_mask is not None:
      kw["attention_mask"] = torch.tensor(np.concatenate([np.ones((B, Q), np.int64), text_mask],
                                                         1))
  else:
    kw["input_ids"] = None
  if image_mask is not None:
    kw["encoder_attention_mask"] = torch.tensor(image_mask)
  with torch.no_grad():
    return model(**kw).last_hidden_state.numpy()


def _run(cfg, params, x, text_mask=None, image_mask=None, with_text=True, **kw):
  return qformer.QFormer(cfg, **kw).apply(
      params, jnp.asarray(x["query_embeds"]), jnp.asarray(x["image_embeds"]),
      jnp.asarray(x["input_ids"]) if with_text else None,
      None if text_mask is None else jnp.asarray(text_mask),
      None if image_mask is None else jnp.asarray(image_mask))


def test_matches_hf_with_text_and_masks(hf):
  model, state, cfg = hf
  assert cfg.encoder_width == 48 and cfg.cross_attention_freq == 2 and cfg.layer_norm_eps == 1e-12
  params, queries = convert.params_from_state_dict(state, cfg)
  assert queries is None
  x = _inputs()
  image_mask = np.ones((B, N), np.int64)
  image_mask[1, 6:] = 0
  for tm, im in ((TEXT_MASK, None), (None, None), (TEXT_MASK, image_mask)):
    ref = _hf_run(model, x, tm, im)
    out = _run(cfg, params, x, tm, im)
    assert out["queries"].shape == (B, Q, 64) and out["hidden"].shape == (B, Q + L, 64)
    diff = float(np.abs(np.asarray(out["queries"]) - ref[:, :Q]).max())
    assert diff <= 1e-5, diff
    np.testing.assert_allclose(out["hidden"], ref, atol=1e-5)


def test_queries_only_matches_hf(hf):
  model, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  x = _inputs(1)
  ref = _hf_run(model, x, with_text=False)
  out = _run(cfg, params, x, with_text=False)
  assert out["hidden"].shape == (B, Q, 64)
  np.testing.assert_allclose(out["queries"], ref, atol=1e-5)
  # a queries-only init builds the full tree (text tables and text FFNs included)
  init = jax.eval_shape(qformer.QFormer(cfg).init, jax.random.key(0), x["query_embeds"],
                        x["image_embeds"])
  shapes = lambda t: jax.tree_util.tree_map(lambda a: a.shape, t)  # noqa: E731
  assert shapes(nn.unbox(init)) == shapes(params)


def test_text_padding_is_ignored(hf):
  _, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  x = _inputs(2)
  y = dict(x, input_ids=np.where(TEXT_MASK == 1, x["input_ids"], (x["input_ids"] + 37) % 100))
  assert (y["input_ids"] != x["input_ids"]).any()
  a, b = _run(cfg, params, x, TEXT_MASK), _run(cfg, params, y, TEXT_MASK)
  np.testing.assert_array_equal(a["queries"], b["queries"])
  real = np.concatenate([np.ones((B, Q), bool), TEXT_MASK == 1], 1)
  np.testing.assert_array_equal(np.asarray(a["hidden"])[real], np.asarray(b["hidden"])[real])
  # ... while without the mask the padded ids do change the queries
  assert not np.allclose(_run(cfg, params, x)["queries"], _run(cfg, params, y)["queries"])


def _bert_names(state, prefix):
  """HF keys -> LAVIS/LLaMA-VID BertModel keys (inverse of HF's InstructBLIP conversion)."""
  out = {}
  for k, v in state.items():
    k = k.replace(".attention.attention.", ".attention.self.")
    k = k.replace(".crossattention.attention.", ".crossattention.self.")
    out[prefix + k.replace("embeddings.layernorm", "embeddings.LayerNorm")] = v
  return out


def test_llamavid_lavis_and_instructblip_layouts(hf):
  _, state, cfg = hf
  ref, _ = convert.params_from_state_dict(state, cfg)
  queries = np.random.RandomState(3).randn(1, Q, 64).astype(np.float32)
  others = {"model.layers.0.mlp.up_proj.weight": np.zeros((2, 2), np.float32),
            "model.vlm_att_projector.weight": np.zeros((48, 64), np.float32)}
  layouts = {
      "llamavid": {**_bert_names(state, "model.vlm_att_encoder.bert."),
                   "model.vlm_att_query": queries, **others},
      "lavis": {**_bert_names(state, "Qformer.bert."), "query_tokens": queries,
                "ln_vision.weight": np.ones(48, np.float32)},
      "instructblip": {**{"qformer." + k: v for k, v in state.items()},
                       "query_tokens": queries},
  }
  for layout, sd in layouts.items():
    assert convert.detect_layout(sd) == layout
    params, q = convert.params_from_state_dict(sd, cfg)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, ref)
    np.testing.assert_array_equal(q, queries[0])
    back = convert.params_to_state_dict(params, cfg, layout=layout, queries=q)
    for k, v in back.items():
      np.testing.assert_array_equal(v, sd[k], err_msg=k)
  assert convert.detect_layout(_bert_names(state, "")) == "bert"
  back = convert.params_to_state_dict(ref, cfg)  # HF layout round trip
  assert set(back) == {k for k in state if not k.endswith("position_ids")}


def test_converter_errors_name_the_key(hf):
  _, state, cfg = hf
  missing = {k: v for k, v in state.items()
             if k != "encoder.layer.2.crossattention.attention.key.weight"}
  with pytest.raises(InputError, match=r"missing key 'encoder\.layer\.2\.crossattention"):
    convert.params_from_state_dict(missing, cfg, source="ckpt")
  bad = dict(state)
  bad["encoder.layer.1.intermediate_query.dense.weight"] = np.zeros((128, 63), np.float32)
  with pytest.raises(InputError, match=r"intermediate_query\.dense\.weight.*\(128, 63\)"):
    convert.params_from_state_dict(bad, cfg, source="ckpt")
  extra = {**state, "encoder.layer.1.crossattention.attention.query.weight": np.zeros((64, 64))}
  with pytest.raises(InputError, match=r"unknown key 'encoder\.layer\.1\.crossattention"):
    convert.params_from_state_dict(extra, cfg)
  sd = {**_bert_names(state, "model.vlm_att_encoder.bert."),
        "model.vlm_att_query": np.zeros((1, Q + 1, 64), np.float32)}
  with pytest.raises(InputError, match=r"'model\.vlm_att_query' has shape \(1, 9, 64\)"):
    convert.params_from_state_dict(sd, cfg)
  del sd["model.vlm_att_query"]
  with pytest.raises(InputError, match=r"missing key 'model\.vlm_att_query'"):
    convert.params_from_state_dict(sd, cfg)
  with pytest.raises(InputError, match="no Q-Former keys"):
    convert.params_from_state_dict({"foo.weight": np.zeros(1)}, cfg)


def test_jit_with_sharded_params(hf, mesh8):
  _, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  x = _inputs(4)
  x = {k: np.concatenate([v, v[:1]]) for k, v in x.items()}  # batch 4 over data x fsdp
  mask = np.concatenate([TEXT_MASK, TEXT_MASK[:1]])
  model = qformer.QFormer(cfg)
  abstract = jax.eval_shape(model.init, jax.random.key(0), x["query_embeds"],
                            x["image_embeds"], x["input_ids"], mask)
  shardings = sharding.logical_to_mesh_sharding(abstract, mesh8)
  placed = jax.device_put(params, nn.unbox(shardings))
  fn = jax.jit(lambda p, q, i, t, m: model.apply(p, q, i, t, m)["queries"])
  with jax.set_mesh(mesh8), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    out = fn(placed, x["query_embeds"], x["image_embeds"], x["input_ids"], mask)
  expect = model.apply(params, x["query_embeds"], x["image_embeds"], x["input_ids"], mask)
  np.testing.assert_allclose(out, expect["queries"], atol=1e-5)


def test_bf16_close_and_base_config(hf):
  _, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  x = _inputs(5)
  f32 = _run(cfg, params, x, TEXT_MASK)["queries"]
  bf16 = _run(cfg, params, x, TEXT_MASK, dtype=jnp.bfloat16)["queries"]
  assert bf16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(bf16, np.float32), f32, atol=0.1)
  base = qformer.qformer_base()
  assert (base.hidden_size, base.num_layers, base.num_heads, base.intermediate_size,
          base.vocab_size, base.max_position_embeddings, base.encoder_width,
          base.num_query_tokens) == (768, 12, 12, 3072, 30523, 512, 1408, 32)
  table = convert.rules(base, "bert")
  keys = {r.key for r in table}
  assert "encoder.layer.10.crossattention.self.key.weight" in keys
  assert not any(k.startswith("encoder.layer.11.crossattention") for k in keys)
  abstract = convert._abstract(base)  # the rules cover the base tree one-to-one
  assert len(table) == len({r.path for r in table}) == len(jax.tree_util.tree_leaves(abstract))
  assert abstract["layers_0"]["crossattention"]["key"]["kernel"].shape == (1408, 768)
  assert abstract["word_embeddings"]["embedding"].shape == (30523, 768)
  assert count_params(abstract) > 100_000_000


def test_dropout_only_in_training_mode(hf):
  _, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  x = _inputs(6)
  plain = _run(cfg, params, x, TEXT_MASK)["queries"]
  cfg = dataclasses.replace(cfg, dropout=0.1, attention_dropout=0.1)
  args = (params, x["query_embeds"], x["image_embeds"], x["input_ids"], TEXT_MASK)
  eval_out = qformer.QFormer(cfg).apply(*args)["queries"]
  np.testing.assert_array_equal(eval_out, plain)
  rng = jax.random.key(2, impl="rbg")  # threefry dropout takes XLA:CPU ~7 s to compile
  train = jax.jit(lambda *a: qformer.QFormer(cfg).apply(
      *a, deterministic=False, rngs={"dropout": rng})["queries"])(*args)
  assert np.isfinite(train).all() and not np.allclose(train, eval_out)
  assert qformer.qformer_base(training=True).dropout == 0.1


def test_remat_keeps_outputs_and_gradients(hf):
  """remat=True (each layer recomputed in the backward) changes memory, not numbers."""
  _, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  x = _inputs(7)
  args = (x["query_embeds"], x["image_embeds"], x["input_ids"], TEXT_MASK)
  rng = jax.random.key(3, impl="rbg")

  def loss(p, remat, deterministic):
    c = dataclasses.replace(cfg, remat=remat, dropout=0.1, attention_dropout=0.1)
    out = qformer.QFormer(c).apply(p, *args, deterministic=deterministic,
                                   rngs={"dropout": rng})["hidden"]
    return jnp.sum(jnp.sin(out))

  for deterministic in (True, False):
    grad = lambda remat: jax.jit(jax.value_and_grad(loss), static_argnums=(1, 2))(  # noqa: E731
        params, remat, deterministic)
    (plain_loss, plain_grad), (remat_loss, remat_grad) = grad(False), grad(True)
    np.testing.assert_allclose(remat_loss, plain_loss, rtol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                           remat_grad, plain_grad)
  jaxpr = str(jax.make_jaxpr(jax.grad(loss), static_argnums=(1, 2))(params, True, True))
  assert jaxpr.count("checkpoint") + jaxpr.count("remat") >= cfg.num_layers


@pytest.mark.parametrize("remat", [False, True])
def test_scan_layers_match_hf_and_the_unrolled_gradients(hf, remat):
  """scan_layers (groups of cross_attention_freq layers): HF's outputs, the unrolled grads."""
  model, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  scanned = dataclasses.replace(cfg, scan_layers=True, remat=remat)
  assert scanned.num_layers // scanned.cross_attention_freq == 2        # two groups of two
  x = _inputs(8)
  image_mask = np.ones((B, N), np.int64)
  image_mask[2, 3:] = 0
  for tm, im, text in ((TEXT_MASK, image_mask, True), (None, None, False)):
    out = jax.jit(lambda p: _run(scanned, p, x, tm, im, text))(params)  # noqa: B023
    np.testing.assert_allclose(out["hidden"], _hf_run(model, x, tm, im, text), atol=1e-5)
  args = (x["query_embeds"], x["image_embeds"], x["input_ids"], TEXT_MASK)

  def loss(p, c):
    return jnp.sum(jnp.sin(qformer.QFormer(c).apply(p, *args)["hidden"]))

  grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  (plain_loss, plain), (scan_loss, scan) = grad(params, cfg), grad(params, scanned)
  np.testing.assert_allclose(scan_loss, plain_loss, rtol=1e-5)
  assert jax.tree_util.tree_structure(scan) == jax.tree_util.tree_structure(plain)
  for a, b in zip(jax.tree_util.tree_leaves(scan), jax.tree_util.tree_leaves(plain)):
    assert np.abs(a - b).max() <= 2e-6 * np.abs(b).max() + 1e-6   # + leaves that cancel to ~0


def test_scan_layers_dropout_draws_from_the_dropout_stream(hf):
  _, state, cfg = hf
  params, _ = convert.params_from_state_dict(state, cfg)
  c = dataclasses.replace(cfg, scan_layers=True, dropout=0.1, attention_dropout=0.1)
  x = _inputs(9)
  run = lambda seed, deterministic: np.asarray(qformer.QFormer(c).apply(  # noqa: E731
      params, x["query_embeds"], x["image_embeds"], x["input_ids"], TEXT_MASK,
      deterministic=deterministic, rngs={"dropout": jax.random.key(seed)})["hidden"])
  eval_out, a, b, again = run(0, True), run(0, False), run(1, False), run(0, False)
  np.testing.assert_allclose(eval_out, _run(cfg, params, x, TEXT_MASK)["hidden"], atol=1e-5)
  np.testing.assert_array_equal(a, again)                    # same key, same masks
  assert np.isfinite(a).all() and not np.allclose(a, b) and not np.allclose(a, eval_out)
  with pytest.raises(ValueError, match="multiple of cross_attention_freq"):
    dataclasses.replace(cfg, scan_layers=True, num_layers=3)
