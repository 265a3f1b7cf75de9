"""The synthetic dataset decodes with the project's reader and anomalies are where annotated."""

import json

import numpy as np
import pytest

from vaujax.data import annotations, synthetic, video

CFG = synthetic.SyntheticConfig(num_videos=8, seconds=8.0, fps=4.0, normal_fraction=0.25, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = tmp_path_factory.mktemp("synthetic")
  labels = synthetic.generate(str(out), CFG)
  return out, labels


def test_files_and_annotations(dataset):
  out, labels = dataset
  assert len(labels) == 8
  videos, problems = annotations.read_uca(str(out / "uca.json"))
  assert problems == [] and len(videos) == 8
  for v in videos:
    truth = labels[v.video_id]
    assert v.label == truth["label"]  # class recoverable from the id, as in UCF-Crime
    if truth["anomaly_intervals"]:
      assert list(truth["anomaly_intervals"][0]) in [list(t) for t in v.timestamps]
  assert {t["label"] for t in labels.values()} > {"Normal"}


def test_anomalies_are_where_the_annotations_say(dataset):
  out, labels = dataset
  for video_id, truth in labels.items():
    frames, ts = video.read_video(out / "videos" / f"{video_id}.mp4")
    assert frames.shape == (32, 112, 112, 3)
    np.testing.assert_allclose(ts, np.arange(32) / 4.0)
    reference = np.median(frames.astype(np.float32), axis=0)  # the static scene
    if truth["location"] is None:
      continue
    x, y = truth["location"]
    s, e = truth["anomaly_intervals"][0]
    patch = lambda f: np.abs(f[y - 6:y + 7, x - 6:x + 7].astype(np.float32)  # noqa: E731
                             - reference[y - 6:y + 7, x - 6:x + 7]).mean()
    inside = [patch(frames[i]) for i, t in enumerate(ts) if s + 0.3 <= t <= e - 0.3]
    outside = [patch(frames[i]) for i, t in enumerate(ts) if t < s - 0.5 or t > e + 0.5]
    if truth["label"] == "Stealing":  # the package sits there before: compare with after only
      outside = [patch(frames[i]) for i, t in enumerate(ts) if t > e + 0.5] or [0.0]
    assert np.mean(inside) > 3 * max(np.mean(outside), 2.0), video_id
    # the change is local: far corners of the frame do not change during the event
    far = (0 if x > 56 else 100, 0 if y > 56 else 100)
    corner = lambda f: np.abs(f[far[1]:far[1] + 12, far[0]:far[0] + 12].astype(np.float32)  # noqa
                              - reference[far[1]:far[1] + 12, far[0]:far[0] + 12]).mean()
    assert np.mean([corner(frames[i]) for i, t in enumerate(ts) if s <= t <= e]) < 8


def test_reproducible(tmp_path):
  a, _ = synthetic.render_video(CFG, 2, "Explosion")
  b, _ = synthetic.render_video(CFG, 2, "Explosion")
  np.testing.assert_array_equal(a, b)
  from vaujax.app import synthetic as synthetic_cmd
  synthetic_cmd.run(["vaujax synthetic", "--out", str(tmp_path), "--num_videos", "2",
                     "--seconds", "4"])
  assert len(json.loads((tmp_path / "labels.json").read_text())) == 2
