"""What the trainer needs to know about VA-GPT: model, batch layout, loss."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from vaujax.data import frame_layout, pipeline
from vaujax.models import vagpt
from vaujax.runs import run_dir
from vaujax.train.losses import next_token_loss

def pipeline_config(config: ml_collections.ConfigDict, cfg: vagpt.VAGPTConfig, *,
                    train: bool = True) -> pipeline.PipelineConfig:
  """The one PipelineConfig of a run, for training and for its held-out loss alike (`train`:
  shuffled, repeated and prefetched; else one ordered pass)."""
  frames = frame_layout.FrameSettings.of_run(config)
  return pipeline.PipelineConfig(
      feature_dir=config.data.feature_dir, num_video_tokens=cfg.num_video_tokens,
      max_length=config.data.max_length,
      batch_size=config.data.batch_size // jax.process_count(),
      feature_shapes={"tower_patches": (cfg.num_patches, cfg.frame_tokens.vision_dim),
                      "dino_patches": (cfg.dino_patches, config.model.dino_dim)},
      num_frames=cfg.num_frames,
      variable_frames=frames.variable_frames, frame_times=frames.frame_times,
      num_epochs=config.data.num_epochs if train else 1, seed=config.seed, shuffle=train,
      qformer_max_length=config.model.get("qformer_max_length", 0) if cfg.qformer else 0,
      imgsp=bool(config.data.get("imgsp", False)),
      imgsp_turns=int(config.data.get("imgsp_turns", 1)),
      read_threads=config.data.get("read_threads", 0),
      prefetch_buffer=config.data.get("prefetch_buffer", 0),
      hint_jitter=float(config.data.get("hint_jitter", 0.0)) if train else 0.0,
      hint_labels=bool(config.data.get("train_hint_labels", False)) and train,
      group_by_modality=bool(config.data.get("group_by_modality", False)) and train)


def make_dataset(config: ml_collections.ConfigDict, cfg: vagpt.VAGPTConfig, tokenizer,
                 json_path: str, *, train: bool = True, log=print):
  """The Grain dataset of a run's instruction file, with the run's TETG hints and Q-Former
  ids: training data and held-out loss data are built the same way."""
  source, problems = pipeline.json_source(json_path, skip_bad=config.data.skip_bad or not train)
  pcfg = pipeline_config(config, cfg, train=train)
  pipeline.check_unique_keys(source, json_path, pcfg.feature_dir)   # one feature file per video
  if config.data.skip_bad or not train:
    source, missing = pipeline.drop_examples_without_features(source, pcfg)
    problems += missing
  if problems and train:
    log(f"data: skipped {len(problems)} bad examples, e.g. {problems[0]}")
  tetg = run_dir.run_tetg(config)
  hint_fn = tetg.hint_fn(run_dir.classes(config)) if tetg is not None else None
  return pipeline.make_dataset(source, pcfg, tokenizer, process_index=jax.process_index(),
                               process_count=jax.process_count(), hint_fn=hint_fn,
                               bert_tokenizer=run_dir.bert_tokenizer(config, cfg))


def dummy_batch(cfg: vagpt.VAGPTConfig, config: ml_collections.ConfigDict, batch: int) -> dict:
  t, length = cfg.num_frames, config.data.max_length
  prompts = (int(config.data.get("imgsp_turns", 1)),) if config.data.get("imgsp") else ()
  q_shape = (batch, *prompts, config.model.get("qformer_max_length", 0))   # imgsp: [B, P, Lq]
  return {"input_ids": np.zeros((batch, length), np.int32),
          "labels": np.zeros((batch, length), np.int32),
          "attention_mask": np.ones((batch, length), np.int32),
          "tower_patches": np.zeros((batch, t, cfg.num_patches, cfg.frame_tokens.vision_dim),
                                    np.float32),
          "dino_patches": np.zeros((batch, t, cfg.dino_patches, config.model.dino_dim),
                                   np.float32),
          **({"qformer_ids": np.zeros(q_shape, np.int32),
              "qformer_mask": np.ones(q_shape, np.int32)}
             if cfg.qformer is not None else {})}


def init_fn(model: vagpt.VAGPT):
  def init(rng, batch):
    return model.init(rng, batch["input_ids"], batch["tower_patches"], batch["dino_patches"],
                      qformer_ids=batch.get("qformer_ids"), qformer_mask=batch.get("qformer_mask"))
  return init


def loss_fn(model: vagpt.VAGPT):
  def compute(params, batch):
    logits = model.apply(params, batch["input_ids"], batch["tower_patches"],
                         batch["dino_patches"], attention_mask=batch["attention_mask"],
                         qformer_ids=batch.get("qformer_ids"),
                         qformer_mask=batch.get("qformer_mask"))
    loss, count = next_token_loss(logits, batch["labels"])
    return loss, {"num_tokens": count}
  return compute
