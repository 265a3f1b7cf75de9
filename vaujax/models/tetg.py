"""TETG: temporal effective token generation (VA-GPT).

A 3-layer MLP scores each frame's class embedding (DINOv2 pooler output) as anomalous; the
confident anomalous run becomes a text hint in the prompt.

Label / logit convention: the classifier outputs one logit `s` per frame, the *anomalous* score,
`P(anomalous) = sigmoid(s)`. The paper writes its loss with `sigma(F_A(z))` as the probability of
*normal*: `L = E_normal[-log sigma(F(z))] + E_anomalous[-log(1 - sigma(F(z)))]`. With
`F(z) = -s` that is exactly `tetg_loss` below (a class-balanced sigmoid cross-entropy: the mean
over normal frames plus the mean over anomalous frames).

Interval rule (`extract_interval`): smooth the per-frame probabilities with a centred moving
average of `smooth` frames (1 = none), mark frames with `p >= threshold` (0.5), merge runs
separated by at most `merge_gap` frames (0), and keep the run with the largest probability mass;
its first and last frame timestamps are <a-start> and <a-end>, each moved outwards by `extend`
times the frame spacing (0 by default; `configs/tetg.py` uses 0.5, since a frame sampled at t
stands for the half-spacing around it). No marked frame -> no interval. `extract_intervals`
keeps every run, in time order, for videos with several anomalies.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array



@dataclasses.dataclass(frozen=True)
class TETGConfig:
  hidden: tuple[int, ...] = (512, 256)   # two hidden layers + the output layer = 3 layers
  threshold: float = 0.5
  smooth: int = 1
  merge_gap: int = 0
  extend: float = 0.0   # widen each end by this fraction of the frame spacing (0.5: a frame
                        # sampled at t stands for [t - dt/2, t + dt/2])


class TETGClassifier(nn.Module):
  """[..., D] class embeddings -> [...] anomalous logits."""

  config: TETGConfig = TETGConfig()
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array) -> Array:
    x = _relu_mlp(z.astype(self.dtype), (*self.config.hidden, 1), self.dtype, self.param_dtype)
    return x[..., 0].astype(jnp.float32)


def _relu_mlp(x: Array, widths: Sequence[int], dtype, param_dtype) -> Array:
  """Dense layers fc1.. of `widths` with ReLU between them (called inside a module's compact
  `__call__`: the layers are that module's)."""
  for i, width in enumerate(widths):
    x = nn.Dense(width, dtype=dtype, param_dtype=param_dtype,
                 kernel_init=nn.with_logical_partitioning(
                     nn.initializers.lecun_normal(), ("embed" if i == 0 else "mlp", "mlp")),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)),
                 name=f"fc{i + 1}")(x)
    if i < len(widths) - 1:
      x = nn.relu(x)
  return x


def tetg_loss(logits: Array, labels: Array, weights: Optional[Array] = None) -> Array:
  """The paper's loss: mean over normal frames of -log P(normal) + mean over anomalous frames of
  -log P(anomalous). labels: 1 anomalous, 0 normal; `weights` masks padding (1 = real)."""
  weights = jnp.ones_like(logits) if weights is None else weights
  labels = labels.astype(jnp.float32)
  log_p_anom, log_p_normal = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
  anom_w, normal_w = weights * labels, weights * (1 - labels)
  term_normal = -(normal_w * log_p_normal).sum() / jnp.maximum(normal_w.sum(), 1)
  term_anom = -(anom_w * log_p_anom).sum() / jnp.maximum(anom_w.sum(), 1)
  return term_normal + term_anom


def frame_labels(timestamps: np.ndarray, intervals: Sequence[Sequence[float]]) -> np.ndarray:
  """1 where a frame's timestamp lies in any [start, end] anomaly interval (seconds), else 0."""
  return (frame_class_ids(timestamps, [(0, start, end) for start, end in intervals])
          >= 0).astype(np.int32)


def extract_interval(probs: np.ndarray, timestamps: np.ndarray,
                     config: TETGConfig = TETGConfig()) -> Optional[tuple[float, float]]:
  """(start_s, end_s) of the confident anomalous run, or None (rule in the module docstring)."""
  p, t, runs = _confident_runs(probs, timestamps, config)
  if not runs:
    return None
  start, end = max(runs, key=lambda r: (p[r[0]:r[1] + 1].sum(), -r[0]))
  return _seconds(t, start, end, config)


def extract_intervals(probs: np.ndarray, timestamps: np.ndarray,
                      config: TETGConfig = TETGConfig()) -> list[tuple[float, float]]:
  """(start_s, end_s) of every confident anomalous run, in time order (a video with several
  anomalies); the same smoothing, threshold, merging and extension as `extract_interval`, whose
  interval is one of these. No marked frame -> []."""
  _, t, runs = _confident_runs(probs, timestamps, config)
  return [_seconds(t, start, end, config) for start, end in runs]


def _confident_runs(probs, timestamps, config: TETGConfig):
  """(smoothed probabilities [T], timestamps [T] float64, runs [(first, last) frame index])."""
  p = np.asarray(probs, np.float64)
  t = np.asarray(timestamps, np.float64)
  if p.shape != t.shape or p.ndim != 1:
    raise ValueError(f"probs {p.shape} and timestamps {t.shape} must be equal 1-D shapes")
  if not len(p):
    return p, t, []
  if config.smooth > 1:
    kernel = np.ones(config.smooth) / config.smooth
    padded = np.pad(p, (config.smooth // 2, (config.smooth - 1) // 2), mode="edge")
    p = np.convolve(padded, kernel, mode="valid")
  return p, t, _runs(p >= config.threshold, config.merge_gap)


def frame_spacing(timestamps, default: float = 0.0) -> float:
  """The median time between a video's consecutive frames; `default` for fewer than two."""
  t = np.asarray(timestamps, np.float64)
  return float(np.median(np.diff(t))) if t.size > 1 else default


def jittered(interval: tuple[float, float], most: float, rng) -> tuple[float, float]:
  """`interval` with each boundary moved by a uniform draw in [-most, most] seconds, kept in
  order (at least 0.1 s long) and not before 0: what TETG's frame-quantised interval is off by
  on a video it was not trained on."""
  start = max(0.0, interval[0] + float(rng.uniform(-most, most)))
  end = max(start + 0.1, interval[1] + float(rng.uniform(-most, most)))
  return start, end


def _seconds(t: np.ndarray, start: int, end: int, config: TETGConfig) -> tuple[float, float]:
  """A run's first and last frame times, each moved outwards by `extend` frame spacings."""
  if config.extend and len(t) > 1:
    dt = frame_spacing(t)
    return (max(0.0, float(t[start]) - config.extend * dt),
            float(t[end]) + config.extend * dt)
  return float(t[start]), float(t[end])


def _runs(marked: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
  runs: list[list[int]] = []
  for i in np.nonzero(marked)[0]:
    if runs and i - runs[-1][1] - 1 <= merge_gap:
      runs[-1][1] = int(i)
    else:
      runs.append([int(i), int(i)])
  return [tuple(r) for r in runs]


@functools.lru_cache(maxsize=8)
def _probabilities_fn(cfg: TETGConfig):
  """One compiled classifier per config (the data pipeline calls it once per example)."""
  model = TETGClassifier(cfg)
  return jax.jit(lambda params, x: jax.nn.sigmoid(model.apply(params, x)))


def frame_probabilities(params, cfg: TETGConfig, class_embeddings) -> np.ndarray:
  """P(anomalous) per frame [T] of a video's DINOv2 class embeddings [T, D]."""
  return np.asarray(_probabilities_fn(cfg)(params, jnp.asarray(class_embeddings, jnp.float32)))


# --- The typed hint (issue 29): which anomaly class each confident run shows -----------------
# A vaujax design, not the paper's TETG (a binary classifier): with several anomalies in one
# video the paper "incorporates the anomaly type into the prompt"; here a second MLP of TETG's
# shape scores each frame's class embedding over the anomaly classes, and each run of the hint
# is named by the class its frames score highest on average. Trained on the anomalous frames
# of the training videos only (frame labels from the annotated events' classes).


class TETGTypeClassifier(nn.Module):
  """[..., D] class embeddings -> [..., C] logits over the anomaly classes."""

  hidden: tuple[int, ...] = (512, 256)
  num_classes: int = 2
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: Array) -> Array:
    x = _relu_mlp(z.astype(self.dtype), (*self.hidden, self.num_classes), self.dtype,
                  self.param_dtype)
    return x.astype(jnp.float32)


def type_loss(logits: Array, class_ids: Array, weights: Optional[Array] = None) -> Array:
  """Mean softmax cross-entropy over the frames with a class (`class_ids` >= 0; -1: a normal
  frame, not counted) and `weights` 1 (0 masks padding). logits [N, C], class_ids [N]."""
  ids = jnp.asarray(class_ids)
  w = (ids >= 0).astype(jnp.float32) * (1.0 if weights is None else weights)
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  picked = jnp.take_along_axis(log_p, jnp.maximum(ids, 0)[:, None], -1)[:, 0]
  return -(w * picked).sum() / jnp.maximum(w.sum(), 1)


def frame_class_ids(timestamps: np.ndarray, events: Sequence[tuple[int, float, float]]
                    ) -> np.ndarray:
  """[T] class index of the event each frame lies in (`events`: (class index, start, end)
  seconds, inclusive; a frame in two overlapping events takes the later-listed one), -1 for a
  frame in none."""
  t = np.asarray(timestamps, np.float64)
  ids = np.full(t.shape, -1, np.int32)
  for k, start, end in events:
    if end < start:
      raise ValueError(f"anomaly interval ends before it starts: [{start}, {end}]")
    ids[(t >= start) & (t <= end)] = k
  return ids


def run_type(probs: np.ndarray, timestamps: np.ndarray,
             run: Sequence[float]) -> Optional[int]:
  """The class index whose mean probability over the frames inside `run` ([start, end]
  seconds, inclusive) is highest (ties: the lower index), or None when no frame lies inside.
  probs [S, C], timestamps [S]."""
  p = np.asarray(probs, np.float64)
  t = np.asarray(timestamps, np.float64)
  if p.ndim != 2 or t.shape != (p.shape[0],):
    raise ValueError(f"expected probs [S, C] and timestamps [S], got {p.shape} and {t.shape}")
  inside = (t >= run[0]) & (t <= run[1])
  return int(np.argmax(p[inside].mean(0))) if inside.any() else None


@functools.lru_cache(maxsize=8)
def _type_probabilities_fn(hidden: tuple[int, ...], num_classes: int):
  model = TETGTypeClassifier(hidden, num_classes)
  return jax.jit(lambda params, x: jax.nn.softmax(model.apply(params, x), -1))


def type_probabilities(params, hidden: Sequence[int], num_classes: int,
                       class_embeddings) -> np.ndarray:
  """[T, C] class probabilities per frame of a video's DINOv2 class embeddings [T, D]."""
  return np.asarray(_type_probabilities_fn(tuple(hidden), int(num_classes))(
      params, jnp.asarray(class_embeddings, jnp.float32)))
