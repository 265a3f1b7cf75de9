"""VA-GPT end to end: splicing, learning from videos, generation, sharding, paper-size counts."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import vagpt as vagpt_config
from vaujax import sharding
from vaujax.data import conversation as conv
from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
from vaujax.generation import multimodal
from vaujax.generation.sampler import SamplingConfig, left_pad
from vaujax.models import vagpt
from vaujax.train.losses import next_token_loss

QUESTION = "Are there any anomalies?"
ANSWERS = ["Yes, an explosion near the gate.", "No, the street is calm.",
           "Yes, two people are fighting.", "No, the street is calm."]


def test_splice_places_visual_tokens_in_order():
  ids = jnp.asarray([[5, -200, -200, 7, 8], [-200, -200, 9, 0, 0]])
  text = jnp.zeros((2, 5, 3))
  visual = jnp.arange(2 * 2 * 3, dtype=jnp.float32).reshape(2, 2, 3) + 1
  out = np.asarray(vagpt.splice_visual_tokens(text, ids, visual))
  np.testing.assert_array_equal(out[0, 1:3], visual[0])
  np.testing.assert_array_equal(out[1, 0:2], visual[1])
  assert (out[0, [0, 3, 4]] == 0).all() and (out[1, 2:] == 0).all()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  cd = vagpt_config.get_config("size=tiny,frames=4")
  texts = [conv.SYSTEM, QUESTION] + ANSWERS
  tok = Tokenizer.load(train_sentencepiece(texts * 20, tmp_path_factory.mktemp("sp"), 320))
  cfg = vagpt.config_from_dict(cd)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, vocab_size=tok.vocab_size))
  rng = np.random.RandomState(0)
  n = len(ANSWERS)
  tower = rng.randn(n, cfg.num_frames, cfg.num_patches, cfg.frame_tokens.vision_dim)
  dino = rng.randn(n, cfg.num_frames, cfg.dino_patches, cd.dino_dim)
  tower[3] = tower[1] + 0.01 * rng.randn(*tower[1].shape)   # two calm videos look alike
  dino[3] = dino[1]
  examples = [conv.tokenize_conversation([{"from": "human", "value": f"<video>\n{QUESTION}"},
                                          {"from": "gpt", "value": a}], tok,
                                         num_video_tokens=cfg.num_video_tokens) for a in ANSWERS]
  length = max(len(e[0]) for e in examples)
  ids = np.zeros((n, length), np.int32)
  labels = np.full((n, length), conv.IGNORE_INDEX, np.int32)
  mask = np.zeros((n, length), np.int32)
  for i, (e_ids, e_labels) in enumerate(examples):
    ids[i, :len(e_ids)], labels[i, :len(e_ids)], mask[i, :len(e_ids)] = e_ids, e_labels, 1
  batch = dict(ids=jnp.asarray(ids), labels=jnp.asarray(labels), mask=jnp.asarray(mask),
               tower=jnp.asarray(tower, jnp.float32), dino=jnp.asarray(dino, jnp.float32))
  return cfg, tok, batch


def _train(cfg, batch, steps=150):
  model = vagpt.VAGPT(cfg)
  params = nn.unbox(model.init(jax.random.key(0), batch["ids"], batch["tower"], batch["dino"]))
  tx = optax.adam(3e-3)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt):
    def loss_fn(p):
      logits = model.apply(p, batch["ids"], batch["tower"], batch["dino"],
                           attention_mask=batch["mask"])
      return next_token_loss(logits, batch["labels"])[0]
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  losses = []
  for _ in range(steps):
    params, opt, loss = step(params, opt)
    losses.append(float(loss))
  return model, params, losses


def test_overfits_and_answers_from_the_video(setup):
  cfg, tok, batch = setup
  model, params, losses = _train(cfg, batch)
  assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
  prompts = [conv.tokenize_prompt([{"from": "human", "value": f"<video>\n{QUESTION}"}], tok,
                                  num_video_tokens=cfg.num_video_tokens).tolist()] * len(ANSWERS)
  ids, mask = left_pad(prompts, tok.pad_id)
  out = multimodal.generate(model, params, ids, mask, batch["tower"], batch["dino"],
                       jax.random.key(0), SamplingConfig(max_new_tokens=24))
  answers = [tok.decode(np.asarray(out.tokens)[i, :int(out.lengths[i]) - 1])
             for i in range(len(ANSWERS))]
  assert answers == ANSWERS  # the same question, answered differently per video


def test_sets_changes_what_the_llm_sees(setup):
  cfg, _, batch = setup
  model = vagpt.VAGPT(cfg)
  params = model.init(jax.random.key(1), batch["ids"], batch["tower"], batch["dino"])
  base = model.apply(params, batch["ids"], batch["tower"], batch["dino"])
  # a change in a patch SETS drops must not change the logits; in a kept patch it must
  sel = jax.vmap(lambda d, v: vagpt.sets.select(d, v, cfg.sets_ratio))(batch["dino"],
                                                                       batch["tower"])
  dropped = int(np.nonzero(~np.asarray(sel["mask"][0, 2]))[0][0])
  kept = int(np.asarray(sel["indices"][0, 2, 0]))
  poke = lambda patch: batch["tower"].at[0, 2, patch].add(3.0)  # noqa: E731
  np.testing.assert_allclose(model.apply(params, batch["ids"], poke(dropped), batch["dino"]),
                             base, atol=1e-6)
  assert np.abs(model.apply(params, batch["ids"], poke(kept), batch["dino"]) - base).max() > 1e-3


def test_sharded_equals_unsharded(setup, mesh8):
  cfg, _, batch = setup
  rep = lambda x: jnp.concatenate([x, x], axis=0)  # noqa: E731  8 rows for the data axes
  b = {k: rep(v) for k, v in batch.items()}
  model = vagpt.VAGPT(cfg)
  boxed = model.init(jax.random.key(0), b["ids"], b["tower"], b["dino"])
  params = nn.unbox(boxed)
  expected = model.apply(params, b["ids"], b["tower"], b["dino"], attention_mask=b["mask"])
  shard = sharding.logical_to_mesh_sharding(boxed, mesh8)
  data = [sharding.batch_sharding(mesh8, b[k].ndim) for k in ("ids", "tower", "dino", "mask")]
  fwd = lambda p, i, t, d, m: model.apply(p, i, t, d, attention_mask=m)  # noqa: E731
  with jax.set_mesh(mesh8), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    out = jax.jit(fwd, in_shardings=(shard, *data))(jax.device_put(params, shard), b["ids"],
                                                     b["tower"], b["dino"], b["mask"])
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5)


def test_tokens_mode_and_sets_off(setup):
  cfg, _, batch = setup
  kept = -(-cfg.num_patches * 1 // 2)   # ceil(0.5 * N)
  for overrides, slots in [(dict(use_sets=False), 2 * 4),
                           (dict(frame_tokens=vagpt.FrameTokensConfig(32, 64, 16, "tokens")),
                            4 * kept)]:
    c = dataclasses.replace(cfg, **overrides)
    assert c.num_video_tokens == slots
    ids = jnp.concatenate([jnp.full((4, slots), -200), batch["ids"][:, -6:]], axis=1)
    logits = vagpt.VAGPT(c).init_with_output(jax.random.key(0), ids, batch["tower"],
                                             batch["dino"])[0]
    assert logits.shape == (4, slots + 6, c.llm.vocab_size)
  with pytest.raises(ValueError, match="no DINOv2 patch features"):
    vagpt.VAGPT(cfg).init(jax.random.key(0), batch["ids"], batch["tower"], None)


def test_paper_config_parameter_counts():
  counts = vagpt.parameter_counts(vagpt_config.get_config("size=paper"))
  assert counts["llm"] == 6_738_415_616
  d, dv, q = 4096, 1408, 768
  ctx = (q * dv + dv) + (dv * dv + dv) + (dv * d + d)          # vlm_att_{,key_,val_}projector
  projector = (dv * d + d) + (d * d + d)                       # mm_projector (mlp2x_gelu)
  assert counts["frame_tokens"] == ctx + projector + 32 * q    # + learned queries
  assert counts["tetg"] == 768 * 512 + 512 + 512 * 256 + 256 + 256 + 1
  assert counts["vision_tower (EVA ViT-g/14, frozen)"] > 9.8e8
  assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
  # The memory plan's settings (benchmarks/memory_plan.py) are the paper config's defaults.
  paper = vagpt.config_from_dict(vagpt_config.get_config("size=paper"))
  llm = paper.llm
  assert llm.scan_layers and llm.remat and llm.rms_norm_eps == 1e-5
  assert paper.qformer.scan_layers and paper.qformer.remat
  tiny = vagpt.config_from_dict(vagpt_config.get_config("size=tiny")).llm
  assert not (tiny.scan_layers or tiny.remat) and llm.remat_policy == tiny.remat_policy == "full"
  cd = vagpt_config.get_config("size=paper")
  cd.remat_policy = "dots"                                 # --config.model.remat_policy=dots
  assert vagpt.config_from_dict(cd).llm.remat_policy == "dots"


def test_patch_position_makes_pooled_tokens_see_where_the_patches_were(setup):
  """Context and content tokens pool the SETS-kept patches (attention, mean), so without a
  position embedding, swapping the places of a kept patch and a dropped one (tower and DINOv2
  features) leaves what the LLM sees unchanged: the same features are kept. With `patch_position` the kept patch now says it is elsewhere."""
  cfg, _, batch = setup
  sel = jax.vmap(lambda d, v: vagpt.sets.select(d, v, cfg.sets_ratio))(batch["dino"],
                                                                       batch["tower"])
  kept = int(np.asarray(sel["indices"][0, 2, 0]))
  dropped = int(np.nonzero(~np.asarray(sel["mask"][0, 2]))[0][0])
  # in every frame of the video, so each frame's differences, and so its kept features, stay
  swap = lambda x: x.at[0, :, jnp.array([kept, dropped])].set(  # noqa: E731
      x[0, :, jnp.array([dropped, kept])])
  for position, differs in ((False, False), (True, True)):
    model = vagpt.VAGPT(dataclasses.replace(cfg, patch_position=position))
    params = model.init(jax.random.key(1), batch["ids"], batch["tower"], batch["dino"])
    assert ("patch_position_embedding" in params["params"]) == position
    tokens = lambda tower, dino: model.apply(params, tower, dino,  # noqa: E731
                                             method=vagpt.VAGPT.frame_tokens)
    gap = float(jnp.abs(tokens(swap(batch["tower"]), swap(batch["dino"]))
                        - tokens(batch["tower"], batch["dino"])).max())
    assert (gap > 1e-5) == differs, (position, gap)
  # the embedding is an [N, Dv] table with logical axes, as every parameter
  table = params["params"]["patch_position_embedding"]
  assert table.names == (None, "vision") and table.value.shape == (cfg.num_patches,
                                                                   cfg.frame_tokens.vision_dim)
