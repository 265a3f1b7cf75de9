"""The typed hint (issue 29): TETG's class head says which anomaly each run of the hint shows
(models/tetg.py, runs/tetg_files.py, data.hint_types), and training hints may take their
regions and types from the annotation (data.train_hint_labels)."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vaujax.data import conversation
from vaujax.errors import InputError
from vaujax.models import tetg
from vaujax.runs import tetg_files
from vaujax.train import tetg_trainer

T = np.arange(10, dtype=np.float64)
CLASSES = ("Fighting", "Explosion", "RoadAccidents")


def test_frame_class_ids_and_the_type_loss_by_hand():
  ids = tetg.frame_class_ids(T, [(2, 1.0, 2.0), (0, 6.0, 8.0)])
  np.testing.assert_array_equal(ids, [-1, 2, 2, -1, -1, -1, 0, 0, 0, -1])
  with pytest.raises(ValueError, match="ends before it starts"):
    tetg.frame_class_ids(T, [(0, 3.0, 2.0)])
  logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, 3.0, 1.0], [9.0, 9.0, 9.0]])
  ids = np.array([0, 2, 1, -1])                       # the last frame is normal: not counted
  weights = np.array([1.0, 1.0, 0.0, 1.0])            # the third is padding
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -(log_p[0, 0] + log_p[1, 2]) / 2
  np.testing.assert_allclose(float(tetg.type_loss(jnp.asarray(logits), ids, weights)),
                             expected, rtol=1e-6)
  assert float(tetg.type_loss(jnp.asarray(logits), np.full(4, -1))) == 0.0


def test_run_type_is_the_class_with_the_highest_mean_probability_inside_the_run():
  probs = np.zeros((10, 3))
  probs[:, 0] = 1.0
  probs[6:9] = [[0.1, 0.5, 0.4], [0.1, 0.3, 0.6], [0.2, 0.4, 0.4]]   # mean 0.13 / 0.40 / 0.47
  assert tetg.run_type(probs, T, (5.5, 8.5)) == 2
  assert tetg.run_type(probs, T, (6.0, 6.0)) == 1         # both ends count
  assert tetg.run_type(probs, T, (0.0, 3.0)) == 0
  assert tetg.run_type(probs, T, (3.2, 3.8)) is None      # no frame inside
  with pytest.raises(ValueError, match=r"probs \[S, C\]"):
    tetg.run_type(probs[:, 0], T, (0, 1))


def _planted_classes(n_per_class, d=16, seed=0):
  """Class embeddings around one centre per class, and a share of normal frames (-1)."""
  rng = np.random.RandomState(seed)
  centres = rng.normal(0, 1, (len(CLASSES), d))
  ids = np.concatenate([np.full(n_per_class, k) for k in range(len(CLASSES))]
                       + [np.full(n_per_class, -1)])
  x = rng.normal(0, 0.8, (len(ids), d)) + np.where(ids[:, None] >= 0, centres[ids], 0.0)
  return x.astype(np.float32), ids.astype(np.int32)


def _config(epochs=30):
  from configs import tetg as tetg_configs
  c = tetg_configs.get_config(f"epochs={epochs},momentum=0.9")
  c.hidden = (32, 16)
  return c


def test_the_type_head_learns_the_classes_of_held_out_frames():
  x, ids = _planted_classes(60)
  result = tetg_trainer.train_types(x, ids, CLASSES, _config())
  assert result.classes == CLASSES and result.hidden == (32, 16)
  assert result.losses[-1] < result.losses[0] / 3
  rng = np.random.RandomState(1)      # held out: the same centres, new noise
  centres = np.random.RandomState(0).normal(0, 1, (len(CLASSES), 16))
  idt = np.repeat(np.arange(len(CLASSES)), 40)
  xt = (rng.normal(0, 0.8, (len(idt), 16)) + centres[idt]).astype(np.float32)
  probs = tetg.type_probabilities(result.params, result.hidden, len(CLASSES), xt)
  assert probs.shape == (len(idt), 3)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  assert np.mean(probs.argmax(-1) == idt) > 0.9              # chance 1/3
  with pytest.raises(ValueError, match="no anomalous frame"):
    tetg_trainer.train_types(x, np.full(len(x), -1), CLASSES, _config())
  with pytest.raises(ValueError, match="class id 3 for 3 classes"):
    tetg_trainer.train_types(x, np.where(ids == 2, 3, ids), CLASSES, _config())


class _FixedHead(tetg_files.TypeHead):
  """Class probabilities are the class embeddings' columns 1.. (column 0 is TETG's score)."""

  def probabilities(self, class_embeddings):
    return np.asarray(class_embeddings)[:, 1:]


def _fixed_tetg(hint_intervals="all", hint_types=True, hint_regions=False):
  class Fixed(tetg_files.TrainedTETG):
    def scores(self, class_embeddings):
      return np.asarray(class_embeddings)[:, 0]
  return Fixed({}, tetg.TETGConfig(), hint_intervals, hint_regions,
               _FixedHead({}, (4,), CLASSES), hint_types)


def _feats():
  cls = np.zeros((10, 4))
  cls[[1, 2], 0] = [0.9, 0.8]           # run 1.0-2.0: road accident
  cls[[1, 2], 3] = 1.0
  cls[[6, 7, 8], 0] = 1.0               # run 6.0-8.0: fighting, though one frame says explosion
  cls[[6, 8], 1] = 1.0
  cls[7, 2] = 1.0
  return {"dino_cls": cls, "timestamps": T}


def test_the_hint_names_each_runs_anomaly_by_the_class_head():
  view = _fixed_tetg().view(_feats(), CLASSES)
  assert view.intervals == ((1.0, 2.0), (6.0, 8.0))
  assert view.types == ("RoadAccidents", "Fighting")
  assert view.hint == ("Known common crime types are: 'Fighting', 'Explosion', "
                       "'RoadAccidents'. There are anomalies of the crime types occurring: road "
                       "accident from 1.0 to 2.0 seconds and fighting from 6.0 to 8.0 seconds.")
  strongest = _fixed_tetg("strongest").view(_feats(), CLASSES)
  assert strongest.types == ("Fighting",)
  assert strongest.hint.endswith("There is one of the crime types occurring: fighting from 6.0 "
                                 "to 8.0 seconds.")
  off = _fixed_tetg(hint_types=False).view(_feats(), CLASSES)
  assert off.types is None and off.hint == conversation.hint_text(view.intervals, CLASSES)
  quiet = {"dino_cls": np.zeros((10, 4)), "timestamps": T}
  assert _fixed_tetg().view(quiet, CLASSES).hint == conversation.hint_text(None, CLASSES)
  with pytest.raises(InputError, match=r"--config\.data\.hint_types.*no type head"):
    tetg_files.TrainedTETG({}, tetg.TETGConfig(), hint_types=True)


def test_typed_hint_texts_are_byte_exact():
  assert conversation.hint_text([(1.0, 2.0), (6.0, 8.0)], CLASSES, ["top left", None],
                                ["RoadAccidents", None]) == (
      "Known common crime types are: 'Fighting', 'Explosion', 'RoadAccidents'. There are "
      "anomalies of the crime types occurring: road accident from 1.0 to 2.0 seconds near the "
      "top left of the scene and an anomaly from 6.0 to 8.0 seconds.")
  assert conversation.hint_text([(1.0, 2.0), (3.0, 4.0), (6.0, 8.0)], CLASSES, None,
                                ["Fighting", "Explosion", "Fighting"]).endswith(
      "occurring: fighting from 1.0 to 2.0 seconds, explosion from 3.0 to 4.0 seconds and "
      "fighting from 6.0 to 8.0 seconds.")
  # no type said: the texts before types, byte for byte
  assert conversation.hint_text((1.0, 2.0), CLASSES, None, [None]) == \
      conversation.hint_text((1.0, 2.0), CLASSES)
  with pytest.raises(ValueError, match="1 types for 2 intervals"):
    conversation.hint_text([(1.0, 2.0), (6.0, 8.0)], CLASSES, None, ["Fighting"])


def test_labelled_training_hints_take_the_annotated_types_and_regions():
  hint = _fixed_tetg().hint_fn(CLASSES)
  events = [{"label": "Explosion", "start": 0.5, "end": 2.5, "region": "centre"},
            {"label": "Fighting", "start": 6.0, "end": 9.0, "region": "top left"}]
  assert hint("v", _feats(), events=events) == conversation.hint_text(
      [(1.0, 2.0), (6.0, 8.0)], CLASSES, None, ["Explosion", "Fighting"])
  # with regions on, both come from the labels (the tower cannot place a run without patches
  # here, so the tower's are not needed when the labels name every run)
  assert hint("v", _feats()) == _fixed_tetg().view(_feats(), CLASSES).hint
  # a false alarm (no event meets it) keeps the class head's type
  assert hint("v", _feats(), events=events[:1]) == conversation.hint_text(
      [(1.0, 2.0), (6.0, 8.0)], CLASSES, None, ["Explosion", "Fighting"])
  assert hint("v", _feats(), events=[]) == hint("v", _feats())


def test_a_tetg_directory_keeps_its_type_head(tmp_path):
  cfg = tetg.TETGConfig(hidden=(4,))
  params = nn.unbox(tetg.TETGClassifier(cfg).init(jax.random.key(0), jnp.zeros((1, 5))))
  head_params = nn.unbox(tetg.TETGTypeClassifier((6,), 3).init(jax.random.key(1),
                                                               jnp.zeros((1, 5))))
  tetg_files.save_tetg(str(tmp_path / "typed"), params, cfg,
                       tetg_files.TypeHead(head_params, (6,), CLASSES))
  tetg_files.save_tetg(str(tmp_path / "plain"), params, cfg)
  x = np.random.RandomState(0).normal(size=(7, 5)).astype(np.float32)
  typed, plain = (tetg_files.load_tetg(str(tmp_path / n)) for n in ("typed", "plain"))
  assert plain.types is None and typed.types.classes == CLASSES and typed.types.hidden == (6,)
  np.testing.assert_array_equal(typed.scores(x), plain.scores(x))
  np.testing.assert_allclose(typed.types.probabilities(x), tetg.type_probabilities(
      head_params, (6,), 3, x), rtol=1e-6)
  meta_path = tmp_path / "typed" / "vaujax.json"
  meta = json.loads(meta_path.read_text())
  meta["types"] = {"hidden": [6]}
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(InputError, match=r"typed: bad type head in vaujax\.json"):
    tetg_files.load_tetg(str(tmp_path / "typed"))
  # a run that asks for types from a TETG without a head is refused, naming the directory
  from vaujax.runs import run_dir
  config = ml_collections.ConfigDict({"data": {"tetg_params": str(tmp_path / "plain"),
                                               "hint_types": True}})
  with pytest.raises(InputError, match=r"plain: has no type head, which data\.hint_types needs"):
    run_dir.run_tetg(config)
  config.data.hint_types = False
  assert run_dir.run_tetg(config).hint_types is False


def test_the_tetg_command_trains_the_type_head_from_the_labels_events(tmp_path):
  from vaujax.data import features
  from vaujax.train import config_checks
  rng = np.random.RandomState(0)
  x, ids = _planted_classes(40)
  labels = {}
  (tmp_path / "feats").mkdir()
  for v in range(12):       # 10 frames a video; events from the planted frames' classes
    k = v % 3
    cls = rng.normal(0, 0.8, (10, 16)).astype(np.float32)
    cls[3:7] = x[ids == k][v * 4 % 40:v * 4 % 40 + 4]
    features.write_features(str(tmp_path / "feats" / f"v{v}.npz"),
                            {"dino_cls": cls, "timestamps": T})
    labels[f"v{v}"] = {"anomaly_intervals": [[3.0, 6.0]], "label": CLASSES[k],
                       "events": [{"label": CLASSES[k], "interval": [3.0, 6.0],
                                   "region": None}]}
  (tmp_path / "labels.json").write_text(json.dumps(labels))
  config = _config(epochs=150)
  config.data.feature_dir, config.data.labels_json = str(tmp_path / "feats"), str(
      tmp_path / "labels.json")
  config.types = ",".join(CLASSES)
  tetg_trainer.run(config, str(tmp_path / "run"))
  loaded = tetg_files.load_tetg(str(tmp_path / "run" / "tetg"))
  assert loaded.types.classes == CLASSES
  summary = json.loads((tmp_path / "run" / "tetg_summary.json").read_text())
  assert "type_final_loss" in summary
  planted = ids >= 0            # the head names the planted frames' classes (chance 1/3)
  assert np.mean(loaded.types.probabilities(x[planted]).argmax(-1) == ids[planted]) > 0.8
  config.types = "Fighting"
  with pytest.raises(InputError, match=r"--config\.types: must be two or more distinct"):
    config_checks.check_tetg(config)
  config.types = "Fighting,Stealing"    # a labelled class the head does not know
  with pytest.raises(InputError, match=r"labels\.json.*'Explosion' is not one of"):
    tetg_trainer.run(config, str(tmp_path / "run2"))
