"""`Assistant`: a trained VA-GPT with its tokenizer and TETG, answering about videos.

Batched, sharded generation and option scoring over feature dicts (`tower_patches [T, N, Dv]`,
`dino_patches [T, M, Dd]`, `dino_cls [T, Dd]`, `timestamps [T]`), and one video's structured
answer `{anomaly, class, start_s, end_s, frame_scores, explanation[, region, events]}`
(validated against `vaujax/schemas/answer.schema.json`). The evaluators, the trainer's
in-training evaluations, the `infer` command and the demo all use it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np


from vaujax import sharding
from vaujax.data import conversation, frame_layout, regions
from vaujax.data.annotations import UCF_CRIME_CLASSES
from vaujax.data.tokenizer import Tokenizer
from vaujax.evaluate import parsing
from vaujax.generation import multimodal
from vaujax.generation.sampler import SamplingConfig, left_pad
from vaujax.generation.scoring import option_logprobs
from vaujax.models import vagpt
from vaujax.models.llama import Llama
from vaujax.runs import run_dir
from vaujax.runs.tetg_files import TETGView, TrainedTETG

FINAL_QUESTION = "Are there any anomalies?"
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "schemas",
                           "answer.schema.json")


@functools.partial(jax.jit, static_argnames=("model",))
def _option_logprobs(model: vagpt.VAGPT, params, ids, mask, tower, dino, option_ids, option_mask,
                     q_ids=None, q_mask=None):
  """Log p(option | prompt) for every prompt's K options: prompts [B, P], options [B, K, C];
  the K options share one pass over their prompt (`scoring.option_logprobs`) -> [B, K] x 2."""
  embeds = model.apply(params, ids, tower, dino, q_ids, q_mask,
                       method=vagpt.VAGPT.embed_inputs)                              # [B, P, D]
  llm = Llama(model.config.llm, model.dtype, model.param_dtype)
  return option_logprobs(llm, vagpt.llm_params(params), None, mask, option_ids, option_mask,
                         prompt_embeds=embeds)


@dataclasses.dataclass
class Assistant:
  """A trained VA-GPT with its tokenizer and (optionally) its TETG classifier.

  Batches are padded to a multiple of the mesh size and sharded over its devices (params
  replicated). `Assistant.from_run(WORKDIR)` is all a user needs: the run directory carries its
  config, tokenizer, class list and classifier (`vaujax.runs.run_dir`).
  """

  config: ml_collections.ConfigDict
  model: vagpt.VAGPT
  params: dict
  tokenizer: Tokenizer
  tetg: Optional[TrainedTETG] = None
  classes: Sequence[str] = UCF_CRIME_CLASSES
  mesh: Optional[jax.sharding.Mesh] = None
  bert: Optional[object] = None   # the Q-Former's BertTokenizer (models with a Q-Former)
  # Prompts are left-padded to a multiple of `length_bucket` tokens (and batches to `rows`, when
  # the caller gives it), so evaluation compiles once per bucket instead of once per batch
  # shape. 1 turns both off (every batch gets its exact shape).
  length_bucket: int = 32
  # What this assistant's answers belong to (`run_dir.identity`: run, checkpoint step, config
  # hash), when it was loaded from a run; evaluations record it and refuse to mix two.
  identity: Optional[dict] = None

  @classmethod
  def from_run(cls, run: "run_dir.Run | str", *,
               mesh: Optional[jax.sharding.Mesh] = None) -> "Assistant":
    """The newest checkpoint of a run directory (or a `Run` whose config was overridden)."""
    run = run_dir.load_run(run) if isinstance(run, str) else run
    params = run_dir.vagpt_params(run.workdir, run.config)
    return dataclasses.replace(cls.from_params(run.config, params, mesh=mesh),
                               identity=run_dir.identity(run))

  @classmethod
  def from_params(cls, config: ml_collections.ConfigDict, params: dict, *,
                  tokenizer: Optional[Tokenizer] = None,
                  tetg: Optional[TrainedTETG] = None,
                  mesh: Optional[jax.sharding.Mesh] = None) -> "Assistant":
    """From a run config and `{"params": ...}` (the trainer's in-training evaluations)."""
    tokenizer = tokenizer or Tokenizer.load(config.data.tokenizer)
    cfg = run_dir.model_config(config, tokenizer.vocab_size)
    mesh = mesh or sharding.make_mesh(data=jax.device_count(), fsdp=1, tensor=1)
    params = jax.device_put(params, sharding.replicated(mesh))
    return cls(config, vagpt.VAGPT(cfg), params, tokenizer,
               tetg if tetg is not None else run_dir.run_tetg(config),
               run_dir.classes(config), mesh, run_dir.bert_tokenizer(config, cfg))

  # -- TETG --------------------------------------------------------------------------------------

  def tetg_view(self, feats: dict) -> Optional[TETGView]:
    """TETG's frame scores, interval and hint for one video (None without a classifier)."""
    return None if self.tetg is None else self.tetg.view(feats, self.classes)

  def frame_scores(self, feats: dict) -> Optional[np.ndarray]:
    """TETG's P(anomalous) per frame, or None without a classifier."""
    return None if self.tetg is None else self.tetg.scores(feats["dino_cls"])

  def interval(self, feats: dict) -> Optional[tuple[float, float]]:
    view = self.tetg_view(feats)
    return None if view is None else view.interval

  def hint(self, feats: dict) -> str:
    """The prompt hint for one video ("" without a classifier)."""
    view = self.tetg_view(feats)
    return "" if view is None else view.hint

  # -- prompts -----------------------------------------------------------------------------------

  def _batch(self, chats: Sequence[Sequence[dict]], feats: Sequence[dict], rows: int = 0,
             views: Optional[Sequence[Optional[TETGView]]] = None):
    cfg = self.model.config
    prompts, questions = [], []
    views = views if views is not None else [self.tetg_view(f) for f in feats]
    layout = frame_layout.FrameSettings.of_run(self.config)
    imgsp = bool(run_dir.config_value(self.config, "data.imgsp", False))
    for chat, view, f in zip(chats, views, feats):
      # the training pipeline's preparation (placeholder turns normalised, hint, imgsp)
      prepared = conversation.prepare(chat, hint=view.hint if view is not None else "",
                                      imgsp=imgsp)
      prompts.append(conversation.tokenize_prompt(
          prepared.conversations, self.tokenizer, num_video_tokens=cfg.num_video_tokens,
          video_ids=layout.video_ids(f["timestamps"], cfg, self.tokenizer),
          placeholder_per_turn=imgsp).tolist())
      questions.append(prepared.qformer_texts)
    feats = [layout.pad(f, cfg) for f in feats]
    longest = max(len(p) for p in prompts)
    ids, mask = left_pad(prompts, self.tokenizer.pad_id, _round_up(longest, self.length_bucket))
    tower = np.stack([f["tower_patches"] for f in feats]).astype(np.float32)
    dino = np.stack([f["dino_patches"] for f in feats]).astype(np.float32)
    arrays = [np.asarray(ids), np.asarray(mask), tower, dino]
    if self.bert is not None:
      arrays += list(qformer_batch(self.bert, questions, self.config.model.qformer_max_length,
                                   imgsp))
    return _pad_rows(arrays, self.mesh.size, rows if self.length_bucket > 1 else 0)

  def _shard(self, *arrays):
    return [jax.device_put(a, sharding.batch_sharding(self.mesh, a.ndim)) for a in arrays]

  def generate(self, chats: Sequence[Sequence[dict]], feats: Sequence[dict], *,
               max_new_tokens: int = 48, rows: int = 0,
               views: Optional[Sequence[Optional[TETGView]]] = None) -> list[str]:
    """Greedy answers to the last human turn of each chat about its video (`rows`: pad the
    batch to this many rows, so a short last batch reuses the compiled full-batch program;
    `views`: TETG's views of the videos, when the caller has them already)."""
    arrays, n = self._batch(chats, feats, rows, views)
    ids, mask, tower, dino, *q = self._shard(*arrays)
    out = multimodal.generate(self.model, self.params, ids, mask, tower, dino, jax.random.key(0),
                         SamplingConfig(max_new_tokens=max_new_tokens), *q)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    return [self.tokenizer.decode([t for t in tokens[i, :lengths[i]] if t != self.tokenizer.eos_id])
            for i in range(n)]

  def score_options(self, chats: Sequence[Sequence[dict]], feats: Sequence[dict],
                    options: Sequence[Sequence[str]], rows: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(sum, mean) log p(option + </s> | prompt) -> two [B, K] arrays (`rows` as in
    `generate`)."""
    k = len(options[0])
    if any(len(o) != k for o in options):
      raise ValueError("every question needs the same number of options")
    (ids, mask, tower, dino, *q), n = self._batch(chats, feats, rows)
    # each option as its training answer would be tokenized after "ASSISTANT:"
    conts = [conversation.answer_ids(o, self.tokenizer) for opts in options for o in opts]
    conts += [[self.tokenizer.eos_id]] * ((ids.shape[0] - n) * k)
    width = _round_up(max(map(len, conts)), min(8, self.length_bucket))
    option_ids = np.full((len(conts), width), self.tokenizer.pad_id, np.int32)
    option_mask = np.zeros((len(conts), width), np.int32)
    for i, c in enumerate(conts):
      option_ids[i, :len(c)], option_mask[i, :len(c)] = c, 1
    shape = (ids.shape[0], k, width)                                                # [B, K, C]
    args = self._shard(ids, mask, tower, dino, option_ids.reshape(shape),
                       option_mask.reshape(shape), *q)
    total, mean = _option_logprobs(self.model, self.params, *args)
    return np.asarray(total)[:n], np.asarray(mean)[:n]

  # -- one video ---------------------------------------------------------------------------------

  def ask(self, feats: dict, question: str = FINAL_QUESTION, *, max_new_tokens: int = 48) -> dict:
    """Generated text + structured answer about one video (see the schema)."""
    chat = [{"from": "human", "value": f"{conversation.VIDEO_PLACEHOLDER}\n{question}"}]
    view = self.tetg_view(feats)   # the classifier runs once per question
    text = self.generate([chat], [feats], max_new_tokens=max_new_tokens, views=[view])[0]
    times = feats["timestamps"] if view is None or view.timestamps is None else view.timestamps
    return structured_answer(text, None if view is None else view.scores, times,
                             None if view is None else view.interval, self.classes,
                             () if view is None else view.intervals)


def structured_answer(text: str, frame_scores: Optional[np.ndarray], timestamps: np.ndarray,
                      tetg_interval: Optional[tuple[float, float]],
                      classes: Sequence[str],
                      tetg_intervals: Sequence[tuple[float, float]] = ()) -> dict:
  """{anomaly, class, start_s, end_s, frame_scores, explanation[, region, events]} from the
  model's outputs.

  The interval is TETG's when it found one, else the one the text states; `anomaly` is the
  text's judgement, else whether TETG found an interval; `class` is the one class the text names.
  An anomalous answer also gets `region` (the one region its events are at, else null) and
  `events`: every anomaly the text names with a class (`parsing.parse_events`), each with the
  interval and region the text gives it; an event without a stated interval takes the answer's
  interval when it is the only event, else TETG's runs in time order when TETG found exactly one
  run per event (`tetg_intervals`), else null. A normal answer keeps the old shape.
  """
  judgement = parsing.parse_judgement(text)
  interval = tetg_interval or parsing.parse_interval(text)
  anomaly = judgement if judgement is not None else tetg_interval is not None
  name = parsing.parse_class(text, classes) if anomaly else None
  if not anomaly:
    interval = None
  answer = {"anomaly": bool(anomaly), "class": name, "start_s": _seconds(interval, 0),
            "end_s": _seconds(interval, 1),
            "frame_scores": [] if frame_scores is None else [
                {"t": round(float(t), 3), "score": round(float(s), 4)}
                for t, s in zip(timestamps, frame_scores)],
            "explanation": text}
  if anomaly:
    named = [e for e in parsing.parse_events(text, classes) if e[0] is not None]
    runs = list(tetg_intervals) if len(tetg_intervals) == len(named) else [None] * len(named)
    if len(named) == 1:
      runs = [interval]
    places = {region for _, _, region in named if region is not None}
    answer["region"] = (regions.parse_region(text) if not named
                        else places.pop() if len(places) == 1 else None)
    answer["events"] = [{"class": c, "start_s": _seconds(said or run, 0),
                         "end_s": _seconds(said or run, 1), "region": region}
                        for (c, said, region), run in zip(named, runs)]
  return answer


def _seconds(interval: Optional[Sequence[float]], end: int) -> Optional[float]:
  return None if interval is None else round(float(interval[end]), 2)


def validate_answer(answer: dict) -> None:
  """Raises jsonschema.ValidationError when `answer` does not follow the shipped schema."""
  import jsonschema
  with open(SCHEMA_PATH) as f:
    jsonschema.validate(answer, json.load(f))


def qformer_batch(bert, questions: Sequence[Sequence[str]], max_length: int,
                  imgsp: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """The Q-Former's ids and mask of each prompt's questions: [B, Lq] of the first ones, or
  with imgsp [B, P, Lq], P = the most questions of a prompt (padding rows masked): a batch of
  one-question prompts, as the evaluators ask, runs the Q-Former once per frame, not
  data.imgsp_turns times."""
  if not imgsp:
    return bert.batch([q[0] for q in questions], max_length)
  ids, mask = bert.batch([q for qs in questions for q in qs], max_length)
  p = max(map(len, questions))
  out_ids = np.full((len(questions), p, ids.shape[1]), bert.pad_id, np.int32)
  out_mask = np.zeros(out_ids.shape, np.int32)
  start = 0
  for b, qs in enumerate(questions):
    rows = slice(start, start + len(qs))
    out_ids[b, :len(qs)], out_mask[b, :len(qs)] = ids[rows], mask[rows]
    start += len(qs)
  return out_ids, out_mask


def _round_up(n: int, multiple: int) -> int:
  return -(-n // max(multiple, 1)) * max(multiple, 1)


def _pad_rows(arrays: list[np.ndarray], multiple: int, rows: int = 0):
  """Repeats the last row until there are max(rows, n) rows, rounded up to `multiple`."""
  n = arrays[0].shape[0]
  pad = _round_up(max(rows, n), multiple) - n
  if pad:
    arrays = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays]
  return arrays, n
