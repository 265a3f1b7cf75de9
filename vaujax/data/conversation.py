"""Vicuna v1 conversations (LLaMA-VID's `conv_vicuna_v1`) -> token ids and masked labels.

Rendered text: `SYSTEM + " USER: " + q1 + " ASSISTANT: " + a1 + "</s>" + "USER: " + q2 + ...`;
a generation prompt ends with "ASSISTANT:". The single `<video>` (or LLaMA-VID's `<image>`)
placeholder in the first human turn becomes `num_video_tokens` copies of `VIDEO_TOKEN_ID`, the
slots that the model fills with visual tokens.

Tokens are built segment by segment (BOS, each instruction, each answer + EOS), so the label mask
is exact by construction: only assistant answers and their `</s>` are supervised, everything
else is IGNORE_INDEX. The same segments build training examples and generation prompts, so a
prompt is always a token-exact prefix of its training example.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from vaujax.data.annotations import UCF_CRIME_CLASSES
from vaujax.data.tokenizer import Tokenizer
from vaujax.models.vagpt import VIDEO_TOKEN_ID

IGNORE_INDEX = -100
VIDEO_PLACEHOLDER = "<video>"
IMAGE_PLACEHOLDER = "<image>"  # LLaMA-VID / LLaVA data
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant "
          "gives helpful, detailed, and polite answers to the user's questions.")
ROLES = {"human": "USER", "gpt": "ASSISTANT"}
# TETG's hint (VA-GPT): the class list, and the interval when TETG found one.
CLASS_SENTENCE = "Known common crime types are: {classes}."
INTERVAL_SENTENCE = ("There is one of the crime types occurring from {start:.1f} to {end:.1f} "
                     "seconds.")


class ConversationError(ValueError):
  """A conversation that cannot be rendered (caller adds the file / example id)."""


def _turns(conversations: Sequence[Mapping]) -> list[tuple[str, str]]:
  """Validates [{'from': 'human'|'gpt', 'value': str}, ...] -> [(question, answer | None)]."""
  if not conversations:
    raise ConversationError("empty conversation")
  turns, pending = [], None
  for i, turn in enumerate(conversations):
    if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
      raise ConversationError(f"turn {i} needs 'from' and 'value'")
    role, value = turn["from"], turn["value"]
    if role not in ROLES or not isinstance(value, str):
      raise ConversationError(f"turn {i}: unknown role {role!r} or non-text value")
    expected = "human" if pending is None else "gpt"
    if role != expected:
      raise ConversationError(f"turn {i}: expected a {expected} turn, got {role}")
    if role == "human":
      if not value.replace(VIDEO_PLACEHOLDER, "").replace(IMAGE_PLACEHOLDER, "").strip():
        raise ConversationError(f"turn {i}: empty question")
      pending = value
    else:
      turns.append((pending, value))
      pending = None
  if pending is not None:
    turns.append((pending, None))
  return turns


def _split_video(question: str) -> tuple[str, str] | None:
  text = question.replace(IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER)
  count = text.count(VIDEO_PLACEHOLDER)
  if count > 1:
    raise ConversationError(f"{count} video placeholders in one question (expected at most 1)")
  if count == 0:
    return None
  before, after = text.split(VIDEO_PLACEHOLDER)
  return before.strip(), after.strip()


def render_prompt(conversations: Sequence[Mapping], *, add_generation_prompt: bool = False) -> str:
  """The conversation as Vicuna v1 text (placeholders kept)."""
  text = SYSTEM + " "
  for question, answer in _turns(conversations):
    text += f"USER: {question} ASSISTANT:"
    if answer is not None:
      text += f" {answer}</s>"
  if not add_generation_prompt:
    text = text.removesuffix(" ASSISTANT:") if text.endswith(" ASSISTANT:") else text
  return text


def _video_ids(num_video_tokens: int, video_ids: Optional[Sequence[int]]) -> list[int]:
  """What one placeholder becomes: `video_ids` when given (slot ids, possibly with ordinary text
  ids between them, e.g. per-frame timestamps), else `num_video_tokens` slots."""
  if video_ids is None:
    return [VIDEO_TOKEN_ID] * num_video_tokens
  return [int(i) for i in video_ids]


def _encode(conversations, tokenizer: Tokenizer, num_video_tokens: int, for_generation: bool,
            video_ids: Optional[Sequence[int]] = None):
  turns = _turns(conversations)
  video = _video_ids(num_video_tokens, video_ids)
  if for_generation:
    if turns[-1][1] is not None:
      raise ConversationError("generation prompt must end with a human turn")
  elif turns[-1][1] is None:
    raise ConversationError("training example ends with a human turn (no answer)")
  ids, labels = [tokenizer.bos_id], [IGNORE_INDEX]
  video_seen = False

  def add(segment_ids, supervised):
    ids.extend(segment_ids)
    labels.extend(segment_ids if supervised else [IGNORE_INDEX] * len(segment_ids))

  for i, (question, answer) in enumerate(turns):
    prefix = (SYSTEM + " " if i == 0 else "") + "USER:"
    parts = _split_video(question)
    if parts is not None:
      if i != 0:
        raise ConversationError("the video placeholder must be in the first question")
      video_seen = True
      before, after = parts
      add(tokenizer.encode(f"{prefix} {before}".rstrip()), False)
      add(video, False)
      add(tokenizer.encode(f"{after} ASSISTANT:".lstrip()), False)
    else:
      add(tokenizer.encode(f"{prefix} {question.strip()} ASSISTANT:"), False)
    if answer is not None:
      add(tokenizer.encode(answer.strip()) + [tokenizer.eos_id], True)
  if video and not video_seen:
    raise ConversationError("the conversation has no video placeholder but the example has a "
                            "video")
  return np.asarray(ids, np.int32), np.asarray(labels, np.int32)


def tokenize_conversation(conversations: Sequence[Mapping], tokenizer: Tokenizer, *,
                          num_video_tokens: int, video_ids: Optional[Sequence[int]] = None
                          ) -> tuple[np.ndarray, np.ndarray]:
  """Training example -> (input_ids int32 [L], labels int32 [L]).

  Each placeholder becomes `video_ids` when given (never supervised), else `num_video_tokens`
  copies of VIDEO_TOKEN_ID.
  """
  return _encode(conversations, tokenizer, num_video_tokens, False, video_ids)


def tokenize_prompt(conversations: Sequence[Mapping], tokenizer: Tokenizer, *,
                    num_video_tokens: int, video_ids: Optional[Sequence[int]] = None
                    ) -> np.ndarray:
  """Generation prompt (ends with "ASSISTANT:") -> input_ids int32 [L] (`video_ids` as in
  `tokenize_conversation`)."""
  return _encode(conversations, tokenizer, num_video_tokens, True, video_ids)[0]


def insert_hint(conversations: Sequence[Mapping], hint: str) -> list[dict]:
  """Puts the TETG hint into the first question, right after the video placeholder."""
  out = [dict(t) for t in conversations]
  first = out[0]["value"].replace(IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER)
  if hint and VIDEO_PLACEHOLDER in first:
    before, after = first.split(VIDEO_PLACEHOLDER, 1)
    out[0]["value"] = f"{before}{VIDEO_PLACEHOLDER}\n{hint} {after.lstrip()}"
  return out


def hint_text(interval: Optional[tuple[float, float]],
              classes: Sequence[str] = UCF_CRIME_CLASSES) -> str:
  """The prompt hint. Without an interval only the class sentence is given."""
  text = CLASS_SENTENCE.format(classes=", ".join(f"'{c}'" for c in classes))
  if interval is None:
    return text
  return text + " " + INTERVAL_SENTENCE.format(start=interval[0], end=interval[1])
