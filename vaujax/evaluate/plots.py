"""Figures (matplotlib): loss curves, TETG score curves, SETS selection maps.

Every function draws into a fresh `matplotlib.figure.Figure` (no pyplot state, no backend
switch, so notebooks keep their inline backend) and saves a PNG; none needs a display.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure


def _save(fig, path: str) -> str:
  import io
  from vaujax import files
  files.makedirs(os.path.dirname(files.absolute(path)))
  png = io.BytesIO()   # rendered in memory, then written atomically (also to a gs:// URL)
  fig.savefig(png, dpi=110, bbox_inches="tight", format=os.path.splitext(path)[1][1:] or "png")
  files.write_bytes(path, png.getvalue())
  return path


def loss_curves(path: str, histories: dict[str, Sequence[dict]]) -> str:
  """One line per run: `metrics.jsonl` rows with `step` and `loss`."""
  fig = Figure(figsize=(6, 3.5))
  ax = fig.subplots()
  offset = 0
  for name, rows in histories.items():
    steps = np.array([r["step"] for r in rows]) + offset
    ax.plot(steps, [r["loss"] for r in rows], label=name)
    offset = int(steps[-1]) if len(steps) else offset
  ax.set_xlabel("step (stage two continues stage one)")
  ax.set_ylabel("training loss (next token)")
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend()
  return _save(fig, path)


def draw_scores(ax, timestamps, scores, predicted=None, truth=None, threshold: float = 0.5):
  ax.plot(timestamps, scores, "o-", color="C0", label="TETG P(anomalous)")
  ax.axhline(threshold, color="gray", lw=0.8, ls=":")
  if truth is not None:
    ax.axvspan(truth[0], truth[1], color="C2", alpha=0.25, label="ground truth")
  if predicted is not None:
    ax.axvspan(predicted[0], predicted[1], ymin=0.9, ymax=1.0, color="C3", alpha=0.8,
               label="predicted interval")
  ax.set_ylim(-0.02, 1.05)
  ax.set_xlabel("time (s)")


def score_curves(path: str, videos: Sequence[dict], cols: int = 3) -> str:
  """Grid of per-video score curves: each dict has id, timestamps, scores, predicted, truth."""
  rows = max(1, -(-len(videos) // cols))
  fig = Figure(figsize=(4 * cols, 2.6 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  for ax, v in zip(axes.ravel(), videos):
    draw_scores(ax, v["timestamps"], v["scores"], v.get("predicted"), v.get("truth"))
    ax.set_title(v["id"], fontsize=9)
  for ax in axes.ravel()[len(videos):]:
    ax.axis("off")
  handles, labels = axes.ravel()[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.02))
  fig.tight_layout(rect=(0, 0.05, 1, 1))
  return _save(fig, path)


def sets_overlay(frame: np.ndarray, mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
  """uint8 frame [H, W, 3] with kept patches (mask [h*w] on `grid`) bright, dropped ones dim."""
  h, w = frame.shape[:2]
  gh, gw = grid
  m = np.asarray(mask, bool).reshape(gh, gw)
  ys = np.minimum((np.arange(h) * gh) // h, gh - 1)
  xs = np.minimum((np.arange(w) * gw) // w, gw - 1)
  keep = m[ys][:, xs]
  out = frame.astype(np.float32)
  out[~keep] *= 0.3
  return out.clip(0, 255).astype(np.uint8)


def sets_strip(ax_row, frames: np.ndarray, masks: np.ndarray, timestamps, grid) -> None:
  for ax, frame, mask, t in zip(ax_row, frames, masks, timestamps):
    ax.imshow(sets_overlay(frame, mask, grid))
    ax.set_title(f"{t:.1f} s", fontsize=8)
    ax.axis("off")


def sets_maps(path: str, videos: Sequence[dict]) -> str:
  """Rows of frames with the SETS-kept patches highlighted: dicts with id, frames, masks,
  timestamps, grid."""
  cols = max(len(v["frames"]) for v in videos)
  fig = Figure(figsize=(1.4 * cols, 1.6 * len(videos)))
  axes = fig.subplots(len(videos), cols, squeeze=False)
  for row, v in zip(axes, videos):
    sets_strip(row, v["frames"], v["masks"], v["timestamps"], v["grid"])
    row[0].text(-0.1, 0.5, v["id"], transform=row[0].transAxes, ha="right", va="center",
                fontsize=7, rotation=90)
    for ax in row[len(v["frames"]):]:
      ax.axis("off")
  return _save(fig, path)


def sets_masks(feats: dict, ratio: float) -> tuple[np.ndarray, tuple[int, int]]:
  """SETS keep masks [T, N] on the tower grid for one video's features."""
  from vaujax.models import sets
  out = sets.select(np.asarray(feats["dino_patches"]), np.asarray(feats["tower_patches"]),
                    ratio)
  n = feats["tower_patches"].shape[1]
  side = int(round(n ** 0.5))
  return np.asarray(out["mask"]), (side, side)


def video_figure(path: str, feats: dict, frames: Optional[np.ndarray],
                 scores: Optional[np.ndarray], predicted, truth, ratio: float,
                 title: str = "") -> str:
  """Score curve with predicted / true interval over a strip of frames with SETS patches."""
  t = np.asarray(feats["timestamps"])
  cols = len(t)
  fig = Figure(figsize=(max(8, 1.3 * cols), 5.0))
  gs = fig.add_gridspec(2, cols, height_ratios=(1.3, 1), hspace=0.45)
  ax = fig.add_subplot(gs[0, :])
  if scores is not None:
    draw_scores(ax, t, scores, predicted, truth)
    ax.legend(fontsize=8, loc="upper left")
  else:
    ax.text(0.5, 0.5, "no TETG classifier: no frame scores", ha="center", transform=ax.transAxes)
  ax.set_title(title)
  if frames is not None:
    masks, grid = sets_masks(feats, ratio)
    sets_strip([fig.add_subplot(gs[1, i]) for i in range(cols)], _crop_like(frames), masks, t,
               grid)
  return _save(fig, path)


def _crop_like(frames: np.ndarray) -> np.ndarray:
  """Square centre crop (the region the towers see after resize + centre crop)."""
  h, w = frames.shape[1:3]
  s = min(h, w)
  y, x = (h - s) // 2, (w - s) // 2
  return frames[:, y:y + s, x:x + s]
