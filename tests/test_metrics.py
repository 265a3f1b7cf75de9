import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from vaujax.evaluate import metrics


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10_000), ties=st.booleans())
def test_auc_and_ap_equal_sklearn(n, seed, ties):
  rng = np.random.RandomState(seed)
  y = rng.randint(0, 2, n)
  y[0], y[1] = 0, 1
  s = rng.rand(n)
  if ties:
    s = np.round(s * 4) / 4
  assert abs(metrics.roc_auc(y, s) - roc_auc_score(y, s)) < 1e-12
  assert abs(metrics.average_precision(y, s) - average_precision_score(y, s)) < 1e-12


def test_edge_cases():
  assert metrics.roc_auc([0, 1], [0.1, 0.9]) == 1.0
  assert metrics.roc_auc([0, 1], [0.5, 0.5]) == 0.5
  with pytest.raises(ValueError, match="both anomalous and normal"):
    metrics.roc_auc([1, 1], [0.2, 0.3])
  with pytest.raises(ValueError, match="NaN"):
    metrics.average_precision([0, 1], [0.1, np.nan])


def test_hand_computed_values():
  # scores 0.1 0.4 0.35 0.8 for labels 0 0 1 1: of the 4 (anomalous, normal) pairs, 3 are
  # ordered right -> AUC 3/4; ranked by score: 1 (tp), 0, 1 (tp), 0 -> AP = (1/1 + 2/3) / 2
  y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
  assert metrics.roc_auc(y, s) == pytest.approx(0.75, abs=1e-15)
  assert metrics.average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)
  # a tie between an anomalous and a normal frame counts half; tied frames enter AP together
  y, s = [1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1]
  assert metrics.roc_auc(y, s) == pytest.approx((2 + 1 + 0.5) / 4)     # 3.5 of 4 pairs
  assert metrics.average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * (2 / 3))
  # only anomalous frames: AP is 1 (precision 1 at every threshold)
  assert metrics.average_precision([1, 1], [0.3, 0.2]) == 1.0
  # all scores equal: AUC 1/2, AP = the anomalous fraction
  assert metrics.roc_auc([1, 0, 0], [2.0, 2.0, 2.0]) == 0.5
  assert metrics.average_precision([1, 0, 0], [2.0, 2.0, 2.0]) == pytest.approx(1 / 3)


def test_inputs_are_flattened_and_labels_are_truthiness():
  y = np.array([[0, 2], [0, 1]])                 # any non-zero label is anomalous
  s = np.array([[0.1, 0.9], [0.2, 0.8]], np.float32)
  assert metrics.roc_auc(y, s) == 1.0
  assert metrics.average_precision(y, s) == 1.0
  assert metrics.roc_auc([False, True], [3, 7]) == 1.0          # integer scores
  assert metrics.roc_auc([1.0, 0.0], [0.3, 0.7]) == 0.0


def test_errors_say_what_is_wrong():
  with pytest.raises(ValueError, match=r"^labels \(3,\) and scores \(2,\) differ in size$"):
    metrics.roc_auc([0, 1, 1], [0.1, 0.2])
  with pytest.raises(ValueError, match=r"^labels \(2,\) and scores \(3,\) differ in size$"):
    metrics.average_precision([0, 1], [0.1, 0.2, 0.3])
  for bad in (np.nan, np.inf, -np.inf):
    with pytest.raises(ValueError, match=r"^scores contain NaN or Inf$"):
      metrics.roc_auc([0, 1], [0.1, bad])
  with pytest.raises(ValueError, match=r"^ROC AUC needs both anomalous and normal frames$"):
    metrics.roc_auc([0, 0], [0.2, 0.3])
  with pytest.raises(ValueError, match=r"^average precision needs at least one anomalous "
                                       r"frame$"):
    metrics.average_precision([0, 0], [0.2, 0.3])


def test_unsigned_and_boolean_scores_rank_as_numbers():
  """A detector that emits uint8 (0-255) or thresholded bool scores: the highest score still
  ranks first. Frames 3 2 1 0 for labels 1 0 1 0: hits at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2;
  3 of the 4 (anomalous, normal) pairs are ordered right -> AUC 3/4. (Negating uint8 scores
  without converting them wraps around: -1 == 255.)"""
  y = [1, 0, 1, 0]
  s = np.array([3, 2, 1, 0], np.uint8)
  assert metrics.average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)
  assert metrics.roc_auc(y, s) == 0.75
  b = np.array([True, False, True, False])        # both anomalous frames flagged, tied first
  assert metrics.average_precision(y, b) == 1.0
  assert metrics.roc_auc(y, b) == 1.0
