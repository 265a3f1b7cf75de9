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
