"""The smallest end-to-end run of vaujax's LLM path (placeholder for the full VA-GPT demo).

Trains a tiny SentencePiece tokenizer, initialises a tiny LLaMA, exports it as a HF checkpoint
directory, re-imports it, checks the round trip, and generates from a Vicuna-style prompt.

  python -m vaujax.demo --workdir demo_out
"""

from __future__ import annotations

import argparse
import os
import time

import flax.linen as nn
import jax
import numpy as np

from vaujax.convert import llama as convert
from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
from vaujax.generation.sampler import Sampler, SamplingConfig, left_pad
from vaujax.models import llama

CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant.",
    "USER: Are there any anomalies? ASSISTANT: Yes, an explosion happens from 3.0 to 7.5 seconds.",
    "USER: What happens in the video? ASSISTANT: A car drives through the parking lot.",
    "Known common crime types are: Abuse, Arrest, Arson, Assault, Burglary, Explosion, Fighting.",
]


def run(workdir: str) -> dict:
  os.makedirs(workdir, exist_ok=True)
  start = time.perf_counter()
  tok = Tokenizer.load(train_sentencepiece(CORPUS * 10, os.path.join(workdir, "tokenizer"),
                                           vocab_size=512))
  print(f"[1/4] tokenizer: {tok.vocab_size} pieces -> {tok.path}")
  cfg = llama.tiny_llama(vocab_size=tok.vocab_size)
  model = llama.Llama(cfg)
  params = model.init(jax.random.key(0), np.zeros((1, 4), np.int32))
  params = jax.tree_util.tree_map(np.asarray, nn.unbox(params))
  print(f"[2/4] tiny LLaMA: {llama.count_params(params):,} parameters")
  hf_dir = os.path.join(workdir, "hf_checkpoint")
  convert.save_hf(params, cfg, hf_dir)
  reloaded, cfg2 = convert.load_hf(hf_dir)
  same = all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(params),
                                                  jax.tree_util.tree_leaves(reloaded)))
  print(f"[3/4] exported to {hf_dir} and re-imported: bit-exact={same}, config equal={cfg2 == cfg}")
  prompt = ("A chat between a curious user and an artificial intelligence assistant. "
            "USER: Are there any anomalies? ASSISTANT:")
  ids, mask = left_pad([tok.encode(prompt, bos=True)], cfg.pad_token_id)
  out = Sampler(model, SamplingConfig(max_new_tokens=16, temperature=0.8, top_p=0.9))(
      reloaded, ids, mask, jax.random.key(1))
  text = tok.decode(np.asarray(out.tokens)[0, :int(out.lengths[0])])
  print(f"[4/4] untrained model's answer: {text!r}")
  print(f"done in {time.perf_counter() - start:.1f} s; outputs in {workdir}/")
  return {"round_trip_exact": same, "answer": text}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", default="demo_out")
  args = parser.parse_args(argv)
  result = run(args.workdir)
  if not result["round_trip_exact"]:
    raise SystemExit("round trip was not bit-exact")


if __name__ == "__main__":
  main()
