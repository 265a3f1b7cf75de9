import json

import numpy as np
import pytest

from vaujax.data import annotations as ann
from vaujax.data import safe_pickle
from vaujax.errors import InputError

UCA = {"Abuse001_x264": {"duration": 20.0, "timestamps": [[0.0, 5.3], [7.0, 8.5]],
                         "sentences": ["A woman walks in.", "A man hits her."]},
       "Normal_Videos_003_x264": {"duration": 10.0, "timestamps": [[1.0, 9.0]],
                                  "sentences": ["Cars pass by."]}}


def _write(tmp_path, obj, name="uca.json"):
  path = tmp_path / name
  path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
  return str(path)


def test_read_uca_and_classes(tmp_path):
  videos, problems = ann.read_uca(_write(tmp_path, UCA),
                                  anomaly_intervals={"Abuse001_x264": [[7.0, 8.5]]})
  assert problems == []
  a, n = videos
  assert (a.label, a.timestamps, a.anomaly_intervals) == ("Abuse", ((0.0, 5.3), (7.0, 8.5)),
                                                          ((7.0, 8.5),))
  assert n.label == "Normal" and n.sentences == ("Cars pass by.",)
  assert ann.ucf_crime_class("RoadAccidents012_x264.mp4") == "RoadAccidents"
  assert ann.ucf_crime_class("Normal_Videos003_x264") == "Normal"
  assert ann.xd_violence_classes("v=Hnfy9XhlIPM__#1_label_B4-0-0.mp4") == ("Riot",)
  assert ann.xd_violence_classes("A.Beautiful.Mind.2001__#00-01-45_00-02-50_label_A.mp4") == (
      "Normal",)
  assert ann.xd_violence_classes("x_label_B1-B2-G.mp4") == ("Fighting", "Shooting", "Explosion")
  assert len(ann.UCF_CRIME_CLASSES) == 13 and len(ann.XD_VIOLENCE_CLASSES) == 6


@pytest.mark.parametrize("entry,match", [
    ({"duration": 5.0, "timestamps": [[3.0, 2.0]], "sentences": ["x"]}, "ends before it starts"),
    ({"duration": 5.0, "timestamps": [[3.0, 9.0]], "sentences": ["x"]}, "outside the video"),
    ({"duration": 5.0, "timestamps": [[1.0, 2.0]], "sentences": ["  "]}, "empty or non-text"),
    ({"duration": 5.0, "timestamps": [[1.0, 2.0]]}, "missing \\['sentences'\\]"),
    ({"duration": -1, "timestamps": [], "sentences": []}, "positive number"),
    ({"duration": 5.0, "timestamps": [[1.0]], "sentences": ["x"]}, "not a \\[start, end\\]"),
])
def test_bad_uca_entries_name_file_video_and_problem(tmp_path, entry, match):
  path = _write(tmp_path, {"Abuse002_x264": entry, **UCA})
  with pytest.raises(InputError, match=f"uca.json: Abuse002_x264: .*{match}"):
    ann.read_uca(path)
  videos, problems = ann.read_uca(path, skip_bad=True)
  assert len(videos) == 2 and len(problems) == 1


def test_malformed_json(tmp_path):
  with pytest.raises(InputError, match=r"uca.json: malformed JSON"):
    ann.read_uca(_write(tmp_path, '{"a": [1, 2'))


def test_ucf_temporal_gt(tmp_path):
  path = tmp_path / "gt.txt"
  path.write_text("Arson011_x264.mp4  Arson  150  420  680  1267\n"
                  "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1\n")
  gt = ann.read_ucf_temporal_gt(str(path))
  assert gt["Arson011_x264"] == ("Arson", ((5.0, 14.0), (680 / 30, 1267 / 30)))
  assert gt["Normal_Videos_003_x264"] == ("Normal", ())
  path.write_text("Arson011_x264.mp4 Arson 150 100 -1 -1\n")
  with pytest.raises(InputError, match=r"gt.txt: line 1: bad interval"):
    ann.read_ucf_temporal_gt(str(path))


def test_restricted_unpickler_loads_arrays_and_refuses_code(tmp_path):
  import pickle
  feats = np.random.RandomState(0).randn(3, 5, 8).astype(np.float16)
  good = tmp_path / "video.pkl"
  good.write_bytes(pickle.dumps({"feats": feats, "inputs": "<image><image><image>"}))
  loaded, inputs = safe_pickle.load_llamavid_features(good)
  np.testing.assert_array_equal(loaded, feats[:, 1:])
  assert inputs == "<image><image><image>"

  marker = tmp_path / "pwned"

  class Evil:
    def __reduce__(self):
      import os
      return (os.system, (f"touch {marker}",))

  bad = tmp_path / "evil.pkl"
  bad.write_bytes(pickle.dumps({"feats": Evil()}))
  with pytest.raises(InputError, match=r"evil.pkl: refusing to unpickle posix.system"):
    safe_pickle.load_restricted(bad)
  assert not marker.exists()
  trunc = tmp_path / "trunc.pkl"
  trunc.write_bytes(good.read_bytes()[:40])
  with pytest.raises(InputError, match=r"trunc.pkl: not a readable pickle"):
    safe_pickle.load_restricted(trunc)


# -- events (issue 29) ------------------------------------------------------------------------

def test_labels_without_events_still_read_and_give_one_event_per_interval(tmp_path):
  old = {"Abuse001_x264": {"label": "Abuse", "anomaly_intervals": [[7.0, 8.5], [1.0, 2.0]]},
         "Normal_Videos_003_x264": {"label": "Normal", "anomaly_intervals": []}}
  labels = ann.read_labels(_write(tmp_path, old, "labels.json"))
  videos, _ = ann.read_uca(_write(tmp_path, UCA), labels=labels)
  a, n = videos
  assert a.events == () and a.anomaly_intervals == ((7.0, 8.5), (1.0, 2.0))
  assert ann.events_of(a) == (ann.Event("Abuse", 7.0, 8.5), ann.Event("Abuse", 1.0, 2.0))
  assert ann.events_of(n) == () and n.label == "Normal"


def test_events_attach_from_labels(tmp_path):
  labels = {"Abuse001_x264": {"label": "Abuse", "anomaly_intervals": [[0.5, 2.0], [7.0, 8.5]],
                              "events": [{"label": "Abuse", "interval": [0.5, 2.0],
                                          "region": "top left", "location": [3, 4]},
                                         {"label": "Arson", "interval": [7.0, 8.5],
                                          "region": None}]}}
  videos, _ = ann.read_uca(_write(tmp_path, UCA), labels=labels)
  assert ann.events_of(videos[0]) == (ann.Event("Abuse", 0.5, 2.0, "top left"),
                                      ann.Event("Arson", 7.0, 8.5, None))
  assert videos[0].anomaly_intervals == ((0.5, 2.0), (7.0, 8.5))
  assert videos[1].events == () and videos[1].label == "Normal"   # not listed: as read
  assert ann.with_events(videos, {}) == videos


@pytest.mark.parametrize("events,match", [
    ("x", "'events' must be a list"),
    ([{"interval": [1, 2]}], "event 0 needs a 'label'"),
    ([{"label": "Arson"}], "event 0 has no 'interval'"),
    ([{"label": "Arson", "interval": [2, 1]}], "event interval 0 ends before it starts"),
    ([{"label": "Arson", "interval": [1, 2], "region": "upper left"}],
     "event 0 region 'upper left'"),
])
def test_bad_events_name_file_video_and_problem(tmp_path, events, match):
  path = _write(tmp_path, {"Arson001": {"anomaly_intervals": [[1, 2]], "events": events}},
                "labels.json")
  with pytest.raises(InputError, match=f"labels.json: Arson001: {match}"):
    ann.read_labels(path)
