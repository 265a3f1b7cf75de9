"""Videos of any length: frames padded to T, slots for the real frames only, times as text."""

import numpy as np
import pytest

from vaujax.data import frame_layout
from vaujax.errors import InputError
from vaujax.models.vagpt import VIDEO_TOKEN_ID

S = VIDEO_TOKEN_ID


class DigitTokenizer:
  """Each character its own id (ord), enough to check where times go."""

  def encode(self, text):
    return [ord(c) for c in text]


def _feats(n, t0=0.0, step=1.0):
  return {"tower_patches": np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 2, 3) + 1,
          "dino_patches": np.ones((n, 2, 4), np.float32), "dino_cls": np.ones((n, 4), np.float32),
          "timestamps": t0 + step * np.arange(n)}


def test_slots_for_real_frames_only_and_times_before_each_frame():
  assert frame_layout.video_ids([0.0, 1.0, 2.0], 2) == [S] * 6
  tok = DigitTokenizer()
  got = frame_layout.video_ids([0.0, 12.25], 2, "text", tok)
  assert got == [ord(c) for c in "0.0s"] + [S, S] + [ord(c) for c in "12.2s"] + [S, S]
  with pytest.raises(ValueError, match="frame_times"):
    frame_layout.video_ids([0.0], 2, "tokens", tok)


def test_pad_frames_keeps_real_frames_and_marks_padding():
  f = _feats(3)
  out = frame_layout.pad_frames(f, 5)
  np.testing.assert_array_equal(out["tower_patches"][:3], f["tower_patches"])
  assert not out["tower_patches"][3:].any() and out["tower_patches"].shape == (5, 2, 3)
  np.testing.assert_array_equal(out["timestamps"], [0, 1, 2, frame_layout.PAD_TIME,
                                                    frame_layout.PAD_TIME])
  np.testing.assert_array_equal(out["frame_mask"], [1, 1, 1, 0, 0])
  assert frame_layout.real_frames(out) == 3
  with pytest.raises(InputError, match=r"clip.npz: has 6 frames; the model takes 1 to 5"):
    frame_layout.pad_frames(_feats(6), 5, "clip.npz")
  with pytest.raises(InputError, match="has 0 frames"):
    frame_layout.pad_frames(_feats(0), 5, "empty.npz")


def test_settings_of_a_run_and_of_an_old_run():
  import ml_collections
  old = ml_collections.ConfigDict({"data": {"batch_size": 2}})
  s = frame_layout.FrameSettings.of_run(old)
  assert (s.variable_frames, s.frame_times, s.sampling(8)) == (False, "none", {"num_frames": 8})
  new = ml_collections.ConfigDict({"data": {"sample_fps": 1.0, "frame_times": "text"}})
  s = frame_layout.FrameSettings.of_run(new)
  assert s.variable_frames and s.sampling(8) == {"fps": 1.0, "max_frames": 8}
  new.data.min_frames = 4
  assert frame_layout.FrameSettings.of_run(new).sampling(8) == {"fps": 1.0, "max_frames": 8,
                                                                "min_frames": 4}


def test_min_frames_above_the_models_frames_is_refused_before_any_work():
  from configs import vagpt_stage1
  from vaujax.train import config_checks
  c = vagpt_stage1.get_config("size=tiny,frames=4")
  c.data.sample_fps, c.data.min_frames = 1.0, 6
  with pytest.raises(InputError, match="min_frames: 6 is more than model.num_frames"):
    config_checks.check_vagpt(c)


def test_padded_frames_never_reach_the_llm(qformer=True):
  """A 3-frame video padded to T=6 (with SETS, context + content tokens, frame times as text)
  gives the logits of the same video in a model built for exactly 3 frames: padding changes
  nothing the LLM sees."""
  import dataclasses

  import jax
  import jax.numpy as jnp

  from configs import vagpt as vagpt_config
  from vaujax.data import conversation as conv
  from vaujax.models import vagpt
  cd = vagpt_config.get_config(f"size=tiny,frames=6,qformer={qformer}")
  cfg6 = vagpt.config_from_dict(cd)
  cfg6 = dataclasses.replace(cfg6, llm=dataclasses.replace(cfg6.llm, vocab_size=300))
  cfg3 = dataclasses.replace(cfg6, num_frames=3)
  rng = np.random.RandomState(0)
  feats = {"tower_patches": rng.randn(3, cfg6.num_patches, cfg6.frame_tokens.vision_dim),
           "dino_patches": rng.randn(3, cfg6.dino_patches, cd.dino_dim),
           "timestamps": np.array([0.0, 1.5, 3.0])}
  tok = DigitTokenizer()
  tok.encode = lambda text: [ord(c) % 290 + 5 for c in text]    # ids inside the vocabulary
  tok.bos_id, tok.eos_id = 1, 2
  chat = [{"from": "human", "value": "<video>\nWhat happens?"}]
  video = frame_layout.video_ids(feats["timestamps"], 2, "text", tok)
  ids = jnp.asarray([conv.tokenize_prompt(chat, tok, num_video_tokens=0, video_ids=video)])
  padded = frame_layout.pad_frames(feats, 6)
  q = {}
  if qformer:
    q = dict(qformer_ids=jnp.asarray([[101, 7, 8, 102]]), qformer_mask=jnp.ones((1, 4), jnp.int32))
  x6 = [jnp.asarray(padded[k][None], jnp.float32) for k in ("tower_patches", "dino_patches")]
  x3 = [jnp.asarray(feats[k][None], jnp.float32) for k in ("tower_patches", "dino_patches")]
  params = jax.jit(vagpt.VAGPT(cfg6).init)(jax.random.key(0), ids, *x6, **q)
  apply6, apply3 = jax.jit(vagpt.VAGPT(cfg6).apply), jax.jit(vagpt.VAGPT(cfg3).apply)
  logits6 = apply6(params, ids, *x6, **q)
  logits3 = apply3(params, ids, *x3, **q)
  np.testing.assert_allclose(np.asarray(logits6), np.asarray(logits3), atol=1e-5)
  # and the slots really carry the frames: another third frame changes the logits
  other = dict(feats, tower_patches=feats["tower_patches"].copy())
  other["tower_patches"][2] += 1.0
  x3b = [jnp.asarray(other[k][None], jnp.float32) for k in ("tower_patches", "dino_patches")]
  assert np.abs(np.asarray(apply3(params, ids, *x3b, **q)) -
                np.asarray(logits3)).max() > 1e-3


def test_a_run_saved_before_the_frame_keys_continues_unchanged():
  """A saved config without data.sample_fps / frame_times / imgsp equals today's config with the
  values that reproduce it; any other value is a change."""
  import ml_collections
  from vaujax.runs import run_dir
  saved = ml_collections.ConfigDict({"data": {"batch_size": 2}})
  given = ml_collections.ConfigDict({"data": {"batch_size": 2, "sample_fps": 0.0,
                                              "frame_times": "none", "imgsp": False,
                                              "imgsp_turns": 3}})
  assert run_dir.diff_configs(saved, given) == []
  given.data.sample_fps = 1.0
  assert run_dir.diff_configs(saved, given) == ["data.sample_fps: 0.0 -> 1.0"]
