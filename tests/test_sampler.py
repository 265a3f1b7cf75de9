"""KV-cache sampler and continuation scoring against HF transformers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from tests.llama_reference import hf_model, vaujax_params
from vaujax.generation import scoring
from vaujax.generation.sampler import (Sampler, SamplingConfig, filter_logits, first_argmax,
                                       left_pad)
from vaujax.models import llama

CFG = llama.tiny_llama()


@pytest.fixture(scope="module")
def models():
  hf = hf_model(CFG, seed=1)
  return hf, vaujax_params(hf, CFG)


@pytest.mark.parametrize("prompts", [[[1, 7, 9, 33, 70, 5]],
                                     [[1, 5, 9, 33, 70], [1, 40, 41], [1, 3, 4, 5, 6, 7, 8, 9]]])
def test_greedy_32_tokens_equal_hf_generate(models, prompts):
  hf, params = models
  ids, mask = left_pad(prompts, CFG.pad_token_id)
  out = Sampler(llama.Llama(CFG), SamplingConfig(max_new_tokens=32))(
      params, ids, mask, jax.random.key(0))
  with torch.no_grad():
    ref = hf.generate(torch.tensor(np.asarray(ids)), attention_mask=torch.tensor(np.asarray(mask)),
                      max_new_tokens=32, do_sample=False, pad_token_id=CFG.pad_token_id,
                      eos_token_id=CFG.eos_token_id)[:, ids.shape[1]:].numpy()
  ours = np.asarray(out.tokens)
  np.testing.assert_array_equal(ours[:, :ref.shape[1]], ref)
  # scores are log-probs of the chosen tokens under HF's model
  with torch.no_grad():
    full = torch.cat([torch.tensor(np.asarray(ids)), torch.tensor(ours)], 1)
    fmask = torch.cat([torch.tensor(np.asarray(mask)), torch.ones_like(torch.tensor(ours))], 1)
    pos = (fmask.cumsum(1) - 1).clamp(min=0)
    logp = torch.log_softmax(hf(full, attention_mask=fmask, position_ids=pos).logits, -1)
  p = ids.shape[1]
  ref_scores = np.take_along_axis(logp[:, p - 1:-1].numpy(), ours[..., None], -1)[..., 0]
  live = np.arange(32)[None] < np.asarray(out.lengths)[:, None]
  np.testing.assert_allclose(np.asarray(out.scores)[live], ref_scores[live], atol=1e-4)


def test_first_argmax_equals_jnp_argmax():
  """Ties (the first wins), NaN (the first NaN wins), +-inf, and random rows of two shapes."""
  nan, inf = np.nan, np.inf
  rows = np.array([[1, 3, 3, 0], [nan, 1, nan, 5], [-inf] * 4, [2, inf, inf, 1], [0, 0, 0, 0],
                   [5, -inf, nan, inf]], np.float32)
  rng = np.random.RandomState(0)
  for x in (rows, rng.randn(8, 32000).astype(np.float32),
            rng.randint(0, 3, (4, 5, 7)).astype(np.float32)):
    np.testing.assert_array_equal(np.asarray(jax.jit(first_argmax)(x)), np.argmax(x, axis=-1))
    np.testing.assert_array_equal(np.asarray(first_argmax(x)), np.asarray(jnp.argmax(x, -1)))


def test_eos_stops_each_row(models):
  """Declare the token that greedy decoding emits at step 3 of row 0 to be EOS: that row must stop
  there (pad afterwards); every row equals the unstopped greedy run up to its own first EOS."""
  import dataclasses
  _, params = models
  ids, mask = left_pad([[1, 5, 9], [1, 40, 41, 42]], CFG.pad_token_id)
  free = np.asarray(Sampler(llama.Llama(CFG), SamplingConfig(max_new_tokens=10, stop_at_eos=False))(
      params, ids, mask, jax.random.key(0)).tokens)
  eos = int(free[0, 3])
  cfg = dataclasses.replace(CFG, eos_token_id=eos)
  out = Sampler(llama.Llama(cfg), SamplingConfig(max_new_tokens=10))(params, ids, mask,
                                                                      jax.random.key(0))
  toks, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
  for row in range(2):
    hits = np.nonzero(free[row] == eos)[0]
    stop = int(hits[0]) + 1 if len(hits) else 10
    np.testing.assert_array_equal(toks[row, :stop], free[row, :stop])
    assert (toks[row, stop:] == cfg.pad_token_id).all()
    assert lengths[row] == stop
    assert (np.asarray(out.scores)[row, stop:] == 0).all()
  assert lengths[0] <= 4


def test_top_k_one_equals_greedy(models):
  _, params = models
  ids, mask = left_pad([[1, 5, 9, 33], [1, 40, 41]], CFG.pad_token_id)
  model = llama.Llama(CFG)
  greedy = Sampler(model, SamplingConfig(max_new_tokens=12))(params, ids, mask, jax.random.key(0))
  topk1 = Sampler(model, SamplingConfig(max_new_tokens=12, temperature=0.7, top_k=1))(
      params, ids, mask, jax.random.key(5))
  np.testing.assert_array_equal(np.asarray(greedy.tokens), np.asarray(topk1.tokens))


def test_filters_keep_exactly_the_allowed_tokens():
  logits = jnp.log(jnp.asarray([[0.5, 0.2, 0.15, 0.1, 0.05]], jnp.float32))
  kept = lambda cfg: np.isfinite(np.asarray(filter_logits(logits, cfg))) & (  # noqa: E731
      np.asarray(filter_logits(logits, cfg)) > np.finfo(np.float32).min)
  assert kept(SamplingConfig(temperature=1.0, top_k=2)).tolist() == [[1, 1, 0, 0, 0]]
  # nucleus 0.8: 0.5 + 0.2 = 0.7 < 0.8 so the third token is needed; the fourth is not.
  assert kept(SamplingConfig(temperature=1.0, top_p=0.8)).tolist() == [[1, 1, 1, 0, 0]]
  assert kept(SamplingConfig(temperature=1.0, top_p=0.3)).tolist() == [[1, 0, 0, 0, 0]]


def test_sampling_draws_follow_the_filtered_distribution(models):
  _, params = models
  model = llama.Llama(CFG)
  ids, mask = left_pad([[1, 5, 9, 33]] * 512, CFG.pad_token_id)
  cfg = SamplingConfig(max_new_tokens=1, temperature=1.3, top_k=5, top_p=0.9)
  out = Sampler(model, cfg)(params, ids, mask, jax.random.key(3))
  last = model.apply(params, ids[:1], attention_mask=mask[:1])[:, -1]
  filtered = np.asarray(filter_logits(last, cfg))[0]
  allowed = set(np.nonzero(filtered > np.finfo(np.float32).min)[0].tolist())
  drawn = np.asarray(out.tokens)[:, 0]
  assert set(drawn.tolist()) <= allowed
  probs = np.exp(filtered - filtered.max())
  probs /= probs.sum()
  freq = np.bincount(drawn, minlength=CFG.vocab_size) / len(drawn)
  assert np.abs(freq - probs).max() < 0.08


def test_too_long_prompt_is_rejected(models):
  _, params = models
  ids, mask = left_pad([[1] * 500], CFG.pad_token_id)
  with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
    Sampler(llama.Llama(CFG), SamplingConfig(max_new_tokens=32))(params, ids, mask,
                                                                 jax.random.key(0))


def test_continuation_logprobs_equal_hf(models):
  hf, params = models
  prompts, conts = [[1, 5, 9, 33], [1, 40]], [[7, 8, 9], [10, 11]]
  ids, mask = left_pad(prompts, 0)
  cont = jnp.asarray([[7, 8, 9], [10, 11, 0]])
  cmask = jnp.asarray([[1, 1, 1], [1, 1, 0]])
  total, mean = scoring.continuation_logprobs(llama.Llama(CFG), params, ids, mask, cont, cmask)
  for row, (p, c) in enumerate(zip(prompts, conts)):
    with torch.no_grad():
      logp = torch.log_softmax(hf(torch.tensor([p + c])).logits[0], -1).numpy()
    ref = sum(logp[len(p) - 1 + t, tok] for t, tok in enumerate(c))
    assert abs(float(total[row]) - ref) < 1e-4
    assert abs(float(mean[row]) - ref / len(c)) < 1e-4


@pytest.mark.parametrize("overrides", [
    {}, {"attention_impl": "einsum"}, {"attention_impl": "xla"}, {"remat": True},
    {"scan_layers": True, "remat": True}], ids=["chunked", "einsum", "xla", "remat", "scan"])
def test_packed_options_equal_hf_one_pair_at_a_time(models, overrides):
  """K options packed after one shared prompt score as HF scores each prompt + option alone:
  left-padded prompts of different lengths (long enough for 3 query chunks), options of
  different lengths, one of them a single token."""
  import dataclasses
  hf, params = models
  rng = np.random.RandomState(0)
  prompts = [[1] + rng.randint(3, CFG.vocab_size, 60).tolist(), [1, 40, 41, 42]]
  options = [[[7, 8, 9], [10, 11], [12], [13, 14, 15, 16]],
             [[20], [21, 22, 23, 24], [25, 26], [27, 28, 29]]]
  ids, mask = left_pad(prompts, 0)
  width = max(len(o) for opts in options for o in opts)
  opt_ids = np.zeros((2, 4, width), np.int32)
  opt_mask = np.zeros((2, 4, width), np.int32)
  for b, opts in enumerate(options):
    for i, o in enumerate(opts):
      opt_ids[b, i, :len(o)], opt_mask[b, i, :len(o)] = o, 1
  model = llama.Llama(dataclasses.replace(CFG, **overrides))
  assert llama.query_chunk(ids.shape[1] + 4 * width, CFG.attention_chunks) == 32
  total, mean = scoring.option_logprobs(model, params, ids, mask, jnp.asarray(opt_ids),
                                        jnp.asarray(opt_mask))
  assert total.shape == mean.shape == (2, 4)
  for b, (p, opts) in enumerate(zip(prompts, options)):
    for i, c in enumerate(opts):
      with torch.no_grad():
        logp = torch.log_softmax(hf(torch.tensor([p + c])).logits[0].double(), -1).numpy()
      ref = sum(logp[len(p) - 1 + t, tok] for t, tok in enumerate(c))
      assert abs(float(total[b, i]) - ref) < 1e-4, (b, i)
      assert abs(float(mean[b, i]) - ref / len(c)) < 1e-4, (b, i)


def test_per_query_mask_is_for_the_cacheless_forward_only(models):
  _, params = models
  ids, mask = left_pad([[1, 5, 9, 33]], 0)
  cache = llama.init_cache(CFG, 1, 8)
  per_query = jnp.ones((1, 4, 4), bool)
  with pytest.raises(ValueError, match="per-query attention mask must be"):
    llama.Llama(CFG).apply(params, ids, attention_mask=per_query, cache=cache,
                           cache_index=jnp.int32(0))
  with pytest.raises(ValueError, match="per-query attention mask must be"):
    llama.Llama(CFG).apply(params, ids, attention_mask=jnp.ones((1, 4, 5), bool))
