"""Starting from LLaMA-VID: the text-guided Q-Former inside VA-GPT (context / content tokens
against a numpy transcription) and the release-checkpoint import: a synthetic LLaMA-VID-shaped
checkpoint (release key names and layouts, tiny sizes) round-trips bit-exact, gives the logits
of a model assembled by hand from the same arrays, and bad keys give clear errors."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vaujax.convert import llamavid, weights
from vaujax.errors import InputError
from vaujax.models import vagpt

V, D, F, LAYERS, HEADS = 64, 32, 48, 2, 4          # LLM
DV = 24                                             # vision feature width (EVA-g: 1408)
H, QL, QF, Q, BV = 64, 2, 96, 4, 40                 # Q-Former width/layers/FFN, queries, BERT vocab
T, N = 3, 9                                         # frames, patches per frame (3x3 grid)


def release_state(seed=0) -> dict:
  """A state dict with LLaMA-VID's key names and torch layouts ([out, in] linears)."""
  rng = np.random.RandomState(seed)
  w = lambda *shape: (0.2 * rng.randn(*shape)).astype(np.float32)  # noqa: E731
  s = {"model.embed_tokens.weight": w(V, D), "model.norm.weight": 1 + w(D), "lm_head.weight": w(V, D)}
  for i in range(LAYERS):
    p = f"model.layers.{i}."
    for n in ("q", "k", "v", "o"):
      s[p + f"self_attn.{n}_proj.weight"] = w(D, D)
    s[p + "mlp.gate_proj.weight"], s[p + "mlp.up_proj.weight"] = w(F, D), w(F, D)
    s[p + "mlp.down_proj.weight"] = w(D, F)
    s[p + "input_layernorm.weight"], s[p + "post_attention_layernorm.weight"] = 1 + w(D), 1 + w(D)
    s[p + "self_attn.rotary_emb.inv_freq"] = w(D // HEADS // 2)     # old checkpoints carry it
  s["model.mm_projector.0.weight"], s["model.mm_projector.0.bias"] = w(D, DV), w(D)
  s["model.mm_projector.2.weight"], s["model.mm_projector.2.bias"] = w(D, D), w(D)
  s["model.vlm_att_projector.weight"], s["model.vlm_att_projector.bias"] = w(DV, H), w(DV)
  s["model.vlm_att_key_projector.weight"], s["model.vlm_att_key_projector.bias"] = w(DV, DV), w(DV)
  s["model.vlm_att_val_projector.weight"], s["model.vlm_att_val_projector.bias"] = w(D, DV), w(D)
  s["model.vlm_att_ln.weight"], s["model.vlm_att_ln.bias"] = 1 + w(DV), w(DV)
  s["model.vlm_att_query"] = w(1, Q, H)
  b = "model.vlm_att_encoder.bert."
  s[b + "embeddings.word_embeddings.weight"] = w(BV, H)
  s[b + "embeddings.position_embeddings.weight"] = w(32, H)
  s[b + "embeddings.position_ids"] = np.arange(32)[None]
  s[b + "embeddings.LayerNorm.weight"], s[b + "embeddings.LayerNorm.bias"] = 1 + w(H), w(H)
  for i in range(QL):
    p = f"{b}encoder.layer.{i}."
    blocks = ["attention"] + (["crossattention"] if i % 2 == 0 else [])
    for blk in blocks:
      width = DV if blk == "crossattention" else H
      s[p + f"{blk}.self.query.weight"], s[p + f"{blk}.self.query.bias"] = w(H, H), w(H)
      for n in ("key", "value"):
        s[p + f"{blk}.self.{n}.weight"], s[p + f"{blk}.self.{n}.bias"] = w(H, width), w(H)
      s[p + f"{blk}.output.dense.weight"], s[p + f"{blk}.output.dense.bias"] = w(H, H), w(H)
      s[p + f"{blk}.output.LayerNorm.weight"] = 1 + w(H)
      s[p + f"{blk}.output.LayerNorm.bias"] = w(H)
    for inter, out in (("intermediate", "output"), ("intermediate_query", "output_query")):
      s[p + f"{inter}.dense.weight"], s[p + f"{inter}.dense.bias"] = w(QF, H), w(QF)
      s[p + f"{out}.dense.weight"], s[p + f"{out}.dense.bias"] = w(H, QF), w(H)
      s[p + f"{out}.LayerNorm.weight"], s[p + f"{out}.LayerNorm.bias"] = 1 + w(H), w(H)
  s["model.vision_tower.vision_tower.blocks.0.norm1.weight"] = w(DV)   # saved with the model
  return s


def hf_config() -> dict:
  return {"architectures": ["LlavaLlamaAttForCausalLM"], "model_type": "llava",
          "vocab_size": V, "hidden_size": D, "intermediate_size": F, "num_hidden_layers": LAYERS,
          "num_attention_heads": HEADS, "num_key_value_heads": HEADS, "hidden_act": "silu",
          "rms_norm_eps": 1e-5, "max_position_embeddings": 4096, "mm_hidden_size": DV,
          "mm_projector_type": "mlp2x_gelu", "num_query": Q, "compress_type": "mean"}


def write_release(path, state) -> str:
  os.makedirs(path, exist_ok=True)
  weights.save_safetensors_dir(state, path, max_shard_bytes=20_000)   # several shards + index
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(hf_config(), f)
  return str(path)


def _config(state, **kw):
  return llamavid.model_config(hf_config(), state, "config.json", num_frames=T, num_patches=N,
                               num_heads=4, **kw)


def by_hand(s: dict) -> dict:
  """The VA-GPT params tree assembled key by key, independently of the converter's tables."""
  lin = lambda k: {"kernel": s[k + ".weight"].T, "bias": s[k + ".bias"]}  # noqa: E731
  ln = lambda k: {"scale": s[k + ".weight"], "bias": s[k + ".bias"]}  # noqa: E731
  llm = {"embed_tokens": {"embedding": s["model.embed_tokens.weight"]},
         "norm": {"weight": s["model.norm.weight"]},
         "lm_head": {"kernel": s["lm_head.weight"].T}}
  for i in range(LAYERS):
    p = f"model.layers.{i}."
    llm[f"layers_{i}"] = {
        "self_attn": {f"{n}_proj": {"kernel": s[p + f"self_attn.{n}_proj.weight"].T}
                      for n in "qkvo"},
        "mlp": {f"{n}_proj": {"kernel": s[p + f"mlp.{n}_proj.weight"].T}
                for n in ("gate", "up", "down")},
        "input_layernorm": {"weight": s[p + "input_layernorm.weight"]},
        "post_attention_layernorm": {"weight": s[p + "post_attention_layernorm.weight"]}}
  b = "model.vlm_att_encoder.bert."
  qf = {"word_embeddings": {"embedding": s[b + "embeddings.word_embeddings.weight"]},
        "position_embeddings": {"embedding": s[b + "embeddings.position_embeddings.weight"]},
        "embed_norm": ln(b + "embeddings.LayerNorm")}
  for i in range(QL):
    p = f"{b}encoder.layer.{i}."
    layer = {}
    for blk in ["attention"] + (["crossattention"] if i % 2 == 0 else []):
      layer[blk] = {n: lin(p + f"{blk}.self.{n}") for n in ("query", "key", "value")}
      layer[blk]["out"] = lin(p + f"{blk}.output.dense")
      layer[blk]["norm"] = ln(p + f"{blk}.output.LayerNorm")
    for ours, inter, out in (("ffn_text", "intermediate", "output"),
                             ("ffn_query", "intermediate_query", "output_query")):
      layer[ours] = {"fc1": lin(p + f"{inter}.dense"), "fc2": lin(p + f"{out}.dense"),
                     "norm": ln(p + f"{out}.LayerNorm")}
    qf[f"layers_{i}"] = layer
  return {"params": {
      "llm": llm, "vlm_att_encoder": qf, "vlm_att_query": s["model.vlm_att_query"][0],
      "vlm_att_ln": ln("model.vlm_att_ln"),
      "frame_token_generator": {
          "mm_projector": {"fc1": lin("model.mm_projector.0"), "fc2": lin("model.mm_projector.2")},
          "vlm_att_projector": lin("model.vlm_att_projector"),
          "vlm_att_key_projector": lin("model.vlm_att_key_projector"),
          "vlm_att_val_projector": lin("model.vlm_att_val_projector")}}}


def _inputs(cfg, seed=1):
  rng = np.random.RandomState(seed)
  k = cfg.num_video_tokens
  ids = np.concatenate([[1, 5, 7], [-200] * k, [9, 11, 3, 2]])[None].repeat(2, 0)
  tower = rng.randn(2, T, N, DV).astype(np.float32)
  dino = rng.randn(2, T, N, 8).astype(np.float32)
  q_ids = rng.randint(1, BV, (2, 5)).astype(np.int32)
  q_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)
  return jnp.asarray(ids, jnp.int32), tower, dino, q_ids, q_mask


def test_import_round_trip_and_logits_equal_hand_assembly(tmp_path):
  state = release_state()
  release = write_release(tmp_path / "release", state)
  assert len([f for f in os.listdir(release) if f.endswith(".safetensors")]) > 1
  report = llamavid.import_release(release, str(tmp_path / "vagpt"), num_frames=T,
                                   num_patches=N, num_heads=4)
  assert report["ignored"] == sorted(k for k in state if k.endswith(("inv_freq", "position_ids"))
                                     or k.startswith("model.vision_tower."))
  params, cfg = llamavid.read_converted(str(tmp_path / "vagpt"))
  assert cfg.qformer.num_layers == QL and cfg.qformer.encoder_width == DV
  assert cfg.qformer.cross_attention_freq == 2 and cfg.num_queries == Q
  llamavid.export_release(str(tmp_path / "vagpt"), str(tmp_path / "exported"))
  back = weights.load_dir(str(tmp_path / "exported"))
  kept = {k: v for k, v in state.items() if k not in report["ignored"]}
  assert sorted(back) == sorted(kept)
  for k, v in kept.items():
    assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
  model = vagpt.VAGPT(cfg)
  ids, tower, dino, q_ids, q_mask = _inputs(cfg)
  ours = model.apply(params, ids, tower, dino, qformer_ids=q_ids, qformer_mask=q_mask)
  hand = model.apply(jax.tree_util.tree_map(jnp.asarray, by_hand(state)), ids, tower, dino,
                     qformer_ids=q_ids, qformer_mask=q_mask)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(hand))
  assert np.isfinite(np.asarray(ours)).all()
  # The paper config's scanned (and rematerialised) LLM and Q-Former layers read the same tree.
  scan = lambda c: dataclasses.replace(c, scan_layers=True, remat=True)  # noqa: E731
  scanned = vagpt.VAGPT(dataclasses.replace(cfg, llm=scan(cfg.llm), qformer=scan(cfg.qformer)))
  np.testing.assert_allclose(scanned.apply(params, ids, tower, dino, qformer_ids=q_ids,
                                           qformer_mask=q_mask), ours, atol=1e-5)


def test_qformer_context_and_content_tokens_match_numpy():
  state = release_state()
  cfg = _config(state, use_sets=False)
  params = jax.tree_util.tree_map(jnp.asarray, by_hand(state))
  model = vagpt.VAGPT(cfg)
  _, tower, dino, q_ids, q_mask = _inputs(cfg)
  queries = np.asarray(model.apply(params, jnp.asarray(tower), q_ids, q_mask,
                                   method=vagpt.VAGPT.queries))                      # [B,T,Q,H]
  tokens = np.asarray(model.apply(params, jnp.asarray(tower), None, q_ids, q_mask,
                                  method=vagpt.VAGPT.frame_tokens))                  # [B,2T,D]
  s = {k: v.astype(np.float64) for k, v in state.items()}
  lin = lambda x, k: x @ s[k + ".weight"].T + s[k + ".bias"]  # noqa: E731
  gelu = lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))  # noqa
  v = tower.astype(np.float64)
  text_q = lin(queries.astype(np.float64), "model.vlm_att_projector")                  # [B,T,Q,Dv]
  keys = lin(v, "model.vlm_att_key_projector")
  logits = np.einsum("btqd,btnd->btqn", text_q, keys) / np.sqrt(DV)
  attn = np.exp(logits - logits.max(-1, keepdims=True))
  attn /= attn.sum(-1, keepdims=True)
  ctx = lin(np.einsum("btqn,btnd->btqd", attn, v).mean(2), "model.vlm_att_val_projector")
  content = lin(gelu(lin(v.mean(2), "model.mm_projector.0")), "model.mm_projector.2")
  want = np.stack([ctx, content], axis=2).reshape(2, 2 * T, D)
  np.testing.assert_allclose(tokens, want, rtol=2e-4, atol=2e-5)
  # text-guided: another question changes the context tokens only
  other = np.asarray(model.apply(params, jnp.asarray(tower), None, (q_ids + 3) % BV, q_mask,
                                 method=vagpt.VAGPT.frame_tokens))
  assert not np.allclose(other[:, 0::2], tokens[:, 0::2])
  np.testing.assert_array_equal(other[:, 1::2], tokens[:, 1::2])


def test_qformer_with_sets_attends_over_kept_patches_and_jits():
  state = release_state()
  cfg = _config(state, use_sets=True, sets_ratio=0.5)
  params = jax.tree_util.tree_map(jnp.asarray, by_hand(state))
  model = vagpt.VAGPT(cfg)
  ids, tower, dino, q_ids, q_mask = _inputs(cfg)
  logits = jax.jit(model.apply)(params, ids, tower, dino, None, None, q_ids, q_mask)
  assert logits.shape == (2, ids.shape[1], V) and np.isfinite(np.asarray(logits)).all()
  # patches SETS drops cannot change anything
  from vaujax.models import sets
  keep = np.asarray(sets.select_batch(jnp.asarray(dino), jnp.asarray(tower), 0.5)["mask"])
  noisy = np.where(keep[..., None], tower, tower + 5.0)
  again = model.apply(params, ids, noisy, dino, None, None, q_ids, q_mask)
  np.testing.assert_allclose(np.asarray(again), np.asarray(logits), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("model.vlm_att_key_projector.bias"), "model.vlm_att_key_projector.bias"),
    (lambda s: s.pop("model.layers.1.mlp.up_proj.weight"), "model.layers.1.mlp.up_proj.weight"),
    (lambda s: s.update({"model.vlm_att_extra.weight": np.zeros(3, np.float32)}),
     "unknown key 'model.vlm_att_extra.weight'"),
    (lambda s: s.update({"model.mm_projector.2.weight": np.zeros((D, D + 1), np.float32)}),
     "model.mm_projector.2.weight"),
    (lambda s: s.update({"model.vlm_att_encoder.bert.encoder.layer.1.output.dense.weight":
                         np.zeros((H, QF + 2), np.float32)}),
     "model.vlm_att_encoder.bert.encoder.layer.1.output.dense.weight"),
])
def test_bad_release_keys_name_the_key_and_file(tmp_path, edit, message):
  state = release_state()
  edit(state)
  release = write_release(tmp_path / "bad", state)
  with pytest.raises(InputError) as e:
    llamavid.import_release(release, str(tmp_path / "out"), num_frames=T, num_patches=N,
                            num_heads=4)
  assert message in str(e.value) and "bad" in str(e.value)
  assert not os.path.exists(tmp_path / "out" / "vaujax.json")


def test_cli_import_and_export(tmp_path, capsys):
  from vaujax.app import convert_llamavid
  release = write_release(tmp_path / "release", release_state())
  run = lambda *a: convert_llamavid.run(["vaujax convert-llamavid", *a])  # noqa: E731
  run("--release_dir", release, "--out", str(tmp_path / "p"), "--num_frames", "3")
  assert "ignored_keys" in capsys.readouterr().out
  run("--params", str(tmp_path / "p"), "--release_out", str(tmp_path / "e"))
  assert os.path.exists(tmp_path / "e" / "config.json")
  with pytest.raises(SystemExit) as e:
    run("--release_dir", str(tmp_path / "nope"), "--out", str(tmp_path / "q"))
  assert e.value.code == 2 and "nope" in capsys.readouterr().err


def test_tiny_run_with_qformer_trains_and_answers(tmp_path):
  """configs/vagpt.py:qformer=true end to end: pipeline BERT ids -> trainer -> Assistant."""
  import re

  from configs import vagpt_stage1
  from vaujax import testing
  from vaujax.inference.assistant import Assistant
  from vaujax.train import loop
  paths = testing.make_tiny_vagpt_data(str(tmp_path / "data"), num_videos=6, num_frames=4)
  text = open(paths["train_json"]).read().lower()
  words = sorted(set(re.findall(r"[a-z0-9]+", text)))
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "'"]
                             + words) + "\n")
  c = vagpt_stage1.get_config("size=tiny,frames=4,steps=8")
  c.model.qformer = True
  c.data.imgsp = True        # the paper default: a placeholder and a Q-Former prompt per question
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.bert_vocab, c.data.batch_size = paths["tokenizer"], str(vocab), 4
  c.progress, c.ckpt_every = False, 8
  c.mesh.update(dict(data=2, fsdp=2, tensor=1, devices=4))
  history = loop.train_and_evaluate(c, str(tmp_path / "run"))
  losses = [h["loss"] for h in history]
  assert np.isfinite(losses).all() and np.mean(losses[-3:]) < np.mean(losses[:3])
  a = Assistant.from_run(str(tmp_path / "run"))   # the run carries the BERT vocab too
  assert a.model.config.qformer is not None and a.bert is not None
  assert a.config.data.imgsp is True    # read from the run: evaluate and infer need no flag
  from vaujax.data import features
  vid = sorted(os.listdir(paths["features"]))[0]
  feats = [features.read_features(os.path.join(paths["features"], vid))]
  chat = [[{"from": "human", "value": "<video>\nAre there any anomalies?"}]]
  total, _ = a.score_options(chat, feats, [["Yes.", "No.", "Maybe.", "A fire."]])
  later = [chat[0] + [{"from": "gpt", "value": "Yes."}, {"from": "human", "value": "When?"}]]
  (ids, _, _, _, q_ids, q_mask), _ = a._batch(later, feats)
  assert (ids[0] == vagpt.VIDEO_TOKEN_ID).sum() == 2 * a.model.config.num_video_tokens
  assert q_ids.shape[:2] == (a.mesh.size, 2)          # rows to the mesh, a prompt per question
  assert q_mask[0].any(axis=1).all()
  assert np.isfinite(a.score_options(later, feats, [["At 1 s.", "Never."] * 2])[0]).all()
  assert total.shape == (1, 4) and np.isfinite(total).all()
  assert isinstance(a.generate(chat, feats, max_new_tokens=4)[0], str)


def test_init_from_converted_params_directories(tmp_path):
  """config.init_from takes a converted VA-GPT (all tensors) or LLaMA (LLM only) directory."""
  from vaujax.convert import params_io
  from vaujax.runs.checkpoint import restore_params_only
  state = release_state()
  release = write_release(tmp_path / "release", state)
  llamavid.import_release(release, str(tmp_path / "vagpt"), num_frames=T, num_patches=N,
                          num_heads=4)
  converted, cfg = llamavid.read_converted(str(tmp_path / "vagpt"))
  model = vagpt.VAGPT(cfg)
  ids, tower, dino, q_ids, _ = _inputs(cfg)
  fresh = jax.tree_util.tree_map(np.asarray, model.init(jax.random.key(7), ids, tower, dino,
                                                        qformer_ids=q_ids))
  fresh = {"params": __import__("flax").linen.unbox(fresh)["params"]}
  got = restore_params_only(str(tmp_path / "vagpt"), fresh)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(converted)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  params_io.write_params_dir(str(tmp_path / "llm"), {"params": converted["params"]["llm"]}, {"kind": "llama"})
  got = restore_params_only(str(tmp_path / "llm"), fresh)
  np.testing.assert_array_equal(got["params"]["llm"]["lm_head"]["kernel"],
                                state["lm_head.weight"].T)
  np.testing.assert_array_equal(got["params"]["vlm_att_query"], fresh["params"]["vlm_att_query"])
  smaller = jax.tree_util.tree_map(lambda x: x, fresh)
  smaller["params"]["vlm_att_query"] = np.zeros((Q + 1, H), np.float32)
  with pytest.raises(InputError, match=r"vagpt.*vlm_att_query has shape \(4, 64\)"):
    restore_params_only(str(tmp_path / "vagpt"), smaller)
