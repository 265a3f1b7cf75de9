"""The declarative checkpoint mapping (convert/mapping.py) on hand-made tables, without torch:
each hook's axis order from the two layouts, import / export through a prefix, and the exact
errors. (The LLaMA table itself is pinned in tests/test_convert_llama.py.)"""

import numpy as np
import pytest

from vaujax.convert import mapping
from vaujax.convert.mapping import CONV, LINEAR, Rule
from vaujax.errors import InputError


def test_linear_hooks_swap_out_and_in():
  w = np.arange(6.0).reshape(2, 3)             # torch Linear [out=2, in=3]
  k = mapping.transpose(w)                     # flax Dense kernel [in, out]
  assert k.shape == (3, 2) and k[2, 1] == w[1, 2]
  assert LINEAR["to_vaujax"] is mapping.transpose and LINEAR["to_source"] is mapping.transpose
  assert mapping.identity(w) is w


def test_conv_hooks_follow_the_two_layouts():
  w = np.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)   # torch Conv2d [O=2, I=3, kh=4, kw=5]
  f = mapping.conv_to_flax(w)                          # flax Conv [kh, kw, I, O]
  assert f.shape == (4, 5, 3, 2)
  for o, i, y, x in [(0, 0, 0, 0), (1, 2, 3, 4), (1, 0, 2, 1), (0, 2, 1, 3)]:
    assert f[y, x, i, o] == w[o, i, y, x]
  back = mapping.conv_to_torch(f)
  assert back.shape == w.shape
  np.testing.assert_array_equal(back, w)
  assert CONV == {"to_vaujax": mapping.conv_to_flax, "to_source": mapping.conv_to_torch}


def test_reshaper():
  r = mapping.reshaper((2, 6))
  np.testing.assert_array_equal(r(np.arange(12).reshape(3, 4)), np.arange(12).reshape(2, 6))


def _table():
  return [Rule(("enc", "dense", "kernel"), "enc.fc.weight", **LINEAR),
          Rule(("enc", "dense", "bias"), "enc.fc.bias"),
          Rule(("norm", "scale"), "norm.weight")]


def _state(prefix="m."):
  return {prefix + "enc.fc.weight": np.arange(6.0).reshape(2, 3),
          prefix + "enc.fc.bias": np.array([1.0, 2.0]),
          prefix + "norm.weight": np.array([0.5, 0.25, 0.125])}


def test_import_builds_the_tree_and_reports_the_keys_it_used():
  state = {**_state(), "other.weight": np.zeros(1)}      # outside the prefix: not ours
  expected = {"enc": {"dense": {"kernel": np.zeros((3, 2)), "bias": np.zeros(2)}},
              "norm": {"scale": np.zeros(3)}}
  tree, used = mapping.import_state(state, _table(), source="ckpt", prefix="m.",
                                    expected=expected)
  assert used == {"m.enc.fc.weight", "m.enc.fc.bias", "m.norm.weight"}
  assert sorted(tree) == ["enc", "norm"] and sorted(tree["enc"]["dense"]) == ["bias", "kernel"]
  np.testing.assert_array_equal(tree["enc"]["dense"]["kernel"], state["m.enc.fc.weight"].T)
  np.testing.assert_array_equal(tree["enc"]["dense"]["bias"], [1.0, 2.0])
  np.testing.assert_array_equal(tree["norm"]["scale"], [0.5, 0.25, 0.125])
  # no prefix, no expected shapes
  tree, used = mapping.import_state(_state(""), _table(), source="ckpt")
  assert used == {"enc.fc.weight", "enc.fc.bias", "norm.weight"}


def test_import_errors_name_the_file_and_the_key():
  with pytest.raises(InputError, match=r"^ckpt: missing key 'm.norm.weight'$"):
    state = _state()
    del state["m.norm.weight"]
    mapping.import_state(state, _table(), source="ckpt", prefix="m.")
  bad = {"enc": {"dense": {"kernel": np.zeros((3, 2)), "bias": np.zeros(2)}},
         "norm": {"scale": np.zeros(4)}}
  with pytest.raises(InputError, match=r"^ckpt: key 'm.norm.weight' has shape \(3,\), which "
                                       r"does not fit the config's norm/scale \(4,\)$"):
    mapping.import_state(_state(), _table(), source="ckpt", prefix="m.", expected=bad)
  bad["norm"]["scale"] = np.zeros(3)
  bad["enc"]["dense"]["kernel"] = np.zeros((2, 3))        # the torch layout, not transposed
  with pytest.raises(InputError, match=r"'m.enc.fc.weight' has shape \(2, 3\), which does not "
                                       r"fit the config's enc/dense/kernel \(2, 3\)$"):
    mapping.import_state(_state(), _table(), source="ckpt", prefix="m.", expected=bad)


def test_unknown_keys_under_the_prefix():
  state = {**_state(), "m.z.weight": np.zeros(1), "m.a.weight": np.zeros(1),
           "m.rope.inv_freq": np.zeros(1), "x.weight": np.zeros(1)}
  with pytest.raises(InputError, match=r"^ckpt: unknown key 'm.a.weight' \(3 unknown in all\)$"):
    mapping.import_state(state, _table(), source="ckpt", prefix="m.")
  with pytest.raises(InputError, match=r"unknown key 'm.z.weight' \(1 unknown in all\)$"):
    mapping.import_state(state, _table(), source="ckpt", prefix="m.",
                         ignore=lambda k: k.endswith(("inv_freq", "a.weight")))
  tree, used = mapping.import_state(state, _table(), source="ckpt", prefix="m.", strict=False)
  assert len(used) == 3
  tree, used = mapping.import_state(state, _table(), source="ckpt", prefix="m.",
                                    ignore=lambda k: not k.startswith("m.enc") and
                                    k != "m.norm.weight")
  assert len(used) == 3


def test_export_is_the_inverse_with_the_prefix():
  params = {"enc": {"dense": {"kernel": np.arange(6.0).reshape(3, 2), "bias": np.ones(2)}},
            "norm": {"scale": np.array([3.0])}}
  out = mapping.export_state(params, _table(), prefix="llm.")
  assert sorted(out) == ["llm.enc.fc.bias", "llm.enc.fc.weight", "llm.norm.weight"]
  np.testing.assert_array_equal(out["llm.enc.fc.weight"], params["enc"]["dense"]["kernel"].T)
  assert out["llm.enc.fc.weight"].flags["C_CONTIGUOUS"]
  np.testing.assert_array_equal(out["llm.norm.weight"], [3.0])
  tree, _ = mapping.import_state(out, _table(), source="x", prefix="llm.")
  np.testing.assert_array_equal(tree["enc"]["dense"]["kernel"], params["enc"]["dense"]["kernel"])
  assert sorted(mapping.export_state(params, _table())) == ["enc.fc.bias", "enc.fc.weight",
                                                            "norm.weight"]


# -- frame tokens (models/frame_tokens.py) ---------------------------------------------------------

def test_masked_mean_is_the_mean_of_the_kept_rows():
  import jax.numpy as jnp

  from vaujax.models.frame_tokens import masked_mean
  x = jnp.asarray([[[1.0, 10.0], [3.0, 30.0], [8.0, 80.0]]])        # [1, 3 patches, 2]
  np.testing.assert_allclose(masked_mean(x, None, axis=1), [[4.0, 40.0]])
  np.testing.assert_allclose(masked_mean(x, jnp.asarray([[True, True, False]]), axis=1),
                             [[2.0, 20.0]])
  np.testing.assert_allclose(masked_mean(x, jnp.asarray([[False, False, True]]), axis=1),
                             [[8.0, 80.0]])                          # one kept row
  np.testing.assert_array_equal(masked_mean(x, jnp.asarray([[False] * 3]), axis=1),
                                [[0.0, 0.0]])                        # none kept: 0, not NaN
  half = masked_mean(x.astype(jnp.bfloat16), jnp.asarray([[True, True, False]]), axis=1)
  assert half.dtype == jnp.bfloat16                                  # the mask takes x's dtype
  np.testing.assert_array_equal(np.asarray(half, np.float32), [[2.0, 20.0]])


def test_frame_tokens_params_follow_their_dtypes_init_and_axes():
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from vaujax.models.frame_tokens import FrameTokens, FrameTokensConfig
  cfg = FrameTokensConfig(vision_dim=64, llm_dim=96, query_dim=32)
  model = FrameTokens(cfg, dtype=jnp.bfloat16, param_dtype=jnp.float32)
  patches = jnp.ones((1, 2, 4, 64), jnp.float32)
  queries = jnp.ones((1, 2, 3, 32), jnp.float32)
  boxed = model.init(jax.random.key(0), patches, queries)
  params = nn.unbox(boxed)["params"]
  assert model.apply({"params": params}, patches, queries).dtype == jnp.bfloat16
  axes = {"vlm_att_projector": ("queries", "vision"), "vlm_att_key_projector":
          ("vision", "vision_out"), "vlm_att_val_projector": ("vision", "embed")}
  axes.update({"mm_projector/fc1": ("vision", "embed"), "mm_projector/fc2": ("mlp", "embed")})
  for name, want in axes.items():
    layer = boxed["params"]
    for part in name.split("/"):
      layer = layer[part]
    assert layer["kernel"].names == want, name
    assert layer["bias"].names == want[1:], name
    kernel = np.asarray(layer["kernel"].value)
    assert kernel.dtype == np.float32
    assert 0.018 < kernel.std() < 0.022, (name, kernel.std())      # normal(0.02)
    np.testing.assert_array_equal(layer["bias"].value, 0.0)
  assert params["mm_projector"]["fc1"]["kernel"].shape == (64, 96)


def test_frame_tokens_config_modes():
  from vaujax.models.frame_tokens import FrameTokensConfig
  assert FrameTokensConfig(vision_dim=4, llm_dim=8).mode == "context_content"
  assert FrameTokensConfig(vision_dim=4, llm_dim=8, mode="tokens").mode == "tokens"
  with pytest.raises(ValueError, match=r"^unknown frame token mode 'Tokens'$"):
    FrameTokensConfig(vision_dim=4, llm_dim=8, mode="Tokens")


def test_mm_projector_uses_the_exact_gelu():
  """LLaMA-VID's mlp2x_gelu is torch nn.GELU() (erf, not the tanh approximation): checked where
  the two differ (pre-activations of order 1)."""
  import math

  import jax.numpy as jnp

  from vaujax.models.frame_tokens import MLPProjector
  x = np.linspace(-3, 3, 8, dtype=np.float32)[None]                  # [1, 8]
  eye = np.eye(8, dtype=np.float32)
  params = {"params": {"fc1": {"kernel": eye, "bias": np.zeros(8, np.float32)},
                       "fc2": {"kernel": eye, "bias": np.full(8, 0.5, np.float32)}}}
  got = np.asarray(MLPProjector(8).apply(params, jnp.asarray(x)))[0]
  want = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) + 0.5 for v in x[0].astype(np.float64)]
  np.testing.assert_allclose(got, want, atol=2e-6)
