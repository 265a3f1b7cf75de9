"""The Q-Former's BERT tokenizer against transformers' BertTokenizerFast on a local vocab."""

import numpy as np
import pytest

from vaujax.data.bert_tokenizer import BertTokenizer, question_text
from vaujax.errors import InputError

WORDS = ["are", "there", "any", "anomal", "##ies", "?", "what", "happens", "in", "the", "video",
         "a", "fire", "near", "road", ",", ".", "explosion", "from", "to", "seconds", "1", "2"]


@pytest.fixture
def vocab(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
  return str(path)


def test_matches_transformers(vocab):
  from transformers import BertTokenizerFast
  ref = BertTokenizerFast(vocab=vocab, do_lower_case=True)
  ours = BertTokenizer.load(vocab)
  texts = ["Are there any anomalies?", "What happens in the video, near the ROAD?",
           "A fire from 1 to 2 seconds. Zebra!"]
  for t in texts:
    assert ours.encode(t) == ref(t)["input_ids"]
  ids, mask = ours.batch(texts)
  want = ref(texts, padding="longest")
  np.testing.assert_array_equal(ids, want["input_ids"])
  np.testing.assert_array_equal(mask, want["attention_mask"])


def test_left_truncation_keeps_the_end(vocab):
  from transformers import BertTokenizerFast
  ref = BertTokenizerFast(vocab=vocab, do_lower_case=True, truncation_side="left")
  ours = BertTokenizer.load(vocab)
  text = "what happens in the video " * 10 + "are there any anomalies?"
  assert ours.encode(text, max_length=8) == ref(text, truncation=True, max_length=8)["input_ids"]


def test_bad_vocab_and_question_text(tmp_path):
  bad = tmp_path / "vocab.txt"
  bad.write_text("hello\nworld\n")
  with pytest.raises(InputError, match=r"vocab.txt.*special tokens"):
    BertTokenizer.load(str(bad))
  with pytest.raises(InputError, match="nope"):
    BertTokenizer.load(str(tmp_path / "nope"))
  # LLaMA-VID's guided prompt: `<image>` and newlines removed, words not re-spaced
  assert question_text([{"from": "human", "value": "<video>\nAre there\nany anomalies?"}]) == \
      "Are thereany anomalies?"
