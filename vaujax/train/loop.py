"""The training loop: `train_and_evaluate(config, workdir)`, importable from Colab and tests.

One jitted step with explicit in/out shardings over a (data, fsdp, tensor) mesh; per-process
data (Grain, sharded by process) assembled into global arrays; orbax checkpoints of state and
data iterator with automatic resume; metrics to `metrics.jsonl`, TensorBoard and the console.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vaujax import files, sharding
from vaujax.data import pipeline
from vaujax.data.tokenizer import Tokenizer
from vaujax.models import vagpt
from vaujax.runs import checkpoint, run_dir
from vaujax.errors import InputError
from vaujax.train import config_checks, optimizer, vagpt_task


class NonFiniteLoss(RuntimeError):
  pass


class Preempted(RuntimeError):
  """SIGTERM arrived: the step in flight finished, a checkpoint was written, training stopped."""


class _SigtermFlag:
  """Turns SIGTERM (how pods and schedulers preempt) into a flag checked between steps."""

  def __init__(self):
    import signal
    import threading
    self.raised = False
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    self.raised = True

  def restore(self):
    import signal
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _mesh(config) -> jax.sharding.Mesh:
  devices = jax.devices()
  n = config.mesh.get("devices", -1)
  if n and n > 0:
    devices = devices[:n]
  return sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor, devices)


def _rules(config):
  return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in config.get(
      "logical_rules", sharding.DEFAULT_RULES))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       hooks: Sequence[Callable] = (), *, overwrite: bool = False) -> list[dict]:
  """Trains to `config.total_steps` (resuming from `workdir` if it has checkpoints); see
  `_train_and_evaluate`. A write that finds no room (disk full, quota, file-size limit) is an
  InputError naming the file; every checkpoint and metrics line written before stays whole."""
  with files.writing(workdir):
    return _train_and_evaluate(config, workdir, hooks, overwrite=overwrite)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        hooks: Sequence[Callable] = (), *, overwrite: bool = False) -> list[dict]:
  """Trains to `config.total_steps` (resuming from `workdir` if it has checkpoints).

  Every `config.eval.every` steps the held-out loss on `config.eval.json` is computed and each
  hook `hook(step, params) -> dict` is called; their metrics are logged (`eval_*`) and can pick
  the best checkpoint (`config.best_metric`, e.g. "eval_loss").

  The config is validated before any work. A workdir whose saved run was trained with another
  config (keys outside `run_dir.RESUME_SAFE`) is an InputError naming the keys; `overwrite`
  moves that run to WORKDIR/superseded/<n>/ first. Nothing here deletes a checkpoint or a
  metrics line.
  """
  config_checks.check_vagpt(config)
  config_checks.check_batch_against_mesh(config, jax.device_count(), jax.process_count())
  _prepare_workdir(workdir, config, overwrite)
  mesh, rules = _mesh(config), _rules(config)
  for name, spec in (config.get("evals") or {}).items():
    from vaujax.evaluate import evaluators
    evaluators.check_spec(name, spec)
  tokenizer = Tokenizer.load(config.data.tokenizer)
  cfg = run_dir.model_config(config, tokenizer.vocab_size)
  dtype = jnp.dtype(config.get("dtype", "float32"))
  model = vagpt.VAGPT(cfg, dtype=dtype, param_dtype=jnp.float32)
  if jax.process_index() == 0:   # the run's artifact: what evaluate / infer / resume read
    run_dir.write_artifact(workdir, config, log=lambda s: print(s, flush=True))
  data_it = iter(vagpt_task.make_dataset(config, cfg, tokenizer, config.data.train_json,
                                         log=lambda s: print(s, flush=True)))
  batch_sh = {k: sharding.batch_sharding(mesh, v.ndim) for k, v in
              vagpt_task.dummy_batch(cfg, config, 1).items()}

  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    init = vagpt_task.init_fn(model)
    dummy = vagpt_task.dummy_batch(cfg, config, config.data.batch_size)
    boxed = jax.eval_shape(init, jax.random.key(config.seed), dummy)
    param_sh = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, list(rules))
    params = jax.jit(lambda r, b: nn.unbox(init(r, b)), out_shardings=param_sh)(
        jax.random.key(config.seed), dummy)
    if config.get("init_from"):
      params = jax.device_put(checkpoint.restore_params_only(config.init_from, params), param_sh)
      print(f"initialised params from {config.init_from}", flush=True)
    compute_loss = vagpt_task.loss_fn(model)
    lora_cfg = config.get("lora") or {}
    if lora_cfg.get("rank", 0) > 0:  # train adapters only: base frozen by the freeze rules
      from vaujax.models import lora
      adapters = lora.init(params["params"], jax.random.key(config.seed + 1), lora_cfg["rank"],
                           lora_cfg.get("targets", lora.DEFAULT_TARGETS))
      params = {"base": params, "lora": jax.device_put(adapters, sharding.replicated(mesh))}
      compute_loss = run_dir.lora_loss(compute_loss, config)
    tx = optimizer.make_optimizer(config.optim, params)
    param_sh = jax.tree_util.tree_map(lambda x: x.sharding, params)
    opt_sh = sharding.shardings_like_params(jax.eval_shape(tx.init, params), params, param_sh,
                                            mesh)
    state = {"step": jnp.zeros((), jnp.int32), "params": params,
             "opt_state": jax.jit(tx.init, out_shardings=opt_sh)(params), "rng": jax.random.key_data(
                 jax.random.key(config.seed))}
    state_sh = jax.tree_util.tree_map(lambda x: x.sharding, state)

    ckpt = checkpoint.Checkpointer(workdir, every_steps=config.ckpt_every, keep=config.keep,
                                   best_metric=config.get("best_metric") or None)
    restored = ckpt.restore_latest(jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state))
    log_path = os.path.join(workdir, "metrics.jsonl")
    if restored is not None:
      start, state, data_state = restored
      if data_state is not None:
        data_it.set_state(data_state)
      print(f"resumed from step {start}", flush=True)
      if start < config.total_steps:
        _truncate_log(log_path, start)
    else:
      start = 0
      _truncate_log(log_path, 0)

    train_step = make_train_step(compute_loss, tx, optimizer.learning_rate_schedule(config.optim))
    step_fn = jax.jit(train_step, in_shardings=(state_sh, batch_sh),
                      out_shardings=(state_sh, None), donate_argnums=0)
    evaluate = _evaluator(config, tokenizer, cfg, compute_loss, state_sh["params"], batch_sh,
                          hooks)
    benchmarks = _benchmark_evaluator(config, tokenizer, mesh)
    history = _run(config, workdir, start, state, step_fn, data_it, batch_sh, ckpt, log_path,
                   evaluate, benchmarks)
  return history


def _prepare_workdir(workdir: str, config, overwrite: bool) -> None:
  """Creates WORKDIR (checking it is writable) and refuses to resume a run of another config."""
  try:   # files.*: a local folder or a gs:// URL
    files.makedirs(workdir)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
    files.write_bytes(probe, b"")
    files.remove(probe)
  except OSError as e:
    raise InputError(workdir, f"cannot write to the workdir ({e.strerror or e})") from e
  if jax.process_index() != 0:
    return
  changes = run_dir.changes_against_saved(workdir, config)
  if changes and overwrite:
    print(f"--overwrite: the previous run moved to {run_dir.set_aside(workdir)}", flush=True)
  elif changes:
    raise InputError(workdir, "holds a run trained with another config ("
                     + "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6
                                                 else "")
                     + "); use a new --workdir, or --overwrite to move the old run to "
                     f"{run_dir.SUPERSEDED}/")


def make_train_step(compute_loss, tx, schedule):
  """(state, batch) -> (state, metrics) for `compute_loss(params, batch) -> (loss, aux)`."""

  def train_step(state, batch):
    (loss, aux), grads = jax.value_and_grad(compute_loss, has_aux=True)(state["params"], batch)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = jax.tree_util.tree_map(lambda p, u: p + u, state["params"], updates)
    metrics = {"loss": loss, "grad_norm": _global_norm(grads), "num_tokens": aux["num_tokens"],
               "learning_rate": schedule(state["step"])}
    return {"step": state["step"] + 1, "params": params, "opt_state": opt_state,
            "rng": state["rng"]}, metrics

  return train_step


def _global_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32)))
                      for x in jax.tree_util.tree_leaves(tree)))


def _truncate_log(path: str, step: int) -> None:
  """Keeps in `path` only log lines of steps <= `step` (a resumed run rewrites what came
  after); the others are appended to `metrics.superseded.jsonl` beside it, never lost.

  A process killed inside a write can leave a torn last line (the kernel checks for SIGKILL
  between pages of one write); it goes to the side file too, with a warning, not fatal.
  """
  if jax.process_index() != 0 or not files.exists(path):
    return
  kept, moved, torn = [], [], 0
  with files.open_file(path, errors="replace") as f:
    for line in f:
      line = line if line.endswith("\n") else line + "\n"
      try:
        record = json.loads(line)
      except ValueError:
        torn += line.strip() != ""
        moved.append(line)
        continue
      if isinstance(record, dict) and isinstance(record.get("step"), int) \
          and record["step"] <= step:
        kept.append(line)
      else:
        moved.append(line)
  if torn:
    print(f"warning: {path}: {torn} unreadable line(s) (a write cut short by a kill) moved to "
          "metrics.superseded.jsonl", flush=True)
  if not moved:
    return   # nothing to take out: the log is left as it is (no write on a full disk)
  if any(m.strip() for m in moved):   # first, so that a failure below loses no line
    files.append_lines(os.path.join(os.path.dirname(path), "metrics.superseded.jsonl"),
                       [m for m in moved if m.strip()], sync=True)
  files.write_text(path, "".join(kept))


def _evaluator(config, tokenizer, cfg, compute_loss, param_sh, batch_sh, hooks):
  """(step, params) -> eval metrics, or None when evaluation is off."""
  ev = config.get("eval") or {}
  if not ev.get("every"):
    return None
  loss_fn = jax.jit(lambda p, b: compute_loss(p, b)[0], in_shardings=(param_sh, batch_sh))

  def evaluate(step, params):
    metrics = {}
    if ev.get("json"):
      it = iter(vagpt_task.make_dataset(config, cfg, tokenizer, ev["json"], train=False))
      losses = []
      for _, local in zip(range(ev.get("batches", 2)), it):
        batch = {k: jax.make_array_from_process_local_data(batch_sh[k], local[k])
                 for k in batch_sh}
        losses.append(float(loss_fn(params, batch)))
      metrics["eval_loss"] = float(np.mean(losses)) if losses else float("nan")
    for hook in hooks:
      metrics.update({f"eval_{k}": float(v) for k, v in hook(step, params).items()})
    return metrics

  return evaluate


def _benchmark_evaluator(config, tokenizer, mesh):
  """(step, params) -> {eval_<name>_<metric>: value} for the evaluators of `config.evals` due
  at `step` (each every `every` steps, and all at the last step), or None when there are none.
  The Assistant sees the params as training has them (LoRA merged), with the run's tokenizer,
  classes and TETG classifier, on the training mesh (batches over data x fsdp)."""
  specs = dict(config.get("evals") or {})
  if not specs:
    return None
  from vaujax.evaluate import evaluators
  from vaujax.inference.assistant import Assistant
  tetg = run_dir.run_tetg(config)

  def evaluate(step, params):
    due = {n: s for n, s in specs.items()
           if (s.get("every") and step % s["every"] == 0) or step == config.total_steps}
    if not due:
      return {}
    if jax.process_count() > 1:   # every process evaluates on the whole params
      from jax.experimental import multihost_utils
      params = multihost_utils.process_allgather(params, tiled=True)
    merged = run_dir.merge_lora(jax.device_get(params), config)
    assistant = Assistant.from_params(config, merged, tokenizer=tokenizer, tetg=tetg, mesh=mesh)
    metrics = {}
    for name, spec in sorted(due.items()):
      summary = evaluators.run_evaluator(assistant, spec, name=name)
      metrics.update({f"eval_{name}_{k}": v for k, v in evaluators.numeric(summary).items()})
    return metrics

  return evaluate


def _max_over_processes(value: int) -> int:
  """The largest of every process's `value` (one scalar allgather; no-op on one process)."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils
  return int(np.max(multihost_utils.process_allgather(np.int32(value))))


def _every_process_stops(raised: bool) -> bool:
  """True on every process once SIGTERM reached any of them: a checkpoint save is collective,
  so a process that forced one while another went on to the next step would hang both."""
  return bool(_max_over_processes(int(raised)))


def _common_length(local: dict, bucket: int, max_length: int) -> int:
  """This step's bucketed token length, the same on every process (they build one array)."""
  return _max_over_processes(pipeline.bucket_length(local["attention_mask"], bucket, max_length))


def _run(config, workdir, start, state, step_fn, data_it, batch_sh, ckpt, log_path,
         evaluate=None, benchmarks=None):
  from tqdm import tqdm
  if start >= config.total_steps:   # finished: touch nothing (no new TensorBoard file either)
    print(f"{workdir}: already trained to step {start} (total_steps={config.total_steps})",
          flush=True)
    ckpt.close()
    return []
  # Pad each batch only to its longest example, rounded up to a multiple of this (0 = always
  # to data.max_length); one compile per distinct length.
  bucket = config.data.get("length_bucket", 0)
  writer = _tensorboard(workdir)
  history = []
  log = jax.process_index() == 0   # lines appended whole (a write cut short is undone)
  bar = tqdm(range(start, config.total_steps), initial=start, total=config.total_steps,
             disable=jax.process_index() != 0 or not config.get("progress", True),
             desc="train", dynamic_ncols=True)
  sigterm = _SigtermFlag()
  try:
    for step in bar:
      t_data = time.perf_counter()
      try:
        local = next(data_it)
      except StopIteration:
        _save_before_stopping(ckpt, step, state, data_it)
        raise InputError("--config.data.num_epochs", f"the training data ran out after step "
                         f"{step} of {config.total_steps} (num_epochs="
                         f"{config.data.num_epochs}); the checkpoint of step {step} is in "
                         f"{ckpt.directory}: raise data.num_epochs (or lower total_steps) and "
                         "rerun to go on") from None
      if bucket:
        local = pipeline.trim_to_length(local, _common_length(local, bucket,
                                                              config.data.max_length))
      t0 = time.perf_counter()
      batch = {k: jax.make_array_from_process_local_data(batch_sh[k], local[k])
               for k in batch_sh}
      state, metrics = step_fn(state, batch)
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      dt = time.perf_counter() - t0
      if not np.isfinite(metrics["loss"]) or not np.isfinite(metrics["grad_norm"]):
        ckpt.wait()
        raise NonFiniteLoss(f"step {step + 1}: loss={metrics['loss']} grad_norm="
                            f"{metrics['grad_norm']}; stopping. The last good checkpoint in "
                            f"{ckpt.directory} is kept.")
      # data_time: waiting for the input pipeline (prefetching keeps it near 0 unless input-bound)
      metrics.update(step=step + 1, step_time=dt, tokens_per_s=metrics["num_tokens"] / dt,
                     data_time=t0 - t_data, seq_len=int(local["input_ids"].shape[1]),
                     examples=[int(i) for i in local["example_index"]])
      if evaluate is not None and (step + 1) % config.eval.every == 0:
        metrics.update(evaluate(step + 1, state["params"]))
      if benchmarks is not None:
        metrics.update(benchmarks(step + 1, state["params"]))
      history.append(metrics)
      if log:
        files.append_lines(log_path, [json.dumps(metrics)])
      if writer:
        for key in ("loss", "grad_norm", "learning_rate", "tokens_per_s", "step_time",
                    "data_time"):
          writer.add_scalar(f"train/{key}", metrics[key], step + 1)
        for key in (k for k in metrics if k.startswith("eval_")):
          writer.add_scalar(f"eval/{key[5:]}", metrics[key], step + 1)
      if (step + 1) % config.log_every == 0:
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['learning_rate']:.2e}")
      # Read the flag once: a SIGTERM that lands during the save below must not make the next
      # line claim a checkpoint that was never asked for; it stops after the next step instead.
      stop = _every_process_stops(sigterm.raised)
      ckpt.save(step + 1, state, data_it.get_state(),
                {k: v for k, v in metrics.items() if k == "loss" or k.startswith("eval_")},
                force=step + 1 == config.total_steps or stop)
      if stop and step + 1 < config.total_steps:
        ckpt.wait()
        print(f"SIGTERM: checkpoint of step {step + 1} written to {ckpt.directory}; stopping",
              flush=True)
        raise Preempted(f"preempted at step {step + 1}; rerun the same command to resume")
  finally:
    sigterm.restore()
    ckpt.close()
    if writer:
      writer.close()
  return history


def _save_before_stopping(ckpt, step: int, state, data_it) -> None:
  """Writes the checkpoint of `step` unless it exists (a resumed or just-saved step)."""
  ckpt.wait()
  if step > 0 and step not in ckpt.complete_steps():
    ckpt.save(step, state, data_it.get_state(), force=True)
    ckpt.wait()


def _tensorboard(workdir):
  if jax.process_index() != 0:
    return None
  from tensorboardX import SummaryWriter
  if files.is_url(workdir):   # event files through the path layer, not tensorboardX's own client
    files.register_tensorboard_writer(workdir.split("://")[0])
  return SummaryWriter(os.path.join(workdir, "tensorboard"))
