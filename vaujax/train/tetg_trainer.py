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
  aucs = []

  def after_epoch(params):
    if eval_features is not None:
      aucs.append(metrics.roc_auc(eval_labels, tetg.frame_probabilities(params, cfg, eval_features)))
  params, losses = _sgd(lambda p, x, y, w: tetg.tetg_loss(model.apply(p, x), y, w),
                        nn.unbox(params), features, labels, 0, config, config.seed, after_epoch)
  return TETGResult(params, cfg, losses, aucs)


def _sgd(loss_fn, params, features: np.ndarray, targets: np.ndarray, pad_target: int,
         config: ml_collections.ConfigDict, seed: int, after_epoch=None) -> tuple[dict, list]:
  """The paper's SGD (config's learning rate, momentum, batch and epochs) of `loss_fn(params,
  x, y, w)` over every frame once per epoch, in an order drawn from `seed` + epoch; the last
  partial batch is padded (`pad_target`, weight 0), so every step has one static shape.
  -> (params, the loss of every step)."""
  tx = optax.sgd(config.learning_rate, momentum=config.momentum or None)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y, w):
    loss, grads = jax.value_and_grad(lambda p: loss_fn(p, x, y, w))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  bs, n, losses = config.batch_size, len(features), []
  for epoch in range(config.num_epochs):
    order = np.random.RandomState(seed + epoch).permutation(n)
    for start in range(0, n, bs):
      idx = order[start:start + bs]
      pad = bs - len(idx)
      x = np.concatenate([features[idx], np.zeros((pad, features.shape[1]), np.float32)])
      y = np.concatenate([targets[idx], np.full(pad, pad_target, np.int32)])
      w = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
      params, opt_state, loss = step(params, opt_state, x, y, w)
      losses.append(float(loss))
    if after_epoch is not None:
      after_epoch(params)
  return params, losses


@dataclasses.dataclass
class TypeResult:
  """The typed hint's class head (`tetg.TETGTypeClassifier`), trained on anomalous frames."""
  params: dict
  hidden: tuple[int, ...]
  classes: tuple[str, ...]
  losses: list[float]


def train_types(features: np.ndarray, class_ids: np.ndarray, classes, config:
                ml_collections.ConfigDict) -> TypeResult:
  """SGD as TETG's (learning rate, momentum, batch, epochs, seed of `config`) on the frames
  with a class (`class_ids` >= 0, indices into `classes`; -1 frames are left out)."""
  features = np.asarray(features, np.float32)
  class_ids = np.asarray(class_ids, np.int32)
  if features.ndim != 2 or class_ids.shape != (features.shape[0],):
    raise ValueError(f"expected features [N, D] and class ids [N], got {features.shape} and "
                     f"{class_ids.shape}")
  classes = tuple(classes)
  keep = class_ids >= 0
  if not keep.any():
    raise ValueError("no anomalous frame with a class to train the type head on")
  if class_ids.max() >= len(classes):
    raise ValueError(f"class id {int(class_ids.max())} for {len(classes)} classes")
  features, class_ids = features[keep], class_ids[keep]
  if not np.isfinite(features).all():
    raise ValueError("TETG features contain NaN or Inf")
  hidden = tuple(config.hidden)
  model = tetg.TETGTypeClassifier(hidden, len(classes))
  params = nn.unbox(model.init(jax.random.key(config.seed + 1),
                               jnp.zeros((1, features.shape[1]))))
  params, losses = _sgd(lambda p, x, y, w: tetg.type_loss(model.apply(p, x), y, w), params,
                        features, class_ids, -1, config, config.seed + 1)
  return TypeResult(params, hidden, classes, losses)


def save(path: str, result: TETGResult, types: Optional[TypeResult] = None) -> None:
  """Writes a trained classifier, with its type head when given (`runs.tetg_files.load_tetg`
  reads both back)."""
  from vaujax.runs import tetg_files
  head = None if types is None else tetg_files.TypeHead(types.params, types.hidden,
                                                        types.classes)
  tetg_files.save_tetg(path, result.params, result.model_config, head)


def frames_from_features(feature_dir: str, labels: dict, classes=None):
  """Class embeddings and 0/1 frame labels of every video in `labels`
  ({video_id: {"anomaly_intervals": [[s, e], ...]}}) that has a feature file. With `classes`
  also each frame's class index (`tetg.frame_class_ids`: from the entry's "events" ({"label",
  "interval"}), else its "label" over every interval; -1 outside them) as a third array."""
  from vaujax import files
  from vaujax.data import features
  xs, ys, ks = [], [], []
  for video_id, truth in sorted(labels.items()):
    path = features.feature_path(feature_dir, video_id)
    if not files.exists(path):
      continue
    feats = features.read_features(path, {"dino_cls": None, "timestamps": ()})
    xs.append(feats["dino_cls"])
    ys.append(tetg.frame_labels(feats["timestamps"], truth.get("anomaly_intervals", [])))
    if classes is not None:
      ks.append(tetg.frame_class_ids(feats["timestamps"], _class_events(video_id, truth,
                                                                        classes)))
  if not xs:
    raise ValueError(f"no feature files in {feature_dir} for the labelled videos")
  out = (np.concatenate(xs), np.concatenate(ys))
  return out if classes is None else out + (np.concatenate(ks),)


def _class_events(video_id: str, truth: dict, classes) -> list[tuple[int, float, float]]:
  """(class index, start, end) of a labels entry's anomalies."""
  events = truth.get("events") or [{"label": truth.get("label"), "interval": i}
                                   for i in truth.get("anomaly_intervals", [])]
  out = []
  for e in events:
    if e.get("label") not in classes:
      raise ValueError(f"{video_id}: anomaly class {e.get('label')!r} is not one of "
                       f"{list(classes)}")
    out.append((list(classes).index(e["label"]), float(e["interval"][0]),
                float(e["interval"][1])))
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> TETGResult:
  """`python -m vaujax.train --config configs/tetg.py --workdir DIR`: trains and saves."""
  import os

  from vaujax.data.annotations import read_labels
  from vaujax.errors import InputError
  from vaujax.files import write_json
  from vaujax.train import config_checks
  config_checks.check_tetg(config)
  labels = read_labels(config.data.labels_json)   # validated: each video's [start, end] pairs
  classes = tuple(c for c in str(config.get("types", "")).split(",") if c)
  if classes:
    try:
      x, y, k = frames_from_features(config.data.feature_dir, labels, classes)
    except ValueError as e:
      raise InputError(config.data.labels_json, str(e)) from e
  else:
    x, y = frames_from_features(config.data.feature_dir, labels)
  result = train(x, y, config)
  types = train_types(x, k, classes, config) if classes else None
  save(os.path.join(workdir, "tetg"), result, types)
  summary = {"frames": int(len(y)), "anomalous": int(y.sum()), "final_loss": result.losses[-1]}
  if types is not None:
    summary["type_final_loss"] = types.losses[-1]
  write_json(os.path.join(workdir, "tetg_summary.json"), summary)
  print(f"TETG trained on {summary['frames']} frames; saved to {workdir}/tetg", flush=True)
  return result
