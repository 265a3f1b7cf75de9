"""LLM decode tokens/s: vaujax's jitted KV-cache sampler vs HF `generate` (torch CPU).

Same config, same weights, same prompts, greedy, one process; compile time excluded (reported).

Decoding one sequence reads every dense weight once per token, so batch 1 is bound by memory
bandwidth, not FLOPs. The batch-1 row therefore also reports the roofline: this machine's read
bandwidth (a 256 MiB fp32 matrix-vector product, timed in the same run), the bytes of dense
weights per token, and `ratio_bound`, the ratio a decode running at that bandwidth would reach
against HF.

  python -m benchmarks --only=llm_decode
"""

import time

import jax
import numpy as np

from benchmarks import common
from benchmarks.train_step import interleave
from vaujax.models.params import count_params

CONFIG = dict(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_layers=4,
              num_heads=8, num_kv_heads=8, max_position_embeddings=1024)
PROMPT_LEN, NEW_TOKENS = 32, 64
REPEATS = 5


def _time(fn, repeats=3):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def read_bandwidth(rows: int = 4096, cols: int = 16384, repeats: int = 5) -> float:
  """Bytes/s of a jitted fp32 [1, rows] @ [rows, cols] (256 MiB of weights read once)."""
  import jax.numpy as jnp
  x = jnp.ones((1, rows), jnp.float32)
  w = jax.random.normal(jax.random.key(0), (rows, cols), jnp.float32)
  gemv = jax.jit(jnp.dot)
  seconds = _time(lambda: jax.block_until_ready(gemv(x, w)), repeats)
  return w.nbytes / seconds


def main():
  import torch
  from transformers import LlamaConfig as HFConfig, LlamaForCausalLM

  from vaujax.convert import llama as convert
  from vaujax.generation.sampler import Sampler, SamplingConfig, left_pad
  from vaujax.models import llama

  cfg = llama.LlamaConfig(**CONFIG)
  torch.manual_seed(0)
  hf_kwargs = {k: v for k, v in convert.config_to_hf(cfg).items()
               if k not in ("architectures", "torch_dtype")}
  hf = LlamaForCausalLM(HFConfig(**hf_kwargs)).eval()
  params, _ = convert.params_from_state_dict(
      {k: v.detach().numpy() for k, v in hf.state_dict().items()}, cfg)
  params = jax.device_put(params)     # on the device once, as a user's loaded weights are
  sampling = SamplingConfig(max_new_tokens=NEW_TOKENS, stop_at_eos=False)
  sampler = Sampler(llama.Llama(cfg), sampling)
  rows = []
  for batch in (1, 8):
    prompts = np.random.RandomState(batch).randint(3, cfg.vocab_size, (batch, PROMPT_LEN))
    ids, mask = left_pad(prompts.tolist(), cfg.pad_token_id)
    start = time.perf_counter()
    jax.block_until_ready(sampler(params, ids, mask, jax.random.key(0)).tokens)
    compile_s = time.perf_counter() - start
    tids, tmask = torch.tensor(np.asarray(ids)), torch.tensor(np.asarray(mask))

    def run_ours():
      jax.block_until_ready(sampler(params, ids, mask, jax.random.key(0)).tokens)

    def run_hf():
      with torch.no_grad():
        hf.generate(tids, attention_mask=tmask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                    do_sample=False, pad_token_id=0)

    run_hf()  # warm-up
    # Interleaved, so that other jobs on the machine slow both sides alike; best of REPEATS.
    times = interleave({"ours": run_ours, "hf": run_hf}, REPEATS)
    ours, ref = min(times["ours"]), min(times["hf"])
    tok = batch * NEW_TOKENS
    row = dict(benchmark="llm_decode", metric=f"tokens/s batch {batch}", vaujax=tok / ours,
               reference=tok / ref, ratio=ref / ours, compile_s=compile_s,
               params_m=count_params(params) / 1e6, torch_threads=torch.get_num_threads())
    print(f"batch {batch}: vaujax {tok / ours:,.1f} tok/s, HF generate {tok / ref:,.1f} tok/s, "
          f"ratio {ref / ours:.2f}x (compile {compile_s:.1f} s)", flush=True)
    if batch == 1:
      # Dense weights read per token (the embedding is a one-row gather); fp32.
      dense_bytes = 4 * (count_params(params) - cfg.vocab_size * cfg.hidden_size)
      bandwidth = read_bandwidth()
      floor_s = dense_bytes / bandwidth                  # seconds per token at the roofline
      row.update(dense_mib_per_token=dense_bytes / 2**20, bandwidth_gbs=bandwidth / 1e9,
                 vaujax_bandwidth_share=floor_s / (ours / NEW_TOKENS),
                 ratio_bound=(ref / NEW_TOKENS) / floor_s)
      print(f"  roofline: {dense_bytes / 2**20:.0f} MiB of weights per token at "
            f"{bandwidth / 1e9:.1f} GB/s -> {floor_s * 1e3:.2f} ms/token; vaujax runs at "
            f"{row['vaujax_bandwidth_share']:.0%} of it; a decode at the roofline would be "
            f"{row['ratio_bound']:.2f}x HF", flush=True)
    rows.append(row)
  return rows


def define_flags(fv) -> None:
  common.define_json_flag(fv)


def run(argv=None):
  """`python -m benchmarks.llm_decode`: main(), and --json to keep its rows."""
  return common.run_module(__doc__, define_flags, lambda fv: main(), argv)


if __name__ == "__main__":
  run()
