"""Feature store: extraction CLI on real videos, resumability, and bad feature files."""

import dataclasses
import json

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
  files = sorted(p.name for p in (tmp_path / "f").iterdir()
                 if p.name != features.EXTRACTION_RECORD)
  assert len(files) == 3 and all(f.endswith(".npz") for f in files)
  feats = features.read_features(str(tmp_path / "f" / files[0]),
                         {"tower_patches": (64, 32), "dino_patches": (64, 64), "dino_cls": (64,),
                          "timestamps": ()})
  assert feats["tower_patches"].shape == (6, 64, 32)
  again = features.extract_folder(str(dataset / "videos"), str(tmp_path / "f"),
                                  features.tiny_encoder(), num_frames=6, log=lambda s: None)
  assert again["written"] == 0 and again["skipped"] == 3
  (dataset / "videos" / "broken.mp4").unlink()


def test_extraction_record_refuses_other_settings(dataset, tmp_path):
  """A feature folder remembers its sampling (and the encoder's name): extracting into it with
  other settings is refused before anything is read or written; the same settings resume."""
  videos, out = str(dataset / "videos"), tmp_path / "f"
  quiet = dict(log=lambda s: None)
  report = features.extract_folder(videos, str(out), features.tiny_encoder(), fps=2.0,
                                   max_frames=6, encoder_name="tiny:0", **quiet)
  assert report["written"] == 3
  record = json.loads((out / features.EXTRACTION_RECORD).read_text())
  assert record == {"fps": 2.0, "num_frames": None, "max_frames": 6, "min_frames": None,
                    "encoder": "tiny:0"}
  before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
  for other, words in [(dict(fps=2.0, max_frames=6, min_frames=4), "min_frames None"),
                       (dict(fps=1.0, max_frames=6), "fps 2.0"),
                       (dict(num_frames=6), "num_frames None"),
                       (dict(fps=2.0, max_frames=6, encoder_name="tiny:1"), "encoder 'tiny:0'")]:
    with pytest.raises(InputError) as e:
      features.extract_folder(videos, str(out), features.tiny_encoder(), **other, **quiet)
    assert e.value.source == str(out) and words in e.value.problem
  assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before   # nothing touched
  # the same sampling resumes; 0 and None both say "not set"; an unnamed encoder is not compared
  again = features.extract_folder(videos, str(out), features.tiny_encoder(), fps=2.0,
                                  max_frames=6, min_frames=0, **quiet)
  assert again["skipped"] == 3 and again["written"] == 0
  # a folder of files made before records were kept is extracted into unchecked, no record
  (out / features.EXTRACTION_RECORD).unlink()
  (out / min(n for n in before if n.endswith(".npz"))).unlink()
  legacy = features.extract_folder(videos, str(out), features.tiny_encoder(), num_frames=3,
                                   **quiet)
  assert legacy["written"] == 1 and not (out / features.EXTRACTION_RECORD).exists()
  # a damaged record is named
  (out / features.EXTRACTION_RECORD).write_text("{not json")
  with pytest.raises(InputError, match="malformed JSON"):
    features.extract_folder(videos, str(out), features.tiny_encoder(), **quiet)


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


# -- names, collisions, links and frame counts (issue 25) --------------------------------------

def test_a_long_legal_video_name_is_extracted_and_the_rest_follow(dataset, tmp_path):
  """A 249-character name left no room for `<name>.npz.tmp.npz` (ENAMETOOLONG) and the OSError
  aborted the whole extraction: the temporary name is now short, and an OSError on one video
  is reported and counted like a bad video."""
  import os
  import shutil
  videos = tmp_path / "videos"
  videos.mkdir()
  source = sorted((dataset / "videos").glob("*.mp4"))[0]
  long_name = "x" * 245 + ".mp4"
  shutil.copy(source, videos / long_name)
  shutil.copy(source, videos / "zz_after.mp4")
  report = features.extract_folder(str(videos), str(tmp_path / "f"), features.tiny_encoder(),
                                   num_frames=4, log=lambda s: None)
  assert report == {"written": 2, "skipped": 0, "failed": []}
  assert sorted(os.listdir(tmp_path / "f")) == [features.EXTRACTION_RECORD, "x" * 245 + ".npz",
                                               "zz_after.npz"]
  got = features.read_features(str(tmp_path / "f" / ("x" * 245 + ".npz")), frames=4)
  want = features.read_features(str(tmp_path / "f" / "zz_after.npz"), frames=4)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])
  assert oct((tmp_path / "f" / "zz_after.npz").stat().st_mode & 0o777) == oct(
      0o666 & ~_umask())   # the temporary file did not change the permissions


def _umask():
  import os
  mask = os.umask(0)
  os.umask(mask)
  return mask


def test_videos_sharing_a_name_each_get_their_own_feature_file(dataset, tmp_path):
  """cam1/001.mp4, cam2/001.mp4 and x/001.avi beside x/001.mp4 used to share 001.npz: each now
  has its own file (folders mirrored; the extension kept where one folder holds both), and a
  video path finds its own file, also written from another root (`videos/cam1/001.mp4`)."""
  import shutil
  from vaujax.data import pipeline
  videos = tmp_path / "videos"
  sources = sorted((dataset / "videos").glob("*.mp4"))[:3]
  layout = {"cam1/001.mp4": sources[0], "cam2/001.mp4": sources[1], "x/001.mp4": sources[2],
            "x/001.avi": sources[0], "002.mp4": sources[1]}
  for name, source in layout.items():
    (videos / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, videos / name)
  out = tmp_path / "f"
  report = features.extract_folder(str(videos), str(out), features.tiny_encoder(),
                                   num_frames=3, log=lambda s: None)
  assert report["written"] == 5 and not report["failed"]
  written = sorted(str(p.relative_to(out)) for p in out.rglob("*.npz"))
  assert written == ["002.npz", "cam1/001.npz", "cam2/001.npz", "x/001.avi.npz",
                     "x/001.mp4.npz"]
  by_source = {s: features.read_features(str(out / "cam1/001.npz" if s == sources[0] else
                                                 out / "cam2/001.npz" if s == sources[1] else
                                                 out / "x/001.mp4.npz")) for s in sources}
  cfg = dataclasses.make_dataclass("Cfg", ["feature_dir", "feature_shapes", "variable_frames",
                                           "num_frames"])(str(out), None, False, 3)
  for video, source in [*layout.items(), ("videos/cam1/001.mp4", sources[0]),
                        ("cam2/./001.mp4", sources[1])]:
    path, feats = pipeline._read_example_features(cfg, {"id": video, "video": video})
    np.testing.assert_array_equal(feats["dino_cls"], by_source[source]["dino_cls"])
  assert not np.array_equal(by_source[sources[0]]["dino_cls"], by_source[sources[1]]["dino_cls"])
  items = [{"id": v, "video": v} for v in layout]
  pipeline.check_unique_keys(items, "train.json", str(out))        # one file per video
  again = features.extract_folder(str(videos), str(out), features.tiny_encoder(), num_frames=3,
                                  log=lambda s: None)
  assert again["skipped"] == 5 and again["written"] == 0


def test_a_folder_keyed_by_the_bare_name_still_works(tmp_path):
  """Feature folders written before (the demo's, fixtures, UCF-Crime's flat folders): a video
  path finds `<name>.npz` at the last step of the rule, unchanged."""
  flat = tmp_path / "flat"
  flat.mkdir()
  for name in ("001", "Arson004_x264"):
    features.write_features(str(flat / f"{name}.npz"),
                            {"dino_cls": np.full((2, 4), len(name), np.float32)})
  for video, name in [("001.mp4", "001"), ("videos/001.mp4", "001"), ("a/b/001.avi", "001"),
                      ("Arson/Arson004_x264.mp4", "Arson004_x264")]:
    assert features.video_feature_path(str(flat), video) == str(flat / f"{name}.npz")
  assert features.feature_keys("videos/cam1/001.mp4") == [
      "videos/cam1/001.mp4", "videos/cam1/001", "cam1/001.mp4", "cam1/001", "001.mp4", "001"]
  # nothing there: the error names the mirrored path extraction would write
  with pytest.raises(InputError, match=r"f/cam3/009.npz: feature file does not exist"):
    features.read_features(features.video_feature_path(str(tmp_path / "f"), "cam3/009.mp4"))


def _fake_dataset(root, frames_per_video):
  """Instruction items and feature files: video `v<i>` with frames_per_video[i] frames."""
  from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
  (root / "feats").mkdir()
  items = []
  for i, t in enumerate(frames_per_video):
    features.write_features(str(root / "feats" / f"v{i}.npz"),
                            {"tower_patches": np.full((t, 4, 8), i, np.float32),
                             "timestamps": np.arange(t, dtype=np.float64)})
    items.append({"id": f"e{i}", "video": f"videos/v{i}.mp4", "_index": i, "conversations": [
        {"from": "human", "value": "<video>\nwhat happens?"}, {"from": "gpt", "value": "x"}]})
  tok = Tokenizer.load(train_sentencepiece(["what happens in the video x"] * 50, root / "sp", 300))
  return items, tok


def test_one_feature_file_with_another_frame_count_is_named(tmp_path):
  """7 frames among 8-frame files used to fail inside grain's batch stacking ("all input arrays
  must have the same shape"), naming no file, and skip_bad did not catch it."""
  from vaujax.data import pipeline
  items, tok = _fake_dataset(tmp_path, [8, 8, 7, 8])
  base = dict(feature_dir=str(tmp_path / "feats"), num_video_tokens=0, max_length=256,
              batch_size=4, shuffle=False, read_threads=-1,
              feature_shapes={"tower_patches": (4, 8)})
  for num_frames, match in ((8, r"v2.npz: has 7 frames, expected 8"),
                            (None, r"v2.npz: has 7 frames but .*v0.npz has 8")):
    cfg = pipeline.PipelineConfig(**base, num_frames=num_frames)
    with pytest.raises(InputError, match=match):
      next(iter(pipeline.make_dataset(items, cfg, tok)))
    kept, problems = pipeline.drop_examples_without_features(items, cfg)   # skip-and-count
    assert [i["id"] for i in kept] == ["e0", "e1", "e3"] and len(problems) == 1
    assert "v2.npz: has 7 frames" in problems[0]
    batch = next(iter(pipeline.make_dataset(kept, dataclasses.replace(cfg, batch_size=3), tok)))
    assert batch["tower_patches"].shape == (3, 8, 4, 8)


def test_a_feature_file_linking_outside_the_feature_dir_is_refused(tmp_path):
  import os
  from vaujax.data import pipeline
  items, tok = _fake_dataset(tmp_path, [8, 8])
  (tmp_path / "elsewhere").mkdir()
  os.replace(tmp_path / "feats" / "v1.npz", tmp_path / "elsewhere" / "v1.npz")
  os.symlink(tmp_path / "elsewhere" / "v1.npz", tmp_path / "feats" / "v1.npz")
  os.symlink("v0.npz", tmp_path / "feats" / "inside.npz")        # a link inside is fine
  cfg = pipeline.PipelineConfig(str(tmp_path / "feats"), num_video_tokens=0, max_length=32,
                                batch_size=1, feature_shapes={"tower_patches": (4, 8)})
  kept, problems = pipeline.drop_examples_without_features(
      items + [dict(items[0], id="e9", video="other/inside.mp4")], cfg)
  assert [i["id"] for i in kept] == ["e0", "e9"]
  assert problems == [f"{tmp_path}/feats/v1.npz: resolves to {tmp_path}/elsewhere/v1.npz, "
                      f"outside the feature directory {tmp_path}/feats"]


def test_videos_that_would_read_one_feature_file_are_refused(tmp_path):
  """With a folder keyed by the bare name, cam1/001.mp4 and cam2/001.mp4 (or x/001.avi) would
  both read 001.npz: refused, naming both examples and the file; the same video written from
  another root is one video."""
  import json
  from vaujax.data import pipeline
  flat = tmp_path / "flat"
  flat.mkdir()
  for name in ("001", "002"):
    features.write_features(str(flat / f"{name}.npz"), {"dino_cls": np.zeros((1, 2))})
  conv = [{"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "A"}]
  same = [{"id": "a", "video": "cam1/001.mp4", "conversations": conv},
          {"id": "b", "video": "cam1/./001.mp4", "conversations": conv},   # the same video,
          {"id": "b2", "video": "videos/cam1/001.mp4", "conversations": conv},  # from another root
          {"id": "b3", "video": "001.mp4", "conversations": conv},
          {"id": "c", "video": "cam1/002.mp4", "conversations": conv},
          {"id": "d", "conversations": [{"from": "human", "value": "no video"},
                                        {"from": "gpt", "value": "A"}]}]
  (tmp_path / "ok.json").write_text(json.dumps(same))
  items, problems = pipeline.json_source(str(tmp_path / "ok.json"))
  assert len(items) == 6 and problems == []
  pipeline.check_unique_keys(items, "ok.json", str(flat))
  for other in ("cam2/001.mp4", "cam1/001.avi", "x/001.avi"):
    with pytest.raises(InputError, match=rf"bad.json: examples a and z: videos 'cam1/001.mp4' "
                                         rf"and '{other}' would both read the feature file "
                                         rf"{flat}/001.npz"):
      pipeline.check_unique_keys(same + [dict(same[0], id="z", video=other)], "bad.json",
                                 str(flat))
    mirrored = tmp_path / "mirrored"          # one file each: accepted
    for video in ("cam1/001.mp4", other):
      key = features.feature_keys(video)[1] if other != "cam1/001.avi" else video
      (mirrored / key).parent.mkdir(parents=True, exist_ok=True)
      features.write_features(str(mirrored / f"{key}.npz"), {"dino_cls": np.zeros((1, 2))})
    if other == "cam1/001.avi":
      features.write_features(str(mirrored / "cam1/001.mp4.npz"), {"dino_cls": np.zeros((1, 2))})
    pipeline.check_unique_keys(same[:1] + [dict(same[0], id="z", video=other)], "ok.json",
                               str(mirrored))


def test_zero_frame_feature_files(tmp_path):
  empty = {"tower_patches": np.zeros((0, 4, 8), np.float32), "timestamps": np.zeros(0)}
  features.write_features(str(tmp_path / "zero.npz"), empty)
  assert features.frame_count(features.read_features(str(tmp_path / "zero.npz"))) == 0
  for kwargs in ({"expected": {"tower_patches": (4, 8)}}, {"frames": 8}, {"expected": {}}):
    with pytest.raises(InputError, match=r"zero.npz: has (zero frames|0 frames, expected 8)"):
      features.read_features(str(tmp_path / "zero.npz"), **kwargs)


def test_tetg_frames_are_extracted_beyond_the_models_cap(dataset, tmp_path):
  """With tetg_fps, a video whose model frames are capped also gets TETG's own frames (DINOv2
  class embeddings at that rate, each equal to the frame's own); where the rate gives no more
  frames than the model's, the file has none. The record keeps the rate."""
  from vaujax.data import video
  videos, out = str(dataset / "videos"), tmp_path / "f"
  enc = features.tiny_encoder()
  report = features.extract_folder(videos, str(out), enc, fps=1.0, max_frames=2, tetg_fps=2.0,
                                   log=lambda s: None)
  assert report["written"] == 3
  assert json.loads((out / features.EXTRACTION_RECORD).read_text())["tetg_fps"] == 2.0
  name = sorted(p.name for p in (dataset / "videos").iterdir())[0]
  feats = features.read_features(str(out / name.replace(".mp4", ".npz")), frames=2)
  frames, stamps = video.read_video(dataset / "videos" / name, fps=2.0)
  assert len(stamps) == 8 and features.frame_count(feats) == 2         # 4 s: 8 at 2 fps
  np.testing.assert_array_equal(feats["tetg_timestamps"], stamps)
  np.testing.assert_allclose(feats["tetg_cls"], enc(frames)["dino_cls"], atol=1e-6)
  cls, times = features.tetg_inputs(feats)
  assert cls is feats["tetg_cls"] and times is feats["tetg_timestamps"]
  assert set(features.without_tetg_frames(feats)) == set(features.KEYS)
  # no more frames than the model's: none written, TETG reads the model's
  few = features.extract_folder(videos, str(tmp_path / "g"), enc, fps=1.0, max_frames=4,
                                tetg_fps=1.0, log=lambda s: None)
  plain = features.read_features(str(tmp_path / "g" / name.replace(".mp4", ".npz")))
  assert few["written"] == 3 and set(plain) == set(features.KEYS)
  assert features.tetg_inputs(plain)[1] is plain["timestamps"]
  # the encoded video of `vaujax infer --video` carries them the same way
  encoded, _ = features.encode_video(str(dataset / "videos" / name), enc, 2, fps=1.0,
                                     tetg_fps=2.0)
  np.testing.assert_array_equal(encoded["tetg_timestamps"], stamps)
  # another rate into the folder is refused
  with pytest.raises(InputError, match=r"tetg_fps 2.0 \(asked: 1.0\)"):
    features.extract_folder(videos, str(out), enc, fps=1.0, max_frames=2, tetg_fps=1.0,
                            log=lambda s: None)


@pytest.mark.parametrize("arrays, words", [
    (dict(tetg_cls=np.zeros((5, 4))), "need both"),
    (dict(tetg_cls=np.zeros((5, 4)), tetg_timestamps=np.zeros(6)), "one frame count"),
    (dict(tetg_cls=np.zeros((5, 3)), tetg_timestamps=np.zeros(5)), "expected [S, D] as dino_cls"),
    (dict(tetg_cls=np.zeros((5, 4)), tetg_timestamps=np.zeros((5, 2))), "expected [S, D]"),
])
def test_tetg_frames_are_checked(tmp_path, arrays, words):
  path = str(tmp_path / "x.npz")
  base = {"dino_cls": np.zeros((2, 4), np.float32), "timestamps": np.arange(2.0)}
  features.write_features(path, {**base, **arrays})
  with pytest.raises(InputError) as e:
    features.read_features(path)
  assert e.value.source == path and words in e.value.problem
  features.write_features(path, {**base, "tetg_cls": np.zeros((5, 4)),
                                 "tetg_timestamps": np.arange(5.0)})
  assert features.frame_count(features.read_features(path, frames=2)) == 2
