"""LLM decode tokens/s: vaujax's jitted KV-cache sampler vs HF `generate` (torch CPU).

Same config, same weights, same prompts, greedy, one process; compile time excluded (reported).
  python -m benchmarks llm_decode
"""

import time

import jax
import numpy as np

CONFIG = dict(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_layers=4,
              num_heads=8, num_kv_heads=8, max_position_embeddings=1024)
PROMPT_LEN, NEW_TOKENS = 32, 64


def _time(fn, repeats=3):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


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
  sampling = SamplingConfig(max_new_tokens=NEW_TOKENS, stop_at_eos=False)
  sampler = Sampler(llama.Llama(cfg), sampling)
  rows = []
  for batch in (1, 8):
    prompts = np.random.RandomState(batch).randint(3, cfg.vocab_size, (batch, PROMPT_LEN))
    ids, mask = left_pad(prompts.tolist(), cfg.pad_token_id)
    start = time.perf_counter()
    jax.block_until_ready(sampler(params, ids, mask, jax.random.key(0)).tokens)
    compile_s = time.perf_counter() - start
    ours = _time(lambda: jax.block_until_ready(sampler(params, ids, mask,
                                                       jax.random.key(0)).tokens))
    tids, tmask = torch.tensor(np.asarray(ids)), torch.tensor(np.asarray(mask))

    def run_hf():
      with torch.no_grad():
        hf.generate(tids, attention_mask=tmask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                    do_sample=False, pad_token_id=0)

    run_hf()  # warm-up
    ref = _time(run_hf)
    tok = batch * NEW_TOKENS
    row = dict(benchmark="llm_decode", metric=f"tokens/s batch {batch}", vaujax=tok / ours,
               reference=tok / ref, ratio=ref / ours, compile_s=compile_s,
               params_m=llama.count_params(params) / 1e6, torch_threads=torch.get_num_threads())
    print(f"batch {batch}: vaujax {tok / ours:,.1f} tok/s, HF generate {tok / ref:,.1f} tok/s, "
          f"ratio {ref / ours:.2f}x (compile {compile_s:.1f} s)", flush=True)
    rows.append(row)
  return rows


if __name__ == "__main__":
  main()
