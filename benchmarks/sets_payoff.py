"""What SETS buys: prefill and train-step time at keep ratio K = 1.0 vs 0.5 vs 0.25.

VA-GPT with frame_token_mode="tokens" (every kept patch becomes an LLM token), so the LLM
sequence is 1 + T * ceil(K * N) + text tokens and shrinks with K. The LLM is a small LLaMA
(width 256, 4 layers) so it dominates the cost, as the 7B does in the paper; the same videos and
text go through every K. The settings are timed interleaved.

  python -m benchmarks --only=sets_payoff
"""

from __future__ import annotations

import time

import jax
from absl import flags

from benchmarks import common
from benchmarks import train_step as ts
from vaujax.models.params import count_params

SMALL_LLM = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_layers=4,
                 num_heads=8, num_kv_heads=8, max_position_embeddings=2048)
RATIOS = (1.0, 0.5, 0.25)


def measure(llm: dict = SMALL_LLM, frames: int = 8, batch: int = 2, text_len: int = 32,
            ratios=RATIOS, repeats: int = ts.STEPS, prefill_repeats: int = 10) -> list[dict]:
  from vaujax.models import llama, vagpt
  llm_cfg = llama.LlamaConfig(**llm)
  settings, init = {}, None
  for k in ratios:
    cfg, cd = ts.vagpt_config("tiny", frames=frames, mode="tokens", sets=True, k=k, llm=llm_cfg)
    data = ts.video_batch(cfg, cd.dino_dim, batch, text_len, seed=0)
    if init is None:   # the weights do not depend on K: one init, a copy per setting
      init = ts.vagpt_params(cfg, data)[1]
    params = jax.tree_util.tree_map(lambda x: x.copy(), init)
    model, params, step = ts.vagpt_step(cfg, data, params)
    b = step.batch
    fwd = jax.jit(lambda p, b, model=model: model.apply(
        p, b["input_ids"], b["tower_patches"], b["dino_patches"],
        attention_mask=b["attention_mask"]))
    embed = jax.jit(lambda p, b, model=model: model.apply(
        p, b["input_ids"], b["tower_patches"], b["dino_patches"], method=vagpt.VAGPT.embed_inputs))
    start = time.perf_counter()
    jax.block_until_ready(fwd(params, b))
    jax.block_until_ready(embed(params, b))
    step()                                   # donates `params`
    compile_s = time.perf_counter() - start
    settings[k] = dict(
        seq=data["input_ids"].shape[1], compile_s=compile_s, train=step,
        # the train step donates its state: read the live params at each call
        prefill=lambda fwd=fwd, s=step, b=b: jax.block_until_ready(fwd(s.state["params"], b)),
        embed=lambda embed=embed, s=step, b=b: jax.block_until_ready(embed(s.state["params"], b)))
  # A prefill takes ~0.1 s, so it gets more rounds: a best of 3 swung 1.47-1.81x between runs.
  times = ts.interleave({(k, w): s[w] for k, s in settings.items() for w in ("prefill", "embed")},
                        max(prefill_repeats, repeats))
  times.update(ts.interleave({(k, "train"): s["train"] for k, s in settings.items()}, repeats))
  best = {key: min(t) for key, t in times.items()}
  base = ratios[0]
  for k in ratios:
    print(f"K={k}: seq {settings[k]['seq']}, prefill {best[(k, 'prefill')] * 1e3:.1f} ms "
          f"(frame tokens + SETS {best[(k, 'embed')] * 1e3:.1f} ms), train step "
          f"{best[(k, 'train')] * 1e3:.1f} ms", flush=True)
  rows = []
  for what, name in (("prefill", "prefill (forward)"), ("train", "train step")):
    for k in ratios[1:]:
      ours, ref = best[(k, what)], best[(base, what)]
      row = dict(benchmark="sets_payoff", metric=f"{name} ms, K={k} vs K={base}",
                 vaujax=ours * 1e3, reference=ref * 1e3, ratio=ref / ours, k=k,
                 seq=settings[k]["seq"], seq_base=settings[base]["seq"], frames=frames,
                 batch=batch, llm_params_m=count_params(
                     settings[k]["train"].state["params"]["params"]["llm"]) / 1e6,
                 repeats=repeats if what == "train" else max(prefill_repeats, repeats),
                 loadavg_1m=ts.load_average())
      if what == "prefill":
        llm_ours = ours - best[(k, "embed")]
        llm_ref = ref - best[(base, "embed")]
        row.update(embed_ms=best[(k, "embed")] * 1e3, embed_ms_base=best[(base, "embed")] * 1e3,
                   ratio_llm_part=llm_ref / llm_ours if llm_ours > 0 else float("nan"))
      rows.append(row)
      print(f"{name}: K={base}/K={k} = {ref / ours:.2f}x faster"
            + (f" (LLM part {row['ratio_llm_part']:.2f}x)" if what == "prefill" else ""),
            flush=True)
  return rows


def main():
  return measure()


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("ratios", [str(r) for r in RATIOS], "SETS keep ratios K, the first the "
                    "baseline the others are compared with", flag_values=fv)
  flags.DEFINE_integer("frames", 8, "frames per video", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("batch", 2, "videos per step", lower_bound=1, flag_values=fv)
  common.define_json_flag(fv)


def _rows(fv: flags.FlagValues) -> list[dict]:
  from vaujax.app import cli
  try:
    ratios = tuple(float(r) for r in fv.ratios)
  except ValueError:
    raise cli.fail("--ratios", f"expected comma-separated numbers, got "
                               f"{','.join(fv.ratios)!r}") from None
  if len(ratios) < 2 or not all(0 < r <= 1 for r in ratios):
    raise cli.fail("--ratios", "expected two or more keep ratios in (0, 1]")
  return measure(frames=fv.frames, batch=fv.batch, ratios=ratios)


def run(argv=None):
  """`python -m benchmarks.sets_payoff`: main()'s rows, at the settings the flags give."""
  return common.run_module(__doc__, define_flags, _rows, argv)


if __name__ == "__main__":
  run()
