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


def test_render_without_a_generation_prompt_ends_at_the_question():
  assert conv.render_prompt(CONV[:1]) == conv.SYSTEM + " USER: <video>\nWhat happens in the video?"
  assert conv.render_prompt(CONV[:3]) == (
      conv.SYSTEM + " USER: <video>\nWhat happens in the video? ASSISTANT: A red car hits a blue "
      "car.</s>USER: When does it happen?")
  # a conversation that ends with an answer is the same either way
  assert conv.render_prompt(CONV[:2], add_generation_prompt=True) == conv.render_prompt(CONV[:2])


def test_hint_edge_cases():
  assert conv.insert_hint(CONV[:2], "") == CONV[:2]                       # no hint: unchanged
  plain = [{"from": "human", "value": "What happens?"}]
  assert conv.insert_hint(plain, "Hint.") == plain                        # no placeholder
  image = [{"from": "human", "value": "<image>\n  What happens?"}]
  assert conv.insert_hint(image, "Hint.") == [
      {"from": "human", "value": "<video>\nHint. What happens?"}]          # alias, spaces
  two = [{"from": "human", "value": "<video> a <video> b"}]
  assert conv.insert_hint(two, "Hint.")[0]["value"] == "<video>\nHint. a <video> b"  # the first
  later = CONV[:3]
  assert conv.insert_hint(later, "Hint.")[2] == later[2]                  # only the first turn


@pytest.mark.parametrize("bad,match", [
    ([{"from": "system", "value": "Be brief."}, {"from": "human", "value": "<video> q"}],
     r"^turn 0: unknown role 'system' or non-text value$"),
    ([{"from": "user", "value": "<video> q"}], r"^turn 0: unknown role 'user' or non-text value$"),
    ([{"from": "human", "value": 3}], r"^turn 0: unknown role 'human' or non-text value$"),
    (["<video> q"], r"^turn 0 needs 'from' and 'value'$"),
    ([{"from": "human", "value": "<video> q"}, {"value": "a"}], r"^turn 1 needs 'from' and"),
    ([{"from": "human", "value": "<video> q"}, {"from": "human", "value": "again"}],
     r"^turn 1: expected a gpt turn, got human$"),
    ([{"from": "human", "value": "<video> q"}, {"from": "gpt", "value": "a"},
      {"from": "human", "value": "<image>"}], r"^turn 2: empty question$"),
    ([{"from": "human", "value": "<video> q"}, {"from": "gpt", "value": "a"},
      {"from": "human", "value": "<video> again"}, {"from": "gpt", "value": "b"}],
     r"^the video placeholder must be in the first question$"),
])
def test_conversation_errors_say_which_turn(tok, bad, match):
  with pytest.raises(conv.ConversationError, match=match):
    conv.tokenize_conversation(bad, tok, num_video_tokens=2)


def test_prompt_must_end_with_a_question(tok):
  with pytest.raises(conv.ConversationError, match=r"^generation prompt must end with a human "
                                                   r"turn$"):
    conv.tokenize_prompt(CONV[:2], tok, num_video_tokens=2)
  # without video tokens, a conversation needs no placeholder
  ids, labels = conv.tokenize_conversation([{"from": "human", "value": "q?"},
                                            {"from": "gpt", "value": "a"}], tok,
                                           num_video_tokens=0)
  assert conv.VIDEO_TOKEN_ID not in ids.tolist() and ids.dtype == labels.dtype == np.int32


def test_vicuna_v1_text_is_byte_exact():
  """LLaMA-VID's conv_vicuna_v1, written out (a changed system prompt or separator changes every
  prompt a checkpoint was trained on)."""
  text = conv.render_prompt([{"from": "human", "value": "<video>\nQ1"},
                             {"from": "gpt", "value": "A1"}, {"from": "human", "value": "Q2"}],
                            add_generation_prompt=True)
  assert text == (
      "A chat between a curious user and an artificial intelligence assistant. The assistant "
      "gives helpful, detailed, and polite answers to the user's questions. USER: <video>\nQ1 "
      "ASSISTANT: A1</s>USER: Q2 ASSISTANT:")


def test_tokens_are_built_segment_by_segment(tok):
  """BOS, the system prompt and "USER: " once, the video slots, each question's rest with
  " ASSISTANT:", each answer with </s>; later turns start with "USER:" alone. Every chunk between
  placeholders is encoded on its own, spaces and newlines kept (LLaVA's chunk rule)."""
  ids, labels = conv.tokenize_conversation(CONV[:4], tok, num_video_tokens=3)
  enc = tok.encode
  segments = [([tok.bos_id], False), (enc(conv.SYSTEM + " USER: "), False),
              ([conv.VIDEO_TOKEN_ID] * 3, False),
              (enc("\nWhat happens in the video? ASSISTANT:"), False),
              (enc("A red car hits a blue car.") + [tok.eos_id], True),
              (enc("USER: When does it happen? ASSISTANT:"), False),
              (enc("From 3.0 to 7.5 seconds.") + [tok.eos_id], True)]
  want_ids = [i for seg, _ in segments for i in seg]
  want_labels = [i if sup else conv.IGNORE_INDEX for seg, sup in segments for i in seg]
  assert ids.tolist() == want_ids and labels.tolist() == want_labels
  # text before the placeholder stays in the first chunk, its spaces included
  ids = conv.tokenize_prompt([{"from": "human", "value": "Look: <video> Why?"}], tok,
                             num_video_tokens=2)
  assert ids.tolist() == ([tok.bos_id] + enc(conv.SYSTEM + " USER: Look: ")
                          + [conv.VIDEO_TOKEN_ID] * 2 + enc(" Why? ASSISTANT:"))
  ids = conv.tokenize_prompt([{"from": "human", "value": "Look: <video>"}], tok,
                             num_video_tokens=1)          # nothing after it: " ASSISTANT:"
  assert ids.tolist() == ([tok.bos_id] + enc(conv.SYSTEM + " USER: Look: ")
                          + [conv.VIDEO_TOKEN_ID] + enc(" ASSISTANT:"))


def test_exact_messages(tok):
  with pytest.raises(conv.ConversationError, match=r"^empty conversation$"):
    conv.tokenize_conversation([], tok, num_video_tokens=2)
  with pytest.raises(conv.ConversationError, match=r"^the conversation has no video placeholder "
                                                   r"but the example has a video$"):
    conv.tokenize_conversation([{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
                               tok, num_video_tokens=2)


def test_training_example_must_end_with_an_answer(tok):
  with pytest.raises(conv.ConversationError,
                     match=r"^training example ends with a human turn \(no answer\)$"):
    conv.tokenize_conversation(CONV[:3], tok, num_video_tokens=2)


def test_video_ids_replace_the_slots_and_are_never_supervised(tok):
  """`video_ids` (slots with text ids between them, e.g. timestamps) stand in for each
  placeholder, in training examples and prompts alike."""
  stamp = tok.encode("1.5s")
  video = [conv.VIDEO_TOKEN_ID, conv.VIDEO_TOKEN_ID, *stamp, conv.VIDEO_TOKEN_ID]
  ids, labels = conv.tokenize_conversation(CONV[:2], tok, num_video_tokens=9, video_ids=video)
  plain, plain_labels = conv.tokenize_conversation(CONV[:2], tok, num_video_tokens=1)
  at = plain.tolist().index(conv.VIDEO_TOKEN_ID)
  want = plain.tolist()[:at] + video + plain.tolist()[at + 1:]
  assert ids.tolist() == want
  assert labels.tolist() == (plain_labels.tolist()[:at] + [conv.IGNORE_INDEX] * len(video)
                             + plain_labels.tolist()[at + 1:])
  prompt = conv.tokenize_prompt(CONV[:1], tok, num_video_tokens=9, video_ids=video)
  np.testing.assert_array_equal(ids[:len(prompt)], prompt)
