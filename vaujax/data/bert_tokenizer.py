"""The Q-Former's BERT tokenizer (bert-base-uncased WordPiece) from a local `vocab.txt`.

LLaMA-VID tokenizes the question for the Q-Former with `BertTokenizer('bert-base-uncased',
truncation_side='left')` plus a `[DEC]` BOS token (vocab 30523): `[CLS] text [SEP]`, padded to
the longest prompt of the batch, at most 256 tokens, cutting from the left (the end of a long
question is what matters). Built on the `tokenizers` library's WordPiece, no network.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from vaujax.errors import InputError, require_file

MAX_LENGTH = 256


class BertTokenizer:
  """`BertTokenizer.load(vocab_txt)`; `batch(texts)` -> (ids [B, L], mask [B, L]) int32."""

  def __init__(self, path: str, backend, cls_id: int, sep_id: int, pad_id: int):
    self.path, self._backend = path, backend
    self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
    self.vocab_size = backend.get_vocab_size()

  @classmethod
  def load(cls, path: str | os.PathLike, lowercase: bool = True) -> "BertTokenizer":
    """`path`: a WordPiece `vocab.txt` (one token per line) or a directory holding one."""
    from tokenizers import BertWordPieceTokenizer
    from vaujax import files
    path = os.fspath(path)
    if files.isdir(path):
      path = os.path.join(path, "vocab.txt")
    require_file(path, "BERT vocab file")
    with files.open_file(path, encoding="utf-8") as f:
      vocab = [line.rstrip("\n") for line in f]
    missing = [t for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]") if t not in vocab]
    if missing:
      raise InputError(path, f"BERT vocab lacks the special tokens {missing}")
    backend = BertWordPieceTokenizer({t: i for i, t in enumerate(vocab)} if files.is_url(path)
                                     else path, lowercase=lowercase)
    return cls(path, backend, vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[PAD]"))

  def encode(self, text: str, max_length: int = MAX_LENGTH) -> list[int]:
    """[CLS] wordpieces [SEP], left-truncated to `max_length` (keeping [CLS] and [SEP])."""
    body = self._backend.encode(text, add_special_tokens=False).ids
    body = body[max(0, len(body) - (max_length - 2)):]
    return [self.cls_id, *body, self.sep_id]

  def batch(self, texts: Sequence[str], max_length: int = MAX_LENGTH, *, pad_to: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Padded to the longest row, or to `pad_to` (static shapes for training)."""
    rows = [self.encode(t, max_length) for t in texts]
    width = max(pad_to, *map(len, rows))
    ids = np.full((len(rows), width), self.pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
      ids[i, :len(r)], mask[i, :len(r)] = r, 1
    return ids, mask


def question_text(conversations) -> str:
  """The Q-Former's text for an example's first human turn, as LLaMA-VID builds its guided
  prompt: the placeholder and newlines removed, nothing else changed (`conversation.prepare`
  gives one per question)."""
  first = conversations[0]["value"]
  return first.replace("<video>", "").replace("<image>", "").replace("\n", "")
