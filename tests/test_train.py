"""The sharded trainer: learning, sharded == unsharded, exact resume after SIGKILL, corrupted
checkpoints, NaN stop, freezing, stage two from stage one, TETG through the same entry point."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import tetg as tetg_config
from configs import vagpt_stage1, vagpt_stage2
from vaujax import testing
from vaujax.data.annotations import UCF_CRIME_CLASSES
from vaujax.runs import run_dir
from vaujax.runs.tetg_files import load_tetg
from vaujax.train import loop, optimizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return testing.make_tiny_vagpt_data(str(tmp_path_factory.mktemp("data")), num_videos=8,
                                      num_frames=4)


def _config(paths, steps=20, **mesh):
  c = vagpt_stage1.get_config(f"size=tiny,frames=4,steps={steps}")
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer = paths["tokenizer"]
  c.data.batch_size = 4
  c.progress = False
  c.ckpt_every = 5
  c.mesh.update(dict(data=2, fsdp=2, tensor=2))
  for k, v in mesh.items():
    c.mesh[k] = v
  return c


def _losses(workdir):
  """Finished log lines (a line still being written by a running trainer is left out)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l) for l in f if l.endswith("\n")]


def _run_or_explain(args, env):
  done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"


def test_loss_falls_and_sharded_equals_single_device(data, tmp_path):
  sharded = loop.train_and_evaluate(_config(data, data=2, fsdp=2, tensor=2), str(tmp_path / "a"))
  single = loop.train_and_evaluate(_config(data, data=1, fsdp=1, tensor=1, devices=1),
                                   str(tmp_path / "b"))
  a, b = [h["loss"] for h in sharded], [h["loss"] for h in single]
  assert len(a) == len(b) == 20
  np.testing.assert_allclose(a, b, atol=1e-5)
  assert np.mean(a[-5:]) < 0.7 * np.mean(a[:5])
  assert [h["examples"] for h in sharded] == [h["examples"] for h in single]


def test_length_buckets_train_exactly_like_full_padding(data, tmp_path):
  """data.length_bucket trims each batch's padding tail: same losses, shorter steps."""
  runs = {}
  for bucket in (0, 16):
    c = _config(data, steps=6, data=1, fsdp=1, tensor=1, devices=1)
    c.data.length_bucket = bucket
    runs[bucket] = loop.train_and_evaluate(c, str(tmp_path / f"b{bucket}"))
  full, trimmed = runs[0], runs[16]
  assert {h["seq_len"] for h in full} == {256}
  lengths = [h["seq_len"] for h in trimmed]
  assert all(n % 16 == 0 and n < 256 for n in lengths), lengths
  for key in ("loss", "grad_norm", "num_tokens"):
    np.testing.assert_allclose([h[key] for h in trimmed], [h[key] for h in full], rtol=2e-5,
                               err_msg=key)



def test_scanned_llm_layers_train_like_unrolled_and_share_checkpoints(data, tmp_path):
  """model.scan_layers (with remat, on the data/fsdp/tensor mesh): the unrolled run's losses,
  and a checkpoint that an unrolled stage two starts from (same per-layer parameter tree)."""
  runs = {}
  for scan in (False, True):
    c = _config(data, steps=6)
    c.model.scan_layers, c.model.remat = scan, True
    runs[scan] = loop.train_and_evaluate(c, str(tmp_path / f"scan{scan}"))
  for key in ("loss", "grad_norm"):
    np.testing.assert_allclose([h[key] for h in runs[True]], [h[key] for h in runs[False]],
                               rtol=2e-5, err_msg=key)
  c = vagpt_stage2.get_config("size=tiny,frames=4,steps=1")
  c.data.train_json, c.data.feature_dir, c.data.tokenizer = (data["train_json"], data["features"],
                                                             data["tokenizer"])
  c.data.batch_size, c.progress, c.init_from = 4, False, str(tmp_path / "scanTrue")
  c.mesh.update(dict(data=2, fsdp=2, tensor=2))
  assert not c.model.scan_layers
  second = loop.train_and_evaluate(c, str(tmp_path / "stage2"))
  assert second[0]["loss"] < runs[True][0]["loss"]

def _cli(data, workdir, steps, extra=()):
  args = [sys.executable, "-m", "vaujax.train", "--config",
          os.path.join(REPO, f"configs/vagpt_stage1.py:size=tiny,frames=4,steps={steps}"),
          "--workdir", workdir, f"--config.data.train_json={data['train_json']}",
          f"--config.data.feature_dir={data['features']}",
          f"--config.data.tokenizer={data['tokenizer']}", "--config.data.batch_size=8",
          "--config.ckpt_every=5", "--config.progress=False", *extra]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  return args, env


@pytest.mark.slow
def test_sigkill_then_restart_gives_the_uninterrupted_losses(data, tmp_path):
  args, env = _cli(data, str(tmp_path / "ref"), 24)
  _run_or_explain(args, env)
  reference = _losses(str(tmp_path / "ref"))
  run = str(tmp_path / "run")
  args, env = _cli(data, run, 24)
  proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  kill_after = np.random.RandomState(int(time.time())).randint(6, 14)
  deadline = time.time() + 300
  while time.time() < deadline:
    ckpts = os.path.join(run, "checkpoints")
    done = os.path.exists(os.path.join(run, "metrics.jsonl")) and len(_losses(run)) >= kill_after
    if done and os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts)):
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = len(_losses(run))
  assert killed_at < 24
  _run_or_explain(args, env)
  resumed = _losses(run)
  assert [r["step"] for r in resumed] == list(range(1, 25))
  np.testing.assert_allclose([r["loss"] for r in resumed], [r["loss"] for r in reference],
                             atol=1e-6)
  assert [r["examples"] for r in resumed] == [r["examples"] for r in reference]


def test_corrupted_latest_checkpoint_falls_back(data, tmp_path, capsys):
  workdir = str(tmp_path / "w")
  loop.train_and_evaluate(_config(data, steps=10), workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  assert sorted(int(n) for n in os.listdir(ckpts) if n.isdigit()) == [5, 10]
  for root, _, files in os.walk(os.path.join(ckpts, "10", "state")):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  history = loop.train_and_evaluate(_config(data, steps=12), workdir)
  out = capsys.readouterr().out
  assert "checkpoint step 10" in out and "unreadable" in out and "resumed from step 5" in out
  assert [h["step"] for h in history] == list(range(6, 13))


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(data, tmp_path):
  workdir = str(tmp_path / "nan")
  loop.train_and_evaluate(_config(data, steps=5), workdir)
  c = _config(data, steps=10)
  c.optim.learning_rate = 1e30   # blows up within a step or two
  with pytest.raises(loop.NonFiniteLoss, match="stopping. The last good checkpoint"):
    loop.train_and_evaluate(c, workdir)
  steps = sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())
  assert steps[0] == 5
  good = loop.train_and_evaluate(_config(data, steps=6), workdir)  # resumes from a finite state
  assert np.isfinite(good[0]["loss"])


def test_frozen_parameters_are_untouched_and_have_no_optimizer_state():
  params = {"llm": {"w": np.ones((3, 3), np.float32)}, "frame": {"w": np.ones(3, np.float32)}}
  import ml_collections
  cfg = ml_collections.ConfigDict(dict(learning_rate=0.1, warmup_steps=1, total_steps=10,
                                       weight_decay=0.0, grad_clip=1.0, accumulate=1,
                                       trainable=[("llm/.*", "freeze"), (".*", "train")]))
  tx = optimizer.make_optimizer(cfg, params)
  state = tx.init(params)
  leaves = jax.tree_util.tree_leaves(state)
  assert sum(x.size for x in leaves if hasattr(x, "size")) < 3 * 9  # no Adam moments for llm
  grads = jax.tree_util.tree_map(np.ones_like, params)
  _, state = tx.update(grads, state, params)          # step 0 of the warmup has lr 0
  updates, _ = tx.update(grads, state, params)
  assert (np.asarray(updates["llm"]["w"]) == 0).all()
  assert (np.asarray(updates["frame"]["w"]) != 0).all()
  with pytest.raises(ValueError, match="matches no rule"):
    optimizer.trainable_labels(params, [("frame/.*", "train")])


def test_stage_two_starts_from_stage_one(data, tmp_path):
  stage1 = str(tmp_path / "s1")
  first = loop.train_and_evaluate(_config(data, steps=10), stage1)
  c = vagpt_stage2.get_config("size=tiny,frames=4,steps=5")
  c.data.train_json, c.data.feature_dir, c.data.tokenizer = (data["train_json"], data["features"],
                                                             data["tokenizer"])
  c.data.batch_size, c.progress, c.init_from = 4, False, stage1
  c.mesh.update(dict(data=2, fsdp=2, tensor=2))
  assert c.model.use_sets and c.total_steps < 150
  second = loop.train_and_evaluate(c, str(tmp_path / "s2"))
  assert second[0]["loss"] < first[0]["loss"]   # starts from learned weights, not from scratch


def test_tetg_trains_through_the_same_entry_point(data, tmp_path):
  from vaujax.train import tetg_trainer
  c = tetg_config.get_config("epochs=3")
  c.data.feature_dir, c.data.labels_json = data["features"], data["labels_json"]
  tetg_trainer.run(c, str(tmp_path))
  hint = load_tetg(str(tmp_path / "tetg")).hint_fn(UCF_CRIME_CLASSES)
  from vaujax.data import features
  name = sorted(os.listdir(data["features"]))[0]
  text = hint(name[:-4], features.read_features(os.path.join(data["features"], name)))
  assert text.startswith("Known common crime types are: 'Abuse'")


def test_checkpoint_restores_onto_a_smaller_mesh(data, tmp_path):
  reference = loop.train_and_evaluate(_config(data, steps=10), str(tmp_path / "ref"))
  workdir = str(tmp_path / "w")
  first = _config(data, steps=10)   # the 10-step schedule, stopped after 5 steps
  first.total_steps = 5
  loop.train_and_evaluate(first, workdir)                             # 8 devices (2, 2, 2)
  rest = loop.train_and_evaluate(_config(data, steps=10, data=1, fsdp=2, tensor=2, devices=4),
                                 workdir)                             # 4 devices (1, 2, 2)
  assert [h["step"] for h in rest] == list(range(6, 11))
  np.testing.assert_allclose([h["loss"] for h in rest], [h["loss"] for h in reference[5:]],
                             atol=1e-5)


def test_bf16_compute_with_fp32_master_weights(data, tmp_path):
  c = _config(data, steps=8)
  c.dtype = "bfloat16"
  history = loop.train_and_evaluate(c, str(tmp_path / "bf16"))
  assert all(np.isfinite(h["loss"]) for h in history)
  assert np.mean([h["loss"] for h in history[-3:]]) < history[0]["loss"]


def test_lora_trains_only_the_adapters(data, tmp_path):
  c = _config(data, steps=12)
  c.lora.rank = 4
  # as the paper config runs: the adapters merge into the per-layer tree that the scan stacks
  c.model.scan_layers, c.model.remat = True, True
  c.optim.trainable = [("base/.*", "freeze"), (".*", "train")]
  c.optim.learning_rate = 3e-2
  workdir = str(tmp_path / "lora")
  history = loop.train_and_evaluate(c, workdir)
  # only rank-4 q/v adapters of a random LLM learn (frozen base and zero-init B would keep the
  # loss exactly constant); it still falls clearly
  assert np.mean([h["loss"] for h in history[-3:]]) < history[0]["loss"] - 0.1
  import orbax.checkpoint as ocp
  step_dir = os.path.join(workdir, "checkpoints", "12", "state")
  restored = ocp.StandardCheckpointer().restore(step_dir)
  from vaujax.train import vagpt_task
  from vaujax.models import vagpt
  from vaujax.data.tokenizer import Tokenizer
  cfg = run_dir.model_config(c, Tokenizer.load(c.data.tokenizer).vocab_size)
  model = vagpt.VAGPT(cfg)
  fresh = jax.jit(lambda r, b: __import__("flax").linen.unbox(vagpt_task.init_fn(model)(r, b)))(
      jax.random.key(c.seed), vagpt_task.dummy_batch(cfg, c, 4))
  jax.tree_util.tree_map(np.testing.assert_array_equal, restored["params"]["base"], fresh)
  b = [np.abs(np.asarray(v["b"])).max() for v in restored["params"]["lora"].values()]
  assert len(b) == 2 * cfg.llm.num_layers and min(b) > 0


def test_eval_hooks_and_best_checkpoint(data, tmp_path):
  c = _config(data, steps=10)
  c.eval.every, c.eval.json, c.eval.batches = 5, data["train_json"], 1
  c.best_metric, c.keep = "eval_loss", 1
  calls = []
  history = loop.train_and_evaluate(c, str(tmp_path / "e"),
                                    hooks=[lambda step, p: calls.append(step) or {"one": 1.0}])
  assert calls == [5, 10]
  evals = [h for h in history if "eval_loss" in h]
  assert [h["step"] for h in evals] == [5, 10] and evals[1]["eval_loss"] < evals[0]["eval_loss"]
  assert evals[0]["eval_one"] == 1.0
  import tensorboardX  # noqa: F401  (event files were written)
  assert os.listdir(tmp_path / "e" / "tensorboard")


def test_gradient_accumulation_applies_the_mean_every_k_steps():
  import ml_collections
  params = {"w": np.zeros(2, np.float32)}
  base = dict(learning_rate=0.1, warmup_steps=0, total_steps=100, weight_decay=0.0,
              grad_clip=0.0, trainable=[(".*", "train")])
  acc = optimizer.make_optimizer(ml_collections.ConfigDict(dict(base, accumulate=2)), params)
  one = optimizer.make_optimizer(ml_collections.ConfigDict(dict(base, accumulate=1)), params)
  s_acc, s_one = acc.init(params), one.init(params)
  g1, g2 = {"w": np.array([1.0, 3.0], np.float32)}, {"w": np.array([3.0, 1.0], np.float32)}
  u1, s_acc = acc.update(g1, s_acc, params)
  assert (np.asarray(u1["w"]) == 0).all()                 # first micro-step: no update yet
  u2, s_acc = acc.update(g2, s_acc, params)
  mean = {"w": (g1["w"] + g2["w"]) / 2}
  ref, _ = one.update(mean, s_one, params)
  np.testing.assert_allclose(np.asarray(u2["w"]), np.asarray(ref["w"]), rtol=1e-6)


@pytest.mark.parametrize("scale", [0.0, 1e-3, 0.5, 3.0, 1e4, float("nan")])
def test_global_norm_clipping_equals_optax(scale):
  """One scalar factor gives optax.clip_by_global_norm's updates: unchanged below the threshold
  (bit for bit), scaled onto it above, zeros stay zeros and a NaN norm stays NaN."""
  import optax
  rng = np.random.RandomState(0)
  grads = {"a": rng.randn(7, 5).astype(np.float32), "b": {"c": rng.randn(11).astype(np.float32)}}
  grads = jax.tree_util.tree_map(lambda g: g * np.float32(scale), grads)
  ours, _ = optimizer.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  ref, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  norm = float(optax.tree.norm(grads))
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
    if norm < 1.0:
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0)
  if norm > 1.0:
    assert float(optax.tree.norm(ours)) == pytest.approx(1.0, rel=1e-6)
  if np.isnan(scale):
    assert all(np.isnan(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(ours))
