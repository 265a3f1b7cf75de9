"""Property-based tests (hypothesis) of the pure functions, and a time-boxed fuzz of the readers:
whatever bytes a file holds, a reader either returns or raises InputError naming the file."""

import json
import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaujax.data import conversation as conv
from vaujax.errors import InputError
from vaujax.evaluate import parsing
from vaujax.models import tetg

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.integers(1, 5), st.integers(0, 3),
       st.floats(0.05, 0.95))
def test_interval_is_a_run_of_frames_above_threshold(probs, smooth, gap, threshold):
  t = np.arange(len(probs)) * 0.5 + 0.25
  cfg = tetg.TETGConfig(threshold=threshold, smooth=smooth, merge_gap=gap)
  out = tetg.extract_interval(np.asarray(probs), t, cfg)
  if smooth == 1 and gap == 0:
    above = np.asarray(probs) >= threshold
    assert (out is None) == (not above.any())
    if out is not None:
      i, j = int(np.argmin(abs(t - out[0]))), int(np.argmin(abs(t - out[1])))
      assert above[i:j + 1].all()                                  # a contiguous run ...
      assert (i == 0 or not above[i - 1]) and (j == len(t) - 1 or not above[j + 1])  # ... maximal
  if out is not None:
    assert t[0] <= out[0] <= out[1] <= t[-1] and out[0] in t and out[1] in t


@FAST
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 5)), max_size=3),
       st.lists(st.floats(0, 20), min_size=1, max_size=30))
def test_frame_labels_mark_exactly_the_frames_inside(intervals, stamps):
  intervals = [(a, a + d) for a, d in intervals]
  labels = tetg.frame_labels(np.asarray(stamps), intervals)
  for t, y in zip(stamps, labels):
    assert y == any(a <= t <= b for a, b in intervals)


class _CharTokenizer:
  """One id per character (ids 3..): enough to test label masking without a model file."""
  bos_id, eos_id, pad_id, vocab_size = 1, 2, 0, 300

  def encode(self, text, bos=False, eos=False):
    return [3 + (ord(c) % 290) for c in text]


@FAST
@given(st.lists(st.tuples(st.text("abc ?", min_size=1, max_size=12).filter(str.strip),
                          st.text("xyz.", min_size=1, max_size=12).filter(str.strip)),
                min_size=1, max_size=3), st.integers(0, 6))
def test_label_mask_supervises_exactly_the_answers(turns, video_tokens):
  tok = _CharTokenizer()
  chat = []
  for i, (q, a) in enumerate(turns):
    chat += [{"from": "human", "value": ("<video>\n" if i == 0 and video_tokens else "") + q},
             {"from": "gpt", "value": a}]
  ids, labels = conv.tokenize_conversation(chat, tok, num_video_tokens=video_tokens)
  supervised = ids[labels != conv.IGNORE_INDEX]
  want = [t for _, a in turns for t in tok.encode(a.strip()) + [tok.eos_id]]
  assert supervised.tolist() == want
  assert (labels[ids == conv.VIDEO_TOKEN_ID] == conv.IGNORE_INDEX).all()
  assert (ids == conv.VIDEO_TOKEN_ID).sum() == video_tokens
  prompt = conv.tokenize_prompt(chat[:-1], tok, num_video_tokens=video_tokens)
  assert ids[:len(prompt)].tolist() == prompt.tolist()        # a prompt is a prefix


@FAST
@given(st.lists(st.lists(st.integers(1, 99), min_size=1, max_size=9), min_size=1, max_size=5))
def test_left_pad_keeps_tokens_and_aligns_the_end(prompts):
  from vaujax.generation.sampler import left_pad
  ids, mask = (np.asarray(x) for x in left_pad(prompts, 0))
  for row, m, p in zip(ids, mask, prompts):
    assert row[m == 1].tolist() == p and m.sum() == len(p) and m[-1] == 1
    assert (np.diff(m) >= 0).all()                                # padding only on the left


@FAST
@given(st.lists(st.floats(-50, 0, allow_nan=False), min_size=2, max_size=6))
def test_mc_scorer_picks_the_unique_best(scores):
  choice = parsing.choose_by_scores(scores)
  best = max(scores)
  if scores.count(best) == 1:
    assert choice == scores.index(best)
  else:
    assert choice is None


@FAST
@given(st.permutations(["Explosion", "Road accident", "There is no anomaly.", "Arson"]),
       st.integers(0, 3), st.sampled_from(["{l}", "{l}.", "({l})", "{l}. {t}", "{t}",
                                            "The answer is {l}.", "{t}."]))
def test_parse_choice_finds_the_option_however_it_is_said(options, k, form):
  text = form.format(l="ABCD"[k], t=options[k])
  assert parsing.parse_choice(text, options) == k


# -- reader fuzz ---------------------------------------------------------------------------------

def _readers():
  from vaujax.data import annotations, benchmark_files, features, instructions, safe_pickle
  from vaujax.convert import weights
  return [("x.npz", features.read_features), ("x.pkl", safe_pickle.load_restricted),
          ("x.json", lambda p: instructions.read_instructions(p)),
          ("uca.json", annotations.read_uca), ("mc.json", benchmark_files.read_mc),
          ("qa.json", benchmark_files.read_ucf_qa), ("gt.txt", annotations.read_ucf_temporal_gt),
          ("w.safetensors", weights.load_file)]


SEEDS = [b"PK\x03\x04", b"\x80\x04\x95", b'[{"id": "a", "conversations": [', b'{"v": {"duration": ',
         b'[{"id": "q", "options": ["a"', b"Arson001.mp4 Arson 1 2 -1 -1\n",
         b"\x10\x00\x00\x00\x00\x00\x00\x00{\"w\": {\"dtype\""]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.binary(max_size=200), st.integers(0, 7))
def test_fuzz_readers_raise_only_input_errors(seed, tail, which):
  name, read = _readers()[which]
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, name)
    with open(path, "wb") as f:
      f.write(seed + tail)
    try:
      read(path)
    except InputError as e:
      assert name in str(e)
