import jax
import numpy as np
import pytest

from vaujax import sharding


def test_make_mesh_fills_minus_one():
  mesh = sharding.make_mesh(data=2, fsdp=-1, tensor=2)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}


def test_make_mesh_rejects_bad_shape():
  with pytest.raises(ValueError, match="needs 12 devices"):
    sharding.make_mesh(data=3, fsdp=2, tensor=2)
  with pytest.raises(ValueError, match="at most one"):
    sharding.make_mesh(data=-1, fsdp=-1)


def test_batch_sharding_splits_leading_axis(mesh8):
  x = jax.device_put(np.arange(32.0).reshape(8, 4), sharding.batch_sharding(mesh8, 2))
  assert len(x.addressable_shards) == 8
  assert x.addressable_shards[0].data.shape == (2, 4)
  np.testing.assert_array_equal(np.asarray(x), np.arange(32.0).reshape(8, 4))


def test_optimizer_moments_follow_their_parameters(mesh8):
  import optax
  from jax.sharding import NamedSharding, PartitionSpec as P
  params = {"llm": {"w": np.zeros((8, 4), np.float32)}, "b": np.zeros((3,), np.float32)}
  shards = {"llm": {"w": NamedSharding(mesh8, P("fsdp", "tensor"))},
            "b": NamedSharding(mesh8, P())}
  state = jax.eval_shape(optax.adamw(1e-3).init, params)
  out = sharding.shardings_like_params(state, params, shards, mesh8)
  mu = out[0].mu
  assert mu["llm"]["w"].spec == P("fsdp", "tensor") and mu["b"].spec == P()
  assert out[0].count.spec == P()
