"""TETG: paper loss, training to high frame AUC, labels, interval extraction, hint text."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tetg as tetg_config
from vaujax.data import conversation
from vaujax.evaluate import metrics
from vaujax.models import tetg
from vaujax.train import tetg_trainer


def test_loss_equals_the_paper_formula_with_normal_probability():
  rng = np.random.RandomState(0)
  logits = rng.randn(50).astype(np.float32) * 2
  labels = rng.randint(0, 2, 50)
  p_normal = 1 / (1 + np.exp(logits))   # paper: sigma(F_A(z)) with F_A = -anomalous logit
  paper = (-np.log(p_normal[labels == 0]).mean()) + (-np.log(1 - p_normal[labels == 1]).mean())
  ours = float(tetg.tetg_loss(jnp.asarray(logits), jnp.asarray(labels)))
  assert abs(ours - paper) < 1e-5
  weights = (np.arange(50) < 40).astype(np.float32)   # padding is ignored
  padded = float(tetg.tetg_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights)))
  head = float(tetg.tetg_loss(jnp.asarray(logits[:40]), jnp.asarray(labels[:40])))
  assert abs(padded - head) < 1e-6


def test_classifier_is_a_three_layer_mlp():
  params = tetg.TETGClassifier().init(jax.random.key(0), jnp.zeros((2, 384)))
  shapes = jax.tree_util.tree_map(lambda x: x.value.shape if hasattr(x, "value") else x.shape,
                                  params["params"], is_leaf=lambda x: hasattr(x, "value"))
  assert [shapes[f"fc{i}"]["kernel"] for i in (1, 2, 3)] == [(384, 512), (512, 256), (256, 1)]


def _planted(n, d=64, seed=0):
  rng = np.random.RandomState(seed)
  labels = (rng.rand(n) < 0.3).astype(np.int32)
  direction = np.random.RandomState(123).randn(d).astype(np.float32)  # shared by all splits
  direction /= np.linalg.norm(direction)
  feats = rng.randn(n, d).astype(np.float32) + 3.5 * labels[:, None] * direction
  return feats, labels


def test_trains_to_high_frame_auc_with_the_paper_optimizer():
  """Plain SGD, lr 1e-3, batch 32 (the paper's) on held-out frames with a planted signal whose
  Bayes-optimal AUC is 0.99."""
  cfg = tetg_config.get_config("epochs=8")
  assert (cfg.learning_rate, cfg.batch_size, cfg.momentum) == (1e-3, 32, 0.0)
  x, y = _planted(2000)
  xe, ye = _planted(600, seed=1)
  result = tetg_trainer.train(x, y, cfg, eval_features=xe, eval_labels=ye)
  auc = metrics.roc_auc(ye, tetg.frame_probabilities(result.params, result.model_config, xe))
  assert auc >= 0.95, auc
  assert np.mean(result.losses[-20:]) < np.mean(result.losses[:20])


def test_training_is_deterministic():
  x, y = _planted(200)
  cfg = tetg_config.get_config("epochs=2")
  a = tetg_trainer.train(x, y, cfg)
  b = tetg_trainer.train(x, y, cfg)
  assert a.losses == b.losses


def test_nan_features_are_rejected():
  x, y = _planted(40)
  x[3, 2] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    tetg_trainer.train(x, y, tetg_config.get_config("epochs=1"))


def test_frame_labels_from_intervals():
  t = np.arange(10) * 0.5
  np.testing.assert_array_equal(tetg.frame_labels(t, [[1.0, 2.0], [4.5, 9.0]]),
                                [0, 0, 1, 1, 1, 0, 0, 0, 0, 1])
  np.testing.assert_array_equal(tetg.frame_labels(t, []), np.zeros(10))
  with pytest.raises(ValueError, match="ends before it starts"):
    tetg.frame_labels(t, [[3.0, 2.0]])


T = np.arange(10, dtype=np.float64)


@pytest.mark.parametrize("probs,cfg,expected", [
    ([0, 0, .9, .8, .7, 0, 0, 0, 0, 0], tetg.TETGConfig(), (2.0, 4.0)),          # one run
    ([.1] * 10, tetg.TETGConfig(), None),                                        # none
    ([.6, .6, 0, 0, 0, .9, .9, .9, 0, 0], tetg.TETGConfig(), (5.0, 7.0)),        # largest mass
    ([.9, .9, .9, 0, 0, 0, 0, .6, .6, .6], tetg.TETGConfig(), (0.0, 2.0)),       # edges
    ([0, 0, 0, 0, 0, 0, 0, .6, .6, .9], tetg.TETGConfig(), (7.0, 9.0)),          # last frame
    ([0, .9, 0, .9, .9, 0, 0, 0, 0, 0], tetg.TETGConfig(merge_gap=1), (1.0, 4.0)),  # merge
    ([0, 0, 0, 0, 1, 0, 0, 0, 0, 0], tetg.TETGConfig(), (4.0, 4.0)),             # single frame
    ([0, 0, .6, 1, .6, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=3), (2.0, 4.0)),   # smoothing
    ([0, 0, .4, 1, .4, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=3), (3.0, 3.0)),
    ([0, 0, 0, 0, 1, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=3), None),           # smoothed out
    ([.5] * 10, tetg.TETGConfig(), (0.0, 9.0)),                                  # threshold is >=
])
def test_interval_extraction(probs, cfg, expected):
  assert tetg.extract_interval(np.asarray(probs), T, cfg) == expected


def test_interval_uses_timestamps_and_validates():
  assert tetg.extract_interval(np.array([0, 1, 1.0]), np.array([0.0, 1.5, 3.0])) == (1.5, 3.0)
  assert tetg.extract_interval(np.array([]), np.array([])) is None
  with pytest.raises(ValueError, match="equal 1-D shapes"):
    tetg.extract_interval(np.zeros(3), np.zeros(4))


def test_hint_text_is_byte_exact():
  assert conversation.hint_text((3.0, 7.25)) == (
      "Known common crime types are: 'Abuse', 'Arrest', 'Arson', 'Assault', 'Burglary', "
      "'Explosion', 'Fighting', 'RoadAccidents', 'Robbery', 'Shooting', 'Shoplifting', "
      "'Stealing', 'Vandalism'. There is one of the crime types occurring from 3.0 to 7.2 "
      "seconds.")
  assert conversation.hint_text(None, ["Fighting", "Riot"]) == (
      "Known common crime types are: 'Fighting', 'Riot'.")


def test_extend_widens_the_interval_by_a_fraction_of_the_frame_spacing():
  t = np.array([0.5, 1.5, 2.5, 3.5, 4.5])
  p = np.array([0.1, 0.9, 0.8, 0.7, 0.2])
  assert tetg.extract_interval(p, t, tetg.TETGConfig()) == (1.5, 3.5)
  assert tetg.extract_interval(p, t, tetg.TETGConfig(extend=0.5)) == (1.0, 4.0)
  first = np.array([0.9, 0.9, 0.1, 0.1, 0.1])
  assert tetg.extract_interval(first, t, tetg.TETGConfig(extend=1.0)) == (0.0, 2.5)  # clipped at 0
