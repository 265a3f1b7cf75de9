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


# -- first-turn normalisation and the imgsp layout (LLaMA-VID's train.py) ----------------------

def preprocess_multimodal(turns):
  """LLaMA-VID's preprocess_multimodal (no mm_use_im_start_end, no mmtag)."""
  out = []
  for t in turns:
    value = t["value"]
    if "<image>" in value:
      value = ("<image>\n" + value.replace("<image>", "").strip()).strip()
    out.append({**t, "value": value})
  return out


def preprocess_imgsp_v1(turns):
  """LLaMA-VID's preprocess_imgsp_v1 message layout with `random.randint(0, 1) == 0` always
  (the placeholder in front) -> (turns as rendered, guided prompts)."""
  out, guided, img_in_text = [], [], False
  for t in turns:
    if t["from"] == "human":
      guided.append(t["value"].replace("<image>", "").replace("\n", ""))
    img_in_text = img_in_text or "<image>" in t["value"]
    if t["from"] == "human" and img_in_text and "<image>" not in t["value"]:
      out.append({**t, "value": "<image>\n" + t["value"]})
    else:
      out.append(t)
  return out, guided


RAW = {
    "trailing": chat("What happens here?\n<image>", "A fight.", " When?\n", "At 3 s."),
    "inline": chat("Look at <image> this:\nwhat happens? ", "Nothing.", "Sure?", "Yes."),
    "spaces": chat("  <image>\n\n  What happens?  ", " A fire. ", "Who\nstarted it?", "No one."),
    "front": chat("<image>\nWhat happens?", "A theft.", "When?", "At 2.0 s.", "Who?", "A man."),
}


@pytest.mark.parametrize("name", sorted(RAW))
@pytest.mark.parametrize("imgsp", [False, True])
def test_prepare_is_llamavids_preprocessing(tok, name, imgsp):
  """`conversation.prepare` + tokenization == LLaMA-VID's preprocess_multimodal, then
  preprocess_v1 (or imgsp_v1's layout), id for id and label for label; the Q-Former questions
  are its guided prompts."""
  turns = RAW[name]
  normalized = preprocess_multimodal(turns)
  layout, guided = preprocess_imgsp_v1(normalized)
  want_ids, want_labels = expand(*preprocess_v1(tok._backend, layout if imgsp else normalized))
  prepared = conv.prepare(turns, imgsp=imgsp)
  ids, labels = conv.tokenize_conversation(prepared.conversations, tok, num_video_tokens=V,
                                           placeholder_per_turn=imgsp)
  assert ids.tolist() == want_ids and labels.tolist() == want_labels
  assert prepared.qformer_texts == (guided if imgsp else guided[:1])


def test_first_turn_normalisation_written_out():
  prepared = conv.prepare(chat("What happens here?  \n<image>", "A fight."))
  assert prepared.conversations[0]["value"] == "<video>\nWhat happens here?"
  assert prepared.qformer_texts == ["What happens here?"]   # from the normalised turn
  hinted = conv.prepare(chat("Why? <video>", "x", "And?", "y"), hint="Hint.", imgsp=True)
  assert [t["value"] for t in hinted.conversations] == ["<video>\nHint. Why?", "x",
                                                        "<video>\nAnd?", "y"]
  assert hinted.qformer_texts == ["Hint. Why?", "And?"]


def test_imgsp_training_sides_are_random_and_reproducible():
  turns = RAW["front"]
  sides = set()
  for seed in range(8):
    a = conv.prepare(turns, imgsp=True, rng=np.random.default_rng(seed)).conversations
    b = conv.prepare(turns, imgsp=True, rng=np.random.default_rng(seed)).conversations
    assert a == b
    for t, raw in zip(a[2::2], turns[2::2]):
      assert t["value"] in ("<video>\n" + raw["value"], raw["value"] + "\n<video>")
      sides.add(t["value"].startswith("<video>"))
  assert sides == {True, False}


# -- imgsp in the model: each question's frame tokens come from its own text -------------------

@pytest.fixture(scope="module")
def imgsp_model(tok, tmp_path_factory):
  import dataclasses

  import jax

  from configs import vagpt as vagpt_config
  from vaujax.data.bert_tokenizer import BertTokenizer
  from vaujax.models import vagpt
  words = sorted(set(re.findall(r"[a-z0-9]+", " ".join(
      t["value"] for c in (*RAW.values(), *IMGSP_VARIANTS.values()) for t in c).lower())))
  vocab = tmp_path_factory.mktemp("bert") / "vocab.txt"
  vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", "."] + words))
  bert = BertTokenizer.load(str(vocab))
  cd = vagpt_config.get_config("size=tiny,frames=2,qformer=true")
  cd.qformer_vocab_size = bert.vocab_size
  cfg = vagpt.config_from_dict(cd)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, vocab_size=tok.vocab_size))
  rng = np.random.RandomState(0)
  tower = rng.randn(1, cfg.num_frames, cfg.num_patches, cfg.frame_tokens.vision_dim)
  dino = rng.randn(1, cfg.num_frames, cfg.dino_patches, cd.dino_dim)
  model = vagpt.VAGPT(cfg)
  ids, q_ids, q_mask = imgsp_inputs(tok, bert, cfg, IMGSP_VARIANTS["base"])
  params = jax.jit(model.init)(jax.random.key(0), ids, tower, dino, qformer_ids=q_ids,
                               qformer_mask=q_mask)
  # larger word embeddings than BERT's init, so the text moves the context tokens visibly
  words = params["params"]["vlm_att_encoder"]["word_embeddings"]
  words["embedding"] = words["embedding"].replace_boxed(words["embedding"].unbox() * 50)
  return model, params, bert, tower.astype(np.float32), dino.astype(np.float32)


IMGSP_VARIANTS = {
    "base": chat("<video>\nWhat happens in the video?", "A theft.", "When does it happen?",
                 "At 2.0 s.", "Who is the thief?", "A man in red."),
    "second": chat("<video>\nWhat happens in the video?", "A theft.", "Where does it happen?",
                   "At 2.0 s.", "Who is the thief?", "A man in red."),
    "third": chat("<video>\nWhat happens in the video?", "A theft.", "When does it happen?",
                  "At 2.0 s.", "Why did the man run?", "He stole a bag."),
}


def imgsp_inputs(tok, bert, cfg, turns):
  from vaujax.inference.assistant import qformer_batch
  prepared = conv.prepare(turns, imgsp=True)
  ids, _ = conv.tokenize_conversation(prepared.conversations, tok,
                                      num_video_tokens=cfg.num_video_tokens,
                                      placeholder_per_turn=True)
  q_ids, q_mask = qformer_batch(bert, [prepared.qformer_texts], 32, imgsp=True)
  padded = np.full((1, 160), tok.pad_id, np.int32)   # one shape: one compile per function
  padded[0, :len(ids)] = ids
  return padded, q_ids, q_mask


def test_each_questions_frame_tokens_depend_on_its_own_text_only(tok, imgsp_model):
  from vaujax.models import vagpt
  model, params, bert, tower, dino = imgsp_model
  import jax
  cfg = model.config
  embed = jax.jit(lambda *a: model.apply(params, *a, method=vagpt.VAGPT.embed_inputs))
  out = {}
  for name, turns in IMGSP_VARIANTS.items():
    ids, q_ids, q_mask = imgsp_inputs(tok, bert, cfg, turns)
    assert q_ids.shape[:2] == (1, 3) and (ids == vagpt.VIDEO_TOKEN_ID).sum() == 3 * \
        cfg.num_video_tokens
    embeds = np.asarray(embed(ids, tower, dino, q_ids, q_mask))[0]
    slots = embeds[ids[0] == vagpt.VIDEO_TOKEN_ID].reshape(3, cfg.num_video_tokens, -1)
    out[name] = ids[0], slots

  scale = np.abs(out["base"][1] - out["second"][1]).max()

  def same(a, b):   # an untouched placeholder: equal up to float noise, far below the change
    return np.abs(a - b).max() <= 1e-3 * scale
  base, second, third = out["base"][1], out["second"][1], out["third"][1]
  # the second question changed: only the second placeholder's tokens change
  assert same(base[0], second[0]) and same(base[2], second[2]) and not same(base[1], second[1])
  # the third question changed: the first two placeholders' tokens are untouched, and so is
  # every id before the third placeholder (the causal LLM sees nothing later)
  assert same(base[0], third[0]) and same(base[1], third[1]) and not same(base[2], third[2])
  ids_b, ids_t = out["base"][0], out["third"][0]
  start = int(np.flatnonzero(ids_b == vagpt.VIDEO_TOKEN_ID)[2 * cfg.num_video_tokens])
  assert (ids_b[:start] == ids_t[:start]).all() and (ids_b[start:] != ids_t[start:]).any()
  # within one prompt the context tokens (even slots: context, content per frame) differ by
  # question, the content tokens (odd slots) do not depend on the text at all
  assert not same(base[0][0::2], base[1][0::2])
  np.testing.assert_allclose(base[0][1::2], base[1][1::2], atol=1e-6)


@pytest.mark.parametrize("key,value,match", [
    ("imgsp", "yes", r"must be one of \[False, True\], got 'yes'"),
    ("imgsp_turns", 0, r"must be >= 1, got 0"),
    ("imgsp_turns", 2.5, r"must be an integer, got 2.5"),
])
def test_config_checks_name_the_imgsp_keys(key, value, match):
  from configs import vagpt_stage1
  from vaujax.errors import InputError
  from vaujax.runs import run_dir
  from vaujax.train import config_checks
  obj = run_dir.config_to_json(vagpt_stage1.get_config("size=paper"))
  assert obj["data"]["imgsp"] is True and obj["data"]["imgsp_turns"] == 3   # the paper default
  obj["data"][key] = value
  with pytest.raises(InputError, match=rf"--config\.data\.{key}.*{match}"):
    config_checks.check_vagpt(run_dir.config_from_json(obj))
