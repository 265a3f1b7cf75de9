"""Before/after ratios of the optimisation switches, measured side by side in one run.

On one LLaMA-shaped train step (the trainer's AdamW step, donated state), each switch is timed
interleaved against the baseline and its compiled memory is read from XLA's memory analysis:

- attention kernel: the default causal chunked einsum (`config.model.attention=chunked`,
  query chunks meet only the keys they can see) vs the single-block einsum (fp32 [L, S]
  logits, `einsum`) and `jax.nn.dot_product_attention` (`xla`; `cudnn` needs an NVIDIA GPU),
- remat of every decoder layer (`config.model.remat=True`): temp memory vs step time,
- the layers as one `lax.scan` (`config.model.scan_layers=True`, on for the paper config), both
  with remat: step time and temp memory (its payoff is at scale: benchmarks/memory_plan.py),
- with the layers scanned, `remat_policy=dots` (keep the projections' outputs) against the
  default `full` (XLA:CPU's unrolled schedule keeps the same buffers under either policy),
- buffer donation of the training state (what `loop` does) vs none: peak memory.

On the ~100M LLaMA step of `train_step`, where AdamW's memory-bound update is a large share:
global-norm clipping as one scalar factor (`optimizer.clip_by_global_norm`, what the trainer
uses) vs `optax.clip_by_global_norm` (a select between the gradients and a rescaled copy, which
XLA:CPU materialises before Adam reads it), both chained with the same AdamW.

The chunked-vs-einsum pair is also timed on the tiny VA-GPT step that the demo trains.

Two smaller ones, since the fifth session of 2026-11-30: the next-token loss as logsumexp minus
the one-hot target logit over the whole logits block (`losses.next_token_loss`) vs the former
sliced log-softmax and gather, on the same 4L x 512 step (time and temp memory); and the
sampler's greedy choice as a max then the first index holding it (`sampler.first_argmax`) vs
`jnp.argmax` on [8, 32000] logits. Since the sixth: multiple-choice scoring with the K options
packed after one shared prompt (`scoring.option_logprobs`) vs the prompt repeated per option.

  python -m benchmarks --only=optimisations
"""

from __future__ import annotations

import dataclasses

import jax

from benchmarks import common
from benchmarks import train_step as ts

CONFIG = dict(vocab_size=8000, hidden_size=512, intermediate_size=1376, num_layers=4,
              num_heads=8, num_kv_heads=8, max_position_embeddings=2048)
BATCH, SEQ = 2, 1024   # long enough for the attention buffers to matter


def _step(cfg, params, data, donate=True, tx=None, token_loss=None):
  from vaujax.models import llama
  from vaujax.train import loop, optimizer
  opt = ts.optim_config()
  tx = tx or optimizer.make_optimizer(opt, params)
  state = {"step": jax.numpy.zeros((), jax.numpy.int32), "params": params,
           "opt_state": jax.jit(tx.init)(params),
           "rng": jax.random.key_data(jax.random.key(0))}
  fn = loop.make_train_step(ts.llama_loss(llama.Llama(cfg), token_loss), tx,
                            optimizer.learning_rate_schedule(opt))
  batch = jax.tree_util.tree_map(jax.numpy.asarray, data)
  # One compile serves both the memory analysis and the timed steps.
  compiled = jax.jit(fn, donate_argnums=0 if donate else ()).lower(state, batch).compile()
  return ts.JaxStep(compiled, state, data), compiled.memory_analysis()


def _mib(memory, field):
  return getattr(memory, field, 0) / 2**20 if memory is not None else float("nan")


def measure(config: dict = CONFIG, batch: int = BATCH, seq: int = SEQ,
            repeats: int = ts.STEPS) -> list[dict]:
  """One row per switch: its step speed and compiled memory against the baseline's."""
  from vaujax.models import llama
  base = llama.LlamaConfig(**config)
  data = ts.text_batch(base.vocab_size, batch, seq)
  params = llama.Llama(base).init(jax.random.key(0), jax.numpy.asarray(data["input_ids"][:, :8]))
  copy = lambda: jax.tree_util.tree_map(lambda x: x.copy(), params)  # noqa: E731  donated
  variants = {
      "baseline": (base, True),
      "attention=einsum": (dataclasses.replace(base, attention_impl="einsum"), True),
      "attention=xla": (dataclasses.replace(base, attention_impl="xla"), True),
      "remat": (dataclasses.replace(base, remat=True), True),
      "remat+scan": (dataclasses.replace(base, remat=True, scan_layers=True), True),
      "remat dots+scan": (dataclasses.replace(base, remat=True, remat_policy="dots",
                                              scan_layers=True), True),
      "no donation": (base, False),
  }
  steps, memory, losses = {}, {}, {}
  for name, (cfg, donate) in variants.items():
    steps[name], memory[name] = _step(cfg, copy(), data, donate)
    _, losses[name] = steps[name].compile_seconds()
  times = ts.interleave(steps, repeats)
  best = {k: min(v) for k, v in times.items()}
  tokens = batch * seq
  shape = f"{base.num_layers}L x {base.hidden_size}, {batch}x{seq}"
  rows = []
  # (label, after, before): the ratio is before / after step time.
  pairs = [("attention=chunked (default) vs einsum", "baseline", "attention=einsum"),
           ("attention=xla vs chunked", "attention=xla", "baseline"),
           ("remat vs none", "remat", "baseline"),
           ("scanned vs unrolled layers, both remat", "remat+scan", "remat"),
           ("remat_policy=dots vs full, layers scanned", "remat dots+scan", "remat+scan"),
           ("no donation vs donated", "no donation", "baseline")]
  for label, after, before in pairs:
    rows.append(dict(
        benchmark="optimisations", metric=f"tokens/s {label} ({shape})",
        vaujax=tokens / best[after], reference=tokens / best[before],
        ratio=best[before] / best[after],
        temp_mib=_mib(memory[after], "temp_size_in_bytes"),
        before_temp_mib=_mib(memory[before], "temp_size_in_bytes"),
        argument_mib=_mib(memory[after], "argument_size_in_bytes"),
        output_mib=_mib(memory[after], "output_size_in_bytes"),
        alias_mib=_mib(memory[after], "alias_size_in_bytes"),
        before_alias_mib=_mib(memory[before], "alias_size_in_bytes"),
        first_loss_diff=abs(losses[after] - losses[before]),
        loadavg_1m=ts.load_average()))
    r = rows[-1]
    print(f"{label}: step {best[after] * 1e3:.0f} ms vs {best[before] * 1e3:.0f} ms "
          f"(speed ratio {r['ratio']:.2f}x); temp {r['temp_mib']:.0f} MiB vs "
          f"{r['before_temp_mib']:.0f} MiB; aliased (donated) {r['alias_mib']:.0f} MiB vs "
          f"{r['before_alias_mib']:.0f} MiB; first-loss diff {r['first_loss_diff']:.1e}",
          flush=True)
  return rows


def measure_vagpt_attention(batch: int = ts.TINY_BATCH, text_len: int = 239,
                            repeats: int = max(ts.STEPS, 5)) -> dict:
  """The tiny VA-GPT train step (the demo's model): chunked vs single-block einsum attention."""
  cfg, cd = ts.vagpt_config("tiny")
  data = ts.video_batch(cfg, cd.dino_dim, batch, text_len=text_len)
  steps = {}
  for impl in ("chunked", "einsum"):
    variant = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, attention_impl=impl))
    _, _, steps[impl] = ts.vagpt_step(variant, data)
    steps[impl].compile_seconds()
  best = {k: min(v) for k, v in ts.interleave(steps, repeats).items()}
  tokens = data["input_ids"].size
  row = dict(benchmark="optimisations",
             metric=f"tokens/s tiny VA-GPT step, attention=chunked vs einsum "
                    f"({batch}x{data['input_ids'].shape[1]})",
             vaujax=tokens / best["chunked"], reference=tokens / best["einsum"],
             ratio=best["einsum"] / best["chunked"], loadavg_1m=ts.load_average())
  print(f"tiny VA-GPT: chunked {best['chunked'] * 1e3:.1f} ms vs einsum "
        f"{best['einsum'] * 1e3:.1f} ms (speed ratio {row['ratio']:.2f}x)", flush=True)
  return row


def measure_clipping(config: dict = ts.LLAMA_100M, batch: int = ts.BATCH_100M,
                     seq: int = ts.SEQ_100M, repeats: int = ts.STEPS) -> dict:
  """AdamW step with clipping as one scalar factor (vaujax) vs optax's select (before)."""
  import optax

  from vaujax.models import llama
  from vaujax.train import optimizer
  cfg = llama.LlamaConfig(**config)
  data = ts.text_batch(cfg.vocab_size, batch, seq)
  params = llama.Llama(cfg).init(jax.random.key(0), jax.numpy.asarray(data["input_ids"][:, :8]))
  schedule = optimizer.learning_rate_schedule(ts.optim_config())
  steps, losses = {}, {}
  clips = {"factor": optimizer.clip_by_global_norm, "optax": optax.clip_by_global_norm}
  for name, clip in clips.items():
    tx = optax.chain(clip(1.0), optax.adamw(schedule, weight_decay=0.0))
    steps[name], _ = _step(cfg, jax.tree_util.tree_map(lambda x: x.copy(), params), data, tx=tx)
    _, losses[name] = steps[name].compile_seconds()
  best = {k: min(v) for k, v in ts.interleave(steps, repeats).items()}
  # Both sides took the same steps from the same weights: their parameters must still agree.
  drift = max(float(jax.numpy.max(jax.numpy.abs(a - b))) for a, b in zip(
      jax.tree_util.tree_leaves(steps["factor"].state["params"]),
      jax.tree_util.tree_leaves(steps["optax"].state["params"])))
  tokens = batch * seq
  row = dict(benchmark="optimisations",
             metric=f"tokens/s AdamW step, clipping as one scalar factor vs optax's select "
                    f"(~100M LLaMA, {batch}x{seq})",
             vaujax=tokens / best["factor"], reference=tokens / best["optax"],
             ratio=best["optax"] / best["factor"],
             first_loss_diff=abs(losses["factor"] - losses["optax"]), params_max_diff=drift,
             loadavg_1m=ts.load_average())
  print(f"clipping: one factor {best['factor'] * 1e3:.0f} ms vs optax's select "
        f"{best['optax'] * 1e3:.0f} ms (speed ratio {row['ratio']:.2f}x; parameters after "
        f"{repeats + 1} steps differ by at most {drift:.1e})", flush=True)
  return row


def gather_next_token_loss(logits, labels):
  """The loss as it was before the fifth session of 2026-11-30: logits sliced to [B, L - 1, V],
  a log-softmax array, and the target picked with a gather (a scatter into zeros backward)."""
  from vaujax.data.conversation import IGNORE_INDEX
  jnp = jax.numpy
  logits, targets = logits[:, :-1], labels[:, 1:]
  valid = targets != IGNORE_INDEX
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, jnp.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
  count = valid.sum()
  return -(picked * valid).sum() / jnp.maximum(count, 1), count


def measure_loss(config: dict = CONFIG, batch: int = BATCH, seq: int = SEQ,
                 repeats: int = ts.STEPS) -> dict:
  """4L x 512 step: `losses.next_token_loss` (logsumexp - one-hot target) vs the gather."""
  from vaujax.models import llama
  from vaujax.train import losses
  cfg = llama.LlamaConfig(**config)
  data = ts.text_batch(cfg.vocab_size, batch, seq)
  params = llama.Llama(cfg).init(jax.random.key(0), jax.numpy.asarray(data["input_ids"][:, :8]))
  steps, memory, first = {}, {}, {}
  for name, fn in (("logsumexp", losses.next_token_loss), ("gather", gather_next_token_loss)):
    steps[name], memory[name] = _step(cfg, jax.tree_util.tree_map(lambda x: x.copy(), params),
                                      data, token_loss=fn)
    _, first[name] = steps[name].compile_seconds()
  best = {k: min(v) for k, v in ts.interleave(steps, repeats).items()}
  tokens = batch * seq
  row = dict(benchmark="optimisations",
             metric=f"tokens/s next-token loss as logsumexp - target logit vs log-softmax + "
                    f"gather ({cfg.num_layers}L x {cfg.hidden_size}, vocab {cfg.vocab_size}, "
                    f"{batch}x{seq})",
             vaujax=tokens / best["logsumexp"], reference=tokens / best["gather"],
             ratio=best["gather"] / best["logsumexp"],
             temp_mib=_mib(memory["logsumexp"], "temp_size_in_bytes"),
             before_temp_mib=_mib(memory["gather"], "temp_size_in_bytes"),
             first_loss_diff=abs(first["logsumexp"] - first["gather"]),
             loadavg_1m=ts.load_average())
  print(f"next-token loss: logsumexp {best['logsumexp'] * 1e3:.1f} ms vs gather "
        f"{best['gather'] * 1e3:.1f} ms (speed ratio {row['ratio']:.2f}x); temp "
        f"{row['temp_mib']:.1f} vs {row['before_temp_mib']:.1f} MiB; first-loss diff "
        f"{row['first_loss_diff']:.1e}", flush=True)
  return row


def measure_greedy_argmax(batch: int = 8, vocab: int = 32000, repeats: int = 200) -> dict:
  """Greedy token choice over [B, V] decode logits: `sampler.first_argmax` vs `jnp.argmax`."""
  import time

  from vaujax.generation.sampler import first_argmax
  logits = jax.random.normal(jax.random.key(0), (batch, vocab))
  fns = {"first_argmax": jax.jit(first_argmax), "argmax": jax.jit(lambda x: jax.numpy.argmax(
      x, axis=-1))}
  same = bool((fns["first_argmax"](logits) == fns["argmax"](logits)).all())

  def timer(fn):
    def run():
      jax.block_until_ready(fn(logits))
    return run

  times = ts.interleave({k: timer(f) for k, f in fns.items()}, repeats)
  best = {k: min(v) for k, v in times.items()}
  row = dict(benchmark="optimisations",
             metric=f"calls/s greedy choice over [{batch}, {vocab}] logits: max + first index "
                    f"vs jnp.argmax",
             vaujax=1 / best["first_argmax"], reference=1 / best["argmax"],
             ratio=best["argmax"] / best["first_argmax"], same_tokens=same,
             loadavg_1m=ts.load_average())
  print(f"greedy choice: max + first index {best['first_argmax'] * 1e6:.0f} us vs jnp.argmax "
        f"{best['argmax'] * 1e6:.0f} us (speed ratio {row['ratio']:.2f}x; same tokens: {same})",
        flush=True)
  return row


MC_CONFIG = dict(CONFIG, vocab_size=32000)


def measure_mc_scoring(config: dict = MC_CONFIG, batch: int = 2, options: int = 4,
                       prompt: int = 320, option: int = 8, repeats: int = 5) -> dict:
  """Multiple-choice scoring of K options per prompt: packed after one shared prompt
  (`scoring.option_logprobs`, what `infer` uses) vs the prompt repeated once per option (each
  pair its own row, `continuation_logprobs`; `infer` before the sixth session of 2026-11-30)."""
  import jax.numpy as jnp
  import numpy as np

  from vaujax.generation import scoring
  from vaujax.models import llama
  model = llama.Llama(llama.LlamaConfig(**config))
  params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8), jnp.int32))
  rng = np.random.RandomState(0)
  lengths = rng.randint(prompt // 2, prompt + 1, batch)
  lengths[0] = prompt
  ids = rng.randint(3, config["vocab_size"], (batch, prompt)).astype(np.int32)
  mask = (np.arange(prompt)[None] >= prompt - lengths[:, None]).astype(np.int32)   # left pad
  opt_ids = rng.randint(3, config["vocab_size"], (batch, options, option)).astype(np.int32)
  opt_mask = (np.arange(option) < rng.randint(1, option + 1, (batch, options, 1))).astype(
      np.int32)
  repeated = jax.jit(lambda p, i, m, o, om: scoring.continuation_logprobs(
      model, p, jnp.repeat(i, options, 0), jnp.repeat(m, options, 0),
      o.reshape(-1, option), om.reshape(-1, option)))
  args = (params, ids, mask, opt_ids, opt_mask)
  compiled = {"packed": scoring.option_logprobs.lower(model, *args).compile(),
              "repeated": repeated.lower(*args).compile()}
  calls = {name: (lambda c=c: c(*args)) for name, c in compiled.items()}
  diff = float(np.abs(np.asarray(calls["packed"]()[0]).reshape(-1)
                      - np.asarray(calls["repeated"]()[0])).max())
  times = ts.interleave({k: (lambda f=f: jax.block_until_ready(f())) for k, f in calls.items()},
                        repeats)
  best = {k: min(v) for k, v in times.items()}
  temp = {k: _mib(c.memory_analysis(), "temp_size_in_bytes") for k, c in compiled.items()}
  row = dict(benchmark="optimisations",
             metric=f"MC scoring s, {batch} prompts of <= {prompt} tokens x {options} options "
                    f"of <= {option} ({config['num_layers']}L x {config['hidden_size']}, vocab "
                    f"{config['vocab_size']}): options packed "
                    f"after one prompt vs the prompt repeated per option",
             vaujax=best["packed"], reference=best["repeated"],
             ratio=best["repeated"] / best["packed"], temp_mib=temp["packed"],
             reference_temp_mib=temp["repeated"], max_abs_score_diff=diff,
             loadavg_1m=ts.load_average())
  print(f"MC scoring: packed options {best['packed'] * 1e3:.0f} ms ({temp['packed']:.0f} MiB "
        f"temp) vs prompt per option {best['repeated'] * 1e3:.0f} ms "
        f"({temp['repeated']:.0f} MiB): {row['ratio']:.2f}x; scores differ by {diff:.1e}",
        flush=True)
  return row


def main() -> list[dict]:
  return measure() + [measure_vagpt_attention(), measure_clipping(), measure_loss(),
                      measure_greedy_argmax(), measure_mc_scoring()]


def define_flags(fv) -> None:
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.optimisations`: main(), and --json to keep its rows."""
  return common.run_module(__doc__, define_flags, lambda fv: main(), argv)


if __name__ == "__main__":
  run()
