"""What the trainer needs to know about VA-GPT: model, batch layout, loss."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vaujax.models import vagpt
from vaujax.train.losses import next_token_loss

BATCH_KEYS = ("input_ids", "labels", "attention_mask", "tower_patches", "dino_patches",
              "qformer_ids", "qformer_mask")


def model_config(config: ml_collections.ConfigDict, vocab_size: int) -> vagpt.VAGPTConfig:
  """The model config with the tokenizer's vocab (and the BERT vocab file's, with a Q-Former)."""
  cfg = vagpt.config_from_dict(config.model)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, vocab_size=vocab_size))
  if cfg.qformer is not None and not config.model.get("qformer_vocab_size"):
    from vaujax.data.bert_tokenizer import BertTokenizer
    bert = BertTokenizer.load(config.data.get("bert_vocab", ""))
    cfg = dataclasses.replace(cfg, qformer=dataclasses.replace(cfg.qformer,
                                                               vocab_size=bert.vocab_size))
  return cfg


def dummy_batch(cfg: vagpt.VAGPTConfig, config: ml_collections.ConfigDict, batch: int) -> dict:
  t, length = cfg.num_frames, config.data.max_length
  return {"input_ids": np.zeros((batch, length), np.int32),
          "labels": np.zeros((batch, length), np.int32),
          "attention_mask": np.ones((batch, length), np.int32),
          "tower_patches": np.zeros((batch, t, cfg.num_patches, cfg.frame_tokens.vision_dim),
                                    np.float32),
          "dino_patches": np.zeros((batch, t, cfg.dino_patches, config.model.dino_dim),
                                   np.float32),
          **({"qformer_ids": np.zeros((batch, config.model.qformer_max_length), np.int32),
              "qformer_mask": np.ones((batch, config.model.qformer_max_length), np.int32)}
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


def select_batch(batch: dict) -> dict:
  return {k: batch[k] for k in BATCH_KEYS if k in batch}


def as_dtype(tree, dtype):
  return jax.tree_util.tree_map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                                else x, tree)
