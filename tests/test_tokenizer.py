import os

import pytest

from vaujax import testing
from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
from vaujax.errors import InputError

TEXTS = ["A chat between a curious user and an artificial intelligence assistant.",
         "USER: Are there any anomalies? ASSISTANT: Yes, an explosion from 3.0 to 7.5 seconds.",
         "The man walks across the parking lot and opens the car door."] * 20


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
  return train_sentencepiece(TEXTS, tmp_path_factory.mktemp("sp"), vocab_size=300)


def test_trained_model_round_trips_and_matches_hf_llama_tokenizer(sp_model):
  from transformers import LlamaTokenizer
  tok = Tokenizer.load(os.path.dirname(sp_model))
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 0)
  text = "USER: Are there any anomalies? ASSISTANT: Yes."
  ids = tok.encode(text, bos=True, eos=True)
  assert ids[0] == 1 and ids[-1] == 2
  assert tok.decode(ids) == text
  hf = LlamaTokenizer.from_pretrained(os.path.dirname(sp_model), legacy=True, add_bos_token=True)
  assert hf(text).input_ids == tok.encode(text, bos=True)


def test_real_32k_sentencepiece_model_loads():
  path = testing.real_sentencepiece_model()
  if path is None:
    pytest.skip("mistral-common asset package not installed")
  tok = Tokenizer.load(path)
  assert tok.vocab_size == 32000
  ids = tok.encode("Hello world", bos=True)
  assert ids[0] == tok.bos_id and tok.decode(ids) == "Hello world"


def test_hf_tokenizer_json(tmp_path, sp_model):
  from transformers import LlamaTokenizerFast
  fast = LlamaTokenizerFast.from_pretrained(os.path.dirname(sp_model), from_slow=True, legacy=True, add_bos_token=True)
  fast.save_pretrained(tmp_path)
  tok = Tokenizer.load(tmp_path / "tokenizer.json")
  text = "The man walks across the parking lot."
  assert tok.encode(text, bos=True) == fast(text).input_ids
  assert tok.decode(tok.encode(text)) == text


def test_bad_tokenizer_files_name_the_file(tmp_path):
  bad = tmp_path / "tokenizer.model"
  bad.write_bytes(b"this is not a protobuf")
  with pytest.raises(InputError, match=r"tokenizer.model: not a SentencePiece model"):
    Tokenizer.load(bad)
  with pytest.raises(InputError, match="does not exist"):
    Tokenizer.load(tmp_path / "missing.model")
  (tmp_path / "empty").mkdir()
  with pytest.raises(InputError, match="neither tokenizer.model nor tokenizer.json"):
    Tokenizer.load(tmp_path / "empty")
  badjson = tmp_path / "tokenizer.json"
  badjson.write_text("{not json")
  with pytest.raises(InputError, match="tokenizer.json: not a HF tokenizer.json"):
    Tokenizer.load(badjson)
