"""Ask a trained VA-GPT about a video: "what happened, and when?".

  python -m vaujax.infer --config configs/vagpt_stage2.py --checkpoint runs/stage2 \
      --video clip.mp4 [--question "Are there any anomalies?"] [--tetg runs/tetg/tetg] \
      [--encoder tiny:0 | --encoder TOWER_DIR,DINO_DIR] [--figure out.png] [--json out.json]

Prints the generated answer, the TETG interval and the structured answer
`{anomaly, class, start_s, end_s, frame_scores, explanation}` (validated against
`vaujax/schemas/answer.schema.json`). `Assistant` is the same thing as a library object: the
evaluators and the demo use it for batched, sharded generation and option scoring.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vaujax import sharding
from vaujax.data import conversation
from vaujax.data.tokenizer import Tokenizer
from vaujax.errors import InputError
from vaujax.evaluate import parsing
from vaujax.generation.sampler import SamplingConfig, left_pad
from vaujax.generation.scoring import option_logprobs
from vaujax.models import tetg, vagpt
from vaujax.models.llama import Llama

FINAL_QUESTION = "Are there any anomalies?"
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schemas", "answer.schema.json")


def load_params(checkpoint: str, config: ml_collections.ConfigDict) -> dict:
  """`{"params": ...}` of a training run's newest checkpoint (LoRA adapters merged in).

  `checkpoint` is a workdir (holding `checkpoints/`) or the `checkpoints/` folder itself.
  """
  from vaujax.train.checkpoint import read_run_params
  params = read_run_params(checkpoint)
  if "lora" in params:
    from vaujax.train import lora
    rank, alpha = config.lora.rank, config.lora.get("alpha", 2.0 * config.lora.rank)
    params = {"params": lora.merge(params["base"]["params"], params["lora"], alpha, rank)}
  if "params" not in params:
    raise InputError(checkpoint, "checkpoint holds no model params")
  return {"params": params["params"]}


def encoder_from_spec(spec: str):
  """`tiny` / `tiny:SEED` (the demo's random towers) or `TOWER_DIR,DINO_DIR` (converted)."""
  from vaujax.data import features
  if spec.startswith("tiny"):
    seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
    return features.tiny_encoder(seed)
  parts = spec.split(",")
  if len(parts) != 2:
    raise ValueError(f"--encoder must be 'tiny[:SEED]' or 'TOWER_DIR,DINO_DIR', got {spec!r}")
  return features.encoder_from_params(*parts)


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

  Inputs are feature dicts as the feature store writes them (`tower_patches [T, N, Dv]`,
  `dino_patches [T, M, Dd]`, `dino_cls [T, Dd]`, `timestamps [T]`). Batches are padded to a
  multiple of the mesh size and sharded over its devices (params replicated).
  """

  config: ml_collections.ConfigDict
  model: vagpt.VAGPT
  params: dict
  tokenizer: Tokenizer
  tetg_params: Optional[dict] = None
  tetg_config: Optional[tetg.TETGConfig] = None
  classes: Sequence[str] = tetg.UCF_CRIME_CLASSES
  mesh: Optional[jax.sharding.Mesh] = None
  bert: Optional[object] = None   # the Q-Former's BertTokenizer (models with a Q-Former)
  # Prompts are left-padded to a multiple of `length_bucket` tokens (and batches to `rows`, when
  # the caller gives it), so evaluation compiles once per bucket instead of once per batch
  # shape. 1 turns both off (every batch gets its exact shape).
  length_bucket: int = 32

  @classmethod
  def load(cls, config: ml_collections.ConfigDict, checkpoint: str, *,
           tetg_dir: Optional[str] = None, classes: Optional[Sequence[str]] = None,
           mesh: Optional[jax.sharding.Mesh] = None) -> "Assistant":
    """From a stage config and its run (classes default to `config.data.classes`)."""
    from vaujax.train import loop, tetg_trainer, vagpt_task
    classes = classes or config.data.get("classes") or tetg.UCF_CRIME_CLASSES
    tokenizer = Tokenizer.load(config.data.tokenizer)
    model = vagpt.VAGPT(vagpt_task.model_config(config, tokenizer.vocab_size))
    params = load_params(checkpoint, config)
    tetg_dir = tetg_dir or config.data.get("tetg_params") or None
    tp = tc = None
    if tetg_dir and config.model.use_tetg:
      tp, tc = tetg_trainer.load(tetg_dir)
    mesh = mesh or sharding.make_mesh(data=jax.device_count(), fsdp=1, tensor=1)
    params = jax.device_put(params, sharding.replicated(mesh))
    return cls(config, model, params, tokenizer, tp, tc, tuple(classes), mesh,
               loop.bert_tokenizer(config, model.config))

  # -- TETG --------------------------------------------------------------------------------------

  def frame_scores(self, feats: dict) -> Optional[np.ndarray]:
    """TETG's P(anomalous) per frame, or None without a classifier."""
    if self.tetg_params is None:
      return None
    from vaujax.train import tetg_trainer
    return tetg_trainer.predict_probs(self.tetg_params, self.tetg_config, feats["dino_cls"])

  def interval(self, feats: dict) -> Optional[tuple[float, float]]:
    scores = self.frame_scores(feats)
    if scores is None:
      return None
    return tetg.extract_interval(scores, feats["timestamps"], self.tetg_config)

  def hint(self, feats: dict) -> str:
    if self.tetg_params is None:
      return ""
    return tetg.hint_text(self.interval(feats), self.classes)

  # -- prompts -----------------------------------------------------------------------------------

  def _batch(self, chats: Sequence[Sequence[dict]], feats: Sequence[dict], rows: int = 0):
    cfg = self.model.config
    prompts, hinted = [], []
    for chat, f in zip(chats, feats):
      chat = conversation.insert_hint(chat, self.hint(f)) if self.tetg_params is not None else chat
      prompts.append(conversation.tokenize_prompt(
          chat, self.tokenizer, num_video_tokens=cfg.num_video_tokens).tolist())
      hinted.append(chat)
    longest = max(len(p) for p in prompts)
    ids, mask = left_pad(prompts, self.tokenizer.pad_id, _round_up(longest, self.length_bucket))
    tower = np.stack([f["tower_patches"] for f in feats]).astype(np.float32)
    dino = np.stack([f["dino_patches"] for f in feats]).astype(np.float32)
    arrays = [np.asarray(ids), np.asarray(mask), tower, dino]
    if self.bert is not None:
      from vaujax.data.bert_tokenizer import question_text
      arrays += list(self.bert.batch([question_text(c) for c in hinted],
                                     self.config.model.qformer_max_length))
    return _pad_rows(arrays, self.mesh.size, rows if self.length_bucket > 1 else 0)

  def _shard(self, *arrays):
    return [jax.device_put(a, sharding.batch_sharding(self.mesh, a.ndim)) for a in arrays]

  def generate(self, chats: Sequence[Sequence[dict]], feats: Sequence[dict], *,
               max_new_tokens: int = 48, rows: int = 0) -> list[str]:
    """Greedy answers to the last human turn of each chat about its video (`rows`: pad the
    batch to this many rows, so a short last batch reuses the compiled full-batch program)."""
    arrays, n = self._batch(chats, feats, rows)
    ids, mask, tower, dino, *q = self._shard(*arrays)
    out = vagpt.generate(self.model, self.params, ids, mask, tower, dino, jax.random.key(0),
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
    conts = [self.tokenizer.encode(o.strip()) + [self.tokenizer.eos_id] for opts in options
             for o in opts]
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
    text = self.generate([chat], [feats], max_new_tokens=max_new_tokens)[0]
    return structured_answer(text, self.frame_scores(feats), feats["timestamps"],
                             self.interval(feats), self.classes)


def structured_answer(text: str, frame_scores: Optional[np.ndarray], timestamps: np.ndarray,
                      tetg_interval: Optional[tuple[float, float]],
                      classes: Sequence[str]) -> dict:
  """{anomaly, class, start_s, end_s, frame_scores, explanation} from the model's outputs.

  The interval is TETG's when it found one, else the one the text states; `anomaly` is the
  text's judgement, else whether TETG found an interval; `class` is the one class the text names.
  """
  judgement = parsing.parse_judgement(text)
  interval = tetg_interval or parsing.parse_interval(text)
  anomaly = judgement if judgement is not None else tetg_interval is not None
  name = parsing.parse_class(text, classes) if anomaly else None
  if not anomaly:
    interval = None
  return {"anomaly": bool(anomaly), "class": name,
          "start_s": None if interval is None else round(float(interval[0]), 2),
          "end_s": None if interval is None else round(float(interval[1]), 2),
          "frame_scores": [] if frame_scores is None else [
              {"t": round(float(t), 3), "score": round(float(s), 4)}
              for t, s in zip(timestamps, frame_scores)],
          "explanation": text}


def validate_answer(answer: dict) -> None:
  """Raises jsonschema.ValidationError when `answer` does not follow the shipped schema."""
  import jsonschema
  with open(SCHEMA_PATH) as f:
    jsonschema.validate(answer, json.load(f))


def _round_up(n: int, multiple: int) -> int:
  return -(-n // max(multiple, 1)) * max(multiple, 1)


def _pad_rows(arrays: list[np.ndarray], multiple: int, rows: int = 0):
  """Repeats the last row until there are max(rows, n) rows, rounded up to `multiple`."""
  n = arrays[0].shape[0]
  pad = _round_up(max(rows, n), multiple) - n
  if pad:
    arrays = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays]
  return arrays, n


def video_features(path: str, encoder: Callable, num_frames: int) -> tuple[dict, np.ndarray]:
  """(feature dict, the sampled uint8 frames [T, H, W, 3]) of one video file."""
  from vaujax.data import video as video_io
  frames, stamps = video_io.read_video(path, num_frames=num_frames)
  if len(frames) < num_frames:
    raise InputError(path, f"only {len(frames)} decodable frames, the model needs {num_frames}")
  return {**encoder(frames), "timestamps": stamps}, frames


def main(argv=None):
  from absl import app, flags
  from ml_collections import config_flags
  flags_ = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "stage config file", flag_values=flags_)
  flags.DEFINE_string("checkpoint", None, "training workdir or its checkpoints/", flag_values=flags_)
  flags.DEFINE_string("video", None, "video file", flag_values=flags_)
  flags.DEFINE_string("features", None, "or a feature .npz instead of --video", flag_values=flags_)
  flags.DEFINE_string("question", FINAL_QUESTION, "question", flag_values=flags_)
  flags.DEFINE_string("tetg", None, "TETG classifier dir (default config.data.tetg_params)",
                      flag_values=flags_)
  flags.DEFINE_string("encoder", None, "tiny[:SEED] or TOWER_DIR,DINO_DIR (default "
                      "config.data.encoder or tiny:0)", flag_values=flags_)
  flags.DEFINE_list("classes", None, "class vocabulary (default config.data.classes or "
                    "UCF-Crime's 13)", flag_values=flags_)
  flags.DEFINE_string("gt", None, "ground-truth interval 'start,end' for the figure",
                      flag_values=flags_)
  flags.DEFINE_string("figure", None, "write a PNG figure here", flag_values=flags_)
  flags.DEFINE_string("json", None, "write the structured answer here", flag_values=flags_)
  flags_(argv or __import__("sys").argv)
  from vaujax import cpu_runtime
  cpu_runtime.reuse_host_memory()
  config = flags_.config
  if config is None or not flags_.checkpoint or not (flags_.video or flags_.features):
    raise SystemExit("need --config, --checkpoint and --video (or --features)")
  assistant = Assistant.load(config, flags_.checkpoint, tetg_dir=flags_.tetg,
                             classes=flags_.classes)
  frames = None
  if flags_.video:
    from vaujax.errors import require_file
    require_file(flags_.video, "video")
    encoder = encoder_from_spec(flags_.encoder or config.data.get("encoder") or "tiny:0")
    feats, frames = video_features(flags_.video, encoder, config.model.num_frames)
  else:
    from vaujax.data import features
    feats = features.load(flags_.features)
  answer = assistant.ask(feats, flags_.question)
  validate_answer(answer)
  print(f"Q: {flags_.question}\nA: {answer['explanation']}")
  interval = (f"{answer['start_s']:.1f}-{answer['end_s']:.1f} s" if answer["start_s"] is not None
              else "none")
  print(f"anomaly: {answer['anomaly']}  class: {answer['class']}  interval: {interval}")
  if flags_.json:
    with open(flags_.json, "w") as f:
      json.dump(answer, f, indent=1)
  if flags_.figure:
    from vaujax.evaluate import plots
    gt = tuple(float(x) for x in flags_.gt.split(",")) if flags_.gt else None
    plots.video_figure(flags_.figure, feats, frames, assistant.frame_scores(feats),
                       assistant.interval(feats), gt, config.model.sets_ratio,
                       title=os.path.basename(flags_.video or flags_.features))
    print(f"figure: {flags_.figure}")
  return answer


if __name__ == "__main__":
  main()
