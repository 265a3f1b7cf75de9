"""Vicuna v1 rendering and label masking, checked token by token."""

import numpy as np
import pytest

from vaujax.data import conversation as conv
from vaujax.data.tokenizer import Tokenizer, train_sentencepiece

CONV = [{"from": "human", "value": "<video>\nWhat happens in the video?"},
        {"from": "gpt", "value": "A red car hits a blue car."},
        {"from": "human", "value": "When does it happen?"},
        {"from": "gpt", "value": "From 3.0 to 7.5 seconds."},
        {"from": "human", "value": "Are there any anomalies?"},
        {"from": "gpt", "value": "Yes, a road accident."}]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  texts = [conv.SYSTEM] + [t["value"] for t in CONV] * 5
  return Tokenizer.load(train_sentencepiece(texts * 4, tmp_path_factory.mktemp("sp"), 400))


def test_render_matches_vicuna_v1_layout():
  text = conv.render_prompt(CONV[:2])
  assert text == (conv.SYSTEM + " USER: <video>\nWhat happens in the video? ASSISTANT: "
                  "A red car hits a blue car.</s>")
  assert conv.render_prompt(CONV[:1], add_generation_prompt=True).endswith(
      "USER: <video>\nWhat happens in the video? ASSISTANT:")


def test_labels_are_exactly_the_answers_and_eos(tok):
  ids, labels = conv.tokenize_conversation(CONV, tok, num_video_tokens=6)
  assert ids.shape == labels.shape and ids[0] == tok.bos_id and labels[0] == conv.IGNORE_INDEX
  assert (ids == conv.VIDEO_TOKEN_ID).sum() == 6
  assert (labels[ids == conv.VIDEO_TOKEN_ID] == conv.IGNORE_INDEX).all()
  supervised = labels != conv.IGNORE_INDEX
  np.testing.assert_array_equal(ids[supervised], labels[supervised])
  # split the supervised tokens into runs: each run is one answer followed by </s>
  runs, current = [], []
  for i, s in enumerate(supervised):
    if s:
      current.append(int(ids[i]))
    elif current:
      runs.append(current)
      current = []
  runs.append(current) if current else None
  answers = [t["value"] for t in CONV if t["from"] == "gpt"]
  assert len(runs) == 3
  for run, answer in zip(runs, answers):
    assert run[-1] == tok.eos_id and tok.decode(run[:-1]) == answer
  # everything unsupervised decodes to the instructions
  text = tok.decode([int(i) for i, s in zip(ids, supervised) if not s])
  assert "USER: When does it happen? ASSISTANT:" in text and text.startswith(conv.SYSTEM)


def test_generation_prompt_is_a_prefix_of_the_training_example(tok):
  ids, _ = conv.tokenize_conversation(CONV[:2], tok, num_video_tokens=4)
  prompt = conv.tokenize_prompt(CONV[:1], tok, num_video_tokens=4)
  np.testing.assert_array_equal(ids[:len(prompt)], prompt)
  assert tok.decode(prompt[-12:]).endswith("ASSISTANT:")


def test_hint_goes_after_the_video_placeholder():
  hinted = conv.insert_hint(CONV[:2], "Known common crime types are: 'Arson'.")
  assert hinted[0]["value"] == ("<video>\nKnown common crime types are: 'Arson'. "
                                "What happens in the video?")
  assert CONV[0]["value"].startswith("<video>\nWhat")  # input untouched


@pytest.mark.parametrize("bad,match", [
    ([], "empty conversation"),
    ([{"from": "human", "value": "<video>\n  "}, {"from": "gpt", "value": "x"}], "empty question"),
    ([{"from": "gpt", "value": "x"}], "expected a human turn"),
    ([{"from": "human"}], "needs 'from' and 'value'"),
    ([{"from": "human", "value": "<video><video>q"}, {"from": "gpt", "value": "x"}],
     "2 video placeholders"),
    ([{"from": "human", "value": "no video here"}, {"from": "gpt", "value": "x"}],
     "no video placeholder"),
    ([{"from": "human", "value": "<video> q"}], "ends with a human turn"),
])
def test_bad_conversations(tok, bad, match):
  with pytest.raises(conv.ConversationError, match=match):
    conv.tokenize_conversation(bad, tok, num_video_tokens=2)


def test_image_placeholder_alias(tok):
  a = conv.tokenize_conversation([{"from": "human", "value": "<image>\nq?"},
                                  {"from": "gpt", "value": "a"}], tok, num_video_tokens=3)
  b = conv.tokenize_conversation([{"from": "human", "value": "<video>\nq?"},
                                  {"from": "gpt", "value": "a"}], tok, num_video_tokens=3)
  np.testing.assert_array_equal(a[0], b[0])
