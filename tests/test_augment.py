"""Shifted, time-scaled and mirrored copies: features and annotations move together, files are
idempotent."""

import os

import numpy as np
import pytest

from vaujax.data import augment, features
from vaujax.data.annotations import VideoAnnotation
from vaujax.models import tetg

STAMPS = np.arange(8) + 0.5   # 8 frames, one per second, centred (as features.extract_folder)


def _feats(seed=0):
  rng = np.random.RandomState(seed)
  return {"tower_patches": rng.randn(8, 4, 3).astype(np.float32),
          "dino_patches": rng.randn(8, 4, 2).astype(np.float32),
          "dino_cls": rng.randn(8, 2).astype(np.float32), "timestamps": STAMPS}


def _video(interval=(2.2, 4.9)):
  return VideoAnnotation("Arson001_x264", 8.0, ((0.0, 6.1), interval), ("cars", "fire"),
                         "Arson", (interval,))


@pytest.mark.parametrize("shift", [-2, -1, 1, 2])
def test_frames_and_intervals_move_together(shift):
  feats, v = _feats(), _video()
  moved = augment.shift_features(feats, shift)
  np.testing.assert_array_equal(moved["timestamps"], STAMPS)
  for i in range(8):
    j = min(max(i - shift, 0), 7)
    np.testing.assert_array_equal(moved["dino_patches"][i], feats["dino_patches"][j])
    np.testing.assert_array_equal(moved["dino_cls"][i], feats["dino_cls"][j])
  a = augment.shift_annotation(v, shift * 1.0, "Arson001_x264_shift")
  assert a.anomaly_intervals[0] == (round(2.2 + shift, 1), round(4.9 + shift, 1))
  assert a.label == "Arson" and a.video_id == "Arson001_x264_shift"
  # the frame labels of the copy are the original's frame labels, moved by `shift` frames
  original = tetg.frame_labels(STAMPS, v.anomaly_intervals)
  copy = tetg.frame_labels(STAMPS, a.anomaly_intervals)
  inside = [i for i in range(8) if 0 <= i - shift < 8]
  assert [copy[i] for i in inside] == [original[i - shift] for i in inside]


def test_intervals_are_clipped_and_lost_events_refused():
  v = _video((5.5, 7.5))
  a = augment.shift_annotation(v, 1.0, "x", min_kept=0.5)
  assert a.anomaly_intervals == ((6.5, 8.0),) and a.timestamps[0] == (1.0, 7.1)
  assert augment.shift_annotation(v, 1.0, "x", min_kept=0.9) is None   # 1.5 of 2.0 s left
  gone = VideoAnnotation("A1", 8.0, ((7.0, 7.9),), ("late",), "Normal", ())
  assert augment.shift_annotation(gone, 2.0, "x").timestamps == ()      # sentence pushed out


def test_written_copies_load_and_a_rerun_reuses_them(tmp_path):
  d = str(tmp_path)
  features.write_features(os.path.join(d, "Arson001_x264.npz"), _feats())
  normal = VideoAnnotation("Normal_Videos_002_x264", 8.0, ((0.0, 8.0),), ("cars",))
  first = augment.write_time_shifted(d, [_video(), normal], copies=2, seed=3)
  assert len(first) == 2 and len({a.video_id for a in first}) == 2    # normal videos: no copy
  for a in first:
    shift = int(a.video_id.rsplit("shift", 1)[1])
    loaded = features.read_features(os.path.join(d, a.video_id + ".npz"))
    np.testing.assert_array_equal(loaded["dino_cls"], augment.shift_features(_feats(), shift)[
        "dino_cls"])
    assert a.anomaly_intervals[0][0] == pytest.approx(2.2 + shift)
  mtimes = {n: os.path.getmtime(os.path.join(d, n)) for n in os.listdir(d)}
  again = augment.write_time_shifted(d, [_video(), normal], copies=2, seed=3)
  assert again == first
  assert {n: os.path.getmtime(os.path.join(d, n)) for n in os.listdir(d)} == mtimes


def test_time_scaled_copy_runs_on_a_slower_clock(tmp_path):
  """Same frames, every time multiplied: features' timestamps, duration, sentences, intervals;
  TETG's frame labels of the copy equal the original's (the anomaly covers the same frames)."""
  feats, v = _feats(), _video()
  features.write_features(str(tmp_path / "Arson001_x264.npz"), feats)
  (copy,) = augment.write_time_scaled(str(tmp_path), [v], factors=(2.0, 2.0), seed=0)
  assert copy.video_id == "Arson001_x264_scale2"
  assert copy.duration == 16.0 and copy.anomaly_intervals == ((4.4, 9.8),)
  assert copy.timestamps == ((0.0, 12.2), (4.4, 9.8)) and copy.sentences == v.sentences
  scaled = features.read_features(str(tmp_path / "Arson001_x264_scale2.npz"))
  np.testing.assert_array_equal(scaled["timestamps"], STAMPS * 2.0)
  np.testing.assert_array_equal(scaled["dino_cls"], feats["dino_cls"])
  np.testing.assert_array_equal(tetg.frame_labels(scaled["timestamps"], copy.anomaly_intervals),
                                tetg.frame_labels(STAMPS, v.anomaly_intervals))
  mtime = os.path.getmtime(tmp_path / "Arson001_x264_scale2.npz")   # a rerun reuses the file
  again = augment.write_time_scaled(str(tmp_path), [v], factors=(2.0, 2.0), seed=0)
  assert again == [copy] and os.path.getmtime(tmp_path / "Arson001_x264_scale2.npz") == mtime
  factors = {float(augment.write_time_scaled(str(tmp_path), [dataclasses_replace(v, f"V{i}")],
                                             seed=0)[0].video_id.rsplit("scale", 1)[1])
             for i in range(6) if not features.write_features(
                 str(tmp_path / f"V{i}.npz"), feats)}
  assert len(factors) > 1 and all(1.5 <= f <= 3.0 for f in factors)   # drawn per video


def dataclasses_replace(v, video_id):
  import dataclasses
  return dataclasses.replace(v, video_id=video_id)


def _two_events():
  from vaujax.data.annotations import Event
  events = (Event("Arson", 1.2, 2.9, "top left"), Event("Fighting", 4.0, 5.5, "centre"))
  return VideoAnnotation("Arson002_x264", 8.0, ((1.2, 2.9), (4.0, 5.5)), ("fire", "fight"),
                         "Arson", tuple(e.interval for e in events), events)


def test_shifted_and_scaled_copies_carry_every_event(tmp_path):
  from vaujax.data.annotations import Event
  v = _two_events()
  moved = augment.shift_annotation(v, 2.0, "x")
  assert moved.events == (Event("Arson", 3.2, 4.9, "top left"),
                          Event("Fighting", 6.0, 7.5, "centre"))
  assert moved.anomaly_intervals == tuple(e.interval for e in moved.events)
  assert augment.shift_annotation(v, 3.0, "x") is None     # the second event would lose 1 s
  scaled = augment.scale_annotation(v, 2.0, "y")
  assert scaled.events == (Event("Arson", 2.4, 5.8, "top left"),
                           Event("Fighting", 8.0, 11.0, "centre"))
  features.write_features(str(tmp_path / "Arson002_x264.npz"), _feats())
  copies = augment.write_time_shifted(str(tmp_path), [v], copies=4, max_shift=2, seed=0)
  assert len(copies) == 3 and all(len(c.events) == 2 for c in copies)  # -2 s cuts the first
  for c in copies:
    shift = int(c.video_id.rsplit("shift", 1)[1])
    assert [e.start for e in c.events] == [round(1.2 + shift, 1), round(4.0 + shift, 1)]
    assert [e.region for e in c.events] == ["top left", "centre"]


def test_several_time_scaled_copies_keep_the_first_and_differ(tmp_path):
  feats, v = _feats(), _video()
  features.write_features(str(tmp_path / "Arson001_x264.npz"), feats)
  (one,) = augment.write_time_scaled(str(tmp_path), [v], seed=3)
  three = augment.write_time_scaled(str(tmp_path), [v], copies=3, seed=3)
  assert three[0] == one and len({c.video_id for c in three}) == 3
  for copy in three:
    factor = float(copy.video_id.rsplit("scale", 1)[1])
    assert 1.5 <= factor <= 3.0 and copy.duration == round(v.duration * factor, 1)
    np.testing.assert_allclose(
        features.read_features(str(tmp_path / f"{copy.video_id}.npz"))["timestamps"],
        STAMPS * factor)
  # one fixed factor: the draws coincide, one copy
  assert len(augment.write_time_scaled(str(tmp_path), [v], factors=(2.0, 2.0), copies=3)) == 1


def test_time_scaled_copies_drawn_by_duration(tmp_path):
  """`durations`: each copy's duration is drawn from the range whatever the video's length (an
  8 s and a 2 s video both land in [20, 30] s); a bad range is refused."""
  feats = _feats()
  videos = [dataclasses_replace(_video(), f"V{i}") for i in range(6)]
  videos += [dataclasses_replace(VideoAnnotation("W", 2.0, ((0.4, 1.2),), ("fire",), "Arson",
                                                 ((0.4, 1.2),)), f"X1{i}") for i in range(6)]
  for v in videos:
    features.write_features(str(tmp_path / f"{v.video_id}.npz"), feats)
  copies = augment.write_time_scaled(str(tmp_path), videos, durations=(20.0, 30.0), seed=0)
  assert len(copies) == 12
  for v, copy in zip(videos, copies):
    factor = float(copy.video_id.rsplit("scale", 1)[1])
    assert 19.9 <= copy.duration <= 30.1 and copy.duration == round(v.duration * factor, 1)
  assert len({c.duration for c in copies}) > 6                     # drawn, not one value
  for bad in ((0.0, 4.0), (30.0, 20.0)):
    with pytest.raises(ValueError, match="durations"):
      augment.write_time_scaled(str(tmp_path), videos[:1], durations=bad)


def test_thinned_frames_keep_at_most_the_rate():
  assert augment.thinned_frames(np.arange(12) * 0.25, 1.0).tolist() == [0, 4, 8]
  assert augment.thinned_frames(np.arange(5) * 1.0, 1.0).tolist() == [0, 1, 2, 3, 4]
  assert augment.thinned_frames([0.0, 0.4, 0.9, 1.1, 2.05], 1.0).tolist() == [0, 2, 4]
  assert augment.thinned_frames(np.arange(11) * 0.3, 1.0).tolist() == [0, 3, 7, 10]
  assert augment.thinned_frames(np.arange(6) * 0.1, 0.0).tolist() == list(range(6))


def test_faster_copies_thinned_as_sampling_would(tmp_path):
  """A 12-frame, 12 s video on a 4x faster clock (3 s) keeps the frames 1 s apart, as 1-fps
  sampling of a 3-s video would: 3 frames, each the original frame at that moment, the
  interval scaled; TETG's own frames are dropped. A copy that needs no thinning keeps its
  name and every frame."""
  rng = np.random.RandomState(0)
  feats = {"dino_cls": rng.randn(12, 2).astype(np.float32),
           "dino_patches": rng.randn(12, 4, 2).astype(np.float32),
           "timestamps": np.arange(12.0), "tetg_cls": rng.randn(24, 2).astype(np.float32),
           "tetg_timestamps": np.arange(24) * 0.5}
  features.write_features(str(tmp_path / "A1.npz"), feats)
  v = VideoAnnotation("A1", 12.0, ((3.0, 6.0),), ("fire",), "Arson", ((3.0, 6.0),))
  (copy,) = augment.write_time_scaled(str(tmp_path), [v], durations=(3.0, 3.0), max_fps=1.0)
  assert copy.video_id == "A1_scale0.25_fps1" and copy.anomaly_intervals == ((0.8, 1.5),)
  thin = features.read_features(str(tmp_path / "A1_scale0.25_fps1.npz"))
  assert sorted(thin) == ["dino_cls", "dino_patches", "timestamps"]
  np.testing.assert_array_equal(thin["timestamps"], [0.0, 1.0, 2.0])
  np.testing.assert_array_equal(thin["dino_cls"], feats["dino_cls"][[0, 4, 8]])
  np.testing.assert_array_equal(thin["dino_patches"], feats["dino_patches"][[0, 4, 8]])
  (slow,) = augment.write_time_scaled(str(tmp_path), [v], factors=(2.0, 2.0), max_fps=1.0)
  assert slow.video_id == "A1_scale2"
  assert len(features.read_features(str(tmp_path / "A1_scale2.npz"))["timestamps"]) == 12


def test_copies_move_and_scale_tetgs_own_frames(tmp_path):
  """TETG's denser frames move with the model's: a shift of k model frames (2 s apart) moves
  them by the same seconds (2k frames at 1 s), a slower clock scales their times."""
  rng = np.random.RandomState(1)
  model_t = np.arange(4) * 2.0 + 1.0
  dense_t = np.arange(8) + 0.5
  feats = {"dino_cls": rng.randn(4, 2).astype(np.float32), "timestamps": model_t,
           "tetg_cls": rng.randn(8, 2).astype(np.float32), "tetg_timestamps": dense_t}
  for k in (-1, 1):
    moved = augment.shift_features(feats, k)
    np.testing.assert_array_equal(moved["tetg_timestamps"], dense_t)
    source = np.clip(np.arange(8) - 2 * k, 0, 7)
    np.testing.assert_array_equal(moved["tetg_cls"], feats["tetg_cls"][source])
    np.testing.assert_array_equal(moved["dino_cls"], feats["dino_cls"][np.clip(
        np.arange(4) - k, 0, 3)])
  features.write_features(str(tmp_path / "Arson001_x264.npz"), feats)
  v = VideoAnnotation("Arson001_x264", 8.0, ((2.0, 5.0),), ("fire",), "Arson", ((2.0, 5.0),))
  copy, = augment.write_time_scaled(str(tmp_path), [v], factors=(2.0, 2.0))
  scaled = features.read_features(str(tmp_path / f"{copy.video_id}.npz"))
  np.testing.assert_array_equal(scaled["tetg_timestamps"], dense_t * 2.0)
  np.testing.assert_array_equal(scaled["timestamps"], model_t * 2.0)
  np.testing.assert_array_equal(scaled["tetg_cls"], feats["tetg_cls"])


def test_mirrored_copies_move_every_event_to_the_other_side(tmp_path):
  import dataclasses
  from vaujax.data import regions
  from vaujax.data.annotations import Event
  from vaujax.models import event_region
  v = dataclasses.replace(_two_events(), sentences=("A car moves from the left to the right.",
                                                     "Fire near the top left of the scene."))
  mirrored = augment.mirror_annotation(v, "m")
  assert mirrored.events == (Event("Arson", 1.2, 2.9, "top right"),
                             Event("Fighting", 4.0, 5.5, "centre"))
  assert mirrored.sentences == ("A car moves from the right to the left.",
                                "Fire near the top right of the scene.")
  assert (mirrored.timestamps, mirrored.anomaly_intervals) == (v.timestamps, v.anomaly_intervals)
  assert augment.mirror_annotation(mirrored, v.video_id) == v                   # an involution
  for name in regions.REGIONS:                   # every region maps to its mirror image
    row, col = regions.region_cell(name)
    assert regions.region_cell(augment.mirror_text(name)) == (row, 2 - col)
  # the patches: each row of the grid reversed; the rest untouched
  feats = _feats()
  out = augment.mirror_features(feats)
  assert np.array_equal(out["tower_patches"][:, [1, 0, 3, 2]], feats["tower_patches"])
  assert np.array_equal(out["dino_patches"][:, [1, 0, 3, 2]], feats["dino_patches"])
  assert out["dino_cls"] is feats["dino_cls"] and out["timestamps"] is feats["timestamps"]
  for key, value in augment.mirror_features(out).items():
    assert np.array_equal(value, feats[key])
  with pytest.raises(ValueError, match=r"tower_patches: expected \[T, g\*g, D\]"):
    augment.mirror_features({"tower_patches": np.zeros((2, 5, 3))})
  # vertical and both: rows reversed, then rows and columns; top and bottom swapped
  grid = np.arange(9)[None, :, None]                       # [1, 3x3, 1]: patch index
  assert augment.mirror_features({"tower_patches": grid}, "vertical")["tower_patches"].ravel(
      ).tolist() == [6, 7, 8, 3, 4, 5, 0, 1, 2]
  assert augment.mirror_features({"tower_patches": grid}, "both")["tower_patches"].ravel(
      ).tolist() == [8, 7, 6, 5, 4, 3, 2, 1, 0]
  for name in regions.REGIONS:
    row, col = regions.region_cell(name)
    assert regions.region_cell(augment.mirror_text(name, "vertical")) == (2 - row, col)
    assert regions.region_cell(augment.mirror_text(name, "both")) == (2 - row, 2 - col)
  assert augment.mirror_text("Top left, from the left", "vertical") == "Bottom left, from the left"
  with pytest.raises(ValueError, match="mirror axis must be one of"):
    augment.mirror_text("left", "diagonal")
  # the region hint read from a mirrored copy's patches is the mirrored region
  rng = np.random.RandomState(0)
  p = np.cumsum(rng.normal(0, 0.05, (10, 64, 8)), 0)
  cells = event_region.patch_cells(64)
  p[np.ix_(np.arange(4, 7), cells == 3)] += 3.0                               # middle left
  t = np.arange(10.0)
  assert regions.REGIONS[event_region.event_region(p, t, (4, 6))] == "middle left"
  flipped = augment.mirror_features({"tower_patches": p})["tower_patches"]
  assert regions.REGIONS[event_region.event_region(flipped, t, (4, 6))] == "middle right"
  # files: one copy per video whose events all know their region, reused on rerun
  features.write_features(str(tmp_path / "Arson002_x264.npz"), _feats())
  features.write_features(str(tmp_path / "Arson001_x264.npz"), _feats(1))
  copies = augment.write_mirrored(str(tmp_path), [v, _video()])   # _video: no events
  assert [c.video_id for c in copies] == ["Arson002_x264_mirror"]
  written = features.read_features(str(tmp_path / "Arson002_x264_mirror.npz"))
  assert np.array_equal(written["tower_patches"], out["tower_patches"])
  mtime = os.path.getmtime(tmp_path / "Arson002_x264_mirror.npz")
  assert augment.write_mirrored(str(tmp_path), [v]) == copies
  assert os.path.getmtime(tmp_path / "Arson002_x264_mirror.npz") == mtime
  every = augment.write_mirrored(str(tmp_path), [v], tuple(augment.MIRRORS))
  assert [c.video_id for c in every] == ["Arson002_x264_mirror", "Arson002_x264_flip",
                                         "Arson002_x264_mirror_flip"]
  assert [e.region for e in every[2].events] == ["bottom right", "centre"]
  assert os.path.getmtime(tmp_path / "Arson002_x264_mirror.npz") == mtime
  flipped = features.read_features(str(tmp_path / "Arson002_x264_mirror_flip.npz"))
  assert np.array_equal(flipped["tower_patches"][:, [3, 2, 1, 0]], feats["tower_patches"])
