"""vaujax's prompt ids against LLaMA-VID's, rebuilt independently on a real 32k LLaMA-format
SentencePiece model: LLaMA-VID's `conv_vicuna_v1` text, LLaVA's `tokenizer_image_token` (split on
`<image>`, each chunk through the slow LLaMA tokenizer with its BOS dropped from all but the
first, the image index between) and `preprocess_v1`'s label arithmetic."""

import re

import numpy as np
import pytest

from vaujax import testing
from vaujax.data import conversation as conv
from vaujax.data.tokenizer import Tokenizer

IMG = -200   # LLaVA's IMAGE_TOKEN_INDEX
V = 3        # slots per placeholder on vaujax's side


@pytest.fixture(scope="module")
def tok():
  path = testing.real_sentencepiece_model()
  if path is None:
    pytest.skip("mistral-common's tokenizer.model.v1 is not installed")
  return Tokenizer.load(path)


# -- LLaMA-VID, written out from its code -----------------------------------------------------

def slow_llama_ids(sp, text: str) -> list[int]:
  """transformers 4.31's slow LlamaTokenizer (legacy): BOS, then special tokens split out and
  every other piece through SentencePiece on its own."""
  ids = [sp.bos_id()]
  for piece in re.split(r"(</s>)", text):
    if piece == "</s>":
      ids.append(sp.eos_id())
    elif piece:
      ids.extend(sp.encode(piece))
  return ids


def tokenizer_image_token(sp, prompt: str) -> list[int]:
  """LLaVA's mm_utils.tokenizer_image_token."""
  chunks = [slow_llama_ids(sp, c) for c in prompt.split("<image>")]
  out, offset = [], 0
  if chunks and chunks[0] and chunks[0][0] == sp.bos_id():
    offset = 1
    out.append(chunks[0][0])
  separated = [x for chunk in chunks for x in (chunk, [IMG] * (offset + 1))][:-1]
  for x in separated:
    out.extend(x[offset:])
  return out


def vicuna_v1_prompt(messages) -> str:
  """conv_vicuna_v1.get_prompt() (SeparatorStyle.TWO); a None message is the generation slot."""
  text = conv.SYSTEM + " "
  for i, (role, message) in enumerate(messages):
    text += f"{role}: {message}{' ' if i % 2 == 0 else '</s>'}" if message else f"{role}:"
  return text


def preprocess_v1(sp, turns):
  """LLaMA-VID's preprocess_v1 with an image: (input_ids, labels) of one conversation."""
  messages = [(conv.ROLES[t["from"]], t["value"]) for t in turns]
  prompt = vicuna_v1_prompt(messages)
  ids = tokenizer_image_token(sp, prompt)
  labels = list(ids)
  sep = " ASSISTANT: "
  cur = 1
  labels[:cur] = [conv.IGNORE_INDEX] * cur
  for rou in prompt.split("</s>"):
    if rou == "":
      break
    parts = rou.split(sep)
    assert len(parts) == 2
    parts[0] += sep
    round_len = len(tokenizer_image_token(sp, rou))
    instruction_len = len(tokenizer_image_token(sp, parts[0])) - 2
    labels[cur:cur + instruction_len] = [conv.IGNORE_INDEX] * instruction_len
    cur += round_len
  labels[cur:] = [conv.IGNORE_INDEX] * (len(labels) - cur)
  assert cur == len(ids), "LLaMA-VID's own tokenization mismatch (it would mask everything)"
  return ids, labels


def expand(ids, labels=None):
  """LLaMA-VID's single image index -> vaujax's V slots (never supervised)."""
  out_ids, out_labels = [], []
  for k, i in enumerate(ids):
    n = V if i == IMG else 1
    out_ids += [conv.VIDEO_TOKEN_ID if i == IMG else i] * n
    if labels is not None:
      out_labels += [conv.IGNORE_INDEX if i == IMG else labels[k]] * n
  return out_ids, out_labels


# -- conversations ----------------------------------------------------------------------------

def chat(*values):
  return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


CASES = {
    "front": chat("<image>\nWhat happens in the video?", "A man breaks a window."),
    "please": chat("<image>\nplease describe it", "Sure."),
    "end": chat("What happens here?\n<image>", "Nothing unusual."),
    "middle": chat("Look: <image> Why?", "Because."),
    "no_newline": chat("<image>What happens?", "A fight."),
    "spaces": chat("  <image>\n  What happens?  ", "  Two cars collide.  "),
    "newlines": chat("<image>\n\nWhat happens?\n", "\nA fire starts.\n\nThen smoke."),
    "multi_turn": chat("<image>\nWhat happens in the video?", "A red car hits a blue car.",
                       "When does it happen?", "From 3.0 to 7.5 seconds.",
                       " Are there any anomalies? ", " Yes, a road accident."),
    "options": chat("<image>\nWhat is it?\nA. Arson\nB. Fighting\nAnswer with the letter.", "B"),
    "imgsp": chat("<image>\nWhat happens?", "A theft.", "When?\n<image>", "At 2.0 s.",
                  "<image>\nWho?", "A man in red."),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ids_and_labels_match_llamavid_position_by_position(tok, name):
  turns = CASES[name]
  want_ids, want_labels = expand(*preprocess_v1(tok._backend, turns))
  ids, labels = conv.tokenize_conversation(turns, tok, num_video_tokens=V,
                                           placeholder_per_turn=name == "imgsp")
  assert len(ids) == len(want_ids)
  for pos, (a, b, la, lb) in enumerate(zip(ids.tolist(), want_ids, labels.tolist(),
                                           want_labels)):
    assert (a, la) == (b, lb), f"position {pos}"
  # every generation prompt along the way: LLaMA-VID's get_prompt() with an empty last slot
  for n in range(1, len(turns), 2):
    messages = [(conv.ROLES[t["from"]], t["value"]) for t in turns[:n]] + [("ASSISTANT", None)]
    want, _ = expand(tokenizer_image_token(tok._backend, vicuna_v1_prompt(messages)))
    prompt = conv.tokenize_prompt(turns[:n], tok, num_video_tokens=V,
                                  placeholder_per_turn=name == "imgsp")
    assert prompt.tolist() == want
    np.testing.assert_array_equal(ids[:len(prompt)], prompt)


def test_the_placeholder_neighbours_written_out(tok):
  """`USER: <image>\\nWhat` is `'▁' <IMG> '▁' '<0x0A>' 'What'`: the space before the
  placeholder stays, and the text after it gets its own dummy-prefix space."""
  ids = conv.tokenize_prompt(chat("<image>\nWhat is it?"), tok, num_video_tokens=1)
  pieces = ["<IMG>" if i == conv.VIDEO_TOKEN_ID else tok.id_to_piece(i) for i in ids.tolist()]
  at = pieces.index("<IMG>")
  assert pieces[at - 4:at + 5] == ["▁US", "ER", ":", "▁", "<IMG>", "▁", "<0x0A>", "What", "▁is"]
  assert pieces[-4:] == ["▁ASS", "IST", "ANT", ":"]
