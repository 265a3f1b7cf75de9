"""The TETG classifier's own trainer: SGD (lr 1e-3, batch 32 in the paper) on frame labels.

Frames come as class embeddings [N, D] with 0/1 labels (from annotation timestamps via
`tetg.frame_labels`). The last partial batch of an epoch is padded and masked, so every step has
the same static shape and every frame is seen once per epoch. Deterministic by `config.seed`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vaujax.evaluate import metrics
from vaujax.models import tetg


@dataclasses.dataclass
class TETGResult:
  params: dict
  model_config: tetg.TETGConfig
  losses: list[float]
  eval_auc: list[float]


def model_config(config: ml_collections.ConfigDict) -> tetg.TETGConfig:
  return tetg.TETGConfig(hidden=tuple(config.hidden), threshold=config.threshold,
                         smooth=config.smooth, merge_gap=config.merge_gap,
                         extend=config.get("extend", 0.0))


def train(features: np.ndarray, labels: np.ndarray, config: ml_collections.ConfigDict, *,
          eval_features: Optional[np.ndarray] = None,
          eval_labels: Optional[np.ndarray] = None) -> TETGResult:
  features = np.asarray(features, np.float32)
  labels = np.asarray(labels, np.int32)
  if features.ndim != 2 or labels.shape != (features.shape[0],):
    raise ValueError(f"expected features [N, D] and labels [N], got {features.shape} and "
                     f"{labels.shape}")
  if not np.isfinite(features).all():
    raise ValueError("TETG features contain NaN or Inf")
  cfg = model_config(config)
  model = tetg.TETGClassifier(cfg)
  params = model.init(jax.random.key(config.seed), jnp.zeros((1, features.shape[1])))
  params = nn.unbox(params)
  tx = optax.sgd(config.learning_rate, momentum=config.momentum or None)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y, w):
    loss, grads = jax.value_and_grad(lambda p: tetg.tetg_loss(model.apply(p, x), y, w))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  bs, n = config.batch_size, len(features)
  losses, aucs = [], []
  for epoch in range(config.num_epochs):
    order = np.random.RandomState(config.seed + epoch).permutation(n)
    for start in range(0, n, bs):
      idx = order[start:start + bs]
      pad = bs - len(idx)
      x = np.concatenate([features[idx], np.zeros((pad, features.shape[1]), np.float32)])
      y = np.concatenate([labels[idx], np.zeros(pad, np.int32)])
      w = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
      params, opt_state, loss = step(params, opt_state, x, y, w)
      losses.append(float(loss))
    if eval_features is not None:
      aucs.append(metrics.roc_auc(eval_labels, tetg.frame_probabilities(params, cfg, eval_features)))
  return TETGResult(params, cfg, losses, aucs)


def save(path: str, result: TETGResult) -> None:
  """Writes a trained classifier (`runs.tetg_files.load_tetg` reads it back)."""
  from vaujax.runs import tetg_files
  tetg_files.save_tetg(path, result.params, result.model_config)


def frames_from_features(feature_dir: str, labels: dict) -> tuple[np.ndarray, np.ndarray]:
  """Class embeddings and 0/1 frame labels of every video in `labels`
  ({video_id: {"anomaly_intervals": [[s, e], ...]}}) that has a feature file."""
  from vaujax import files
  from vaujax.data import features
  xs, ys = [], []
  for video_id, truth in sorted(labels.items()):
    path = features.feature_path(feature_dir, video_id)
    if not files.exists(path):
      continue
    feats = features.read_features(path, {"dino_cls": None, "timestamps": ()})
    xs.append(feats["dino_cls"])
    ys.append(tetg.frame_labels(feats["timestamps"], truth.get("anomaly_intervals", [])))
  if not xs:
    raise ValueError(f"no feature files in {feature_dir} for the labelled videos")
  return np.concatenate(xs), np.concatenate(ys)


def run(config: ml_collections.ConfigDict, workdir: str) -> TETGResult:
  """`python -m vaujax.train --config configs/tetg.py --workdir DIR`: trains and saves."""
  import os

  from vaujax.data.annotations import read_labels
  from vaujax.files import write_json
  from vaujax.train import config_checks
  config_checks.check_tetg(config)
  labels = read_labels(config.data.labels_json)   # validated: each video's [start, end] pairs
  x, y = frames_from_features(config.data.feature_dir, labels)
  result = train(x, y, config)
  save(os.path.join(workdir, "tetg"), result)
  summary = {"frames": int(len(y)), "anomalous": int(y.sum()), "final_loss": result.losses[-1]}
  write_json(os.path.join(workdir, "tetg_summary.json"), summary)
  print(f"TETG trained on {summary['frames']} frames; saved to {workdir}/tetg", flush=True)
  return result
