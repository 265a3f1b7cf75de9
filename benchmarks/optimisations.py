"""Before/after ratios of the optimisation switches, measured side by side in one run.

On one LLaMA-shaped train step (the trainer's AdamW step, donated state), each switch is timed
interleaved against the baseline and its compiled memory is read from XLA's memory analysis:

- attention kernel: the explicit einsum (fp32 logits, [B, L, S] mask) vs
  `jax.nn.dot_product_attention` (`config.model.attention=xla`; `cudnn` needs an NVIDIA GPU),
- remat of every decoder layer (`config.model.remat=True`): temp memory vs step time,
- buffer donation of the training state (what `loop` does) vs none: peak memory.

  python -m benchmarks optimisations
"""

from __future__ import annotations

import dataclasses

import jax

from benchmarks import train_step as ts

CONFIG = dict(vocab_size=8000, hidden_size=512, intermediate_size=1376, num_layers=4,
              num_heads=8, num_kv_heads=8, max_position_embeddings=2048)
BATCH, SEQ = 2, 1024   # long enough for the attention buffers to matter


def _step(cfg, params, data, donate=True):
  from vaujax.models import llama
  from vaujax.train import loop, optimizer
  opt = ts.optim_config()
  tx = optimizer.make_optimizer(opt, params)
  state = {"step": jax.numpy.zeros((), jax.numpy.int32), "params": params,
           "opt_state": jax.jit(tx.init)(params),
           "rng": jax.random.key_data(jax.random.key(0))}
  fn = loop.make_train_step(ts.llama_loss(llama.Llama(cfg)), tx,
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
      "attention=xla": (dataclasses.replace(base, attention_impl="xla"), True),
      "remat": (dataclasses.replace(base, remat=True), True),
      "no donation": (base, False),
  }
  steps, memory, losses = {}, {}, {}
  for name, (cfg, donate) in variants.items():
    steps[name], memory[name] = _step(cfg, copy(), data, donate)
    _, losses[name] = steps[name].compile_seconds()
  times = ts.interleave(steps, repeats)
  best = {k: min(v) for k, v in times.items()}
  tokens = batch * seq
  rows = []
  for name in ("attention=xla", "remat", "no donation"):
    rows.append(dict(
        benchmark="optimisations",
        metric=f"tokens/s {name} vs baseline ({base.num_layers}L x {base.hidden_size}, "
               f"{batch}x{seq})",
        vaujax=tokens / best[name], reference=tokens / best["baseline"],
        ratio=best["baseline"] / best[name],
        temp_mib=_mib(memory[name], "temp_size_in_bytes"),
        baseline_temp_mib=_mib(memory["baseline"], "temp_size_in_bytes"),
        argument_mib=_mib(memory[name], "argument_size_in_bytes"),
        output_mib=_mib(memory[name], "output_size_in_bytes"),
        alias_mib=_mib(memory[name], "alias_size_in_bytes"),
        baseline_alias_mib=_mib(memory["baseline"], "alias_size_in_bytes"),
        first_loss_diff=abs(losses[name] - losses["baseline"]),
        loadavg_1m=ts.load_average()))
    r = rows[-1]
    print(f"{name}: step {best[name] * 1e3:.0f} ms vs baseline {best['baseline'] * 1e3:.0f} ms "
          f"(speed ratio {r['ratio']:.2f}x); temp {r['temp_mib']:.0f} MiB vs "
          f"{r['baseline_temp_mib']:.0f} MiB; aliased (donated) {r['alias_mib']:.0f} MiB vs "
          f"{r['baseline_alias_mib']:.0f} MiB; first-loss diff {r['first_loss_diff']:.1e}",
          flush=True)
  return rows


def main() -> list[dict]:
  return measure()


if __name__ == "__main__":
  main()
