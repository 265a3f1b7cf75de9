"""Issue 29's content grid: g x g content tokens per frame, each the mm_projector of the mean of
the kept patches in its cell; g = 1 is LLaMA-VID's one mean token, bit for bit."""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import vagpt as vagpt_config
from vaujax.data import conversation as conv
from vaujax.data import frame_layout
from vaujax.errors import InputError
from vaujax.models import sets, vagpt
from vaujax.models import frame_tokens as ft

SIDE, G = 6, 3                       # 6 x 6 tower patches, a 3 x 3 grid: 2 x 2 patches a cell
CFG1 = ft.FrameTokensConfig(vision_dim=6, llm_dim=8, query_dim=4)
CFG3 = dataclasses.replace(CFG1, content_grid=G)


class TodaysFrameTokens(nn.Module):
  """The context_content path as it was before the grid (one masked mean per frame)."""

  config: ft.FrameTokensConfig

  @nn.compact
  def __call__(self, patches, queries, mask=None):
    cfg, f32 = self.config, jnp.float32
    b, t, n, dv = patches.shape
    v = patches.astype(f32)
    projector = ft.MLPProjector(cfg.llm_dim, f32, f32, name="mm_projector")
    text_q = ft._dense(dv, ("queries", "vision"), f32, f32, "vlm_att_projector")(queries)
    keys = ft._dense(dv, ("vision", "vision_out"), f32, f32, "vlm_att_key_projector")(v)
    logits = jnp.einsum("btqd,btnd->btqn", text_q, keys,
                        preferred_element_type=f32) / jnp.sqrt(f32(dv))
    if mask is not None:
      logits = jnp.where(mask[:, :, None, :], logits, jnp.finfo(f32).min)
    attn = jax.nn.softmax(logits, axis=-1)
    ctx = jnp.einsum("btqn,btnd->btqd", attn, v).mean(2)
    ctx = ft._dense(cfg.llm_dim, ("vision", "embed"), f32, f32, "vlm_att_val_projector")(ctx)
    content = projector(ft.masked_mean(v, mask, axis=2))
    return jnp.stack([ctx, content], axis=2).reshape(b, 2 * t, cfg.llm_dim)


@pytest.fixture(scope="module")
def frames():
  """patches [2, 2, 36, 6], queries, a SETS-like keep mask with cell 0 of frame (0, 0) empty,
  and the grid model's params (the same tree as g = 1's)."""
  rng = np.random.RandomState(0)
  patches = rng.randn(2, 2, SIDE * SIDE, CFG1.vision_dim).astype(np.float32)
  queries = rng.randn(2, 2, 3, CFG1.query_dim).astype(np.float32)
  mask = rng.rand(2, 2, SIDE * SIDE) < 0.5
  mask[0, 0, [0, 1, 6, 7]] = False                      # the top-left cell's four patches
  mask[:, :, [14, 35]] = True
  params = nn.unbox(ft.FrameTokens(CFG3).init(jax.random.key(0), patches, queries))
  return patches, queries, mask, params


def _apply(cfg, params, patches, queries, mask=None, cells=None):
  return np.asarray(ft.FrameTokens(cfg).apply(params, patches, queries, mask, cells))


def _numpy_grid_tokens(p, patches, mask):
  """The definition in numpy: per frame and cell (row-major) the mean of the kept patches whose
  (r, c) lies in cell (r*g//h, c*g//w), zeros if none, through mm_projector (exact GELU)."""
  mm = {k: {n: np.asarray(v, np.float64) for n, v in d.items()}
        for k, d in p["mm_projector"].items()}
  erf = np.vectorize(math.erf)
  out = np.zeros((*patches.shape[:2], G * G, mm["fc2"]["kernel"].shape[1]))
  for b in range(patches.shape[0]):
    for t in range(patches.shape[1]):
      for cell in range(G * G):
        members = [i for i in range(SIDE * SIDE) if mask[b, t, i]
                   and (i // SIDE) * G // SIDE == cell // G and (i % SIDE) * G // SIDE == cell % G]
        mean = (patches[b, t, members].astype(np.float64).mean(0) if members
                else np.zeros(patches.shape[-1]))
        h = mean @ mm["fc1"]["kernel"] + mm["fc1"]["bias"]
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        out[b, t, cell] = h @ mm["fc2"]["kernel"] + mm["fc2"]["bias"]
  return out


def test_grid_of_one_is_bit_identical_to_the_single_mean(frames):
  patches, queries, mask, params = frames
  today = TodaysFrameTokens(CFG1)
  assert jax.tree.map(np.shape, params) == jax.tree.map(
      np.shape, nn.unbox(today.init(jax.random.key(0), patches, queries)))
  for m in (None, mask):
    expected = np.asarray(today.apply(params, patches, queries, m))
    np.testing.assert_array_equal(_apply(CFG1, params, patches, queries, m), expected)


def test_grid_tokens_match_numpy(frames):
  patches, queries, mask, params = frames
  ours = _apply(CFG3, params, patches, queries, mask).reshape(2, 2, 1 + G * G, -1)
  np.testing.assert_allclose(ours[:, :, 1:], _numpy_grid_tokens(params["params"], patches, mask),
                             atol=1e-5)
  # the empty cell is mm_projector(zeros); the context token is g = 1's
  zero = ft.MLPProjector(CFG1.llm_dim).apply({"params": params["params"]["mm_projector"]},
                                             jnp.zeros(CFG1.vision_dim))
  np.testing.assert_allclose(ours[0, 0, 1], np.asarray(zero), atol=1e-6)
  one = _apply(CFG1, params, patches, queries, mask).reshape(2, 2, 2, -1)
  np.testing.assert_allclose(ours[:, :, 0], one[:, :, 0], atol=1e-6)
  # gathered kept patches with their cells give the masked full grid's tokens
  rng = np.random.RandomState(3)
  keep = np.sort(np.stack([rng.permutation(36)[:12] for _ in range(4)]), -1).reshape(2, 2, 12)
  gathered = np.take_along_axis(patches, keep[..., None], axis=2)
  cells = ft.grid_cells(jnp.asarray(keep), SIDE * SIDE, G)
  sub = np.zeros_like(mask)
  np.put_along_axis(sub, keep, True, axis=2)
  np.testing.assert_allclose(_apply(CFG3, params, gathered, queries, cells=cells),
                             _apply(CFG3, params, patches, queries, sub), atol=1e-5)


def test_a_patch_moves_only_its_own_cell(frames):
  patches, queries, mask, params = frames
  base = _apply(CFG3, params, patches, queries, mask).reshape(2, 2, 1 + G * G, -1)
  patch = 14                                       # (2, 2): cell (1, 1) = 4
  assert mask[1, 0, patch] and list(np.asarray(ft.grid_cells(jnp.asarray([patch]), 36, G))) == [4]
  others = [1 + c for c in range(G * G) if c != 4]
  poked = patches.copy()
  poked[1, 0, patch] += 3.0
  out = _apply(CFG3, params, poked, queries, mask).reshape(base.shape)
  np.testing.assert_array_equal(out[1, 0, others], base[1, 0, others])
  assert np.abs(out[1, 0, 5] - base[1, 0, 5]).max() > 1e-5          # its cell
  assert np.abs(out[1, 0, 0] - base[1, 0, 0]).max() > 1e-5          # the context token
  np.testing.assert_array_equal(out[0], base[0])                    # the other video
  np.testing.assert_array_equal(out[1, 1], base[1, 1])              # and frame
  dropped = mask.copy()
  dropped[1, 0, patch] = False
  out = _apply(CFG3, params, patches, queries, dropped).reshape(base.shape)
  np.testing.assert_array_equal(out[1, 0, others], base[1, 0, others])
  assert np.abs(out[1, 0, 5] - base[1, 0, 5]).max() > 1e-5


def test_grid_cells_row_major_and_config_limits():
  cells = np.asarray(ft.grid_cells(jnp.arange(36), 36, 3)).reshape(6, 6)
  np.testing.assert_array_equal(cells, np.kron(np.arange(9).reshape(3, 3), np.ones((2, 2), int)))
  uneven = np.asarray(ft.grid_cells(jnp.arange(64), 64, 3)).reshape(8, 8)
  np.testing.assert_array_equal(uneven[0], [0, 0, 0, 1, 1, 1, 2, 2])   # c * 3 // 8
  np.testing.assert_array_equal(uneven[:, 0], [0, 0, 0, 3, 3, 3, 6, 6])
  for bad in (0, -1):
    with pytest.raises(ValueError, match="content_grid"):
      dataclasses.replace(CFG1, content_grid=bad)
  with pytest.raises(ValueError, match="context_content"):
    dataclasses.replace(CFG1, mode="tokens", content_grid=2)


class CharTokenizer:
  bos_id, eos_id = 1, 2

  def encode(self, text):
    return [ord(c) % 290 + 5 for c in text]


CHAT = [{"from": "human", "value": "<video>\nWhere is the anomaly?"}]


def _everything(cfg, params, ids, tower, dino, qids, qmask):
  """Every output the VA-GPT tests compare, in one compiled function (eager Q-Former applies
  cost seconds each on CPU)."""
  model = vagpt.VAGPT(cfg)
  one = vagpt.VAGPT(dataclasses.replace(cfg, frame_tokens=dataclasses.replace(
      cfg.frame_tokens, content_grid=1)))
  generator = {"params": params["params"]["frame_token_generator"]}
  out = {"visual": model.apply(params, tower, dino, qids, qmask, method="frame_tokens")}
  sel = sets.select_batch(dino, tower, cfg.sets_ratio)
  queries = model.apply(params, sel["tokens"], qids, qmask, method="queries")
  out["full"] = ft.FrameTokens(cfg.frame_tokens).apply(generator, tower, queries, sel["mask"])
  out["one"] = one.apply(params, tower, dino, qids, qmask, method="frame_tokens")
  out["old"] = TodaysFrameTokens(one.config.frame_tokens).apply(generator, sel["tokens"], queries)
  # one Q-Former prompt per question (imgsp, ids [B, P, Lq])
  two = jnp.stack([qids, jnp.asarray([[101, 9, 102, 0]])], axis=1)
  two_mask = jnp.stack([qmask, jnp.asarray([[1, 1, 1, 0]])], axis=1)
  out["per_prompt"] = model.apply(params, tower, dino, two, two_mask, method="frame_tokens")
  out["second"] = model.apply(params, tower, dino, two[:, 1], two_mask[:, 1],
                              method="frame_tokens")
  out["logits"], out["embeds"] = model.apply(
      params, ids, tower, dino, qids, qmask,
      method=lambda m, i, t, d, q, qm: (m(i, t, d, qformer_ids=q, qformer_mask=qm),
                                        m.embed_inputs(i, t, d, q, qm)))
  return out


@pytest.fixture(scope="module")
def tiny_model():
  """The tiny VA-GPT (8 x 8 tower grid, SETS K = 0.5, Q-Former) with content_grid 3, 2 frames,
  a prompt tokenized for it, and its outputs."""
  cd = vagpt_config.get_config("size=tiny,frames=2,qformer=true")
  cd.content_grid = G
  cfg = vagpt.config_from_dict(cd)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, vocab_size=300),
                            qformer=dataclasses.replace(cfg.qformer, vocab_size=120))
  rng = np.random.RandomState(1)
  tower = jnp.asarray(rng.randn(1, 2, cfg.num_patches, cfg.frame_tokens.vision_dim), jnp.float32)
  dino = jnp.asarray(rng.randn(1, 2, cfg.dino_patches, cd.dino_dim), jnp.float32)
  qids, qmask = jnp.asarray([[101, 7, 8, 102]]), jnp.ones((1, 4), jnp.int32)
  ids = conv.tokenize_prompt(CHAT, CharTokenizer(), num_video_tokens=cfg.num_video_tokens)
  ids = jnp.asarray(ids[None])
  # random N(0, 0.02) params (norm scales 1 + that) from the abstract init: compiling the
  # init costs ~8 s on CPU
  shapes = nn.unbox(jax.eval_shape(vagpt.VAGPT(cfg).init, jax.random.key(0), ids, tower, dino,
                                   qformer_ids=qids, qformer_mask=qmask))
  params = jax.tree_util.tree_map_with_path(
      lambda path, s: jnp.asarray((jax.tree_util.keystr(path).endswith("['scale']"))
                                  + 0.02 * rng.randn(*s.shape), s.dtype), shapes)
  out = jax.jit(lambda *a: _everything(cfg, *a))(params, ids, tower, dino, qids, qmask)
  return cfg, np.asarray(ids[0]), {k: np.asarray(v) for k, v in out.items()}


def test_vagpt_threads_the_kept_indices_into_the_grid(tiny_model):
  cfg, _, out = tiny_model
  v = cfg.num_video_tokens
  assert v == (1 + G * G) * 2
  assert out["visual"].shape == (1, v, cfg.llm.hidden_size)
  # the same tokens from the full frames with SETS's mask (cells from arange(N))
  np.testing.assert_allclose(out["visual"], out["full"], atol=1e-5)
  # g = 1 with the same params: LLaMA-VID's tokens, bit for bit
  assert out["one"].shape == (1, 4, cfg.llm.hidden_size)
  np.testing.assert_array_equal(out["one"], out["old"])
  # imgsp: each prompt its own grid tokens, in order
  assert out["per_prompt"].shape == (1, 2 * v, cfg.llm.hidden_size)
  np.testing.assert_allclose(out["per_prompt"][:, :v], out["visual"], atol=1e-5)
  np.testing.assert_allclose(out["per_prompt"][:, v:], out["second"], atol=1e-5)
  assert np.abs(out["second"] - out["visual"]).max() > 1e-6


def test_prompt_slots_fit_the_grid_tokens(tiny_model):
  """A tokenized prompt has (1 + g*g) slots per frame, plain or with frame times, and the full
  forward writes the frames' grid tokens into them in order."""
  cfg, ids, out = tiny_model
  assert (ids == vagpt.VIDEO_TOKEN_ID).sum() == cfg.num_video_tokens == 20
  timed = frame_layout.FrameSettings(sample_fps=1.0, frame_times="text").video_ids(
      [0.0, 1.0], cfg, CharTokenizer())
  assert timed.count(vagpt.VIDEO_TOKEN_ID) == 20
  assert timed[len(frame_layout.frame_time_text(0.0)):][:10] == [vagpt.VIDEO_TOKEN_ID] * 10
  assert out["logits"].shape == (1, len(ids), cfg.llm.vocab_size)
  assert np.isfinite(out["logits"]).all()
  np.testing.assert_allclose(out["embeds"][0, ids == vagpt.VIDEO_TOKEN_ID], out["visual"][0],
                             atol=1e-6)
  with pytest.raises(ValueError, match="content grid 9 does not fit 64"):
    dataclasses.replace(cfg, frame_tokens=dataclasses.replace(cfg.frame_tokens, content_grid=9))


def test_runs_saved_before_the_key_read_one_and_bad_values_name_the_flag():
  from configs import vagpt_stage1
  from vaujax.runs import run_dir
  from vaujax.train import config_checks
  saved = ml_collections.ConfigDict({"model": {"num_frames": 8}})
  given = ml_collections.ConfigDict({"model": {"num_frames": 8, "content_grid": 1}})
  assert run_dir.diff_configs(saved, given) == []
  given.model.content_grid = 3
  assert run_dir.diff_configs(saved, given) == ["model.content_grid: 1 -> 3"]
  c = vagpt_stage1.get_config("size=tiny,frames=4")
  assert c.model.content_grid == 1 and vagpt.config_from_dict(c.model).num_video_tokens == 8
  obj = run_dir.config_to_json(c)

  def check(**model):
    config_checks.check_vagpt(run_dir.config_from_json({**obj, "model": {**obj["model"],
                                                                        **model}}))
  for good in (1, 3, 8):                        # the tiny tower's grid is 8 x 8
    with pytest.raises(InputError) as err:      # the next problem: no training data given
      check(content_grid=good)
    assert "content_grid" not in str(err.value)
  for bad, problem in ((0, "must be >= 1"), (2.5, "must be an integer"),
                       (True, "must be an integer"), (9, "more than the side"),
                       ("3", "must be an integer")):
    with pytest.raises(InputError, match=problem) as err:
      check(content_grid=bad)
    assert err.value.source == "--config.model.content_grid"
  with pytest.raises(InputError, match="context_content") as err:
    check(content_grid=2, frame_token_mode="tokens")
  assert err.value.source == "--config.model.content_grid"
