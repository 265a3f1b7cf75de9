"""LLaMA-VID context/content tokens against a plain-numpy transcription of the formulas."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vaujax import sharding
from vaujax.models import sets
from vaujax.models.frame_tokens import FrameTokens, FrameTokensConfig

CFG = FrameTokensConfig(vision_dim=12, llm_dim=16, query_dim=8)


def _inputs(b=2, t=3, n=9, q=4, seed=0):
  rng = np.random.RandomState(seed)
  return (rng.randn(b, t, n, CFG.vision_dim).astype(np.float32),
          rng.randn(b, t, q, CFG.query_dim).astype(np.float32))


def _np_reference(p, patches, queries, keep=None):
  def dense(name, x):
    return x @ np.asarray(p[name]["kernel"]) + np.asarray(p[name]["bias"])
  gelu = lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))  # noqa
  out = []
  for b in range(patches.shape[0]):
    row = []
    for t in range(patches.shape[1]):
      v = patches[b, t] if keep is None else patches[b, t][keep[b, t]]
      text_q = dense("vlm_att_projector", queries[b, t])
      k = dense("vlm_att_key_projector", v)
      s = text_q @ k.T / np.sqrt(v.shape[-1])
      s = np.exp(s - s.max(-1, keepdims=True))
      s /= s.sum(-1, keepdims=True)
      ctx = dense("vlm_att_val_projector", (s @ v).mean(0))
      mm = p["mm_projector"]
      h = gelu(v.mean(0) @ np.asarray(mm["fc1"]["kernel"]) + np.asarray(mm["fc1"]["bias"]))
      content = h @ np.asarray(mm["fc2"]["kernel"]) + np.asarray(mm["fc2"]["bias"])
      row += [ctx, content]
    out.append(np.stack(row))
  return np.stack(out)


def test_context_and_content_tokens_match_numpy():
  patches, queries = _inputs()
  model = FrameTokens(CFG)
  params = nn.unbox(model.init(jax.random.key(0), patches, queries))
  ours = np.asarray(model.apply(params, patches, queries))
  assert ours.shape == (2, 6, 16)
  ref = _np_reference(params["params"], patches.astype(np.float64), queries.astype(np.float64))
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_sets_mask_equals_gathered_tokens():
  patches, queries = _inputs()
  dino = np.random.RandomState(5).randn(2, 3, 9, 4).astype(np.float32)
  sel = sets.select_batch(jnp.asarray(dino), jnp.asarray(patches), 0.5)
  model = FrameTokens(CFG)
  params = nn.unbox(model.init(jax.random.key(0), patches, queries))
  masked = np.asarray(model.apply(params, patches, queries, mask=sel["mask"]))
  gathered = np.asarray(model.apply(params, sel["tokens"], queries))
  np.testing.assert_allclose(masked, gathered, atol=1e-5)
  keep = np.asarray(sel["mask"])
  ref = _np_reference(params["params"], patches.astype(np.float64), queries.astype(np.float64),
                      keep)
  np.testing.assert_allclose(masked, ref, atol=1e-5)


def test_tokens_mode_projects_every_kept_token():
  patches, _ = _inputs()
  cfg = FrameTokensConfig(vision_dim=12, llm_dim=16, mode="tokens")
  model = FrameTokens(cfg)
  params = nn.unbox(model.init(jax.random.key(0), patches))
  out = model.apply(params, patches)
  assert out.shape == (2, 27, 16)
  single = model.apply(params, patches[:, 1:2, 4:5])
  np.testing.assert_allclose(out[:, 9 + 4], single[:, 0], atol=1e-6)
  with pytest.raises(ValueError, match="unknown frame token mode"):
    FrameTokensConfig(vision_dim=1, llm_dim=1, mode="grid")


def test_sharded_equals_unsharded(mesh8):
  patches, queries = _inputs(b=8)
  model = FrameTokens(CFG)
  boxed = model.init(jax.random.key(0), patches, queries)
  params = nn.unbox(boxed)
  expected = model.apply(params, patches, queries)
  shard = sharding.logical_to_mesh_sharding(boxed, mesh8)
  with jax.set_mesh(mesh8), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    out = jax.jit(model.apply, in_shardings=(shard, sharding.batch_sharding(mesh8, 4),
                                             sharding.batch_sharding(mesh8, 4)))(
        jax.device_put(params, shard), patches, queries)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


def test_every_param_is_stored_in_param_dtype():
  """param_dtype is the storage type of all five projectors' kernels and biases (bf16 weights
  for a bf16 checkpoint), whatever the compute dtype. Shapes only: nothing is allocated."""
  model = FrameTokens(CFG, dtype=jnp.float32, param_dtype=jnp.bfloat16)
  patches, queries = _inputs(b=1, t=1, n=4, q=2)
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), patches, queries))["params"]
  leaves = jax.tree_util.tree_leaves_with_path(shapes)
  assert len(leaves) == 10                                     # 5 Dense layers x (kernel, bias)
  for path, leaf in leaves:
    assert leaf.dtype == jnp.bfloat16, jax.tree_util.keystr(path)
