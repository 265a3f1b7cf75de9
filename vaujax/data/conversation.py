"""Vicuna v1 conversations (LLaMA-VID's `conv_vicuna_v1`) -> token ids and masked labels.

Rendered text: `SYSTEM + " USER: " + q1 + " ASSISTANT: " + a1 + "</s>" + "USER: " + q2 + ...`;
a generation prompt ends with "ASSISTANT:". Each `<video>` (or LLaMA-VID's `<image>`) placeholder
becomes `num_video_tokens` copies of `VIDEO_TOKEN_ID` (or the caller's `video_ids`), the slots
that the model fills with visual tokens: one in the first human turn, or one in every human turn
with LLaMA-VID's `imgsp` layout (`prepare`).

Ids are LLaMA-VID's exactly (LLaVA's `tokenizer_image_token` over the slow LLaMA tokenizer): the
rendered text is split on the placeholders and on `</s>`, each chunk is encoded on its own (so
`USER: <image>\nWhat` is `'▁' <IMG> '▁' '<0x0A>' 'What'`), BOS only once at the start. Text is
kept as written, spaces and newlines included. Tokens are built segment by segment (BOS, each
instruction chunk, each answer + EOS), so the label mask is exact by construction: only
assistant answers and their `</s>` are supervised, everything else is IGNORE_INDEX. The same
segments build training examples and generation prompts, so a prompt is always a token-exact
prefix of its training example.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np

from vaujax.data import regions
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
# several confident runs (data.hint_intervals = "all"): "from 1.0 to 3.0 and from 5.0 to 7.0"
INTERVALS_SENTENCE = "There are anomalies of the crime types occurring {spans} seconds."
SPAN = "from {start:.1f} to {end:.1f}"
# with the region each run happens in (data.hint_regions, `models/event_region.py`)
INTERVAL_AT_SENTENCE = ("There is one of the crime types occurring from {start:.1f} to {end:.1f} "
                        "seconds near {where}.")
INTERVALS_AT_SENTENCE = "There are anomalies of the crime types occurring {spans}."
SPAN_AT = "from {start:.1f} to {end:.1f} seconds near {where}"
# with the anomaly each run shows (data.hint_types: TETG's class head), as the questions name it
TYPED_SENTENCE = "There is one of the crime types occurring: {spans}."
TYPED_SENTENCES = "There are anomalies of the crime types occurring: {spans}."
TYPED_SPAN = "{kind} from {start:.1f} to {end:.1f} seconds"
UNTYPED = "an anomaly"    # a run the class head could not name


def readable_class(label: str) -> str:
  """A class as answers write it ("RoadAccidents" -> "Road accident")."""
  return {"RoadAccidents": "Road accident"}.get(label, label)


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
      if not value.strip():   # LLaMA-VID's " ASSISTANT: </s>" has no answer to supervise
        raise ConversationError(f"turn {i}: empty answer")
      turns.append((pending, value))
      pending = None
  if pending is not None:
    turns.append((pending, None))
  return turns


def _chunks(text: str) -> list[str]:
  """The text between placeholders (either spelling): LLaVA's `prompt.split('<image>')`."""
  return text.replace(IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER).split(VIDEO_PLACEHOLDER)


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


def answer_ids(answer: str, tokenizer: Tokenizer) -> list[int]:
  """An answer's supervised ids: `" " + answer + "</s>"` after "ASSISTANT:" in the rendered text.

  SentencePiece starts a word at every run of whitespace after a non-space, so the answer's
  pieces are those of `encode(answer)` (its dummy prefix is the separating space); `</s>` is
  the EOS id, as LLaMA's tokenizer splits special tokens out before encoding.
  """
  return tokenizer.encode(answer) + [tokenizer.eos_id]


def _encode(conversations, tokenizer: Tokenizer, num_video_tokens: int, for_generation: bool,
            video_ids: Optional[Sequence[int]] = None, placeholder_per_turn: bool = False):
  turns = _turns(conversations)
  video = _video_ids(num_video_tokens, video_ids)
  if for_generation:
    if turns[-1][1] is not None:
      raise ConversationError("generation prompt must end with a human turn")
  elif turns[-1][1] is None:
    raise ConversationError("training example ends with a human turn (no answer)")
  ids, labels = [tokenizer.bos_id], [IGNORE_INDEX]
  videos = 0

  def add(segment_ids, supervised):
    ids.extend(segment_ids)
    labels.extend(segment_ids if supervised else [IGNORE_INDEX] * len(segment_ids))

  for i, (question, answer) in enumerate(turns):
    # LLaVA's chunk rule: each text chunk between placeholders (and between special tokens) is
    # encoded on its own, so SentencePiece gives every chunk its dummy-prefix space.
    chunks = _chunks((SYSTEM + " " if i == 0 else "") + f"USER: {question} ASSISTANT:")
    if len(chunks) > 2:
      raise ConversationError(f"{len(chunks) - 1} video placeholders in one question (expected "
                              "at most 1)")
    if len(chunks) == 2 and i != 0 and not placeholder_per_turn:
      raise ConversationError("the video placeholder must be in the first question")
    for k, chunk in enumerate(chunks):
      if k:
        add(video, False)
        videos += 1
      add(tokenizer.encode(chunk), False)
    if answer is not None:
      add(answer_ids(answer, tokenizer), True)
  if video and not videos:
    raise ConversationError("the conversation has no video placeholder but the example has a "
                            "video")
  return np.asarray(ids, np.int32), np.asarray(labels, np.int32)


def tokenize_conversation(conversations: Sequence[Mapping], tokenizer: Tokenizer, *,
                          num_video_tokens: int, video_ids: Optional[Sequence[int]] = None,
                          placeholder_per_turn: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Training example -> (input_ids int32 [L], labels int32 [L]).

  Each placeholder becomes `video_ids` when given (never supervised), else `num_video_tokens`
  copies of VIDEO_TOKEN_ID. Placeholders may be in later questions only with
  `placeholder_per_turn` (the `imgsp` layout: one per question).
  """
  return _encode(conversations, tokenizer, num_video_tokens, False, video_ids,
                 placeholder_per_turn)


def tokenize_prompt(conversations: Sequence[Mapping], tokenizer: Tokenizer, *,
                    num_video_tokens: int, video_ids: Optional[Sequence[int]] = None,
                    placeholder_per_turn: bool = False) -> np.ndarray:
  """Generation prompt (ends with "ASSISTANT:") -> input_ids int32 [L] (the options as in
  `tokenize_conversation`)."""
  return _encode(conversations, tokenizer, num_video_tokens, True, video_ids,
                 placeholder_per_turn)[0]


def has_placeholder(text: str) -> bool:
  return VIDEO_PLACEHOLDER in text or IMAGE_PLACEHOLDER in text


def normalize_video_turns(conversations: Sequence[Mapping]) -> list[dict]:
  """LLaMA-VID's `preprocess_multimodal`: a turn holding the placeholder becomes
  `"<video>\n" + its text without placeholders, stripped` (a trailing or inline placeholder
  moves to the front; text around it loses its outer spaces and newlines)."""
  out = []
  for turn in conversations:
    turn = dict(turn) if isinstance(turn, Mapping) else turn
    value = turn.get("value") if isinstance(turn, dict) else None
    if isinstance(value, str) and has_placeholder(value):
      rest = value.replace(IMAGE_PLACEHOLDER, "").replace(VIDEO_PLACEHOLDER, "").strip()
      turn["value"] = f"{VIDEO_PLACEHOLDER}\n{rest}".strip()
    out.append(turn)
  return out


def qformer_text(question: str) -> str:
  """A question as the Q-Former reads it (LLaMA-VID's guided prompt): placeholders and
  newlines removed, nothing else changed."""
  return question.replace(IMAGE_PLACEHOLDER, "").replace(VIDEO_PLACEHOLDER, "").replace("\n", "")


def add_turn_placeholders(conversations: Sequence[Mapping],
                          rng: Optional[np.random.Generator] = None) -> list[dict]:
  """LLaMA-VID's `imgsp` layout: every human turn after the first placeholder gets its own,
  `"<video>\n" + q` or `q + "\n<video>"` at random when `rng` is given (its training), else
  in front (its inference form)."""
  out, seen = [dict(t) for t in conversations], False
  for turn in out:
    seen = seen or has_placeholder(turn["value"])
    if turn["from"] == "human" and seen and not has_placeholder(turn["value"]):
      front = rng is None or rng.integers(2) == 0
      turn["value"] = (f"{VIDEO_PLACEHOLDER}\n{turn['value']}" if front
                       else f"{turn['value']}\n{VIDEO_PLACEHOLDER}")
  return out


@dataclasses.dataclass(frozen=True)
class Prepared:
  conversations: list[dict]     # what `tokenize_conversation` / `tokenize_prompt` get
  qformer_texts: list[str]      # the Q-Former's question per placeholder, in order


def prepare(conversations: Sequence[Mapping], *, hint: str = "", imgsp: bool = False,
            rng: Optional[np.random.Generator] = None) -> Prepared:
  """A conversation as VA-GPT's model sees it, in LLaMA-VID's order: placeholder turns
  normalised (`normalize_video_turns`), the TETG hint after the placeholder, the Q-Former
  questions taken (one per human turn with `imgsp`, else the first), then with `imgsp` a
  placeholder in every later human turn (`add_turn_placeholders`). Training, evaluation and
  inference all call it, so their prompts agree token for token."""
  _turns(conversations)   # ConversationError for a malformed one, before anything else
  out = insert_hint(normalize_video_turns(conversations), hint)
  questions = [qformer_text(t["value"]) for t in out if t["from"] == "human"]
  if imgsp:
    out = add_turn_placeholders(out, rng)
  return Prepared(out, questions if imgsp else questions[:1])


def insert_hint(conversations: Sequence[Mapping], hint: str) -> list[dict]:
  """Puts the TETG hint into the first question, right after the video placeholder."""
  out = [dict(t) for t in conversations]
  first = out[0]["value"].replace(IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER)
  if hint and VIDEO_PLACEHOLDER in first:
    before, after = first.split(VIDEO_PLACEHOLDER, 1)
    out[0]["value"] = f"{before}{VIDEO_PLACEHOLDER}\n{hint} {after.lstrip()}"
  return out


def hint_text(interval, classes: Sequence[str] = UCF_CRIME_CLASSES,
              where: Optional[Sequence[Optional[str]]] = None,
              types: Optional[Sequence[Optional[str]]] = None) -> str:
  """The prompt hint: the class sentence, then TETG's interval (`(start, end)`, or a list of
  them in time order). Without an interval (None or []) only the class sentence is given; one
  interval (alone or in a list) gives exactly the one-interval sentence, several one sentence
  listing them all. `where`: a region name (`regions.REGIONS`) for each interval, said after
  it ("... seconds near the top left of the scene."); None (or all None) gives the hint
  without regions, and a run whose region is None is said without one. `types`: the class
  of each interval, said before it as the questions name it ("... occurring: fighting from
  1.0 to 3.0 seconds and explosion from ..."); None (or all None) gives the hint without
  them, the texts before it byte for byte."""
  text = CLASS_SENTENCE.format(classes=", ".join(f"'{c}'" for c in classes))
  spans = [] if interval is None else (
      [interval] if len(interval) and np.ndim(interval[0]) == 0 else list(interval))
  if not spans:
    return text
  if where is not None and len(where) != len(spans):
    raise ValueError(f"{len(where)} regions for {len(spans)} intervals")
  if types is not None and len(types) != len(spans):
    raise ValueError(f"{len(types)} types for {len(spans)} intervals")
  if types is not None and any(k is not None for k in types):
    said = [TYPED_SPAN.format(kind=UNTYPED if k is None else readable_class(k).lower(),
                              start=a, end=b)
            + ("" if where is None or where[i] is None
               else f" near {regions.region_text(where[i])}")
            for i, ((a, b), k) in enumerate(zip(spans, types))]
    return text + " " + (TYPED_SENTENCE if len(said) == 1 else TYPED_SENTENCES).format(
        spans=_listed(said))
  if where is None or all(w is None for w in where):
    if len(spans) == 1:
      return text + " " + INTERVAL_SENTENCE.format(start=spans[0][0], end=spans[0][1])
    return text + " " + INTERVALS_SENTENCE.format(
        spans=_listed([SPAN.format(start=a, end=b) for a, b in spans]))
  if len(spans) == 1 and where[0] is not None:
    return text + " " + INTERVAL_AT_SENTENCE.format(start=spans[0][0], end=spans[0][1],
                                                    where=regions.region_text(where[0]))
  said = [SPAN.format(start=a, end=b) + " seconds" if w is None else
          SPAN_AT.format(start=a, end=b, where=regions.region_text(w))
          for (a, b), w in zip(spans, where)]
  return text + " " + INTERVALS_AT_SENTENCE.format(spans=_listed(said))    # several runs


def _listed(said: Sequence[str]) -> str:
  """"a", "a and b", "a, b and c"."""
  return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
