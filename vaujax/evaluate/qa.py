"""The paper's benchmarks: UCF-Crime QA (in-domain, open answers) and 4-option multiple choice
(XD-Violence style, cross-domain), plus frame-level AUC / AP from TETG's scores.

Multiple choice, two methods:
  generate  greedy answer to the MC prompt, parsed (`parsing.parse_choice`); unparsable = wrong
  loglik    log p(option text + </s> | prompt) for the four options, the best one is the answer;
            deterministic, no parsing; a tie for the top is no answer (wrong)
Metrics: Total Acc = correct / all questions; Temporal Acc = correct / interval questions
(category "temporal"); Type Acc and Spatial Acc likewise for "type" and "spatial" (where in the
3x3 grid); per-event Temporal Acc over the "temporal" questions of videos with two or more
anomalies (items with `events` >= 2, the type named in the question).

Open QA ("Are there any anomalies?"): the answer is correct when its judgement (yes / no) is right
and, for an anomalous video, it names the right class (with several anomalies: exactly their
classes). Temporal Acc is over anomalous videos: the stated interval overlaps the truth with
IoU >= 0.5 (exactly 0.5 counts). Total, judgement and Temporal Acc count these final questions
only. Spatial Acc: "spatial" questions, the region the answer names (`regions.parse_region`)
against `gt_region`. Per-event Temporal Acc: "temporal_event" questions (the type named, the
interval given for it) and each event of a final answer about several anomalies, matched to the
truth by class (`parsing.parse_events`).

Grading is pure (`grade_choice`, `grade_open`, `summarize_*`), so it is tested on hand-made
predictions; `evaluate_mc` / `evaluate_open` run a model over a benchmark file in batches
(sharded over the Assistant's mesh, progress bar) and write per-question JSON and a summary.
Finished questions go to a partial JSONL file as they complete; its first line records whose
answers they are (run, checkpoint step, config hash) on which benchmark (file hash, method), and
a resumed evaluation refuses a file of another identity instead of mixing the two.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from vaujax import files
from vaujax.data import benchmark_files, features, regions
from vaujax.errors import InputError
from vaujax.evaluate import metrics, parsing

LETTERS = benchmark_files.LETTERS
TEMPORAL_IOU = 0.5


# -- grading (pure) ------------------------------------------------------------------------------

def grade_choice(item: dict, predicted: Optional[int], **extra) -> dict:
  """One MC result: predicted option index (None = no answer) against the item's letter. The
  index must name one of the item's own options (2 to 8 of them). An item of a video with
  several anomalies keeps its `events` count (per-event Temporal Acc)."""
  count = len(item["options"]) if "options" in item else len(LETTERS)
  if predicted is not None and not 0 <= predicted < count:
    raise ValueError(f"item {item['id']}: option index {predicted} for a question with {count} "
                     "options")
  letter = None if predicted is None else LETTERS[predicted]
  events = {"events": item["events"]} if "events" in item else {}
  return {"id": item["id"], "category": item.get("category"), "answer": item["answer"],
          "predicted": letter, "correct": letter == item["answer"], **events, **extra}


def _mean(values) -> float:
  values = list(values)
  return float(np.mean(values)) if values else float("nan")


def _several(row: dict) -> bool:
  """A question about a video with two or more anomalies (`events`: a count or a list)."""
  events = row.get("events")
  return (len(events) if isinstance(events, list) else int(events or 0)) >= 2


def summarize_mc(results: Sequence[dict]) -> dict:
  def acc(rows):
    return _mean(r["correct"] for r in rows)
  temporal = [r for r in results if r["category"] == "temporal"]
  kind = [r for r in results if r["category"] == "type"]
  spatial = [r for r in results if r["category"] == "spatial"]
  per_event = [r for r in temporal if _several(r)]
  return {"total_acc": acc(results), "temporal_acc": acc(temporal), "type_acc": acc(kind),
          "spatial_acc": acc(spatial), "event_temporal_acc": acc(per_event),
          "num_questions": len(results), "num_temporal": len(temporal),
          "num_spatial": len(spatial), "num_event_temporal": len(per_event),
          "no_answer": sum(r["predicted"] is None for r in results)}


def _temporal_correct(iou: float) -> bool:
  return bool(iou >= TEMPORAL_IOU - 1e-9)


def grade_open(item: dict, text: str, classes: Sequence[str]) -> dict:
  """One open-QA result from the generated text, by the item's category: "judgement" (the
  default; per event for a video with several anomalies), "spatial" or "temporal_event"."""
  category = item.get("category", "judgement")
  if category == "spatial":
    return _grade_spatial(item, text, classes)
  if category == "temporal_event":
    return _grade_event_interval(item, text, classes)
  if _several(item):
    return _grade_events(item, text, classes)
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
          "temporal_correct": None if iou is None else _temporal_correct(iou)}


def _grade_spatial(item: dict, text: str, classes: Sequence[str]) -> dict:
  """"Where does the anomaly (the fighting) happen?": right when the region the text gives the
  item's class (else the one region the text names) is `gt_region`."""
  said = [r for c, _, r in parsing.parse_events(text, classes)
          if c is not None and c == item.get("label") and r is not None]
  region = said[0] if said else regions.parse_region(text)
  return {"id": item["id"], "category": "spatial", "label": item.get("label"), "output": text,
          "region": region, "gt_region": item["gt_region"],
          "correct": region is not None and region == item["gt_region"]}


def _grade_event_interval(item: dict, text: str, classes: Sequence[str]) -> dict:
  """"When does the fighting happen?": the interval the text gives the named type (else the
  first one it states) against `gt_interval`; IoU >= 0.5 is right."""
  said = [i for c, i, _ in parsing.parse_events(text, classes)
          if c is not None and c == item.get("label") and i is not None]
  interval = said[0] if said else parsing.parse_interval(text)
  iou = parsing.interval_iou(interval, item["gt_interval"])
  return {"id": item["id"], "category": "temporal_event", "label": item.get("label"),
          "output": text, "interval": None if interval is None else list(interval), "iou": iou,
          "correct": _temporal_correct(iou), "temporal_correct": _temporal_correct(iou)}


def _match_events(truth: Sequence[dict], said: Sequence[tuple]) -> list[tuple]:
  """(interval, region) the answer gives each true event: events matched by class, several of
  one class in order (the k-th said to the k-th true); (None, None) when unmatched."""
  queues: dict = {}
  for name, interval, region in said:
    queues.setdefault(name, []).append((interval, region))
  return [queues[e["label"]].pop(0) if queues.get(e["label"]) else (None, None) for e in truth]


def _grade_events(item: dict, text: str, classes: Sequence[str]) -> dict:
  """The final question on a video with several anomalies: right when the answer says yes and
  names exactly the events' classes; each event is matched by class to the interval and region
  the answer gives it (IoU, region). `iou` is that of the item's own `label` / `gt_interval`."""
  judgement = parsing.parse_judgement(text)
  said = [e for e in (parsing.parse_events(text, classes) if judgement else [])
          if e[0] is not None]
  rows = []
  for event, (interval, region) in zip(item["events"], _match_events(item["events"], said)):
    iou = parsing.interval_iou(interval, event["interval"])
    rows.append({"label": event["label"], "gt_interval": list(event["interval"]),
                 "interval": None if interval is None else list(interval), "iou": iou,
                 "temporal_correct": _temporal_correct(iou), "gt_region": event.get("region"),
                 "region": region,
                 "region_correct": None if event.get("region") is None
                 else region == event["region"]})
  own = next((r["interval"] for r in rows if r["label"] == item.get("label")), None)
  iou = parsing.interval_iou(own, item.get("gt_interval"))
  named = {e[0] for e in said}
  correct = judgement is True and named == {e["label"] for e in item["events"]}
  return {"id": item["id"], "label": item.get("label"), "output": text, "judgement": judgement,
          "class": parsing.parse_class(text, classes) if judgement else None,
          "classes": sorted(named), "interval": own, "iou": iou,
          "correct": bool(correct), "temporal_correct": _temporal_correct(iou), "events": rows}


def summarize_open(results: Sequence[dict]) -> dict:
  """Total / judgement / Temporal Acc and mean IoU over the final ("judgement") questions, as
  before; Spatial Acc over "spatial" questions; per-event Temporal Acc over the type-named
  "temporal_event" questions and each event of a final answer on a video with several
  anomalies (`named_event_temporal_acc`: the type-named questions alone)."""
  final = [r for r in results if r.get("category", "judgement") == "judgement"]
  spatial = [r for r in results if r.get("category") == "spatial"]
  named = [r["temporal_correct"] for r in results if r.get("category") == "temporal_event"]
  per_event = named + [e["temporal_correct"] for r in final for e in r.get("events", [])]
  anomalous = [r for r in final if r["iou"] is not None]
  truth = [r["iou"] is not None for r in final]
  judged = [r["judgement"] for r in final]
  return {"total_acc": _mean(r["correct"] for r in final),
          "temporal_acc": _mean(r["temporal_correct"] for r in anomalous),
          "judgement_acc": _mean(j == t for j, t in zip(judged, truth)),
          "mean_iou": _mean(r["iou"] for r in anomalous),
          "spatial_acc": _mean(r["correct"] for r in spatial),
          "event_temporal_acc": _mean(per_event),
          "named_event_temporal_acc": _mean(named),
          "num_questions": len(final), "num_anomalous": len(anomalous),
          "num_spatial": len(spatial), "num_event_temporal": len(per_event),
          "unparsed": sum(j is None for j in judged)}


def frame_metrics(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
  """Frame-level AUC (UCF-Crime convention) and AP (XD-Violence) over all videos' frames."""
  keys = sorted(scores)
  s = np.concatenate([np.asarray(scores[k], np.float64) for k in keys])
  y = np.concatenate([np.asarray(labels[k]) for k in keys])
  return {"frame_auc": metrics.roc_auc(y, s), "frame_ap": metrics.average_precision(y, s),
          "num_frames": int(len(y)), "num_videos": len(keys)}


# -- running a model -----------------------------------------------------------------------------

def _batches(items: Sequence[dict], size: int, progress: bool, desc: str,
             group: Callable[[dict], object] = lambda item: None) -> Iterable[list]:
  """Chunks of `size` items, each chunk within one `group` (in order of first appearance)."""
  groups = {}
  for item in items:
    groups.setdefault(group(item), []).append(item)
  chunks = [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]
  if progress:
    from tqdm import tqdm
    chunks = tqdm(chunks, desc=desc, unit="batch")
  yield from chunks


PARTIAL_FORMAT = "vaujax.partial_results/1"
HOW_TO_PROCEED = "pass another --out, or delete this file to start the evaluation over"


def items_identity(items: Sequence[dict], method: str) -> dict:
  """A benchmark's identity when only its items are known (direct calls of `evaluate_mc` /
  `evaluate_open`): the sha256 of the items as canonical JSON, and the method."""
  text = json.dumps(list(items), sort_keys=True, default=str).encode()
  return {"items_sha256": hashlib.sha256(text).hexdigest(), "method": method}


def evaluation_identity(assistant, items: Sequence[dict], method: str,
                        benchmark_identity: Optional[dict] = None) -> dict:
  """What an evaluation's answers belong to: {"model": the assistant's `identity` (run,
  checkpoint step, config hash; None for an assistant not loaded from a run), "benchmark":
  `benchmark_identity` or the items' hash and the method}."""
  return {"model": getattr(assistant, "identity", None),
          "benchmark": benchmark_identity or items_identity(items, method)}


def _normalized(identity: Optional[dict]) -> Optional[dict]:
  """The identity as compared: a run named by another spelling of its path is the same run."""
  if not identity:
    return identity
  model = identity.get("model")
  if isinstance(model, dict) and isinstance(model.get("run"), str):
    model = {**model, "run": model["run"] if files.is_url(model["run"])
             else os.path.realpath(model["run"])}
  return {**identity, "model": model}


INFORMATIONAL = ("benchmark.file",)   # shown in the header, not compared


def _flat(obj, prefix: str = "") -> dict:
  if isinstance(obj, dict):
    out = {}
    for k, v in obj.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: obj}


def _short(value) -> str:
  """A value as an error shows it: sha256 digests cut to 12 hex digits."""
  return value[:12] + "…" if isinstance(value, str) and len(value) == 64 else str(value)


def identity_differences(saved: Optional[dict], current: Optional[dict]) -> list[str]:
  """'key: <saved> in the file, <current> now' for every compared identity field that differs
  (model: run, step, config hash; benchmark: file hash, tag, method)."""
  a, b = _flat(_normalized(saved) or {}), _flat(_normalized(current) or {})
  keys = [k for k in sorted(set(a) | set(b)) if k not in INFORMATIONAL]
  return [f"{k}: {_short(a.get(k))} in the file, {_short(b.get(k))} now"
          for k in keys if a.get(k) != b.get(k)]


def partial_header(identity: Optional[dict]) -> str:
  """The first line of a partial-results file: what its answers belong to."""
  return json.dumps({"format": PARTIAL_FORMAT, "identity": _normalized(identity)}) + "\n"


def _is_header(record) -> bool:
  return isinstance(record, dict) and record.get("format") == PARTIAL_FORMAT


def _parse_line(raw: bytes):
  """One JSONL line -> the object, or None when it cannot be read (cut short, damaged)."""
  try:
    return json.loads(raw.decode("utf-8"))
  except (UnicodeDecodeError, ValueError):
    return None


def _read_partial(path: str) -> tuple[Optional[dict], list[bytes]]:
  """(header, the other non-empty raw lines) of an existing partial-results file; (None, [])
  for an empty one. A first line that is no header raises InputError: whose answers the file
  holds is unknown, so resuming from it could mix two evaluations."""
  with files.open_file(path, "rb") as f:   # a local file or a gs:// object
    lines = [l for l in f.read().split(b"\n") if l.strip()]
  if not lines:
    return None, []
  header = _parse_line(lines[0])
  if not _is_header(header):
    raise InputError(path, "has no identity header (written by an older vaujax, or damaged), so "
                     "whose answers it holds is unknown; " + HOW_TO_PROCEED)
  return header, lines[1:]


def check_partial(path: str, identity: Optional[dict]) -> list[bytes]:
  """Raises InputError when the partial-results file at `path` holds answers of another
  evaluation (another run, checkpoint, config, benchmark file or method); a missing or empty
  file is fine. Returns its result lines (raw). The `evaluate` command calls it before loading
  the model."""
  if not files.exists(path):
    return []
  header, lines = _read_partial(path)
  if header is None:
    return []
  differences = identity_differences(header.get("identity"), identity)
  if differences:
    raise InputError(path, "holds answers of another evaluation (" + "; ".join(differences)
                     + "), so it is not resumed; " + HOW_TO_PROCEED)
  return lines


def _describe(identity: Optional[dict]) -> str:
  """An evaluation's identity in a few words: whose answers, on which benchmark."""
  identity = identity if isinstance(identity, dict) else {}
  model = identity.get("model") if isinstance(identity.get("model"), dict) else {}
  bench = identity.get("benchmark") if isinstance(identity.get("benchmark"), dict) else {}
  who = (f"run {model.get('run')} step {model.get('step')} config "
         f"{_short(model.get('config_sha256'))}" if model else "a model not loaded from a run")
  what = bench.get("file") or f"items {_short(bench.get('items_sha256'))}"
  return (f"{who} on {what} (sha256 {_short(bench.get('sha256'))}, method "
          f"{bench.get('method')})" if "sha256" in bench else f"{who} on {what} (method "
          f"{bench.get('method')})")


def check_finished(path: str, identity: Optional[dict]) -> Optional[dict]:
  """A finished result file (`write_results`) at `path`: None when there is none; its content
  when this same evaluation wrote it (a rerun is then a no-op); an InputError naming the file
  and both identities when another evaluation (run, checkpoint, config, benchmark, method) did,
  so that it is never overwritten."""
  if not files.exists(path):
    return None
  saved = files.read_json(path, "evaluation result")
  differences = identity_differences(saved.get("identity"), identity) \
      if saved.get("identity") else ["identity: none recorded"]
  if differences or not isinstance(saved.get("summary"), dict):
    raise InputError(path, "holds the finished results of another evaluation ("
                     + _describe(saved.get("identity")) + "; this one is "
                     + _describe(_normalized(identity)) + "; differing: "
                     + "; ".join(differences) + "), so it is not overwritten; pass another "
                     "--out, or move this file away")
  return saved


class _Partial:
  """Finished per-question results appended to a JSONL file as batches complete, so a killed
  evaluation resumes where it stopped (`path=None`: in memory only).

  The first line is a header with the evaluation's identity (`partial_header`): a file of
  another identity is refused with an InputError, never resumed, so two models' or two
  benchmarks' answers never mix. A line that cannot be read (a write cut short by a kill, or
  damage anywhere in the file) is dropped with a warning and its question asked again; every
  readable line is kept. The file is rewritten atomically before appending, so a kill during
  the rewrite loses nothing.
  """

  def __init__(self, path: Optional[str], identity: Optional[dict] = None, log=print):
    self.path, self.done = path, {}
    if not path:
      return
    dropped = 0
    for raw in check_partial(path, identity):
      row = _parse_line(raw)
      if isinstance(row, dict) and isinstance(row.get("id"), (str, int)):
        self.done[row["id"]] = row
      else:
        dropped += 1
    if dropped:
      log(f"warning: {path}: dropped {dropped} unreadable line(s) (a write cut short, or "
          f"damage); kept {len(self.done)} finished answer(s), the rest are asked again")
    files.write_text(path, partial_header(identity)
                     + "".join(json.dumps(r) + "\n" for r in self.done.values()))

  def todo(self, items):
    return [i for i in items if i["id"] not in self.done]

  def add(self, rows):
    for r in rows:
      self.done[r["id"]] = r
    if self.path:   # whole lines or none: a write cut short (disk full) is undone
      files.append_lines(self.path, [json.dumps(r) for r in rows], sync=True)

  def ordered(self, items):
    return [self.done[i["id"]] for i in items]


def _features(feature_dir: str, item: dict, cache: dict) -> dict:
  """The item's video's features (found by its whole path: `features.video_feature_path`)."""
  from vaujax.data.pipeline import video_path
  path = features.video_feature_path(feature_dir, video_path(item))
  if path not in cache:
    cache[path] = features.read_features(path)
  return cache[path]


def mc_chat(item: dict, instruction: str = benchmark_files.LETTER_INSTRUCTION) -> list[dict]:
  return [{"from": "human", "value": benchmark_files.mc_prompt(item, instruction)}]


def evaluate_mc(assistant, items: Sequence[dict], feature_dir: str, *, method: str = "loglik",
                batch_size: int = 8, normalize: bool = False, progress: bool = True,
                instruction: str = benchmark_files.LETTER_INSTRUCTION,
                max_new_tokens: int = 24, resume_path: Optional[str] = None,
                benchmark_identity: Optional[dict] = None) -> tuple[list[dict], dict]:
  """Runs an `infer.Assistant` over MC items -> (per-question results, summary).

  `resume_path`: a JSONL file of finished results; questions already in it are not rerun, and
  a file another model, benchmark or method wrote is refused (`_Partial`). The benchmark's
  identity is `benchmark_identity` (the `evaluators` layer: the file's hash and the tag), else
  the items' hash and the method.
  """
  if method not in ("loglik", "generate"):
    raise ValueError(f"unknown MC method {method!r} (loglik | generate)")
  cache = {}
  partial = _Partial(resume_path, evaluation_identity(assistant, items, method,
                                                      benchmark_identity))
  # a batch scores one [B, K] array: questions with the same number of options K go together
  for batch in _batches(partial.todo(items), batch_size, progress, f"MC ({method})",
                        group=lambda item: len(item["options"])):
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
                  resume_path: Optional[str] = None,
                  benchmark_identity: Optional[dict] = None) -> tuple[list[dict], dict]:
  """Generate-then-parse on UCF-Crime QA items -> (per-question results, summary);
  `resume_path` and `benchmark_identity` as in `evaluate_mc`."""
  cache = {}
  partial = _Partial(resume_path, evaluation_identity(assistant, items, "open",
                                                      benchmark_identity))
  for batch in _batches(partial.todo(items), batch_size, progress, "UCF QA"):
    feats = [_features(feature_dir, item, cache) for item in batch]
    chats = [[{"from": "human", "value": f"<video>\n{item['question']}"}] for item in batch]
    texts = assistant.generate(chats, feats, max_new_tokens=max_new_tokens, rows=batch_size)
    partial.add([grade_open(item, text, assistant.classes) for item, text in zip(batch, texts)])
  results = partial.ordered(items)
  return results, summarize_open(results)


def evaluate_frames(frame_scorer: Callable[[dict], np.ndarray], labels: dict,
                    feature_dir: str, video_ids: Sequence[str] | Mapping[str, str]) -> dict:
  """AUC / AP of per-frame scores over the listed videos ({id: {"anomaly_intervals": ...}}).
  `video_ids`: ids whose feature file is `<feature_dir>/<id>.npz`, or {id: video path relative
  to the dataset root}, each found by `features.video_feature_path` (mirrored folders)."""
  from vaujax.models import tetg
  scores, truth = {}, {}
  for vid in video_ids:
    path = (features.video_feature_path(feature_dir, video_ids[vid])
            if isinstance(video_ids, Mapping) else features.feature_path(feature_dir, vid))
    f = features.read_features(path)
    scores[vid] = frame_scorer(f)
    truth[vid] = tetg.frame_labels(f["timestamps"], labels[vid].get("anomaly_intervals", []))
  return frame_metrics(scores, truth)


def write_results(out_dir: str, name: str, results: Sequence[dict], summary: dict,
                  identity: Optional[dict] = None) -> str:
  """`<name>.json` = {"identity", "summary", "results"} (identity: whose answers, on which
  benchmark; `evaluation_identity`), written atomically; returns its path."""
  files.makedirs(out_dir)
  return files.write_json(os.path.join(out_dir, f"{name}.json"), {
      "identity": _normalized(identity), "summary": summary, "results": list(results)})
