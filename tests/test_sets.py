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


# -- the paper's distance, value by value ----------------------------------------------------------

def test_scores_are_the_manhattan_distance_to_the_previous_frame():
  """D_t[i] = sum_c |F_t[i, c] - F_{t-1}[i, c]| (VA-GPT's SETS), hand-computed; frame 0 takes
  D(0, 1). Squared, Euclidean or max-norm distances give other numbers."""
  f = np.array([[[0, 0, 0], [1, 1, 1]],            # F_0
                [[1, -2, 0], [1, 1, 1]],           # F_1: patch 0 moves by (1, -2, 0)
                [[1, -2, 0], [4, 5, -1]]],         # F_2: patch 1 moves by (3, 4, -2)
               np.float32)
  expected = [[3, 0],                              # frame 0 mirrors D(0, 1)
              [3, 0],                              # |1| + |-2| + |0|
              [0, 9]]                              # |3| + |4| + |-2|
  np.testing.assert_array_equal(sets.frame_differences(jnp.asarray(f)), expected)
  out = sets.select(jnp.asarray(f), jnp.zeros((3, 2, 1)), ratio=0.5, dino_grid=(1, 2),
                    tower_grid=(1, 2))
  np.testing.assert_array_equal(out["scores"], expected)
  np.testing.assert_array_equal(sets.frame_differences(jnp.asarray(f[:1])), [[0, 0]])  # one frame


def test_manhattan_picks_the_patch_that_the_squared_distance_would_not():
  """Patch 0 moves by (1, 1, 1, 1): L1 = 4, L2^2 = 4, L2 = 2, Linf = 1. Patch 1 moves by
  (3, 0, 0, 0): L1 = 3, L2^2 = 9, L2 = 3, Linf = 3. Only the Manhattan distance keeps patch 0."""
  f = np.zeros((2, 4, 4), np.float32)
  f[1, 0] = [1, 1, 1, 1]
  f[1, 1] = [3, 0, 0, 0]
  f[1, 2] = [0.5, 0, 0, 0]
  out = sets.select(jnp.asarray(f), jnp.zeros((2, 4, 2)), ratio=0.25)
  assert out["indices"].tolist() == [[0], [0]]
  np.testing.assert_array_equal(out["scores"], [[4, 3, 0.5, 0]] * 2)
  # the half ratio keeps the two largest, in spatial order
  assert sets.select(jnp.asarray(f), jnp.zeros((2, 4, 2)), ratio=0.5)["indices"].tolist() == [
      [0, 1], [0, 1]]


def test_scores_on_a_coarser_tower_grid_are_the_mean_of_the_covered_patches():
  """DINOv2 2x2 onto a 1x2 tower grid: tower patch 0 covers DINOv2 patches 0 and 2 (left
  column), tower patch 1 covers 1 and 3."""
  f = np.zeros((2, 4, 1), np.float32)
  f[1, :, 0] = [2, 6, 4, -8]                       # distances 2, 6, 4, 8
  out = sets.select(jnp.asarray(f), jnp.zeros((2, 2, 1)), ratio=0.5, dino_grid=(2, 2),
                    tower_grid=(1, 2))
  np.testing.assert_allclose(out["scores"], [[3, 7], [3, 7]])
  assert out["indices"].tolist() == [[1], [1]]


@pytest.mark.parametrize("n, ratio, k", [
    (5, 0.5, 3),        # ceil(2.5): rounds up, not to the nearest
    (4, 0.01, 1),       # at least one patch
    (9, 1 / 9, 1), (9, 1.0, 9), (10, 0.7, 7), (576, 0.5, 288),
    (3, 0.34, 2), (100, 0.011, 2),
])
def test_num_kept_is_ceil_k_n(n, ratio, k):
  assert sets.num_kept(n, ratio) == k


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.0001, 2.0])
def test_ratio_outside_zero_one_is_refused(ratio):
  with pytest.raises(ValueError, match=rf"^SETS keep ratio must be in \(0, 1\], got {ratio}$"):
    sets.num_kept(16, ratio)


def test_distances_accumulate_in_float32():
  """Half-precision features: each channel's change fits float16 but their sum does not."""
  f = np.zeros((2, 1, 4), np.float16)
  f[1, 0] = 30000.0
  d = sets.frame_differences(jnp.asarray(f))
  assert d.dtype == jnp.float32
  np.testing.assert_array_equal(d, [[120000.0], [120000.0]])


def test_select_checks_its_inputs():
  with pytest.raises(ValueError, match=r"^3 DINOv2 frames but 2 tower frames$"):
    sets.select(jnp.zeros((3, 4, 2)), jnp.zeros((2, 4, 2)))
  with pytest.raises(ValueError, match=r"^6 patches is not a square grid; pass the grid "
                                       r"explicitly$"):
    sets.select(jnp.zeros((2, 6, 2)), jnp.zeros((2, 4, 2)))
  with pytest.raises(ValueError, match=r"^8 patches is not a square grid"):
    sets.select(jnp.zeros((2, 4, 2)), jnp.zeros((2, 8, 2)))
  # explicit grids make non-square counts fine: 2x3 DINOv2 onto a 2x4 tower grid
  out = sets.select(jnp.zeros((2, 6, 2)), jnp.zeros((2, 8, 2)), 0.25, dino_grid=(2, 3),
                    tower_grid=(2, 4))
  assert out["indices"].shape == (2, 2)


def test_select_default_ratio_and_outputs():
  rng = np.random.RandomState(7)
  dino = jnp.asarray(rng.randn(3, 16, 4), jnp.float32)
  tower = jnp.asarray(rng.randn(3, 16, 5), jnp.float32)
  out = sets.select(dino, tower)                               # K = 0.5 by default
  assert sorted(out) == ["indices", "mask", "scores", "tokens"]
  assert out["indices"].shape == (3, 8) and out["indices"].dtype == jnp.int32
  assert out["mask"].dtype == jnp.bool_ and out["tokens"].shape == (3, 8, 5)
  scores = np.asarray(sets.frame_differences(dino))
  for t in range(3):
    want = np.sort(np.argsort(-scores[t], kind="stable")[:8])
    assert out["indices"][t].tolist() == want.tolist()
    np.testing.assert_array_equal(out["mask"][t], np.isin(np.arange(16), want))
    np.testing.assert_array_equal(out["tokens"][t], np.asarray(tower)[t, want])
  batch = sets.select_batch(dino[None], tower[None])           # and in select_batch
  np.testing.assert_array_equal(batch["indices"][0], out["indices"])
  grids = sets.select_batch(jnp.zeros((1, 2, 6, 2)), jnp.zeros((1, 2, 8, 3)), 0.25,
                            dino_grid=(2, 3), tower_grid=(2, 4))
  assert grids["tokens"].shape == (1, 2, 2, 3)


def test_select_indices_top_k_in_spatial_order():
  scores = jnp.asarray([[0.1, 0.9, 0.5, 0.9, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
  np.testing.assert_array_equal(sets.select_indices(scores, 3), [[1, 2, 3], [0, 1, 2]])
  assert sets.select_indices(scores, 1).tolist() == [[1], [0]]        # tie: lower index
  assert sets.select_indices(scores, 3).dtype == jnp.int32


def test_grid_map_cells_are_half_open_and_finer_cells_copy_their_parent():
  """Each destination cell d covers [d/dst, (d+1)/dst) of the image along each axis, so a source
  centre on a boundary belongs to the cell on its right only, and every source patch is counted
  once; a destination cell with no source centre copies the source patch under its own centre.
  3x3 onto 2x2: source centres 1/6, 1/2, 5/6 per axis -> cell 0 takes {0}, cell 1 takes {1, 2}."""
  rows = [[1, 0, 0, 0, 0, 0, 0, 0, 0],
          [0, .5, .5, 0, 0, 0, 0, 0, 0],
          [0, 0, 0, .5, 0, 0, .5, 0, 0],
          [0, 0, 0, 0, .25, .25, 0, .25, .25]]
  m = sets.grid_map((3, 3), (2, 2))
  assert m.dtype == np.float32
  np.testing.assert_array_equal(m, rows)
  # 1x2 onto 1x6: source centres 1/4 and 3/4; cells 1 and 4 contain one, the others take the
  # patch under their centre (1/12, 5/12 -> 0; 7/12, 11/12 -> 1)
  np.testing.assert_array_equal(sets.grid_map((1, 2), (1, 6)),
                                [[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]])
  # 2x2 onto 4x4, the whole matrix: each fine cell copies the coarse patch it lies in
  fine = sets.grid_map((2, 2), (4, 4))
  parent = [(r // 2) * 2 + c // 2 for r in range(4) for c in range(4)]
  np.testing.assert_array_equal(fine, np.eye(4)[parent])


def test_kept_count_ignores_float_noise_below_1e_9():
  """k = ceil(K * N) with K * N first rounded to 9 decimals: float noise in the product
  (0.07 * 100 = 7.000000000000001) adds no patch, and neither does any excess under 5e-10;
  a real excess does."""
  assert 0.07 * 100 > 7 and sets.num_kept(100, 0.07) == 7
  assert sets.num_kept(10, 0.2 + 4e-11) == 2           # 2.0000000004 -> 2
  assert sets.num_kept(10, 0.2 + 1e-9) == 3            # 2.00000001 -> 3


def test_distances_are_float32_for_numpy_and_jax_inputs_alike():
  """float64 numpy features are rounded to float32 before the distance, as JAX rounds them when
  they become an array, so both inputs select the same patches. Patch 0 moves by 2^-30 (1.0 and
  1 + 2^-30 are the same float32), patch 1 by 2^-20."""
  f = np.ones((2, 2, 1))
  f[1, 0], f[1, 1] = 1 + 2.0 ** -30, 1 + 2.0 ** -20
  want = [[0.0, 2.0 ** -20]] * 2
  np.testing.assert_array_equal(sets.frame_differences(f), want)
  np.testing.assert_array_equal(sets.frame_differences(jnp.asarray(f)), want)
