"""TETG: paper loss, training to high frame AUC, labels, interval extraction, hint text."""

import re

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


@pytest.mark.parametrize("probs,expected", [
    # longer but lighter run first: 4 x 0.6 = 2.4 < 3 x 1.0 = 3.0 -> the heavier, shorter run
    ([.6, .6, .6, .6, 0, 0, 1, 1, 1, 0], (6.0, 8.0)),
    # the heavier run is longer but has the lower peak: 4 x 0.55 = 2.2 > 0.95
    ([0, .55, .55, .55, .55, 0, 0, .95, 0, 0], (1.0, 4.0)),
    # masses 0.99 (the peak, first run), 2.1 (3 x 0.7), 2.4 (4 x 0.6): the last run
    ([.99, 0, .7, .7, .7, 0, .6, .6, .6, .6], (6.0, 9.0)),
    # masses 0.9, 2.1 (3 x 0.7, the heaviest, in the middle), 1.8 (3 x 0.6)
    ([.9, 0, .7, .7, .7, 0, .6, .6, .6, 0], (2.0, 4.0)),
    # equal masses (exactly: 0.75 + 0.75 == 1.5): the earlier run
    ([0, .75, .75, 0, 0, 0, 0, 1.5 / 2, 1.5 / 2, 0], (1.0, 2.0)),
])
def test_interval_is_the_run_with_the_largest_probability_mass(probs, expected):
  """The paper's rule: of the runs of frames with p >= threshold, the one whose summed
  probability is largest (not the longest, the first or the one with the highest peak); the
  earlier run on an exact tie."""
  assert tetg.extract_interval(np.asarray(probs), T, tetg.TETGConfig()) == expected


def test_loss_by_hand_with_one_frame_of_each_class():
  """One normal frame (logit a) and one anomalous frame (logit b): each mean is over one frame,
  L = -log(1 - sigmoid(a)) - log sigmoid(b)."""
  a, b = 0.3, -1.2
  want = -np.log(1 - 1 / (1 + np.exp(-a))) - np.log(1 / (1 + np.exp(-b)))
  got = float(tetg.tetg_loss(jnp.asarray([a, b]), jnp.asarray([0, 1])))
  assert got == pytest.approx(want, rel=1e-6)
  # three normal frames, one anomalous: the normal term is their mean, not their sum
  logits, labels = np.array([0.3, -0.4, 1.1, 2.0]), np.array([0, 0, 0, 1])
  p = 1 / (1 + np.exp(-logits))
  want = -np.log(1 - p[:3]).mean() - np.log(p[3])
  assert float(tetg.tetg_loss(jnp.asarray(logits), jnp.asarray(labels))) == pytest.approx(
      want, rel=1e-6)
  # a class that is absent adds nothing (its mean over zero frames is 0)
  assert float(tetg.tetg_loss(jnp.asarray([0.3]), jnp.asarray([0]))) == pytest.approx(
      -np.log(1 - 1 / (1 + np.exp(-0.3))), rel=1e-6)
  assert float(tetg.tetg_loss(jnp.asarray([0.3]), jnp.asarray([1]))) == pytest.approx(
      -np.log(1 / (1 + np.exp(-0.3))), rel=1e-6)
  # boolean labels and fractional weights: a weighted mean within each class
  w = np.array([1.0, 0.5, 0.0, 2.0])
  want = (-(w[:3] * np.log(1 - p[:3])).sum() / w[:3].sum()) - np.log(p[3])
  got = float(tetg.tetg_loss(jnp.asarray(logits), jnp.asarray(labels.astype(bool)),
                             jnp.asarray(w)))
  assert got == pytest.approx(want, rel=1e-6)


def test_probabilities_are_the_sigmoid_of_the_classifier():
  cfg = tetg.TETGConfig(hidden=(8, 4))
  x = np.random.RandomState(0).randn(5, 6).astype(np.float32)
  params = tetg.TETGClassifier(cfg).init(jax.random.key(1), jnp.asarray(x))
  logits = np.asarray(tetg.TETGClassifier(cfg).apply(params, jnp.asarray(x)))
  probs = tetg.frame_probabilities(params, cfg, x.astype(np.float64))
  assert probs.shape == (5,) and probs.dtype == np.float32
  np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)), rtol=1e-6)


@pytest.mark.parametrize("probs,cfg,expected", [
    # a gap of exactly merge_gap frames merges, one more does not
    ([.9, 0, 0, .9, 0, 0, 0, 0, 0, 0], tetg.TETGConfig(merge_gap=2), (0.0, 3.0)),
    ([.9, 0, 0, 0, .95, 0, 0, 0, 0, 0], tetg.TETGConfig(merge_gap=2), (4.0, 4.0)),
    ([.9, 0, .9, 0, .9, 0, 0, 0, 0, 0], tetg.TETGConfig(merge_gap=1), (0.0, 4.0)),  # chained
    # another threshold
    ([0, .3, .35, .2, 0, 0, 0, 0, 0, 0], tetg.TETGConfig(threshold=0.3), (1.0, 2.0)),
    ([0, .3, .35, .2, 0, 0, 0, 0, 0, 0], tetg.TETGConfig(threshold=0.31), (2.0, 2.0)),
    # even smoothing window: frame i averages frames i-1 and i (edges repeat the first frame)
    ([0, 0, 0, 1, .2, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=2), (3.0, 4.0)),   # .5 .6 -> 3..4
    ([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=2), (0.0, 1.0)),    # 1, .5, 0
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], tetg.TETGConfig(smooth=2), (9.0, 9.0)),    # (0 + 1) / 2
    # centred 5-frame window: .4 .6 .6 .6 .4
    ([0, 0, 1, 1, 1, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=5), (2.0, 4.0)),
    ([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], tetg.TETGConfig(smooth=5), (0.0, 1.0)),    # .8 .6: the edge
])
def test_interval_rule_details(probs, cfg, expected):
  assert tetg.extract_interval(np.asarray(probs), T, cfg) == expected


def test_extend_uses_the_median_spacing_and_needs_two_frames():
  t = np.array([0.0, 1.0, 2.0, 3.0, 10.0])          # spacings 1 1 1 7: median 1
  p = np.array([0.0, 0.9, 0.9, 0.0, 0.0])
  assert tetg.extract_interval(p, t, tetg.TETGConfig(extend=0.5)) == (0.5, 2.5)
  assert tetg.extract_interval(np.array([0.9]), np.array([4.0]),
                               tetg.TETGConfig(extend=0.5)) == (4.0, 4.0)     # no spacing
  assert tetg.extract_interval(p, t + 0.2, tetg.TETGConfig(extend=0.25)) == (0.95, 2.45)


def test_interval_input_errors():
  with pytest.raises(ValueError, match=r"^probs \(2, 2\) and timestamps \(2, 2\) must be equal "
                                       r"1-D shapes$"):
    tetg.extract_interval(np.zeros((2, 2)), np.zeros((2, 2)))
  with pytest.raises(ValueError, match=r"^probs \(3,\) and timestamps \(4,\)"):
    tetg.extract_interval(np.zeros(3), np.zeros(4))


def test_frame_labels_include_both_ends_and_unite_intervals():
  t = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 3.0])
  np.testing.assert_array_equal(tetg.frame_labels(t, [[1.0, 2.0]]), [0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(tetg.frame_labels(t, [[1.0, 2.0], [1.5, 2.5]]),
                                [0, 1, 1, 1, 1, 0])     # overlapping: still 0/1
  np.testing.assert_array_equal(tetg.frame_labels(t, [[3.0, 3.0]]), [0, 0, 0, 0, 0, 1])
  assert tetg.frame_labels(t, [[1.0, 2.0]]).dtype == np.int32
  with pytest.raises(ValueError, match=r"^anomaly interval ends before it starts: \[2.5, 2.0\]$"):
    tetg.frame_labels(t, [[2.5, 2.0]])


def test_classifier_is_relu_mlp_by_hand():
  """fc3(relu(fc2(relu(fc1(z))))): the forward pass with hand-set weights, in numpy."""
  cfg = tetg.TETGConfig(hidden=(3, 2))
  rng = np.random.RandomState(3)
  shapes = {"fc1": (4, 3), "fc2": (3, 2), "fc3": (2, 1)}
  params = {"params": {name: {"kernel": rng.randn(*s).astype(np.float32),
                              "bias": rng.randn(s[1]).astype(np.float32)}
                       for name, s in shapes.items()}}
  z = rng.randn(6, 4).astype(np.float32) * 2
  p = params["params"]
  h = np.maximum(z @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0)
  h = np.maximum(h @ p["fc2"]["kernel"] + p["fc2"]["bias"], 0)
  want = (h @ p["fc3"]["kernel"] + p["fc3"]["bias"])[:, 0]
  got = np.asarray(tetg.TETGClassifier(cfg).apply(params, jnp.asarray(z)))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_interval_arithmetic_is_float64_whatever_the_input_precision():
  # float32 probabilities: 0.1 + 0.2 ties 0.3 in float32, but not in float64, where the run
  # [0.3] is heavier
  p = np.array([0.1, 0.2, 0.0, 0.3], np.float32)
  assert tetg.extract_interval(p, np.arange(4.0), tetg.TETGConfig(threshold=0.05)) == (3.0, 3.0)
  # float32 timestamps: the spacing for `extend` is taken in float64
  t = np.array([0.1, 3.3, 6.7], np.float32)
  t64 = t.astype(np.float64)
  want_end = t64[1] + 0.5 * float(np.median(np.diff(t64)))
  start, end = tetg.extract_interval(np.array([0.9, 0.9, 0.0]), t, tetg.TETGConfig(extend=0.5))
  assert start == 0.0 and end == want_end


def test_frame_labels_compare_the_exact_timestamp_values():
  """Timestamps are compared as float64 values: a float32 0.1 is 0.100000001 s, after an
  interval that ends at 0.1 s (numpy would otherwise round the end to float32 instead)."""
  t = np.array([0.1, 0.05], np.float32)
  np.testing.assert_array_equal(tetg.frame_labels(t, [[0.0, 0.1]]), [0, 1])
  np.testing.assert_array_equal(tetg.frame_labels([1, 2, 3], [[1.5, 3.0]]), [0, 1, 1])


def test_run_mass_and_extend_by_hand():
  # the mass is the run's own frames: the 0.45 after the first run is not part of it
  p = np.array([.6, .45, 0, .9, 0, 0, 0, 0, 0, 0])
  assert tetg.extract_interval(p, T, tetg.TETGConfig()) == (3.0, 3.0)
  # extend is a fraction of the spacing (2 s here), and two frames have a spacing
  t = np.array([10.0, 12.0, 14.0])
  assert tetg.extract_interval(np.array([0, 1.0, 0]), t, tetg.TETGConfig(extend=0.5)) == (
      11.0, 13.0)
  assert tetg.extract_interval(np.array([1.0, 0]), t[:2], tetg.TETGConfig(extend=0.25)) == (
      9.5, 10.5)


# -- several anomalies: every confident run (issue 29) -------------------------------------------

@pytest.mark.parametrize("probs,cfg,expected", [
    ([0, .9, .8, 0, 0, 0, .7, .9, 0, 0], tetg.TETGConfig(), [(1.0, 2.0), (6.0, 7.0)]),  # two
    ([.9, 0, 0, 0, 0, 0, 0, 0, 0, .6], tetg.TETGConfig(), [(0.0, 0.0), (9.0, 9.0)]),   # edges
    ([0, .9, 0, .9, 0, 0, 0, .9, 0, 0], tetg.TETGConfig(merge_gap=1),
     [(1.0, 3.0), (7.0, 7.0)]),                                        # a one-frame gap merged
    ([0, .9, 0, 0, .9, 0, 0, 0, 0, 0], tetg.TETGConfig(merge_gap=1),
     [(1.0, 1.0), (4.0, 4.0)]),                                        # a two-frame gap is not
    ([.4, .49, 0, .3, .1, 0, .2, .45, 0, 0], tetg.TETGConfig(), []),     # below the threshold
    ([0, .5, 0, 0, 0, 0, .49, 0, 0, 0], tetg.TETGConfig(), [(1.0, 1.0)]),  # threshold is >=
    ([0, .9, .9, 0, 0, 0, .9, 0, 0, .9], tetg.TETGConfig(threshold=.95), []),
    # smoothed (3 frames): the lone spike at 4 falls under the threshold, the runs stay
    ([0, 1, 1, 1, 1, 0, 0, 0, .9, .9], tetg.TETGConfig(smooth=3), [(1.0, 4.0), (8.0, 9.0)]),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], tetg.TETGConfig(), [(0.0, 9.0)]),   # one run, the whole video
])
def test_every_confident_run_in_time_order(probs, cfg, expected):
  p = np.asarray(probs, np.float64)
  runs = tetg.extract_intervals(p, T, cfg)
  assert runs == expected
  # the strongest run is one of them (and none when there is none)
  strongest = tetg.extract_interval(p, T, cfg)
  assert strongest in runs if runs else strongest is None


def test_every_run_is_extended_and_clipped_like_the_strongest():
  t = np.arange(8) * 2.0 + 1.0                       # 1, 3, ..., 15 s; spacing 2
  p = np.array([.9, 0, 0, .8, .8, 0, 0, .7])
  assert tetg.extract_intervals(p, t, tetg.TETGConfig(extend=0.5)) == [
      (0.0, 2.0), (6.0, 10.0), (14.0, 16.0)]        # the first start clipped at 0
  assert tetg.extract_intervals(np.array([]), np.array([])) == []
  with pytest.raises(ValueError, match="equal 1-D shapes"):
    tetg.extract_intervals(np.zeros(3), np.zeros(4))


def test_hint_text_with_several_intervals():
  classes = ["Fighting", "Explosion"]
  one = conversation.hint_text((1.0, 3.0), classes)
  assert conversation.hint_text([(1.0, 3.0)], classes) == one          # a list of one: today's
  assert conversation.hint_text([], classes) == conversation.hint_text(None, classes) == (
      "Known common crime types are: 'Fighting', 'Explosion'.")
  assert conversation.hint_text([(1.0, 3.0), (5.25, 7.0)], classes) == (
      "Known common crime types are: 'Fighting', 'Explosion'. There are anomalies of the crime "
      "types occurring from 1.0 to 3.0 and from 5.2 to 7.0 seconds.")
  assert conversation.hint_text(np.array([[0.0, 1.0], [2.0, 3.0], [4.5, 6.0]]), classes).endswith(
      "occurring from 0.0 to 1.0, from 2.0 to 3.0 and from 4.5 to 6.0 seconds.")


def _fixed_tetg(hint_intervals):
  """A TrainedTETG whose frame scores are the features' first column (hand-made curves)."""
  from vaujax.runs import tetg_files

  class Fixed(tetg_files.TrainedTETG):
    def scores(self, class_embeddings):
      return np.asarray(class_embeddings)[:, 0]
  return Fixed({}, tetg.TETGConfig(), hint_intervals)


def test_the_hint_names_the_strongest_run_or_all_as_the_run_records():
  from vaujax.errors import InputError
  from vaujax.runs import tetg_files
  feats = {"dino_cls": np.array([0, .9, .8, 0, 0, 0, 1, 1, 1, 0])[:, None], "timestamps": T}
  classes = ("Fighting", "Explosion")
  strongest = _fixed_tetg("strongest").view(feats, classes)
  every = _fixed_tetg("all").view(feats, classes)
  assert strongest.interval == every.interval == (6.0, 8.0)
  assert strongest.intervals == every.intervals == ((1.0, 2.0), (6.0, 8.0))
  assert strongest.hint == conversation.hint_text((6.0, 8.0), classes)
  assert every.hint == conversation.hint_text([(1.0, 2.0), (6.0, 8.0)], classes)
  assert _fixed_tetg("all").hint_fn(classes)("v", feats) == every.hint
  # one run: both hints are today's one-interval text
  single = {**feats, "dino_cls": np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0])[:, None]}
  assert (_fixed_tetg("all").view(single, classes).hint
          == _fixed_tetg("strongest").view(single, classes).hint
          == conversation.hint_text((6.0, 8.0), classes))
  assert tetg_files.TrainedTETG({}, tetg.TETGConfig()).hint_intervals == "strongest"
  with pytest.raises(InputError, match="hint_intervals.*got 'every'"):
    tetg_files.TrainedTETG({}, tetg.TETGConfig(), "every")


def test_hint_intervals_is_a_recorded_checked_key(tmp_path):
  import ml_collections
  from configs import vagpt_stage1
  from vaujax.errors import InputError
  from vaujax.runs import run_dir, tetg_files
  from vaujax.train import config_checks
  obj = run_dir.config_to_json(vagpt_stage1.get_config("size=tiny"))
  assert obj["data"]["hint_intervals"] == "strongest"
  obj["data"]["hint_intervals"] = "every"
  with pytest.raises(InputError, match=r"--config\.data\.hint_intervals.*got 'every'"):
    config_checks.check_vagpt(run_dir.config_from_json(obj))
  # a run saved before the key continues unchanged with "strongest", not with "all"
  saved = ml_collections.ConfigDict({"data": {"batch_size": 2}})
  given = ml_collections.ConfigDict({"data": {"batch_size": 2, "hint_intervals": "strongest"}})
  assert run_dir.diff_configs(saved, given) == []
  given.data.hint_intervals = "all"
  assert run_dir.diff_configs(saved, given) == ["data.hint_intervals: 'strongest' -> 'all'"]
  # the run's classifier carries the run's choice (read where hints are made)
  cfg = tetg.TETGConfig(hidden=(4,))
  params = tetg.TETGClassifier(cfg).init(jax.random.key(0), jnp.zeros((1, 3)))
  tetg_files.save_tetg(str(tmp_path / "tetg"), params, cfg)
  config = ml_collections.ConfigDict({"data": {"tetg_params": str(tmp_path / "tetg")}})
  assert run_dir.run_tetg(config).hint_intervals == "strongest"       # saved before the key
  config.data.hint_intervals = "all"
  assert run_dir.run_tetg(config).hint_intervals == "all"


def test_jittered_hints_move_each_boundary_within_the_frame_spacings():
  rng = np.random.default_rng(0)
  moved = [tetg.jittered((4.0, 9.0), 1.5, rng) for _ in range(2000)]
  starts, ends = np.array(moved).T
  assert starts.min() >= 2.5 and starts.max() <= 5.5 and ends.min() >= 7.5 and ends.max() <= 10.5
  assert starts.std() > 0.8 and ends.std() > 0.8                    # uniform over +-1.5: 0.87
  assert abs(np.corrcoef(starts, ends)[0, 1]) < 0.1                 # drawn apart
  near_zero = [tetg.jittered((0.2, 0.4), 2.0, rng) for _ in range(200)]
  assert all(0.0 <= s and e >= s + 0.1 - 1e-9 for s, e in near_zero)
  assert tetg.frame_spacing(np.array([0.0, 2.5, 5.0, 7.5])) == 2.5
  assert tetg.frame_spacing(np.array([3.0])) == 0.0
  assert tetg.frame_spacing(np.array([3.0]), default=1.0) == 1.0
  # the hint function: jitter in frame spacings, a named interval per run; none -> TETG's hint
  feats = {"dino_cls": np.array([0, .9, .8, 0, 0, 0, 1, 1, 1, 0])[:, None], "timestamps": T}
  classes = ("Fighting", "Explosion")
  for named in ("strongest", "all"):
    fixed = _fixed_tetg(named)
    hint = fixed.hint_fn(classes)
    exact = fixed.view(feats, classes).hint
    assert hint("v", feats) == exact == hint("v", feats, jitter=0.0, rng=rng)
    texts = {hint("v", feats, jitter=0.5, rng=np.random.default_rng(k)) for k in range(20)}
    assert len(texts) > 10 and exact not in texts
    for text in texts:
      spans = [tuple(map(float, m)) for m in re.findall(r"from ([\d.]+) to ([\d.]+)", text)]
      truth = fixed.view(feats, classes).intervals if named == "all" else [(6.0, 8.0)]
      spacing = float(np.median(np.diff(T)))
      assert len(spans) == len(truth)
      assert all(abs(a - c) <= 0.5 * spacing + 0.05 and abs(b - d) <= 0.5 * spacing + 0.05
                 for (a, b), (c, d) in zip(spans, truth))
  nothing = {**feats, "dino_cls": np.zeros((10, 1))}
  assert _fixed_tetg("strongest").hint_fn(classes)("v", nothing, jitter=1.0, rng=rng) == (
      conversation.hint_text(None, classes))


def test_the_hint_function_runs_the_classifier_once_per_video():
  """An epoch reads each video again: the view is kept by the video's id and its features'
  digest, so a cut frame of the same video (other features) gets its own, and the memo is
  bounded."""
  from vaujax.runs import tetg_files
  calls = []

  class Counting(tetg_files.TrainedTETG):
    def scores(self, class_embeddings):
      calls.append(len(class_embeddings))
      return np.asarray(class_embeddings)[:, 0]
  classes = ("Fighting", "Explosion")
  hint = Counting({}, tetg.TETGConfig()).hint_fn(classes, max_cached=2)
  feats = {"dino_cls": np.array([0, .9, .8, 0, 0, 0, 1, 1, 1, 0])[:, None], "timestamps": T}
  first = hint("v", feats)
  assert hint("v", dict(feats)) == first and calls == [10]
  moved = {**feats, "dino_cls": np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])[:, None]}
  assert hint("v", moved) == conversation.hint_text((7.0, 9.0), classes) != first
  cut = {"dino_cls": feats["dino_cls"][6:7], "timestamps": np.zeros(1)}
  hint("v", cut)
  assert calls == [10, 10, 1]
  hint("w", feats)                                # a fourth view: the memo of two starts afresh
  assert hint("v", feats) == first and calls == [10, 10, 1, 10, 10]
  jittered = {hint("v", feats, jitter=0.5, rng=np.random.default_rng(k)) for k in range(5)}
  assert len(jittered) > 1 and len(calls) == 5    # a new draw per read, from the kept view


def _recorded_checked_key(key: str, bad, other):
  """A data key of the run: 0 by default and for runs saved before it, `bad` refused by the
  config check, `other` a recorded change. -> the default tiny config."""
  import ml_collections
  from configs import vagpt_stage1
  from vaujax.errors import InputError
  from vaujax.runs import run_dir
  from vaujax.train import config_checks
  config = vagpt_stage1.get_config("size=tiny")
  assert config.data[key] == 0.0
  config.data[key] = bad
  with pytest.raises(InputError, match=rf"--config\.data\.{key}"):
    config_checks.check_vagpt(config)
  saved = ml_collections.ConfigDict({"data": {"batch_size": 2}})
  given = ml_collections.ConfigDict({"data": {"batch_size": 2, key: 0.0}})
  assert run_dir.diff_configs(saved, given) == []          # runs before the key: 0
  given.data[key] = other
  assert run_dir.diff_configs(saved, given) == [f"data.{key}: 0.0 -> {other}"]
  config.data[key] = other
  return config


def test_hint_jitter_is_a_recorded_checked_training_only_key():
  from vaujax.runs import run_dir
  from vaujax.train import vagpt_task
  config = _recorded_checked_key("hint_jitter", -0.5, 0.5)
  cfg = run_dir.model_config(config, 32000)
  assert vagpt_task.pipeline_config(config, cfg, train=True).hint_jitter == 0.5
  assert vagpt_task.pipeline_config(config, cfg, train=False).hint_jitter == 0.0   # held out


def test_tetg_reads_its_own_denser_frames_when_the_features_have_them():
  """A long video's model frames are capped (12 over 24 s: 2 s apart); TETG's own frames at
  1 fps find the interval to the second, and the hint, the jitter's spacing, the memo and the
  answer's frame scores all follow them. Without them nothing changes."""
  from vaujax.inference import assistant as assistant_lib
  classes = ("Fighting", "Explosion")
  model_t = np.arange(12) * 2.0 + 1.0                       # 1, 3, ..., 23 s
  dense_t = np.arange(24) + 0.5                             # 0.5, 1.5, ..., 23.5 s
  truth = (7.0, 12.0)
  model = {"dino_cls": ((model_t >= truth[0]) & (model_t <= truth[1])).astype(float)[:, None],
           "timestamps": model_t}
  dense = {**model, "tetg_cls": ((dense_t >= truth[0]) & (dense_t <= truth[1])).astype(float)[
      :, None], "tetg_timestamps": dense_t}
  fixed = _fixed_tetg("strongest")
  coarse, fine = fixed.view(model, classes), fixed.view(dense, classes)
  assert coarse.interval == (7.0, 11.0) and np.array_equal(coarse.timestamps, model_t)
  assert fine.interval == (7.5, 11.5) and np.array_equal(fine.timestamps, dense_t)
  assert len(fine.scores) == 24 and fine.hint == conversation.hint_text((7.5, 11.5), classes)
  hint = fixed.hint_fn(classes)
  assert hint("v", dense) == fine.hint and hint("v", model) == coarse.hint   # one memo entry each
  # jitter in TETG's frame spacings (1 s here, not the model's 2 s)
  for k in range(30):
    text = hint("v", dense, jitter=0.5, rng=np.random.default_rng(k))
    (a, b), = [tuple(map(float, m)) for m in re.findall(r"from ([\d.]+) to ([\d.]+)", text)]
    assert abs(a - 7.5) <= 0.55 and abs(b - 11.5) <= 0.55
  # the structured answer's frame scores are TETG's, at TETG's times
  answer = assistant_lib.structured_answer("Yes, fighting.", fine.scores, fine.timestamps,
                                           fine.interval, classes)
  assert [s["t"] for s in answer["frame_scores"]] == list(dense_t)


def test_tetg_fps_is_a_recorded_checked_key():
  _recorded_checked_key("tetg_fps", -1.0, 1.0)
