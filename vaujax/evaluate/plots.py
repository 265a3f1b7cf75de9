"""Figures (matplotlib): loss curves, TETG score curves, SETS selection maps, the answer figure.

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


def smooth(values: Sequence[float], weight: float = 0.9) -> np.ndarray:
  """Exponential moving average, debiased as TensorBoard's: s_i = m_i / (1 - weight^(i+1)) with
  m_i = weight * m_{i-1} + (1 - weight) * v_i, m_{-1} = 0, so the first point is v_0 itself
  rather than pulled towards zero. NaNs are skipped (they keep the previous average)."""
  if not 0.0 <= weight < 1.0:
    raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
  out = np.empty(len(values))
  m, n = 0.0, 0
  for i, v in enumerate(np.asarray(values, np.float64)):
    if v == v:
      m, n = weight * m + (1.0 - weight) * v, n + 1
    out[i] = m / (1.0 - weight ** n) if n else np.nan
  return out


def eval_points(rows: Sequence[dict], suffix: str = "_acc") -> dict[str, tuple[list, list]]:
  """`eval_*<suffix>` metrics logged by training -> {name: (steps, values)} (held-out
  accuracy measured during training, e.g. `eval_mc_total_acc`)."""
  out: dict[str, tuple[list, list]] = {}
  for r in rows:
    for k, v in r.items():
      if k.startswith("eval_") and k.endswith(suffix) and isinstance(v, (int, float)):
        steps, values = out.setdefault(k, ([], []))
        steps.append(r["step"])
        values.append(v)
  return out


def smoothing_for(num_points: int) -> float:
  """The EMA weight for a curve of `num_points`: an averaging window of ~1/50 of the curve, at
  least 5 points (8000 steps -> 0.99375, 120 steps -> 0.8)."""
  return 1.0 - 1.0 / max(5.0, num_points / 50)


def _stages(histories: dict[str, Sequence[dict]]) -> list[dict]:
  """Consecutive stages on one step axis: each stage's colour index, name, rows, steps (offset
  by the previous stages' last step) and losses; stages without loss rows left out."""
  out, offset = [], 0
  for i, (name, rows) in enumerate(histories.items()):
    rows = [r for r in rows if "loss" in r]
    if rows:
      steps = np.array([r["step"] for r in rows]) + offset
      out.append({"color": f"C{i}", "name": name, "rows": rows, "start": offset, "steps": steps,
                  "loss": np.array([r["loss"] for r in rows], np.float64)})
      offset = int(steps[-1])
  return out


def _draw_stages(ax, stages: list[dict], smoothing: Optional[float], labels: bool,
                 named: Sequence[int]) -> None:
  """Raw loss (faint) and its EMA per stage; a dashed line where each later stage starts and
  the stages `named` (indices) labelled there."""
  for j, s in enumerate(stages):
    weight = smoothing_for(len(s["loss"])) if smoothing is None else smoothing
    ax.plot(s["steps"], s["loss"], color=s["color"], alpha=0.25, lw=0.8)
    ax.plot(s["steps"], smooth(s["loss"], weight), color=s["color"], lw=1.8,
            label=f"{s['name']}: EMA {weight:.3g} (raw faint)" if labels else None)
    if j:
      ax.axvline(s["start"], color="k", ls="--", lw=1)
    if j in named:
      ax.text(s["start"], 1.0, f" {s['name']} →", transform=ax.get_xaxis_transform(),
              ha="left", va="bottom", fontsize=8)
  ax.set_yscale("log")
  ax.grid(alpha=0.3)


def loss_curves(path: str, histories: dict[str, Sequence[dict]],
                smoothing: Optional[float] = None) -> str:
  """Training loss of consecutive stages on one step axis: `metrics.jsonl` rows with `step` and
  `loss`. Raw loss faint, its EMA (`smooth`, restarted per stage; weight `smoothing_for` the
  stage's length unless given) solid, a dashed line and a label where each stage starts, and
  held-out accuracies (`eval_*_acc`) on a second axis. A last stage shorter than 15% of all
  steps (the demo's stage two) is also drawn zoomed in, on the right."""
  stages = _stages(histories)
  first = stages[-1]["start"] if stages else 0
  last = int(stages[-1]["steps"][-1]) if stages else 0
  zoom = len(stages) > 1 and last - first < 0.15 * last
  fig = Figure(figsize=(10 if zoom else 7.5, 4))
  axes = fig.subplots(1, 2, width_ratios=(3, 1.3)) if zoom else [fig.subplots()]
  ax = axes[0]
  _draw_stages(ax, stages, smoothing, True, range(len(stages) - zoom))
  acc_ax = None
  for s in stages:
    for key, (steps, values) in eval_points(s["rows"]).items():
      acc_ax = acc_ax or ax.twinx()
      temporal = "temporal" in key
      acc_ax.plot(np.array(steps) + s["start"], 100 * np.array(values),
                  "s" if temporal else "o", color=s["color"],
                  mfc="white" if temporal else s["color"], ms=6, ls=":",
                  label=f"held-out {key[len('eval_'):].replace('_', ' ')} ({s['name']})")
  ax.set_xlabel("step (each stage continues the previous one)")
  ax.set_ylabel("training loss (next token, log scale)")
  handles, labels = ax.get_legend_handles_labels()
  if acc_ax is not None:
    acc_ax.set_ylabel("held-out accuracy (%)")
    acc_ax.set_ylim(0, 105)
    more = acc_ax.get_legend_handles_labels()
    handles, labels = handles + more[0], labels + more[1]
  if handles:
    ax.legend(handles, labels, fontsize=8, loc="lower left")
  if zoom:   # the last stage and as many steps before it
    lo = first - (last - first)
    _draw_stages(axes[1], stages, smoothing, False, [len(stages) - 1])
    seen = np.concatenate([s["loss"][s["steps"] >= lo] for s in stages])
    axes[1].set_xlim(lo, last + 1)
    axes[1].set_ylim(seen.min() * 0.9, seen.max() * 1.1)
    axes[1].set_title("zoom on the last stage", fontsize=9, pad=14)
    axes[1].set_xlabel("step")
  fig.tight_layout()
  return _save(fig, path)


def draw_scores(ax, timestamps, scores, predicted=None, truth=None, threshold: float = 0.5):
  ax.plot(timestamps, scores, "o-", color="C0", label="TETG P(anomalous)")
  ax.axhline(threshold, color="gray", lw=0.8, ls=":")
  if truth is not None:
    ax.axvspan(truth[0], truth[1], color="C2", alpha=0.25, label="ground truth")
  if predicted is not None:
    ax.axvspan(predicted[0], predicted[1], ymin=0.9, ymax=1.0, color="C3", alpha=0.8,
               label="TETG interval (prompt hint)")
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


DIM = 0.3   # dropped patches keep this fraction of their brightness in the SETS maps


def sets_overlay(frame: np.ndarray, mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
  """uint8 frame [H, W, 3] with kept patches (mask [h*w] on `grid`) as they are and dropped ones
  dimmed to `DIM` of their brightness. The frame must be the tower's view (`_crop_like`)."""
  keep = keep_pixels(mask, grid, frame.shape[:2])
  out = frame.astype(np.float32)
  out[~keep] *= DIM
  return out.clip(0, 255).astype(np.uint8)


def keep_pixels(mask: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
  """bool [H, W]: the pixels of the kept patches (mask [h*w] on `grid`, row-major)."""
  (h, w), (gh, gw) = shape, grid
  m = np.asarray(mask, bool).reshape(gh, gw)
  ys = np.minimum((np.arange(h) * gh) // h, gh - 1)
  xs = np.minimum((np.arange(w) * gw) // w, gw - 1)
  return m[ys][:, xs]


def in_interval(timestamps, interval) -> np.ndarray:
  """bool [T]: which frame times fall inside `interval` (start, end), ends included."""
  t = np.asarray(timestamps, np.float64)
  if interval is None:
    return np.zeros(t.shape, bool)
  return (t >= interval[0]) & (t <= interval[1])


def sets_strip(ax_row, frames: np.ndarray, masks: np.ndarray, timestamps, grid,
               truth=None) -> None:
  """Frames as the towers see them (square centre crop) with SETS's kept patches bright, each
  titled with its time; frames inside the true interval `truth` get a red border."""
  inside = in_interval(timestamps, truth)
  for ax, frame, mask, t, red in zip(ax_row, _crop_like(frames), masks, timestamps, inside):
    ax.imshow(sets_overlay(frame, mask, grid))
    keep = keep_pixels(mask, grid, frame.shape[:2])
    if keep.any() and not keep.all():   # outlined too: on a dark scene bright and dim are close
      ax.contour(keep.astype(np.float32), levels=[0.5], colors="yellow", linewidths=0.6)
    ax.set_title(f"{t:.1f} s", fontsize=8, color="red" if red else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
      spine.set_visible(bool(red))
      spine.set_color("red")
      spine.set_linewidth(3)


def sets_key(ratio: float, grid: tuple[int, int]) -> str:
  """What the SETS maps show, in words (the figure's key)."""
  from vaujax.models import sets
  n = grid[0] * grid[1]
  k = sets.num_kept(n, ratio)
  return (f"Bright: the patches SETS keeps, K = {ratio:g} (k = {k} of the {grid[0]}x{grid[1]} = "
          f"{n} patches per frame),\nthose whose DINOv2 features changed most since the "
          f"previous frame (L1 distance); only their tokens reach the LLM.\nDim: dropped "
          f"patches. The first frame has no previous frame: SETS compares it with the second,\n"
          f"so the first two frames keep the same patches. Red border: frame inside the true "
          f"anomaly interval.")


def _sets_legend(fig, ratio: float, grid: tuple[int, int], y: float) -> None:
  from matplotlib.patches import Patch
  handles = [Patch(facecolor="0.9", edgecolor="yellow", lw=1.5, label="kept (bright, outlined)"),
             Patch(facecolor="0.27", edgecolor="0.4", label=f"dropped (dimmed to {DIM:g}x)"),
             Patch(facecolor="none", edgecolor="red", lw=2.5, label="inside true interval")]
  fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.01, y), fontsize=8,
             frameon=False)
  fig.text(0.27, y, sets_key(ratio, grid), fontsize=8, va="top", ha="left")


def sets_maps(path: str, videos: Sequence[dict], ratio: float = 0.5) -> str:
  """Rows of frames with the SETS-kept patches highlighted, over a key: dicts with id, frames,
  masks, timestamps, grid and optionally `truth` (interval) and `label` (row caption)."""
  cols = max(len(v["frames"]) for v in videos)
  width = max(9.0, 1.25 * cols)
  fig = Figure(figsize=(width, 1.4 * len(videos) + 1.3))
  key_h = 1.3 / (1.4 * len(videos) + 1.3)
  gs = fig.add_gridspec(len(videos), cols, top=0.97, bottom=key_h + 0.02, hspace=0.35,
                        wspace=0.08)
  for r, v in enumerate(videos):
    row = [fig.add_subplot(gs[r, i]) for i in range(len(v["frames"]))]
    sets_strip(row, v["frames"], v["masks"], v["timestamps"], v["grid"], v.get("truth"))
    row[0].set_ylabel(v.get("label", v["id"]), fontsize=7, rotation=0, ha="right",
                      va="center", labelpad=4)
  _sets_legend(fig, ratio, videos[0]["grid"], key_h)
  return _save(fig, path)


def sets_masks(feats: dict, ratio: float) -> tuple[np.ndarray, tuple[int, int]]:
  """SETS keep masks [T, N] on the tower grid for one video's features."""
  from vaujax.models import sets
  out = sets.select(np.asarray(feats["dino_patches"]), np.asarray(feats["tower_patches"]),
                    ratio)
  n = feats["tower_patches"].shape[1]
  side = int(round(n ** 0.5))
  return np.asarray(out["mask"]), (side, side)


def _fmt_interval(interval) -> str:
  return "no interval" if interval is None or interval[0] is None else (
      f"{interval[0]:.1f}-{interval[1]:.1f} s")


def answer_text(answer: Optional[dict] = None, truth=None, truth_class: Optional[str] = None,
                question: Optional[str] = None, width: int = 110) -> str:
  """The inference figure's caption: question, the model's answer (wrapped), the predicted
  class and interval, and the ground truth when given."""
  import textwrap
  lines = []
  if question:
    lines.append(f"Q: {question}")
  if answer is not None:
    lines += textwrap.wrap(f"Answer: {answer.get('explanation', '').strip() or '(empty)'}",
                           width, subsequent_indent="    ")
    if answer.get("anomaly"):
      lines.append(f"Predicted: anomaly, class {answer.get('class') or '(none named)'}, "
                   f"{_fmt_interval((answer.get('start_s'), answer.get('end_s')))}")
    else:
      lines.append("Predicted: no anomaly (normal)")
  if truth is not None or truth_class is not None:
    if truth_class == "Normal" or (truth is None and truth_class is None):
      lines.append("Ground truth: no anomaly (normal)")
    else:
      lines.append(f"Ground truth: anomaly, class {truth_class or '(not given)'}, "
                   f"{_fmt_interval(truth)}")
  return "\n".join(lines)


def video_figure(path: str, feats: dict, frames: Optional[np.ndarray],
                 scores: Optional[np.ndarray], predicted, truth, ratio: float,
                 title: str = "", *, answer: Optional[dict] = None,
                 truth_class: Optional[str] = None, question: Optional[str] = None,
                 score_times: Optional[np.ndarray] = None) -> str:
  """The answer (text, predicted class and interval, ground truth) over the TETG score curve
  with its interval and the true one, over the frames with SETS's kept patches and a key.
  `score_times`: the times of `scores` when TETG read its own frames (`TETGView.timestamps`),
  else the frames'."""
  t = np.asarray(feats["timestamps"])
  cols = len(t)
  caption = answer_text(answer, truth, truth_class, question)
  n_text = caption.count("\n") + 1 if caption else 0
  text_h = 0.25 + 0.2 * n_text
  fig = Figure(figsize=(max(9.0, 1.3 * cols), 6.2 + text_h))
  top = 1 - (text_h + 0.35) / (6.2 + text_h)
  gs = fig.add_gridspec(2, cols, height_ratios=(1.3, 1), hspace=0.45, top=top, bottom=0.2)
  fig.suptitle(title, y=0.995, fontsize=11, va="top")
  if caption:
    fig.text(0.02, 1 - 0.3 / (6.2 + text_h), caption, fontsize=9, va="top", ha="left",
             family="monospace", bbox=dict(boxstyle="round", facecolor="0.95", edgecolor="0.6"))
  ax = fig.add_subplot(gs[0, :])
  if scores is not None:
    draw_scores(ax, t if score_times is None else np.asarray(score_times), scores, predicted,
                truth)
    ax.set_ylabel("P(anomalous)")
    ax.legend(fontsize=8, loc="upper left")
  else:
    ax.text(0.5, 0.5, "no TETG classifier: no frame scores", ha="center", transform=ax.transAxes)
  if frames is not None:
    masks, grid = sets_masks(feats, ratio)
    sets_strip([fig.add_subplot(gs[1, i]) for i in range(cols)], frames, masks, t, grid, truth)
    _sets_legend(fig, ratio, grid, 0.17)
  return _save(fig, path)


def _crop_like(frames: np.ndarray) -> np.ndarray:
  """Square centre crop [T, S, S, 3], S = min(H, W): the region the towers see (their
  preprocessing resizes the shortest side to the crop size, then centre-crops it, as HF's)."""
  h, w = frames.shape[1:3]
  s = min(h, w)
  y, x = (h - s) // 2, (w - s) // 2
  return frames[:, y:y + s, x:x + s]
