"""Frame-level anomaly detection metrics from per-frame scores (numpy, no sklearn needed).

- `roc_auc`: area under the ROC curve (UCF-Crime convention), ties counted half
  (the Mann-Whitney U statistic with average ranks).
- `average_precision`: area under the precision-recall curve as a step function over distinct
  score thresholds (XD-Violence convention; sklearn's definition).
"""

from __future__ import annotations

import numpy as np


def _check(labels, scores):
  y = np.asarray(labels).astype(bool).ravel()
  s = np.asarray(scores, np.float64).ravel()
  if y.shape != s.shape:
    raise ValueError(f"labels {y.shape} and scores {s.shape} differ in size")
  if not np.isfinite(s).all():
    raise ValueError("scores contain NaN or Inf")
  return y, s


def roc_auc(labels, scores) -> float:
  y, s = _check(labels, scores)
  pos, neg = int(y.sum()), int((~y).sum())
  if pos == 0 or neg == 0:
    raise ValueError("ROC AUC needs both anomalous and normal frames")
  order = np.argsort(s, kind="mergesort")
  ranks = np.empty(len(s))
  sorted_s = s[order]
  starts = np.r_[0, np.nonzero(np.diff(sorted_s))[0] + 1]
  ends = np.r_[starts[1:], len(s)]
  for a, b in zip(starts, ends):       # average rank within ties
    ranks[order[a:b]] = (a + b + 1) / 2
  return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(labels, scores) -> float:
  y, s = _check(labels, scores)
  if not y.any():
    raise ValueError("average precision needs at least one anomalous frame")
  order = np.argsort(-s, kind="mergesort")
  y, s = y[order], s[order]
  last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
  tp = np.cumsum(y)[last_of_tie]
  precision = tp / (last_of_tie + 1)
  recall = tp / y.sum()
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
