"""The demo's Markdown report: results table and figures (loss curves, TETG score curves, SETS
maps), written next to the run it describes."""

from __future__ import annotations

import os
from typing import Sequence


from vaujax.data import features, video as video_io
from vaujax.evaluate import plots


def _pct(x) -> str:
  return "n/a" if x is None or x != x else f"{100 * x:.1f}"


def results_table(results: dict) -> str:
  """Rows in the paper's layout (Total Acc / Temporal Acc), one per benchmark and method."""
  lines = ["| benchmark | method | Total Acc (%) | Temporal Acc (%) | questions |",
           "|---|---|---|---|---|"]
  names = {"mc_loglik": ("4-option MC (XD-Violence format)", "log-likelihood of options"),
           "mc_generate": ("4-option MC (XD-Violence format)", "generate, then parse"),
           "ucf_qa": ("open QA (UCF-Crime format)", "generate, then parse")}
  for key, s in results.items():
    bench, method = names.get(key, (key, ""))
    lines.append(f"| {bench} | {method} | {_pct(s['total_acc'])} | {_pct(s['temporal_acc'])} | "
                 f"{s['num_questions']} |")
  return "\n".join(lines)


def write_demo_report(workdir: str, summary: dict, paths: dict, assistant, tetg_result,
                      histories: Sequence[Sequence[dict]], max_videos: int = 6) -> str:
  """Writes `report.md` and `figures/*.png` under `workdir`; returns the report's path."""
  fig_dir = os.path.join(workdir, "figures")
  figs = {"loss": plots.loss_curves(os.path.join(fig_dir, "loss_curves.png"),
                                    {"stage one": histories[0],
                                     "stage two (SETS)": histories[1]})}
  shown = _pick_videos(paths, max_videos)
  curves, strips = [], []
  for vid in shown:
    feats = features.read_features(os.path.join(paths["features"], vid + ".npz"))
    scores = assistant.frame_scores(feats)
    truth = paths["labels"][vid]["anomaly_intervals"]
    curves.append({"id": vid, "timestamps": feats["timestamps"], "scores": scores,
                   "predicted": assistant.interval(feats), "truth": truth[0] if truth else None})
    frames, _ = video_io.read_video(os.path.join(paths["videos"], vid + ".mp4"),
                                    num_frames=len(feats["timestamps"]))
    masks, grid = plots.sets_masks(feats, assistant.model.config.sets_ratio)
    strips.append({"id": vid, "frames": frames, "masks": masks,
                   "timestamps": feats["timestamps"], "grid": grid})
  figs["scores"] = plots.score_curves(os.path.join(fig_dir, "tetg_scores.png"), curves)
  figs["sets"] = plots.sets_maps(os.path.join(fig_dir, "sets_maps.png"), strips[:4])
  rel = {k: os.path.relpath(v, workdir) for k, v in figs.items()}
  t = summary["tetg"]
  c = summary["config"]
  text = f"""# VA-GPT demo report

Synthetic surveillance videos ({c['num_videos']} videos, {c['seconds']:.0f} s at {c['fps']:.0f} fps,
{c['frames']} sampled frames each), split by video: {len(paths['train_ids'])} for training,
{len(paths['test_ids'])} held out. Tiny random frozen towers, tiny LLaMA; TETG hints in the
prompt; stage one {c['stage1_steps']} steps on all tokens, stage two {c['stage2_steps']} steps with
SETS (K = 0.5). Every number below is measured on the held-out videos only.

## Results

{results_table(summary['results'])}

Chance on the 4-option questions is 25%.

TETG frame-level detection on the held-out videos: **AUC {t['frame_auc']:.3f}** (UCF-Crime
convention), **AP {t['frame_ap']:.3f}** (XD-Violence convention), {t['num_frames']} frames.

## Training

![loss curves]({rel['loss']})

Stage one: loss {summary['stage1_loss'][0]:.3f} -> {summary['stage1_loss'][1]:.3f};
stage two: {summary['stage2_loss'][0]:.3f} -> {summary['stage2_loss'][1]:.3f}.

## TETG frame scores

Per-frame P(anomalous) with the ground-truth interval (green) and the interval written into the
prompt (red bar).

![TETG score curves]({rel['scores']})

## SETS: spatially effective tokens

Sampled frames with the kept half of the patches (largest DINOv2 change from the previous frame)
bright and the dropped half dimmed.

![SETS maps]({rel['sets']})

## Timings (s)

{', '.join(f'{k} {v}' for k, v in summary['timings_s'].items())}; total {summary['seconds']} s.
Per-question results: `eval/*.json`.
"""
  from vaujax import files
  return files.write_text(os.path.join(workdir, "report.md"), text)


def _pick_videos(paths: dict, n: int) -> list[str]:
  """Held-out videos, anomalous ones of different classes first, then a normal one."""
  labels = paths["labels"]
  seen, out = set(), []
  for vid in paths["test_ids"]:
    if labels[vid]["label"] != "Normal" and labels[vid]["label"] not in seen:
      seen.add(labels[vid]["label"])
      out.append(vid)
  normal = [v for v in paths["test_ids"] if labels[v]["label"] == "Normal"]
  out = out[:n - 1] + normal[:1]
  return out + [v for v in paths["test_ids"] if v not in out][:n - len(out)]
