"""LLaMA/Vicuna tokenizer: a local SentencePiece `tokenizer.model` or a HF `tokenizer.json`.

Vicuna convention (LLaMA-VID uses the slow SentencePiece LlamaTokenizer): BOS (id 1) starts a
sequence, EOS `</s>` (id 2) ends each assistant reply, padding uses `<unk>` (id 0).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Sequence

from vaujax import files
from vaujax.errors import InputError, require_file

SP_MODEL_NAME = "tokenizer.model"
HF_JSON_NAME = "tokenizer.json"


@dataclasses.dataclass
class Tokenizer:
  """Text <-> ids with explicit BOS/EOS handling. Load with `Tokenizer.load(path)`."""

  path: str
  _backend: Any
  _kind: str  # 'sentencepiece' | 'hf'
  bos_id: int
  eos_id: int
  pad_id: int
  vocab_size: int

  @staticmethod
  def resolve_path(path: str | os.PathLike) -> str:
    """The tokenizer file `path` names: itself, or the model file in a directory."""
    path = os.fspath(path)
    if files.isdir(path):
      for name in (SP_MODEL_NAME, HF_JSON_NAME):
        if files.exists(os.path.join(path, name)):
          path = os.path.join(path, name)
          break
      else:
        raise InputError(path, f"directory has neither {SP_MODEL_NAME} nor {HF_JSON_NAME}")
    return require_file(path, "tokenizer file")

  @classmethod
  def load(cls, path: str | os.PathLike) -> "Tokenizer":
    """`path`: a `tokenizer.model`, a `tokenizer.json`, or a directory holding one of them."""
    path = cls.resolve_path(path)
    if path.endswith(".json"):
      return cls._load_hf(path)
    return cls._load_sentencepiece(path)

  @classmethod
  def _load_sentencepiece(cls, path: str) -> "Tokenizer":
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor()
    try:
      with files.open_file(path, "rb") as f:   # bytes: also from a gs:// URL
        sp.LoadFromSerializedProto(f.read())
    except Exception as e:  # sentencepiece raises RuntimeError/OSError on bad protos
      raise InputError(path, f"not a SentencePiece model ({str(e).splitlines()[0]})") from e
    if sp.get_piece_size() == 0:
      raise InputError(path, "SentencePiece model has an empty vocabulary")
    bos, eos, unk = sp.bos_id(), sp.eos_id(), sp.unk_id()
    if bos < 0 or eos < 0:
      raise InputError(path, "SentencePiece model defines no BOS/EOS pieces (not a LLaMA tokenizer)")
    pad = sp.pad_id() if sp.pad_id() >= 0 else unk
    return cls(path, sp, "sentencepiece", bos, eos, pad, sp.get_piece_size())

  @classmethod
  def _load_hf(cls, path: str) -> "Tokenizer":
    from tokenizers import Tokenizer as HFTokenizer
    try:
      if files.is_url(path):
        tok = HFTokenizer.from_str(files.read_bytes(path, "tokenizer file").decode("utf-8"))
      else:
        tok = HFTokenizer.from_file(path)
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
      raise InputError(path, f"not a HF tokenizer.json ({str(e).splitlines()[0]})") from e
    ids = {s: tok.token_to_id(s) for s in ("<s>", "</s>", "<unk>", "<pad>")}
    if ids["<s>"] is None or ids["</s>"] is None:
      raise InputError(path, "tokenizer.json has no '<s>'/'</s>' tokens (not a LLaMA tokenizer)")
    pad = ids["<pad>"] if ids["<pad>"] is not None else (ids["<unk>"] or 0)
    return cls(path, tok, "hf", ids["<s>"], ids["</s>"], pad, tok.get_vocab_size())

  def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
    if self._kind == "sentencepiece":
      ids = list(self._backend.encode(text))
    else:
      ids = list(self._backend.encode(text, add_special_tokens=False).ids)
    return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

  def decode(self, ids: Iterable[int]) -> str:
    """Decodes ids, dropping ids outside the vocabulary (e.g. placeholders) and padding."""
    ids = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
    if self._kind == "sentencepiece":
      return self._backend.decode(ids)
    return self._backend.decode(ids, skip_special_tokens=True)

  def id_to_piece(self, i: int) -> str:
    if self._kind == "sentencepiece":
      return self._backend.id_to_piece(int(i))
    return self._backend.id_to_token(int(i))


def train_sentencepiece(texts: Sequence[str], out_dir: str | os.PathLike,
                        vocab_size: int = 512) -> str:
  """Trains a small LLaMA-style SentencePiece BPE model (unk 0, bos 1, eos 2, byte fallback).

  For tests and the demo: nothing is downloaded. Returns the path of `tokenizer.model`.
  """
  import io

  import sentencepiece as spm
  out_dir = files.makedirs(out_dir)
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
      model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
      character_coverage=1.0, hard_vocab_limit=False, split_digits=True,
      add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
      num_threads=1, minloglevel=2)
  return files.write_bytes(os.path.join(out_dir, SP_MODEL_NAME), model.getvalue())
