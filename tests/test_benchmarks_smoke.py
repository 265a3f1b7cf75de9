"""The benchmark modules run end to end on tiny shapes and return well-formed rows.

Structure and finite positive numbers only: no timing thresholds (those belong to
`python -m benchmarks`, not to unit tests).
"""

import math
import platform

import pytest

from benchmarks import (eval_buckets, host_memory, input_pipeline, mfu, optimisations,
                        preprocess_frames, scaling, sets_payoff, train_step, utilization)

TINY_LLAMA = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                  num_kv_heads=2, max_position_embeddings=256)
KEYS = ("benchmark", "metric", "vaujax", "reference", "ratio")


def _check(row, name, numeric=("vaujax",)):
  assert all(k in row for k in KEYS), row
  assert row["benchmark"] == name and isinstance(row["metric"], str) and row["metric"]
  for key in numeric:
    value = row[key]
    assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)


def test_train_step_llama_vs_torch():
  row = train_step.measure_llama(TINY_LLAMA, batch=2, seq=16, repeats=1, label="tiny")
  _check(row, "train_step", ("vaujax", "reference", "ratio", "compile_s"))
  assert row["first_loss_diff"] < 1e-3   # same weights, same batch, same loss


def test_train_step_vagpt():
  rows = train_step.measure_vagpt(batch=2, text_len=15, repeats=1)
  assert len(rows) == 2
  _check(rows[0], "train_step")
  assert rows[0]["reference"] == "-" and rows[0]["note"]
  _check(rows[1], "train_step", ("vaujax", "reference", "ratio"))


def test_utilization():
  row = utilization.measure(TINY_LLAMA, batch=2, seq=16, repeats=1, matmul_n=128, label="tiny")
  _check(row, "utilization", ("vaujax", "utilization_6n", "peak_gflops", "xla_gflop_per_step"))
  assert row["xla_gflop_per_step"] >= row["analytic_6n_gflop_per_step"] * 0.5


def test_sets_payoff():
  rows = sets_payoff.measure(llm=TINY_LLAMA, frames=2, batch=1, text_len=4, ratios=(1.0, 0.5),
                             repeats=1)
  assert [r["metric"].split(" ms")[0] for r in rows] == ["prefill (forward)", "train step"]
  for row in rows:
    _check(row, "sets_payoff", ("vaujax", "reference", "ratio"))
    assert row["seq"] < row["seq_base"]   # K=0.5 keeps half the patch tokens


def test_preprocess_frames_both_paths_on_varied_sizes():
  rows = preprocess_frames.measure(count=3, size=56)
  _check(rows[0], "preprocess_frames", ("vaujax", "reference", "ratio", "cpu_ratio"))
  assert rows[0]["shapes"] == 3   # three videos, three sizes: a compile each on the jitted side


def test_scaling():
  rows = scaling.measure(frames=(2, 4), seqs=(48,), batch=1, seq_at_frames=48, frames_at_seq=2,
                         repeats=1)
  assert [(r["sweep"], r["frames"], r["seq"]) for r in rows] == [
      ("frames", 2, 48), ("frames", 4, 52), ("seq", 2, 48)]
  for row in rows:
    _check(row, "scaling", ("vaujax", "device_mib", "bytes_per_param", "host_rss_peak_mib"))
  assert rows[1]["argument_mib"] > rows[0]["argument_mib"]   # more frames, bigger batch


def test_optimisations():
  rows = optimisations.measure(TINY_LLAMA, batch=2, seq=64, repeats=1)   # 2 query chunks
  assert [r["metric"].rsplit(" (", 1)[0] for r in rows] == [
      "tokens/s attention=chunked (default) vs einsum", "tokens/s attention=xla vs chunked",
      "tokens/s remat vs none", "tokens/s scanned vs unrolled layers, both remat",
      "tokens/s remat_policy=dots vs full, layers scanned", "tokens/s no donation vs donated"]
  for row in rows:
    _check(row, "optimisations", ("vaujax", "reference", "ratio", "temp_mib"))
    assert row["first_loss_diff"] < 1e-5   # each switch computes the same step
  donation = next(r for r in rows if "donation" in r["metric"])
  assert donation["alias_mib"] == 0 < donation["before_alias_mib"]   # donation aliases the state
  row = optimisations.measure_vagpt_attention(batch=2, text_len=47, repeats=1)
  _check(row, "optimisations", ("vaujax", "reference", "ratio"))
  row = optimisations.measure_clipping(TINY_LLAMA, batch=2, seq=16, repeats=1)
  _check(row, "optimisations", ("vaujax", "reference", "ratio"))
  assert "clipping" in row["metric"] and row["first_loss_diff"] == 0   # same weights and batch
  assert row["params_max_diff"] < 1e-6   # both clippings led to the same parameters
  row = optimisations.measure_loss(TINY_LLAMA, batch=2, seq=16, repeats=1)
  _check(row, "optimisations", ("vaujax", "reference", "ratio", "temp_mib"))
  assert "loss" in row["metric"] and row["first_loss_diff"] < 1e-6   # the same loss, two ways
  row = optimisations.measure_greedy_argmax(batch=2, vocab=50, repeats=2)
  _check(row, "optimisations", ("vaujax", "reference", "ratio"))
  assert row["same_tokens"]
  row = optimisations.measure_mc_scoring(TINY_LLAMA, batch=2, options=3, prompt=40, option=4,
                                         repeats=1)
  _check(row, "optimisations", ("vaujax", "reference", "ratio", "temp_mib"))
  assert row["max_abs_score_diff"] < 1e-4   # packed and repeated score the same options


def test_mfu_plumbing_on_a_tiny_config():
  """The GPU benchmark's code path on CPU: a tiny LLaMA in bf16, a 128^3 bf16 matmul peak."""
  row = mfu.measure(layers=2, batch=1, seq=64, matmul_n=128, repeats=1, config=TINY_LLAMA,
                    scan_layers=True)
  _check(row, "mfu", ("vaujax", "mfu_measured", "achieved_tflops", "step_s"))
  assert row["layers"] == 2 and row["scan_layers"] and "scanned layers" in row["metric"]
  # PaLM's count: 6 x dense params x tokens + 12 x layers x seq x hidden x tokens
  cfg = type("C", (), {"num_layers": 2, "hidden_size": 8})()
  assert mfu.model_flops(cfg, n_dense=100, batch=2, seq=4) == 6 * 100 * 8 + 12 * 2 * 4 * 8 * 8
  assert mfu.published_peak(type("D", (), {"device_kind": "NVIDIA H200"})()) == 989e12
  assert math.isnan(mfu.published_peak(type("D", (), {"device_kind": "cpu"})()))


def test_eval_buckets():
  row = eval_buckets.measure(num_videos=12, batch_size=5)
  _check(row, "eval_buckets", ("vaujax", "reference", "ratio"))
  assert row["compiles_bucketed"] <= row["compiles_exact"]


@pytest.mark.parametrize("module", [eval_buckets, train_step, utilization, sets_payoff, scaling,
                                    optimisations, mfu, host_memory])
def test_has_main(module):
  assert callable(module.main)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc settings are glibc's")
def test_host_memory_row_runs_both_sides_in_child_processes():
  [row] = host_memory.main(sizes=("tiny",))
  _check(row, "host_memory", ("vaujax", "reference", "ratio"))
  assert "malloc_thresholds=True" in row["settings"]
  assert row["faults_per_step"] < row["reference_faults_per_step"]   # the settings took effect


def test_input_pipeline_loop_in_a_child_process(tmp_path):
  paths = input_pipeline.make_data(str(tmp_path / "data"), num_videos=4)
  result = input_pipeline.run_in_child(paths, str(tmp_path / "run"), 1, 2, 32, drills=1,
                                      grouped=1, steps=4, warmup=1)
  assert set(result) == {"wall_ms", "mean_wall_ms", "data_ms", "step_ms", "rss_growth_mib",
                         "compiles", "mean_seq_len"}
  assert 1 <= result["compiles"] <= 4 and result["mean_seq_len"] <= 320
  assert all(math.isfinite(v) for v in result.values())
  assert result["step_ms"] > 0 and result["wall_ms"] >= result["step_ms"]


def test_vision_attention_row():
  """The tower's before/after row on a tiny CLIP-style tower at 224 px (257 tokens, 3 chunks)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from benchmarks import vision
  from vaujax.models import vit
  model = vit.ViT(vit.tiny_vit("clip", image_size=224))
  x = jnp.asarray(np.random.RandomState(0).randn(2, 224, 224, 3), jnp.float32)
  params = model.init(jax.random.key(0), x[:1])
  row = vision.measure_attention(model, params, x, repeats=1)
  _check(row, "vision", ("vaujax", "reference", "ratio"))
  assert row["distinct_programs"]     # the "before" side really runs the former kernel
  assert row["max_abs_diff"] < 1e-4   # both kernels compute the same tower
