"""SETS: known-change selection, kept counts, K=1 identity, grid mapping, jit/vmap/sharding."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vaujax import sharding
from vaujax.models import sets


def _video(t=5, n=16, d=8, changed=((1, (3, 7)), (2, (0,)), (3, (15, 9, 4)), (4, (2,))), seed=0):
  """DINOv2 features where frame t differs from t-1 exactly at the listed patches."""
  rng = np.random.RandomState(seed)
  feats = np.repeat(rng.randn(1, n, d), t, axis=0).astype(np.float32)
  for frame, patches in changed:
    feats[frame:, list(patches)] += rng.randn(len(patches), d).astype(np.float32) * 5 + 10
  return feats


def test_exactly_the_changed_patches_are_selected():
  dino = _video()
  tower = np.arange(5 * 16 * 3, dtype=np.float32).reshape(5, 16, 3)
  for frame, patches in ((1, (3, 7)), (2, (0,)), (3, (4, 9, 15)), (4, (2,))):
    k = len(patches)
    out = sets.select(jnp.asarray(dino), jnp.asarray(tower), ratio=k / 16)
    assert out["indices"][frame].tolist() == sorted(patches)
    np.testing.assert_array_equal(out["tokens"][frame], tower[frame, sorted(patches)])
    assert out["mask"][frame].sum() == k and out["mask"][frame, list(patches)].all()
  # frame 0 is compared with frame 1, so it keeps the patches that change between them
  out = sets.select(jnp.asarray(dino), jnp.asarray(tower), ratio=2 / 16)
  assert out["indices"][0].tolist() == [3, 7]


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_kept_count_is_ceil_k_n(ratio):
  n = 256
  out = sets.select(jnp.asarray(np.random.RandomState(1).randn(4, n, 6), jnp.float32),
                    jnp.zeros((4, n, 3)), ratio=ratio)
  assert out["tokens"].shape == (4, math.ceil(ratio * n), 3)
  assert int(out["mask"].sum()) == 4 * math.ceil(ratio * n)
  assert sets.num_kept(n, 0.5) == 128 and sets.num_kept(10, 0.3) == 3


def test_k_one_returns_every_token_in_order():
  tower = np.random.RandomState(2).randn(3, 16, 5).astype(np.float32)
  out = sets.select(jnp.asarray(_video(t=3)), jnp.asarray(tower), ratio=1.0)
  np.testing.assert_array_equal(out["tokens"], tower)
  assert out["mask"].all()


def test_ties_break_to_lower_index_and_bad_ratio():
  out = sets.select(jnp.zeros((2, 9, 4)), jnp.zeros((2, 9, 2)), ratio=1 / 3)
  assert out["indices"].tolist() == [[0, 1, 2], [0, 1, 2]]
  with pytest.raises(ValueError, match="keep ratio"):
    sets.num_kept(9, 0.0)


def test_grid_mapping_moves_changes_onto_the_tower_grid():
  # DINOv2 4x4 grid, tower 2x2 grid: a change in DINOv2 patch (0, 3) lives in tower patch (0, 1).
  dino = np.zeros((2, 16, 4), np.float32)
  dino[1, 3] += 5.0
  out = sets.select(jnp.asarray(dino), jnp.zeros((2, 4, 3)), ratio=0.25)
  assert out["indices"][1].tolist() == [1]
  m = sets.grid_map((4, 4), (2, 2))
  np.testing.assert_allclose(m.sum(1), 1.0)
  assert m[1].nonzero()[0].tolist() == [2, 3, 6, 7]
  np.testing.assert_array_equal(sets.grid_map((3, 3), (3, 3)), np.eye(9))
  fine = sets.grid_map((2, 2), (4, 4))  # finer tower grid: each cell copies its parent
  assert fine[5].nonzero()[0].tolist() == [0] and fine[15].nonzero()[0].tolist() == [3]
  # 16x16 DINOv2 onto CLIP-L/14@336's 24x24
  assert sets.grid_map((16, 16), (24, 24)).shape == (576, 256)


def test_jit_vmap_and_sharding_agree(mesh8):
  rng = np.random.RandomState(4)
  dino = jnp.asarray(rng.randn(8, 6, 16, 8), jnp.float32)
  tower = jnp.asarray(rng.randn(8, 6, 16, 4), jnp.float32)
  loop = [sets.select(dino[b], tower[b], 0.5) for b in range(8)]
  batched = jax.jit(lambda d, v: sets.select_batch(d, v, 0.5))(dino, tower)
  for b in range(8):
    np.testing.assert_array_equal(batched["indices"][b], loop[b]["indices"])
    np.testing.assert_array_equal(batched["tokens"][b], loop[b]["tokens"])
  spec = sharding.batch_sharding(mesh8, 4)
  with jax.set_mesh(mesh8):
    sharded = jax.jit(lambda d, v: sets.select_batch(d, v, 0.5), in_shardings=(spec, spec))(
        jax.device_put(dino, spec), jax.device_put(tower, spec))
  np.testing.assert_array_equal(np.asarray(sharded["indices"]), np.asarray(batched["indices"]))
  np.testing.assert_array_equal(np.asarray(sharded["tokens"]), np.asarray(batched["tokens"]))


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 5), n=st.sampled_from([4, 9, 16, 25]),
       ratio=st.floats(0.01, 1.0), seed=st.integers(0, 1000))
def test_properties(t, n, ratio, seed):
  rng = np.random.RandomState(seed)
  dino = jnp.asarray(rng.randn(t, n, 3).round(1), jnp.float32)   # rounding creates ties
  tower = jnp.asarray(rng.randn(t, n, 2), jnp.float32)
  out = sets.select(dino, tower, ratio)
  k = math.ceil(round(ratio * n, 9))
  idx = np.asarray(out["indices"])
  assert idx.shape == (t, k)
  assert (np.diff(idx, axis=1) > 0).all()                        # sorted, unique
  scores = np.asarray(out["scores"])
  for f in range(t):                                             # kept scores dominate dropped
    kept, dropped = scores[f, idx[f]], np.delete(scores[f], idx[f])
    if len(dropped):
      assert kept.min() >= dropped.max()
  assert (np.asarray(out["mask"]).sum(1) == k).all()
