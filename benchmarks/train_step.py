"""Train-step tokens/s: vaujax's jitted AdamW step vs a plain PyTorch loop over HF LLaMA.

(a) the tiny VA-GPT of `configs/vagpt_stage1.py:size=tiny` (whole model: vaujax only, and its
    LLM alone against HF `LlamaForCausalLM`), (b) a ~100M-parameter LLaMA-shaped model.
Both sides get the same weights (converted with `vaujax.convert.llama`), the same batch, AdamW
with global-norm clipping at 1.0; vaujax runs the trainer's step (`loop.make_train_step` over
`optimizer.make_optimizer`, jitted with the state donated). Compile and warm-up are excluded;
the two sides' steps are timed interleaved so machine contention hits both alike.

Read the ratio against `loadavg_1m` (in each row): on a 2-core machine shared with other jobs,
PyTorch's backward (OpenMP intra-op threads) slows down far more under contention than XLA's
step does, so the ratio swings from ~1x (machine quiet) to 2.5-4x (load 5-9) with the code
unchanged. Only a quiet machine's ratio says something about the libraries.

The ~100M row also times a 2048^3 fp32 `jnp.dot` in the same rounds and reports both sides'
6N FLOP/s as a share of it, and `ratio_bound`: the ratio vaujax would reach at 100% of that
peak. Where PyTorch already runs near the peak, that bound caps what any step can gain.

  python -m benchmarks --only=train_step
  VAUJAX_BENCH_STEPS=5 python -m benchmarks --only=train_step   # more timed steps per side

The helpers here (`llama_step`, `vagpt_step`, `interleave`, ...) are shared by `utilization`,
`sets_payoff` and `scaling`.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import common
from vaujax.models.params import count_params

# ~100M parameters: 85M in the 12 decoder layers + 2 x 24.6M embedding / LM head.
LLAMA_100M = dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_layers=12,
                  num_heads=12, num_kv_heads=12, max_position_embeddings=1024)
BATCH_100M, SEQ_100M = 2, 128     # 256 tokens a step (PyTorch took ~20 s a step at 2 x 256 here)
TINY_BATCH = 8                    # configs/vagpt_stage1.py: batch 8 x 256 tokens
STEPS = int(os.environ.get("VAUJAX_BENCH_STEPS", "3"))


def optim_config(learning_rate: float = 1e-4) -> ml_collections.ConfigDict:
  """The trainer's optimizer settings (stage one): AdamW, clip 1.0, everything trains."""
  return ml_collections.ConfigDict(dict(
      learning_rate=learning_rate, warmup_steps=1, total_steps=1000, weight_decay=0.0,
      grad_clip=1.0, accumulate=1, trainable=[(".*", "train")]))


def jitted_train_step(compute_loss, params, learning_rate: float = 1e-4):
  """(jitted step with the state donated, initial state), exactly as `loop.train_and_evaluate`."""
  from vaujax.train import loop, optimizer
  cfg = optim_config(learning_rate)
  tx = optimizer.make_optimizer(cfg, params)
  state = {"step": jnp.zeros((), jnp.int32), "params": params,
           "opt_state": jax.jit(tx.init)(params), "rng": jax.random.key_data(jax.random.key(0))}
  step = loop.make_train_step(compute_loss, tx, optimizer.learning_rate_schedule(cfg))
  return jax.jit(step, donate_argnums=0), state


def compiled_llama_step(model, batch: int, seq: int):
  """AOT-compiled trainer step of a fresh `model` (a `llama.Llama`) on a random text batch.

  -> (JaxStep over the compiled executable, compiled, n_params, n_dense, compile seconds);
  n_dense leaves out the embedding table (a gather, no FLOPs).
  """
  import flax.linen as nn

  cfg = model.config
  params = nn.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32)))
  n_params = count_params(params)
  data = jax.tree_util.tree_map(jnp.asarray, text_batch(cfg.vocab_size, batch, seq))
  step, state = jitted_train_step(llama_loss(model), params)
  start = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - start
  n_dense = n_params - cfg.vocab_size * cfg.hidden_size
  return JaxStep(compiled, state, data), compiled, n_params, n_dense, compile_s


def llama_loss(model, token_loss=None):
  """The trainer's loss function of a text batch; `token_loss` defaults to next_token_loss."""
  from vaujax.train.losses import next_token_loss
  token_loss = token_loss or next_token_loss

  def compute(params, batch):
    logits = model.apply(params, batch["input_ids"], attention_mask=batch["attention_mask"])
    loss, count = token_loss(logits, batch["labels"])
    return loss, {"num_tokens": count}
  return compute


def text_batch(vocab: int, batch: int, seq: int, seed: int = 0) -> dict:
  rng = np.random.RandomState(seed)
  ids = rng.randint(3, vocab, (batch, seq)).astype(np.int32)
  return {"input_ids": ids, "labels": ids.copy(), "attention_mask": np.ones_like(ids)}


def hf_llama(cfg, seed: int = 0):
  """(HF LlamaForCausalLM in train mode, the same weights as vaujax params)."""
  import torch
  from transformers import LlamaConfig as HFConfig, LlamaForCausalLM

  from vaujax.convert import llama as convert
  torch.manual_seed(seed)
  hf_kwargs = {k: v for k, v in convert.config_to_hf(cfg).items()
               if k not in ("architectures", "torch_dtype")}
  hf = LlamaForCausalLM(HFConfig(**hf_kwargs)).train()
  params, _ = convert.params_from_state_dict(
      {k: v.detach().numpy() for k, v in hf.state_dict().items()}, cfg)
  return hf, jax.tree_util.tree_map(jnp.asarray, params)


class TorchStep:
  """A plain PyTorch training step: forward with labels, backward, clip 1.0, AdamW."""

  def __init__(self, hf, batch: dict, learning_rate: float = 1e-4):
    import torch
    self.torch, self.hf = torch, hf
    self.opt = torch.optim.AdamW(hf.parameters(), lr=learning_rate, weight_decay=0.0)
    self.ids = torch.tensor(batch["input_ids"], dtype=torch.long)
    self.mask = torch.tensor(batch["attention_mask"], dtype=torch.long)
    self.labels = torch.tensor(batch["labels"], dtype=torch.long)

  def __call__(self) -> float:
    self.opt.zero_grad(set_to_none=True)
    loss = self.hf(input_ids=self.ids, attention_mask=self.mask, labels=self.labels).loss
    loss.backward()
    self.torch.nn.utils.clip_grad_norm_(self.hf.parameters(), 1.0)
    self.opt.step()
    return loss.item()


class JaxStep:
  """Calls a donated jitted step and keeps the state; returns the loss (which syncs)."""

  def __init__(self, step, state, batch):
    self.step, self.state = step, state
    self.batch = jax.tree_util.tree_map(jnp.asarray, batch)

  def compile_seconds(self) -> tuple[float, float]:
    start = time.perf_counter()
    loss = self()
    return time.perf_counter() - start, loss

  def __call__(self) -> float:
    self.state, metrics = self.step(self.state, self.batch)
    return float(metrics["loss"])


def interleave(fns: dict, repeats: int = STEPS) -> dict:
  """Times each callable `repeats` times, round-robin; -> {name: [seconds, ...]}."""
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return times


def summary(times: list[float]) -> dict:
  return {"best_s": min(times), "median_s": statistics.median(times)}


def load_average() -> float:
  """1-minute load average (other jobs on the machine), to read timings against; NaN if unknown."""
  try:
    return os.getloadavg()[0]
  except OSError:
    return float("nan")


def measure_llama(config: dict = LLAMA_100M, batch: int = BATCH_100M, seq: int = SEQ_100M,
                  repeats: int = STEPS, label: str = "~100M LLaMA") -> dict:
  """vaujax vs PyTorch train step on a LLaMA config; one row."""
  import torch

  from vaujax.models import llama
  cfg = llama.LlamaConfig(**config)
  hf, params = hf_llama(cfg)
  n_params = count_params(params)
  data = text_batch(cfg.vocab_size, batch, seq)
  step, state = jitted_train_step(llama_loss(llama.Llama(cfg)), params)
  ours = JaxStep(step, state, data)
  compile_s, loss_jax = ours.compile_seconds()
  ref = TorchStep(hf, data)
  loss_torch = ref()   # warm-up (and the same first-step loss: same weights, same batch)
  from benchmarks import utilization
  # one 2048^3 fp32 jnp.dot per round, timed with the steps
  times = interleave({"vaujax": ours, "torch": ref, "peak": utilization.matmul_peak()}, repeats)
  tokens = batch * seq
  a, b = summary(times["vaujax"]), summary(times["torch"])
  # How far the ratio can go: both sides' 6N FLOP/s over this machine's fp32 matmul peak. A
  # vaujax step at 100% of the peak would be `ratio_bound` times faster than PyTorch's.
  flops = 6 * (n_params - cfg.vocab_size * cfg.hidden_size) * tokens
  peak_flops = 2 * utilization.MATMUL_N ** 3 / min(times["peak"])
  bound = dict(vaujax_utilization_6n=flops / a["best_s"] / peak_flops,
               torch_utilization_6n=flops / b["best_s"] / peak_flops,
               ratio_bound=b["best_s"] / (flops / peak_flops), peak_gflops=peak_flops / 1e9)
  row = dict(benchmark="train_step",
             metric=f"tokens/s {label} ({n_params / 1e6:.0f}M params, batch {batch}x{seq})",
             vaujax=tokens / a["best_s"], reference=tokens / b["best_s"],
             ratio=b["best_s"] / a["best_s"], params_m=n_params / 1e6, batch=batch, seq=seq,
             compile_s=compile_s, vaujax_median_s=a["median_s"], torch_median_s=b["median_s"],
             ratio_median=b["median_s"] / a["median_s"], first_loss_diff=abs(loss_jax - loss_torch),
             torch_threads=torch.get_num_threads(), repeats=repeats, loadavg_1m=load_average(),
             **bound)
  print(f"{label} ({n_params / 1e6:.1f}M, {batch}x{seq}): vaujax {row['vaujax']:,.0f} tok/s, "
        f"PyTorch {row['reference']:,.0f} tok/s, ratio {row['ratio']:.2f}x (median "
        f"{row['ratio_median']:.2f}x; compile {compile_s:.1f} s, first-loss diff "
        f"{row['first_loss_diff']:.1e}); 6N utilization vaujax "
        f"{bound['vaujax_utilization_6n']:.0%}, PyTorch {bound['torch_utilization_6n']:.0%} of "
        f"{bound['peak_gflops']:.0f} GFLOP/s: at 100% vaujax would be "
        f"{bound['ratio_bound']:.2f}x PyTorch", flush=True)
  return row


# --- VA-GPT --------------------------------------------------------------------------------

def vagpt_config(size: str = "tiny", frames: int = 8, mode: str = "context_content",
                 sets: bool = True, k: float = 0.5, llm=None):
  """(VAGPTConfig, model ConfigDict) from configs/vagpt.py, optionally with another LLM."""
  from configs import vagpt as model_configs
  from vaujax.models import vagpt
  cd = model_configs.get_config(f"size={size},frames={frames},mode={mode},sets={sets},k={k}")
  cfg = vagpt.config_from_dict(cd)
  if llm is not None:
    cfg = dataclasses.replace(cfg, llm=llm, frame_tokens=dataclasses.replace(
        cfg.frame_tokens, llm_dim=llm.hidden_size))
  return cfg, cd


def video_batch(cfg, dino_dim: int, batch: int, text_len: int, seed: int = 0) -> dict:
  """A prompt of [bos, <video> x V, text x text_len], the text supervised; random features."""
  from vaujax.data.conversation import IGNORE_INDEX, VIDEO_TOKEN_ID
  rng = np.random.RandomState(seed)
  v = cfg.num_video_tokens
  length = 1 + v + text_len
  ids = rng.randint(3, cfg.llm.vocab_size, (batch, length)).astype(np.int32)
  ids[:, 0] = cfg.llm.bos_token_id
  ids[:, 1:1 + v] = VIDEO_TOKEN_ID
  labels = ids.copy()
  labels[:, :1 + v] = IGNORE_INDEX
  t = cfg.num_frames
  return {"input_ids": ids, "labels": labels, "attention_mask": np.ones_like(ids),
          "tower_patches": rng.randn(batch, t, cfg.num_patches, cfg.frame_tokens.vision_dim
                                     ).astype(np.float32),
          "dino_patches": rng.randn(batch, t, cfg.dino_patches, dino_dim).astype(np.float32)}


def vagpt_params(cfg, batch: dict):
  import flax.linen as nn

  from vaujax.models import vagpt
  model = vagpt.VAGPT(cfg)
  b = jax.tree_util.tree_map(lambda x: jnp.asarray(x[:1]), batch)
  params = nn.unbox(jax.jit(model.init)(jax.random.key(0), b["input_ids"], b["tower_patches"],
                                         b["dino_patches"]))
  return model, params


def vagpt_step(cfg, batch: dict, params=None):
  """(model, params, JaxStep) of the trainer's VA-GPT train step on `batch`.

  `params` (a VA-GPT param tree of the same config, e.g. from another frame count: the weights
  do not depend on T or the text length) skips the init; it is donated by the first step.
  """
  from vaujax.models import vagpt
  from vaujax.train import vagpt_task
  if params is None:
    model, params = vagpt_params(cfg, batch)
  else:
    model = vagpt.VAGPT(cfg)
  step, state = jitted_train_step(vagpt_task.loss_fn(model), params)
  return model, params, JaxStep(step, state, batch)


def measure_vagpt(size: str = "tiny", batch: int = TINY_BATCH, text_len: int = 239,
                  repeats: int = max(STEPS, 5)) -> list[dict]:
  """The whole tiny VA-GPT step (vaujax only) and its LLM alone vs HF, same batch shape."""
  import torch

  from vaujax.models import llama
  cfg, cd = vagpt_config(size)
  data = video_batch(cfg, cd.dino_dim, batch, text_len)
  seq = data["input_ids"].shape[1]
  _, params, ours = vagpt_step(cfg, data)
  compile_s, _ = ours.compile_seconds()
  # The same LLaMA as VA-GPT's LLM (its weights), on text of the same length.
  hf, llm_params = hf_llama(cfg.llm)
  text = text_batch(cfg.llm.vocab_size, batch, seq)
  step, state = jitted_train_step(llama_loss(llama.Llama(cfg.llm)), llm_params)
  ours_llm = JaxStep(step, state, text)
  llm_compile_s, _ = ours_llm.compile_seconds()
  ref = TorchStep(hf, text)
  ref()
  times = interleave({"vagpt": ours, "llm": ours_llm, "torch": ref}, repeats)
  tokens = batch * seq
  full, llm_t, torch_t = (summary(times[k]) for k in ("vagpt", "llm", "torch"))
  n_params = count_params(params)
  rows = [
      dict(benchmark="train_step",
           metric=f"tokens/s tiny VA-GPT ({n_params / 1e3:.0f}K params, batch {batch}x{seq})",
           vaujax=tokens / full["best_s"], reference="-", ratio="-", compile_s=compile_s,
           vaujax_median_s=full["median_s"], batch=batch, seq=seq, repeats=repeats,
           note="no HF model of the whole VA-GPT (frame tokens + SETS + LLaMA); the next row "
                "compares its LLM alone"),
      dict(benchmark="train_step",
           metric=f"tokens/s tiny LLaMA of VA-GPT ({count_params(llm_params) / 1e3:.0f}K "
                  f"params, batch {batch}x{seq})",
           vaujax=tokens / llm_t["best_s"], reference=tokens / torch_t["best_s"],
           ratio=torch_t["best_s"] / llm_t["best_s"], compile_s=llm_compile_s,
           vaujax_median_s=llm_t["median_s"], torch_median_s=torch_t["median_s"],
           ratio_median=torch_t["median_s"] / llm_t["median_s"], batch=batch, seq=seq,
           torch_threads=torch.get_num_threads(), repeats=repeats, loadavg_1m=load_average())]
  print(f"tiny VA-GPT ({batch}x{seq}): vaujax {rows[0]['vaujax']:,.0f} tok/s (no reference); "
        f"its LLM: vaujax {rows[1]['vaujax']:,.0f} tok/s, PyTorch {rows[1]['reference']:,.0f} "
        f"tok/s, ratio {rows[1]['ratio']:.2f}x", flush=True)
  return rows


def main():
  return measure_vagpt() + [measure_llama()]


def define_flags(fv) -> None:
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.train_step`: main(), and --json to keep its rows."""
  return common.run_module(__doc__, define_flags, lambda fv: main(), argv)


if __name__ == "__main__":
  run()
