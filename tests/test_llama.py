"""LLaMA decoder: parity with HF transformers, KV cache, sharding, dtypes, parameter count."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from tests.llama_reference import hf_model, vaujax_params
from vaujax import sharding
from vaujax.models import llama
from vaujax.models.params import count_params

CONFIGS = {
    "mha": llama.tiny_llama(num_kv_heads=4),
    "gqa": llama.tiny_llama(),
    "tied": llama.tiny_llama(tie_word_embeddings=True),
    "odd_hidden": llama.tiny_llama(hidden_size=72, num_heads=3, num_kv_heads=1,
                                   intermediate_size=100, vocab_size=301, num_layers=3),
    "rope_scaling_bias": llama.tiny_llama(rope_scaling_factor=4.0, attention_bias=True,
                                          rope_theta=500000.0, rms_norm_eps=1e-6),
}


def _batch(vocab, seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(3, vocab, (3, 17))
  mask = np.ones_like(ids)
  mask[1, 11:] = 0   # right padding
  mask[2, 5:] = 0
  return ids, mask


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_match_hf(name):
  cfg = CONFIGS[name]
  hf = hf_model(cfg)
  params = vaujax_params(hf, cfg)
  ids, mask = _batch(cfg.vocab_size)
  ours = np.asarray(llama.Llama(cfg).apply(params, jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
  with torch.no_grad():
    ref = hf(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
  valid = mask.astype(bool)
  assert np.abs(ours - ref)[valid].max() <= 1e-5


def test_inputs_embeds_equal_ids():
  cfg = CONFIGS["gqa"]
  model = llama.Llama(cfg)
  ids = jnp.asarray(_batch(cfg.vocab_size)[0])
  params = model.init(jax.random.key(1), ids)
  embeds = model.apply(params, ids, method=llama.Llama.embed)
  np.testing.assert_array_equal(model.apply(params, ids), model.apply(params, inputs_embeds=embeds))


def test_kv_cache_decode_equals_full_recompute():
  cfg = CONFIGS["gqa"]
  model = llama.Llama(cfg)
  ids = jnp.asarray(np.random.RandomState(3).randint(3, cfg.vocab_size, (2, 12)))
  params = model.init(jax.random.key(0), ids)
  full = model.apply(params, ids)
  cache = llama.init_cache(cfg, 2, 16)
  mask = jnp.ones((2, 16), jnp.int32)
  logits, cache = model.apply(params, ids[:, :5], attention_mask=mask, cache=cache,
                              cache_index=jnp.int32(0))
  np.testing.assert_allclose(logits, full[:, :5], atol=1e-5)
  for t in range(5, 12):
    step, cache = model.apply(params, ids[:, t:t + 1], attention_mask=mask, cache=cache,
                              cache_index=jnp.int32(t))
    assert np.abs(np.asarray(step[:, 0]) - np.asarray(full[:, t])).max() <= 1e-5


@pytest.mark.parametrize("name", ["gqa", "tied"])
def test_logits_to_keep_runs_the_head_on_the_last_rows(name):
  cfg = CONFIGS[name]
  model = llama.Llama(cfg)
  ids = jnp.asarray(np.random.RandomState(4).randint(3, cfg.vocab_size, (2, 9)))
  params = model.init(jax.random.key(0), ids)
  full, hidden = model.apply(params, ids, return_hidden=True)
  for keep in (1, 3):
    last, last_hidden = model.apply(params, ids, return_hidden=True, logits_to_keep=keep)
    assert last.shape == (2, keep, cfg.vocab_size)
    np.testing.assert_allclose(last, full[:, -keep:], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(last_hidden, hidden)   # the hidden states stay whole
  cache, mask = llama.init_cache(cfg, 2, 12), jnp.ones((2, 12), jnp.int32)
  last, _ = model.apply(params, ids, attention_mask=mask, cache=cache, cache_index=jnp.int32(0),
                        logits_to_keep=1)
  np.testing.assert_allclose(last[:, 0], full[:, -1], atol=1e-5)


def test_sharded_forward_equals_unsharded(mesh8):
  cfg = llama.tiny_llama(num_heads=4, num_kv_heads=2, vocab_size=256)
  model = llama.Llama(cfg)
  ids = jnp.asarray(np.random.RandomState(0).randint(3, 256, (8, 16)))
  boxed = model.init(jax.random.key(0), ids)
  params = nn.unbox(boxed)
  expected = model.apply(params, ids)
  shardings = sharding.logical_to_mesh_sharding(boxed, mesh8)
  sharded_params = jax.device_put(params, shardings)
  assert sharded_params["params"]["layers_0"]["mlp"]["gate_proj"]["kernel"].sharding.spec == \
      jax.sharding.PartitionSpec("fsdp", "tensor")
  sharded_ids = jax.device_put(ids, sharding.batch_sharding(mesh8, 2))

  def fwd(p, x):
    return model.apply(p, x)

  with jax.set_mesh(mesh8), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    out = jax.jit(fwd, in_shardings=(shardings, sharding.batch_sharding(mesh8, 2)))(
        sharded_params, sharded_ids)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


@pytest.mark.parametrize("remat", [False, True])
def test_scan_layers_matches_hf_and_the_unrolled_gradients(remat):
  """scan_layers runs one layer body over the stacked weights: same logits (HF), same grads."""
  base = dataclasses.replace(CONFIGS["odd_hidden"], remat=remat)       # 3 layers, GQA 3 -> 1
  scanned = dataclasses.replace(base, scan_layers=True)
  hf = hf_model(base)
  params = vaujax_params(hf, base)
  ids, mask = _batch(base.vocab_size)
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  ours = np.asarray(jax.jit(lambda p: llama.Llama(scanned).apply(p, ids, attention_mask=mask))(
      params))
  with torch.no_grad():
    ref = hf(torch.tensor(np.asarray(ids)), attention_mask=torch.tensor(np.asarray(mask))).logits
  assert np.abs(ours - ref.numpy())[np.asarray(mask, bool)].max() <= 1e-5

  def loss(p, cfg):
    logits = llama.Llama(cfg).apply(p, ids, attention_mask=mask)
    return jnp.sum(jnp.sin(logits) * mask[..., None])

  grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  (plain_loss, plain), (scan_loss, scan) = grad(params, base), grad(params, scanned)
  np.testing.assert_allclose(scan_loss, plain_loss, rtol=1e-6)
  assert jax.tree_util.tree_structure(scan) == jax.tree_util.tree_structure(plain)
  for a, b in zip(jax.tree_util.tree_leaves(scan), jax.tree_util.tree_leaves(plain)):
    assert np.abs(a - b).max() <= 2e-6 * np.abs(b).max()   # fp32 summation order only
  # One layer body in the program, not num_layers copies of it.
  count = lambda cfg: str(jax.make_jaxpr(loss, static_argnums=1)(params, cfg)).count(  # noqa: E731
      "dot_general")
  per_layer, rest = divmod(count(base) - 1, base.num_layers)          # - 1: the LM head
  assert rest == 0 and count(scanned) == per_layer + 1


def test_scan_layers_in_bf16_stacks_the_kernels_in_bf16():
  """bf16 compute: the stacked kernels are bf16 (half the copy), the norms fp32; the loss and
  gradients stay within bf16 rounding of the unrolled layers'."""
  cfg = llama.tiny_llama(num_layers=3, remat=True)
  ids = jnp.asarray(np.random.RandomState(5).randint(3, cfg.vocab_size, (2, 40)))
  params = nn.unbox(llama.Llama(cfg).init(jax.random.key(0), ids))

  def loss(p, c):
    return jnp.mean(jnp.square(llama.Llama(c, dtype=jnp.bfloat16).apply(p, ids)))

  scanned = dataclasses.replace(cfg, scan_layers=True)
  scan_eqn = next(e for e in jax.make_jaxpr(loss, static_argnums=1)(params, scanned).eqns
                  if e.primitive.name == "scan")
  stacked = scan_eqn.invars[scan_eqn.params["num_consts"] + scan_eqn.params["num_carry"]:]
  assert sorted({(v.aval.ndim, str(v.aval.dtype)) for v in stacked}) == [
      (2, "float32"), (3, "bfloat16")]                           # [L, D] norms, [L, D, F] kernels
  grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  (plain_loss, plain), (scan_loss, scan) = grad(params, cfg), grad(params, scanned)
  np.testing.assert_allclose(scan_loss, plain_loss, rtol=1e-2)
  for a, b in zip(jax.tree_util.tree_leaves(scan), jax.tree_util.tree_leaves(plain)):
    assert a.dtype == b.dtype == jnp.float32
    assert np.abs(a - b).max() <= 3e-2 * np.abs(b).max()


@pytest.mark.parametrize("scan", [False, True])
def test_remat_policies_keep_gradients_and_choose_the_residuals(scan, capsys):
  """remat_policy: same gradients as no remat; "dots" keeps the projections' outputs, "full"
  only the layer inputs (JAX's own residual report)."""
  import jax.ad_checkpoint
  cfg = llama.tiny_llama(num_layers=2, scan_layers=scan)
  ids = jnp.asarray(np.random.RandomState(6).randint(3, cfg.vocab_size, (2, 40)))
  params = nn.unbox(llama.Llama(cfg).init(jax.random.key(0), ids))

  def loss(p, c):
    return jnp.mean(jnp.square(llama.Llama(c).apply(p, ids)))

  expected = jax.jit(jax.grad(loss), static_argnums=1)(params, cfg)
  saved = {}
  for policy in ("full", "dots"):
    c = dataclasses.replace(cfg, remat=True, remat_policy=policy)
    grads = jax.jit(jax.grad(loss), static_argnums=1)(params, c)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(expected)):
      assert np.abs(a - b).max() <= 2e-6 * np.abs(b).max()
    jax.ad_checkpoint.print_saved_residuals(lambda p: loss(p, c), params)  # noqa: B023
    report = capsys.readouterr().out.splitlines()
    # Activations saved inside the layers: [B, T, F] (unrolled) or [layers, B, T, F] (scan).
    width = lambda n: f"[{'2,' if scan else ''}2,40,{n}]"  # noqa: E731
    saved[policy] = sum(width(n) in line for line in report for n in (32, 128))
  assert saved["full"] == 0 < saved["dots"]          # k/v (32 wide) and gate/up (128 wide)
  with pytest.raises(ValueError, match="remat_policy"):
    llama.tiny_llama(remat_policy="offload")


def test_scan_layers_init_and_decode_keep_the_per_layer_tree():
  """Init and KV-cache decode run the layers one by one, under the same `layers_i` names."""
  cfg = dataclasses.replace(CONFIGS["gqa"], scan_layers=True)
  model, plain = llama.Llama(cfg), llama.Llama(dataclasses.replace(cfg, scan_layers=False))
  ids = jnp.asarray(np.random.RandomState(3).randint(3, cfg.vocab_size, (2, 12)))
  params = model.init(jax.random.key(0), ids)
  reference = plain.init(jax.random.key(0), ids)
  jax.tree_util.tree_map(np.testing.assert_array_equal, nn.unbox(params), nn.unbox(reference))
  full = model.apply(params, ids)
  np.testing.assert_allclose(full, plain.apply(params, ids), atol=1e-6)
  cache, mask = llama.init_cache(cfg, 2, 16), jnp.ones((2, 16), jnp.int32)
  logits, cache = model.apply(params, ids[:, :5], attention_mask=mask, cache=cache,
                              cache_index=jnp.int32(0))
  np.testing.assert_allclose(logits, full[:, :5], atol=1e-5)
  step, _ = model.apply(params, ids[:, 5:6], attention_mask=mask, cache=cache,
                        cache_index=jnp.int32(5))
  np.testing.assert_allclose(step[:, 0], full[:, 5], atol=1e-5)


def test_scan_layers_sharded_gradients_equal_unsharded(mesh8):
  """Under fsdp/tensor sharding the scanned step's gradients keep each parameter's sharding."""
  cfg = llama.tiny_llama(num_layers=3, scan_layers=True, remat=True)
  model = llama.Llama(cfg)
  ids = jnp.asarray(np.random.RandomState(0).randint(3, 256, (8, 16)))
  boxed = model.init(jax.random.key(0), ids)
  params = nn.unbox(boxed)
  loss = lambda p, x: jnp.mean(jnp.sin(model.apply(p, x)))  # noqa: E731
  expected = jax.grad(loss)(params, ids)
  shardings = sharding.logical_to_mesh_sharding(boxed, mesh8)
  with jax.set_mesh(mesh8), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    grads = jax.jit(jax.grad(loss), in_shardings=(shardings, sharding.batch_sharding(mesh8, 2)),
                    out_shardings=shardings)(jax.device_put(params, shardings), ids)
  kernel = grads["params"]["layers_2"]["mlp"]["gate_proj"]["kernel"]
  assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
                         grads, expected)


def test_bf16_close_to_fp32():
  cfg = CONFIGS["gqa"]
  ids = jnp.asarray(_batch(cfg.vocab_size)[0])
  params = llama.Llama(cfg).init(jax.random.key(0), ids)
  fp32 = llama.Llama(cfg).apply(params, ids)
  bf16_params = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), params)
  bf16 = llama.Llama(cfg, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16).apply(bf16_params, ids)
  assert bf16.dtype == jnp.float32  # logits are always returned in fp32
  assert np.abs(np.asarray(bf16) - np.asarray(fp32)).max() < 0.05 * np.abs(np.asarray(fp32)).max()


@pytest.mark.parametrize("make,eps,positions", [(llama.vicuna_7b_v15, 1e-5, 4096),
                                                 (llama.vicuna_7b_v11, 1e-6, 2048)])
def test_vicuna_7b_abstract_init_has_exact_parameter_count(make, eps, positions):
  cfg = make()
  assert (cfg.rms_norm_eps, cfg.max_position_embeddings) == (eps, positions)
  shapes = jax.eval_shape(llama.Llama(cfg).init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
  assert count_params(shapes) == 6_738_415_616


def test_config_rejects_bad_heads():
  with pytest.raises(ValueError, match="multiple of num_kv_heads"):
    llama.tiny_llama(num_heads=4, num_kv_heads=3)


def _grads_and_decode(cfg, params, ids, mask, cache_len=20):
  model = llama.Llama(cfg)
  loss = lambda p: jnp.sum(model.apply(p, ids, attention_mask=mask) * mask[..., None])  # noqa
  grads = jax.grad(loss)(params)
  cache = llama.init_cache(cfg, ids.shape[0], cache_len)
  key_mask = jnp.pad(mask, ((0, 0), (0, cache_len - mask.shape[1])), constant_values=1)
  prefill, cache = model.apply(params, ids, attention_mask=key_mask, cache=cache,
                               cache_index=jnp.int32(0))
  return grads, prefill


@pytest.mark.parametrize("impl", ["xla", pytest.param("cudnn", marks=pytest.mark.skipif(
    jax.default_backend() != "gpu", reason="the cuDNN kernel needs an NVIDIA GPU"))])
def test_attention_kernels_equal_the_einsum_path(impl):
  """jax.nn.dot_product_attention kernels: same logits (HF parity), gradients and cached
  prefill as the explicit einsum, with right and left padding."""
  base = CONFIGS["gqa"]
  dtype = jnp.bfloat16 if impl == "cudnn" else jnp.float32
  fused = llama.Llama(llama.tiny_llama(attention_impl=impl), dtype=dtype)
  hf = hf_model(base)
  params = vaujax_params(hf, base)
  ids, mask = (jnp.asarray(a) for a in _batch(base.vocab_size))
  left = jnp.asarray(np.flip(np.asarray(mask), axis=1))            # left padding
  tol = 5e-2 if impl == "cudnn" else 1e-5
  for m in (mask, left):
    ours = np.asarray(fused.apply(params, ids, attention_mask=m))
    ref = np.asarray(llama.Llama(base).apply(params, ids, attention_mask=m))
    valid = np.asarray(m).astype(bool)
    assert np.abs(ours - ref)[valid].max() <= tol * max(1.0, np.abs(ref).max() * (impl == "cudnn"))
  if impl == "xla":
    g_fused, p_fused = _grads_and_decode(fused.config, params, ids, left)
    g_ref, p_ref = _grads_and_decode(base, params, ids, left)
    for a, b in zip(jax.tree_util.tree_leaves(g_fused), jax.tree_util.tree_leaves(g_ref)):
      np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(p_fused, p_ref, atol=1e-5)


def test_right_padding_lengths():
  valid = jnp.asarray([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
  lengths, right = llama.right_padding_lengths(valid)
  assert lengths.tolist() == [3, 4, 0] and bool(right)
  for row in ([0, 1, 1, 1], [1, 0, 1, 1]):   # left padding; a hole
    assert not bool(llama.right_padding_lengths(valid.at[0].set(jnp.asarray(row, bool)))[1])


def test_cudnn_causal_padding_dispatch_through_the_xla_kernel(monkeypatch):
  """The "cudnn" kernel's causal & key-validity path, run through the XLA kernel on CPU: right
  padding as key lengths, left padding as the full mask; outputs and gradients equal the einsum
  path on every real query. JAX's cuDNN wrapper rejects any mask but the full [B, 1, L, S]
  (a [B, 1, 1, S] key row failed there: "Bias must have same seq length as QKV")."""
  real = jax.nn.dot_product_attention
  calls = []

  def recording(q, k, v, mask=None, **kw):
    calls.append(kw.get("key_value_seq_lengths") is not None)
    if mask is not None:
      assert mask.shape == (q.shape[0], 1, q.shape[1], k.shape[1]), mask.shape
    return real(q, k, v, mask=mask, **kw)

  monkeypatch.setattr(jax.nn, "dot_product_attention", recording)
  rng = np.random.RandomState(0)
  b, l, h, kv, dh = 3, 17, 4, 2, 8
  q, k, v = (jnp.asarray(rng.randn(b, l, n, dh), jnp.float32) for n in (h, kv, kv))   # GQA
  _, right = _batch(10)
  for valid in (right, np.flip(right, axis=1)):
    mask = llama.causal_padding_mask(jnp.asarray(valid), b, l, l, None)
    fused = lambda q, k, v: llama.cudnn_causal_padding_attention(  # noqa: E731
        q, k, v, mask, implementation="xla")
    einsum = lambda q, k, v: llama.grouped_attention(q, k, v, mask)   # noqa: E731
    real_rows = jnp.asarray(valid, bool)[:, :, None, None]
    weights = jnp.asarray(rng.randn(b, l, h, dh), jnp.float32) * real_rows
    out_f, out_e = fused(q, k, v), einsum(q, k, v)
    np.testing.assert_allclose(np.asarray(out_f)[np.asarray(valid, bool)],
                               np.asarray(out_e)[np.asarray(valid, bool)], atol=1e-5)
    grads_f = jax.grad(lambda *a: jnp.sum(fused(*a) * weights), (0, 1, 2))(q, k, v)
    grads_e = jax.grad(lambda *a: jnp.sum(einsum(*a) * weights), (0, 1, 2))(q, k, v)
    for a, e in zip(grads_f, grads_e):
      np.testing.assert_allclose(a, e, atol=1e-5)
  assert True in calls and False in calls   # both branches were traced, each with its args
  assert bool(llama.right_padding_lengths(jnp.asarray(right, bool))[1])
  assert not bool(llama.right_padding_lengths(jnp.asarray(np.flip(right, axis=1), bool))[1])


def _long_batch(vocab, length=83):
  """Long enough for 3 query chunks of 32 (the last one partial), right and left padding."""
  rng = np.random.RandomState(5)
  ids = rng.randint(3, vocab, (3, length))
  mask = np.ones_like(ids)
  mask[1, 50:] = 0            # right padding
  mask[2, :41] = 0            # left padding: 41 fully masked query rows
  return jnp.asarray(ids), jnp.asarray(mask)


def test_query_chunk_sizes():
  assert llama.query_chunk(256, 8) == 32
  assert llama.query_chunk(1024, 8) == 128
  assert llama.query_chunk(83, 8) == 32      # never below MIN_QUERY_CHUNK
  assert llama.query_chunk(1000, 8) == 128   # 125 rounded up to a multiple of 8
  assert llama.query_chunk(2048, 1) == 2048


@pytest.mark.parametrize("name", ["gqa", "odd_hidden"])
def test_chunked_attention_matches_hf_and_the_einsum(name):
  """The default causal chunked attention: HF logits on every real token, and the gradients
  and cached prefill of the single-block einsum, with right and left padding."""
  cfg = CONFIGS[name]
  assert cfg.attention_impl == "chunked"
  hf = hf_model(cfg)
  params = vaujax_params(hf, cfg)
  ids, mask = _long_batch(cfg.vocab_size)
  assert llama.query_chunk(ids.shape[1], cfg.attention_chunks) < ids.shape[1]
  ours = np.asarray(llama.Llama(cfg).apply(params, ids, attention_mask=mask))
  with torch.no_grad():
    ref = hf(torch.tensor(np.asarray(ids)), attention_mask=torch.tensor(np.asarray(mask))).logits
  valid = np.asarray(mask).astype(bool)
  assert np.abs(ours - ref.numpy())[valid].max() <= 1e-5
  einsum = dataclasses.replace(cfg, attention_impl="einsum")
  single = np.asarray(llama.Llama(einsum).apply(params, ids, attention_mask=mask))
  assert np.abs(ours - single)[valid].max() <= 1e-5
  g_chunked, p_chunked = _grads_and_decode(cfg, params, ids, mask, cache_len=96)
  g_einsum, p_einsum = _grads_and_decode(einsum, params, ids, mask, cache_len=96)
  for a, b in zip(jax.tree_util.tree_leaves(g_chunked), jax.tree_util.tree_leaves(g_einsum)):
    # fp32 sums in another order: gradients reach ~200 here, so the bound is relative
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max())
  np.testing.assert_array_equal(p_chunked, p_einsum)   # with a cache both take the einsum


def test_chunked_attention_equals_grouped_attention_on_rows_that_see_a_key():
  rng = np.random.RandomState(0)
  b, l, h, kv, dh = 2, 100, 4, 2, 8
  q, k, v = (jnp.asarray(rng.randn(b, l, n, dh), jnp.float32) for n in (h, kv, kv))
  key_valid = np.ones((b, l), bool)
  key_valid[0, :37] = False
  mask = llama.causal_padding_mask(jnp.asarray(key_valid), b, l, l, None)
  chunked = llama.causal_chunked_attention(q, k, v, mask, max_chunks=4)
  full = llama.grouped_attention(q, k, v, mask)
  seen = np.asarray(mask).any(-1)
  np.testing.assert_allclose(np.asarray(chunked)[seen], np.asarray(full)[seen], atol=2e-6)
  assert not seen[0, :37].any() and seen[1].all()
  with pytest.raises(ValueError, match="as many keys as queries"):
    llama.causal_chunked_attention(q, k[:, :50], v[:, :50], mask[:, :, :50])


def test_unknown_attention_kernel_is_rejected():
  with pytest.raises(ValueError, match="attention_impl='flash'"):
    llama.tiny_llama(attention_impl="flash")
  with pytest.raises(ValueError, match="attention_chunks=0"):
    llama.tiny_llama(attention_chunks=0)
