"""Feature store: extraction CLI on real videos, resumability, and bad feature files."""

import numpy as np
import pytest

from vaujax.data import features, synthetic
from vaujax.errors import InputError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = tmp_path_factory.mktemp("syn")
  synthetic.generate(str(out), synthetic.SyntheticConfig(num_videos=3, seconds=4.0, fps=4.0))
  return out


def test_extract_folder_and_resume(dataset, tmp_path):
  (dataset / "videos" / "broken.mp4").write_bytes(b"not a video" * 10)
  report = features.extract_folder(str(dataset / "videos"), str(tmp_path / "f"),
                                   features.tiny_encoder(), num_frames=6, log=lambda s: None)
  assert report["written"] == 3 and report["failed"][0][0] == "broken.mp4"
  files = sorted(p.name for p in (tmp_path / "f").iterdir())
  assert len(files) == 3 and all(f.endswith(".npz") for f in files)
  feats = features.read_features(str(tmp_path / "f" / files[0]),
                         {"tower_patches": (64, 32), "dino_patches": (64, 64), "dino_cls": (64,),
                          "timestamps": ()})
  assert feats["tower_patches"].shape == (6, 64, 32)
  again = features.extract_folder(str(dataset / "videos"), str(tmp_path / "f"),
                                  features.tiny_encoder(), num_frames=6, log=lambda s: None)
  assert again["written"] == 0 and again["skipped"] == 3
  (dataset / "videos" / "broken.mp4").unlink()


def test_encoder_matches_towers_applied_by_hand(dataset):
  from vaujax.data import preprocess, video
  from vaujax.models import vit
  enc = features.tiny_encoder()
  frames, _ = video.read_video(next((dataset / "videos").iterdir()), num_frames=3)
  out = enc(frames)
  by_hand = vit.ViT(enc.dino_config).apply(enc.dino_params,
                                           preprocess.preprocess(frames, enc.dino_spec))
  np.testing.assert_allclose(out["dino_cls"], by_hand["cls"], atol=1e-5)


def test_cli(dataset, tmp_path):
  from vaujax.app import features as features_cmd
  features_cmd.run(["vaujax features", "--videos", str(dataset / "videos"), "--out",
                    str(tmp_path / "c"), "--encoder", "tiny", "--fps", "1"])
  assert len(list((tmp_path / "c").glob("*.npz"))) == 3


def test_bad_feature_files(tmp_path):
  good = {"tower_patches": np.zeros((4, 16, 8), np.float32), "timestamps": np.arange(4.0)}
  features.write_features(str(tmp_path / "ok.npz"), good)
  with pytest.raises(InputError, match=r"missing.npz: feature file does not exist"):
    features.read_features(str(tmp_path / "missing.npz"))
  (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
  with pytest.raises(InputError, match=r"corrupt.npz: not a readable feature file"):
    features.read_features(str(tmp_path / "corrupt.npz"))
  with pytest.raises(InputError, match=r"ok.npz: feature 'tower_patches' has shape \(4, 16, 8\), "
                                       r"expected \[T, 16, 32\]"):
    features.read_features(str(tmp_path / "ok.npz"), {"tower_patches": (16, 32)})
  with pytest.raises(InputError, match=r"ok.npz: missing feature 'dino_cls'"):
    features.read_features(str(tmp_path / "ok.npz"), {"dino_cls": None})
  nan = dict(good, tower_patches=np.full((4, 16, 8), np.nan, np.float32))
  np.savez(tmp_path / "nan.npz", **nan)
  with pytest.raises(InputError, match=r"nan.npz: feature 'tower_patches' contains NaN"):
    features.read_features(str(tmp_path / "nan.npz"))
  with pytest.raises(ValueError, match="contains NaN or Inf; not written"):
    features.write_features(str(tmp_path / "never.npz"), nan)
  assert not (tmp_path / "never.npz").exists()
  np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
  with pytest.raises(InputError, match=r"obj.npz: not a readable feature file"):
    features.read_features(str(tmp_path / "obj.npz"))
  np.savez(tmp_path / "frames.npz", tower_patches=np.zeros((4, 2, 2)), timestamps=np.zeros(3))
  with pytest.raises(InputError, match=r"frames.npz: features disagree on the number of frames"):
    features.read_features(str(tmp_path / "frames.npz"))
