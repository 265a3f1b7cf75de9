"""The paper's benchmarks: UCF-Crime QA (in-domain, open answers) and 4-option multiple choice
(XD-Violence style, cross-domain), plus frame-level AUC / AP from TETG's scores.

Multiple choice, two methods:
  generate  greedy answer to the MC prompt, parsed (`parsing.parse_choice`); unparsable = wrong
  loglik    log p(option text + </s> | prompt) for the four options, the best one is the answer;
            deterministic, no parsing; a tie for the top is no answer (wrong)
Metrics: Total Acc = correct / all questions; Temporal Acc = correct / interval questions
(category "temporal"); Type Acc likewise for "type".

Open QA ("Are there any anomalies?"): the answer is correct when its judgement (yes / no) is right
and, for an anomalous video, it names the right class. Temporal Acc is over anomalous videos: the
stated interval overlaps the truth with IoU >= 0.5 (exactly 0.5 counts).

Grading is pure (`grade_choice`, `grade_open`, `summarize_*`), so it is tested on hand-made
predictions; `evaluate_mc` / `evaluate_open` run a model over a benchmark file in batches
(sharded over the Assistant's mesh, progress bar) and write per-question JSON and a summary.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from vaujax.data import benchmark_files, features
from vaujax.evaluate import metrics, parsing

LETTERS = benchmark_files.LETTERS
TEMPORAL_IOU = 0.5


# -- grading (pure) ------------------------------------------------------------------------------

def grade_choice(item: dict, predicted: Optional[int], **extra) -> dict:
  """One MC result: predicted option index (None = no answer) against the item's letter."""
  letter = None if predicted is None else LETTERS[predicted]
  return {"id": item["id"], "category": item.get("category"), "answer": item["answer"],
          "predicted": letter, "correct": letter == item["answer"], **extra}


def summarize_mc(results: Sequence[dict]) -> dict:
  def acc(rows):
    return float(np.mean([r["correct"] for r in rows])) if rows else float("nan")
  temporal = [r for r in results if r["category"] == "temporal"]
  kind = [r for r in results if r["category"] == "type"]
  return {"total_acc": acc(results), "temporal_acc": acc(temporal), "type_acc": acc(kind),
          "num_questions": len(results), "num_temporal": len(temporal),
          "no_answer": sum(r["predicted"] is None for r in results)}


def grade_open(item: dict, text: str, classes: Sequence[str]) -> dict:
  """One open-QA result from the generated text."""
  truth_anomaly = item.get("gt_interval") is not None
  judgement = parsing.parse_judgement(text)
  name = parsing.parse_class(text, classes) if judgement else None
  interval = parsing.parse_interval(text) if judgement else None
  iou = parsing.interval_iou(interval, item.get("gt_interval")) if truth_anomaly else None
  correct = judgement is not None and judgement == truth_anomaly and (
      not truth_anomaly or name == item.get("label"))
  return {"id": item["id"], "label": item.get("label"), "output": text, "judgement": judgement,
          "class": name, "interval": None if interval is None else list(interval), "iou": iou,
          "correct": bool(correct),
          "temporal_correct": None if iou is None else bool(iou >= TEMPORAL_IOU - 1e-9)}


def summarize_open(results: Sequence[dict]) -> dict:
  anomalous = [r for r in results if r["iou"] is not None]
  truth = [r["iou"] is not None for r in results]
  judged = [r["judgement"] for r in results]
  return {"total_acc": float(np.mean([r["correct"] for r in results])) if results else float("nan"),
          "temporal_acc": float(np.mean([r["temporal_correct"] for r in anomalous]))
          if anomalous else float("nan"),
          "judgement_acc": float(np.mean([j == t for j, t in zip(judged, truth)]))
          if results else float("nan"),
          "mean_iou": float(np.mean([r["iou"] for r in anomalous])) if anomalous else float("nan"),
          "num_questions": len(results), "num_anomalous": len(anomalous),
          "unparsed": sum(j is None for j in judged)}


def frame_metrics(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
  """Frame-level AUC (UCF-Crime convention) and AP (XD-Violence) over all videos' frames."""
  keys = sorted(scores)
  s = np.concatenate([np.asarray(scores[k], np.float64) for k in keys])
  y = np.concatenate([np.asarray(labels[k]) for k in keys])
  return {"frame_auc": metrics.roc_auc(y, s), "frame_ap": metrics.average_precision(y, s),
          "num_frames": int(len(y)), "num_videos": len(keys)}


# -- running a model -----------------------------------------------------------------------------

def _batches(items: Sequence[dict], size: int, progress: bool, desc: str) -> Iterable[list]:
  chunks = [list(items[i:i + size]) for i in range(0, len(items), size)]
  if progress:
    from tqdm import tqdm
    chunks = tqdm(chunks, desc=desc, unit="batch")
  yield from chunks


class _Partial:
  """Finished per-question results appended to a JSONL file as batches complete, so a killed
  evaluation resumes where it stopped (`resume_path=None`: in memory only)."""

  def __init__(self, path: Optional[str]):
    self.path, self.done = path, {}
    if path and os.path.exists(path):
      with open(path) as f:
        for line in f:
          try:
            row = json.loads(line)
          except json.JSONDecodeError:   # the line being written when the job died
            break
          self.done[row["id"]] = row
      # Rewrite without a torn last line before appending.
      with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in self.done.values())
      os.replace(path + ".tmp", path)

  def todo(self, items):
    return [i for i in items if i["id"] not in self.done]

  def add(self, rows):
    for r in rows:
      self.done[r["id"]] = r
    if self.path:
      with open(self.path, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
        f.flush()
        os.fsync(f.fileno())

  def ordered(self, items):
    return [self.done[i["id"]] for i in items]


def _features(feature_dir: str, item: dict, cache: dict) -> dict:
  from vaujax.data.pipeline import video_key
  key = video_key(item)
  if key not in cache:
    cache[key] = features.read_features(os.path.join(feature_dir, key + ".npz"))
  return cache[key]


def mc_chat(item: dict, instruction: str = benchmark_files.LETTER_INSTRUCTION) -> list[dict]:
  return [{"from": "human", "value": benchmark_files.mc_prompt(item, instruction)}]


def evaluate_mc(assistant, items: Sequence[dict], feature_dir: str, *, method: str = "loglik",
                batch_size: int = 8, normalize: bool = False, progress: bool = True,
                instruction: str = benchmark_files.LETTER_INSTRUCTION,
                max_new_tokens: int = 24, resume_path: Optional[str] = None
                ) -> tuple[list[dict], dict]:
  """Runs an `infer.Assistant` over MC items -> (per-question results, summary).

  `resume_path`: a JSONL file of finished results; questions already in it are not rerun.
  """
  if method not in ("loglik", "generate"):
    raise ValueError(f"unknown MC method {method!r} (loglik | generate)")
  cache, partial = {}, _Partial(resume_path)
  for batch in _batches(partial.todo(items), batch_size, progress, f"MC ({method})"):
    feats = [_features(feature_dir, item, cache) for item in batch]
    chats = [mc_chat(item, instruction) for item in batch]
    rows = []
    if method == "loglik":
      total, mean = assistant.score_options(chats, feats, [i["options"] for i in batch],
                                            rows=batch_size)
      scores = mean if normalize else total
      for item, row in zip(batch, scores):
        rows.append(grade_choice(item, parsing.choose_by_scores(list(row)), method=method,
                                 scores=[round(float(x), 4) for x in row]))
    else:
      texts = assistant.generate(chats, feats, max_new_tokens=max_new_tokens, rows=batch_size)
      for item, text in zip(batch, texts):
        rows.append(grade_choice(item, parsing.parse_choice(text, item["options"]),
                                 method=method, output=text))
    partial.add(rows)
  results = partial.ordered(items)
  return results, summarize_mc(results)


def evaluate_open(assistant, items: Sequence[dict], feature_dir: str, *, batch_size: int = 8,
                  progress: bool = True, max_new_tokens: int = 48,
                  resume_path: Optional[str] = None) -> tuple[list[dict], dict]:
  """Generate-then-parse on UCF-Crime QA items -> (per-question results, summary)."""
  cache, partial = {}, _Partial(resume_path)
  for batch in _batches(partial.todo(items), batch_size, progress, "UCF QA"):
    feats = [_features(feature_dir, item, cache) for item in batch]
    chats = [[{"from": "human", "value": f"<video>\n{item['question']}"}] for item in batch]
    texts = assistant.generate(chats, feats, max_new_tokens=max_new_tokens, rows=batch_size)
    partial.add([grade_open(item, text, assistant.classes) for item, text in zip(batch, texts)])
  results = partial.ordered(items)
  return results, summarize_open(results)


def evaluate_frames(frame_scorer: Callable[[dict], np.ndarray], labels: dict,
                    feature_dir: str, video_ids: Sequence[str]) -> dict:
  """AUC / AP of per-frame scores over the listed videos ({id: {"anomaly_intervals": ...}})."""
  from vaujax.models import tetg
  scores, truth = {}, {}
  for vid in video_ids:
    f = features.read_features(os.path.join(feature_dir, vid + ".npz"))
    scores[vid] = frame_scorer(f)
    truth[vid] = tetg.frame_labels(f["timestamps"], labels[vid].get("anomaly_intervals", []))
  return frame_metrics(scores, truth)


def write_results(out_dir: str, name: str, results: Sequence[dict], summary: dict) -> str:
  """`<name>.json` = {"summary", "results"}, written atomically; returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"{name}.json")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump({"summary": summary, "results": list(results)}, f, indent=1)
  os.replace(tmp, path)
  return path
