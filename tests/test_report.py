"""The demo report and its figures: the loss smoothing by hand, the SETS overlay's kept / dropped
pixels and the tower-view crop, frames read back at the features' own times, the answer caption,
and the report's per-set table from a hand-made summary; the whole report on tiny real videos
with a stand-in assistant."""

import os
import types

import numpy as np
import pytest

from vaujax.app import report
from vaujax.data import video as video_io
from vaujax.evaluate import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_smooth_is_a_debiased_ema():
  # m = 0.5 m + 0.5 v, divided by 1 - 0.5^n: 1; 1.75 / 0.75; 1.875 / 0.875
  np.testing.assert_allclose(plots.smooth([1.0, 3.0, 2.0], 0.5), [1.0, 7 / 3, 15 / 7])
  np.testing.assert_array_equal(plots.smooth([4.0, 1.0, 9.0], 0.0), [4.0, 1.0, 9.0])
  out = plots.smooth([np.nan, 2.0, np.nan, 4.0], 0.5)   # NaN skipped, the average carried
  assert np.isnan(out[0])
  np.testing.assert_allclose(out[1:], [2.0, 2.0, 10 / 3])  # (0.5 + 2) / 0.75
  with pytest.raises(ValueError):
    plots.smooth([1.0], 1.0)


def test_smoothing_window_follows_the_curve_length():
  assert plots.smoothing_for(8000) == pytest.approx(1 - 1 / 160)
  assert plots.smoothing_for(120) == pytest.approx(0.8)     # at least a 5-point window


def test_stages_continue_on_one_step_axis(tmp_path):
  one = [{"step": s, "loss": 1.0 / s} for s in range(1, 101)]
  two = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4}, {"step": 3, "eval_loss": 1.0}]
  stages = plots._stages({"one": one, "none": [], "two": two})
  assert [s["name"] for s in stages] == ["one", "two"]
  assert [s["color"] for s in stages] == ["C0", "C2"]        # colours keep the stage's place
  assert stages[1]["start"] == 100
  np.testing.assert_array_equal(stages[1]["steps"], [101, 102])
  np.testing.assert_array_equal(stages[1]["loss"], [0.5, 0.4])
  path = plots.loss_curves(str(tmp_path / "loss.png"), {"one": one, "two": two})  # with zoom
  with open(path, "rb") as f:
    assert f.read(8) == PNG


def test_eval_points_collects_held_out_accuracy_rows():
  rows = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_mc_total_acc": 0.5,
                                     "eval_mc_temporal_acc": 0.25, "eval_loss": 1.0},
          {"step": 4, "loss": 1.0, "eval_mc_total_acc": 0.75}]
  assert plots.eval_points(rows) == {"eval_mc_total_acc": ([2, 4], [0.5, 0.75]),
                                     "eval_mc_temporal_acc": ([2], [0.25])}


def test_sets_overlay_keeps_kept_patches_and_dims_dropped_ones():
  frame = np.full((4, 4, 3), 200, np.uint8)
  frame[0, 0] = (10, 100, 255)
  out = plots.sets_overlay(frame, np.array([True, False, False, True]), (2, 2))
  kept = np.zeros((4, 4), bool)
  kept[:2, :2] = kept[2:, 2:] = True          # quadrants 0 and 3 of the 2x2 grid, row-major
  np.testing.assert_array_equal(out[kept], frame[kept])
  assert (out[~kept] == 60).all()              # 200 * DIM
  dropped = plots.sets_overlay(frame, np.zeros(4, bool), (2, 2))
  np.testing.assert_array_equal(dropped[0, 0], (3, 30, 76))   # 0.3 x (10, 100, 255), truncated


def test_keep_pixels_on_a_frame_the_grid_does_not_divide():
  keep = plots.keep_pixels(np.array([True, False, False, False]), (2, 2), (5, 5))
  expected = np.zeros((5, 5), bool)
  expected[:3, :3] = True                      # pixel i lies in cell i * 2 // 5
  np.testing.assert_array_equal(keep, expected)


def test_crop_like_is_the_towers_centre_crop():
  from vaujax.data import preprocess
  wide = np.arange(2 * 6 * 10 * 3, dtype=np.uint8).reshape(2, 6, 10, 3)
  np.testing.assert_array_equal(plots._crop_like(wide), wide[:, :, 2:8])
  np.testing.assert_array_equal(plots._crop_like(wide),
                                np.asarray(preprocess.center_crop(wide, 6)))
  tall = wide.transpose(0, 2, 1, 3)[:, :9]     # 9 x 6: rows 1..6
  np.testing.assert_array_equal(plots._crop_like(tall), tall[:, 1:7])


def test_in_interval_includes_both_ends():
  np.testing.assert_array_equal(plots.in_interval([0.0, 1.0, 2.0, 3.0], (1.0, 2.0)),
                                [False, True, True, False])
  assert not plots.in_interval([0.0, 1.0], None).any()


def test_nearest_frames():
  times = np.array([0.0, 0.5, 1.0, 1.5])
  np.testing.assert_array_equal(report.nearest_frames(times, np.array([0.1, 0.74, 0.76, 5.0,
                                                                       -1.0])), [0, 1, 2, 3, 0])


def test_answer_text_names_answer_class_interval_and_truth():
  answer = {"anomaly": True, "class": "Fighting", "start_s": 3.0, "end_s": 6.5,
            "explanation": "Yes: fighting near the car from 3.0 to 6.5 s."}
  text = plots.answer_text(answer, (3.5, 7.0), "Fighting", "Are there any anomalies?")
  assert text.splitlines() == [
      "Q: Are there any anomalies?", "Answer: Yes: fighting near the car from 3.0 to 6.5 s.",
      "Predicted: anomaly, class Fighting, 3.0-6.5 s",
      "Ground truth: anomaly, class Fighting, 3.5-7.0 s"]
  normal = plots.answer_text({"anomaly": False, "explanation": "No."}, None, "Normal")
  assert normal.splitlines()[1:] == ["Predicted: no anomaly (normal)",
                                     "Ground truth: no anomaly (normal)"]


CONFIG = {"num_videos": 240, "seconds": 4.0, "max_seconds": 16.0, "size": 96, "max_size": 160,
          "aspects": "1,1.333,1.778", "fps": 2.0, "frames": 12, "sample_fps": 1.0,
          "frame_times": "text", "out_of_range_videos": 24, "stage1_steps": 8000,
          "stage2_steps": 120, "dinov2": "real"}
OUT_OF_RANGE = {"shorter": dict(seconds=2.0, max_seconds=3.5),
                "longer": dict(seconds=20.0, max_seconds=32.0),
                "larger": dict(size=192, max_size=256), "xd": dict(look="xd", size=128,
                                                                   max_size=192)}


def _summary():
  """Every number distinct, so a value landing in the wrong cell shows."""
  held = {}

  def acc(i, j):
    return {"total_acc": (10 * i + j) / 100, "temporal_acc": (10 * i + j + 5) / 100,
            "num_questions": 40}

  for i, name in enumerate(["in_range", "shorter", "longer", "larger", "xd"]):
    held[name] = {"results": {"mc_loglik": acc(i, 1), "mc_generate": acc(i, 2),
                              "ucf_qa": acc(i, 3)},
                  "tetg": {"frame_auc": 0.9 + i / 100, "frame_ap": 0.8 + i / 100,
                           "num_frames": 100}}
  return {"config": CONFIG, "held_out": held, "results": held["in_range"]["results"],
          "tetg": held["in_range"]["tetg"], "stage1_loss": [3.0, 0.5], "stage2_loss": [0.6, 0.4],
          "timings_s": {"data": 1.0}, "seconds": 9.0}


def test_report_text_has_each_sets_row_and_what_differs():
  figs = {"loss": "figures/loss_curves.png", "scores": "figures/tetg_scores.png",
          "sets": "figures/sets_maps.png"}
  text = report.report_text(_summary(), {"in_range": 60, "shorter": 24}, 180, figs,
                            [{"set": "in_range", "id": "v1", "path": "figures/answer.png"}],
                            OUT_OF_RANGE, 0.5)
  rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
          if line.startswith("| ") and " / " in line}
  expected = {"in range": (0, "60"), "shorter videos": (1, "24"), "longer videos": (2, "n/a"),
              "larger frames": (3, "n/a"), "cross-domain (XD look)": (4, "n/a")}
  for name, (i, videos) in expected.items():
    assert rows[name] == (f"| {name} | {videos} | {10 * i + 1:.1f} / {10 * i + 6:.1f} | "
                          f"{10 * i + 2:.1f} / {10 * i + 7:.1f} | {10 * i + 3:.1f} / "
                          f"{10 * i + 8:.1f} | {0.9 + i / 100:.3f} / {0.8 + i / 100:.3f} |")
  assert "4-16 s long, 96-160 px high, aspect ratios 1:1, 4:3, 16:9" in text
  assert "sampled at 1 fps, at most 12" in text
  assert "real, trained DINOv2 ViT-S/14" in text
  assert "4 to 12 frames (1 a second, spread uniformly beyond 12 s: one every 1.3 s at 16 s)" \
      in text
  assert "2-3.5 s long (training: 4-16 s): the model sees 2-4 frames (1 a second)" in text
  assert ("20-32 s long (training: 4-16 s): the model sees 12 frames spread uniformly, one "
          "every 1.7-2.7 s") in text
  assert "Frames 192-256 px high (training: 96-160 px)" in text
  assert "another scene look (xd" in text
  assert "![answer, in range v1](figures/answer.png)" in text
  assert "| 4-option MC (XD-Violence format) | log-likelihood of options | 1.0 | 6.0 | 40 |" in text


def test_report_text_says_the_frames_min_frames_adds():
  """With min_frames 8 (the demo's default) a 4 s training video at 2 fps gives 8 frames, a
  2-3.5 s one all of its 4-7 (video.sample_indices); capped at `frames`."""
  s = _summary()
  s["config"] = {**CONFIG, "min_frames": 8}
  text = report.report_text(s, {"in_range": 60, "shorter": 24}, 180,
                            {"loss": "a", "scores": "b", "sets": "c"}, [], OUT_OF_RANGE, 0.5)
  assert ("8 to 12 frames (1 a second, or faster to give at least 8 where the video has them; "
          "spread uniformly beyond 12 s: one every 1.3 s at 16 s)") in text
  assert ("2-3.5 s long (training: 4-16 s): the model sees 4-7 frames (1 a second, or faster "
          "to give at least 8 where the video has them)") in text
  assert report.frames_seen(2.0, 3.5, {**CONFIG, "min_frames": 8, "frames": 4}) == \
      "4 frames spread uniformly, one every 0.5-0.9 s"
  from vaujax.data import video
  for seconds, n in ((4.0, 8), (2.0, 4), (3.5, 7)):     # what the sampler gives
    assert len(video.sample_indices(int(seconds * 2), 2.0, fps=1.0, max_frames=12,
                                    min_frames=8)) == n


def test_report_text_of_a_summary_without_held_out_sets():
  s = _summary()
  del s["held_out"]
  cfg = {k: v for k, v in CONFIG.items() if k not in ("max_seconds", "dinov2", "aspects")}
  s["config"] = cfg
  text = report.report_text(s, {}, 10, {"loss": "a", "scores": "b", "sets": "c"})
  assert "| in range | n/a | 1.0 / 6.0 |" in text and "shorter videos" not in text


def test_aspect_names():
  assert report.aspect_names("1,1.333,1.778") == "1:1, 4:3, 16:9"
  assert report.aspect_names([0.75]) == "3:4"


# -- the whole report on tiny real videos ------------------------------------------------------

class _StandInAssistant:
  """What the report calls on an Assistant: TETG scores / interval / view, ask, sets_ratio."""
  model = types.SimpleNamespace(config=types.SimpleNamespace(sets_ratio=0.5))

  def frame_scores(self, feats):
    return np.linspace(0, 1, len(feats["timestamps"]))

  def interval(self, feats):
    return (float(feats["timestamps"][0]), float(feats["timestamps"][-1]))

  def tetg_view(self, feats):
    return types.SimpleNamespace(scores=self.frame_scores(feats), interval=self.interval(feats),
                                 timestamps=None)

  def ask(self, feats, question="Are there any anomalies?"):
    return {"anomaly": True, "class": "Fighting", "start_s": 1.0, "end_s": 2.0,
            "explanation": "Yes, fighting from 1.0 to 2.0 seconds.", "frame_scores": []}


def _write_set(root, name, seconds, size):
  """One held-out set: videos whose frame i is the flat grey 10 * i (written at 4 fps), and
  features taken at 1 fps as the demo takes them."""
  videos, feats_dir = os.path.join(root, name, "synthetic", "videos"), os.path.join(root, name,
                                                                                     "features")
  os.makedirs(videos)
  os.makedirs(feats_dir)
  labels = {}
  for j, (label, span) in enumerate([("Fighting", [[1.0, 2.0]]), ("Normal", [])]):
    vid = f"{name}_{j}"
    n = int(seconds * 4)
    frames = np.repeat((10 * np.arange(n, dtype=np.uint8))[:, None, None, None], 3, -1)
    frames = np.broadcast_to(frames, (n, size, size * 4 // 3, 3)).copy()
    video_io.write_video(os.path.join(videos, vid + ".mp4"), frames, 4.0)
    _, stamps = video_io.read_video(os.path.join(videos, vid + ".mp4"), fps=1.0, max_frames=12)
    rng = np.random.RandomState(j)
    t = len(stamps)
    np.savez(os.path.join(feats_dir, vid + ".npz"), timestamps=stamps,
             tower_patches=rng.rand(t, 16, 4).astype(np.float32),
             dino_patches=rng.rand(t, 16, 8).astype(np.float32),
             dino_cls=rng.rand(t, 8).astype(np.float32))
    labels[vid] = {"label": label, "anomaly_intervals": span}
  return {"features": feats_dir, "ids": sorted(labels), "labels": labels}, videos


@pytest.fixture(scope="module")
def written_report(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("report"))
  in_range, video_dir = _write_set(root, "in_range", 3.0, 32)
  longer, _ = _write_set(root, "longer", 5.0, 24)
  paths = {"videos": video_dir, "features": in_range["features"], "labels": in_range["labels"],
           "train_ids": ["a", "b"], "test_ids": in_range["ids"],
           "held_out": {"in_range": in_range, "longer": longer}}
  s = _summary()
  s["held_out"] = {k: s["held_out"][k] for k in ("in_range", "longer")}
  history = [{"step": i + 1, "loss": 2.0 / (i + 1)} for i in range(6)]
  path = report.write_demo_report(root, s, paths, _StandInAssistant(), None,
                                  [history, history[:3]])
  return root, path, paths


def test_demo_report_draws_every_figure(written_report):
  root, path, _ = written_report
  text = open(path).read()
  pngs = ["figures/loss_curves.png", "figures/tetg_scores.png", "figures/sets_maps.png",
          "figures/answer_in_range_in_range_0.png", "figures/answer_longer_longer_0.png"]
  for rel in pngs:
    assert f"({rel})" in text
    with open(os.path.join(root, rel), "rb") as f:
      assert f.read(8) == PNG


def test_frames_like_features_line_up_with_feature_times(written_report):
  from vaujax.data import features
  _, _, paths = written_report
  held = paths["held_out"]["longer"]
  feats = features.read_features(features.feature_path(held["features"], "longer_0"))
  video = os.path.join(os.path.dirname(held["features"]), "synthetic", "videos", "longer_0.mp4")
  np.testing.assert_allclose(feats["timestamps"], [0, 1, 2, 3, 4])
  grey = 10 * np.arange(20)[::4]               # frames 0, 4, 8, ... of the 4-fps video
  for config in ({"sample_fps": 1.0, "frames": 12},            # the features' own sampling
                 {"sample_fps": 2.0, "frames": 12},            # another one: nearest frames
                 {"sample_fps": 1.0, "frames": 5, "min_frames": 8}):   # the demo caps it
    frames = report.frames_like_features(video, feats, config)
    assert frames.shape[0] == 5
    np.testing.assert_allclose(frames.reshape(5, -1).mean(1), grey, atol=3)
