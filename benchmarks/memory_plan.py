"""Memory plan of the paper-scale VA-GPT stage-one train step, without the hardware.

AOT-lowers and compiles the jitted train step of the paper config (Vicuna-7B + LLaMA-VID frame
tokens, fp32 master weights, bf16 compute, AdamW) on a simulated mesh of 8 CPU devices
(fsdp=8) with abstract inputs only (nothing is allocated), and prints per-device bytes from
`compiled.memory_analysis()`.

  python -m benchmarks memory_plan                     # full 32 layers (compiles for minutes)
  VAUJAX_PLAN_LAYERS=4 python -m benchmarks memory_plan   # reduced depth, scales linearly
"""

import dataclasses
import os
import time
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

GIB = 1 << 30


def plan(layers: int, batch: int = 8, seq: int = 2048, frames: int = 64, remat: bool = True,
         qformer_remat: bool = True, question_len: Optional[int] = None):
  from configs import vagpt as model_configs
  from vaujax import sharding
  from vaujax.models import vagpt
  from vaujax.train import loop, optimizer, vagpt_task

  mesh = sharding.make_mesh(data=1, fsdp=-1, tensor=1)
  cd = model_configs.get_config(f"size=paper,frames={frames},sets=false")
  if question_len:                       # the Q-Former's padded question: [B*T, Q + this]
    cd.qformer_max_length = question_len
  cfg = vagpt.config_from_dict(cd)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, num_layers=layers, remat=remat),
                            qformer=dataclasses.replace(cfg.qformer, remat=qformer_remat))
  model = vagpt.VAGPT(cfg, dtype=jnp.bfloat16, param_dtype=jnp.float32)
  config = ml_collections.ConfigDict(dict(data=dict(max_length=seq), model=cd))
  batch_abs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding.batch_sharding(
      mesh, v.ndim)) for k, v in vagpt_task.dummy_batch(cfg, config, batch).items()}
  optim = ml_collections.ConfigDict(dict(learning_rate=2e-5, warmup_steps=30, total_steps=1000,
                                         weight_decay=0.0, grad_clip=1.0, accumulate=1,
                                         trainable=[(".*", "train")]))
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    shapes = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch_abs.items()}
    boxed = jax.eval_shape(vagpt_task.init_fn(model), jax.random.key(0), shapes)
    param_sh = sharding.logical_to_mesh_sharding(boxed, mesh)
    values = jax.tree_util.tree_map(lambda b: b.value, boxed,
                                    is_leaf=lambda b: isinstance(b, nn.LogicallyPartitioned))
    params = jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                    values, param_sh)
    tx = optimizer.make_optimizer(optim, params)
    opt_abstract = jax.eval_shape(tx.init, params)
    opt_sh = sharding.shardings_like_params(opt_abstract, params, param_sh, mesh)
    opt = jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                 opt_abstract, opt_sh)
    rep = sharding.replicated(mesh)
    state = {"step": jax.ShapeDtypeStruct((), jnp.int32, sharding=rep), "params": params,
             "opt_state": opt, "rng": jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=rep)}
    state_sh = jax.tree_util.tree_map(lambda x: x.sharding, state)
    step = loop.make_train_step(vagpt_task.loss_fn(model), tx,
                                optimizer.learning_rate_schedule(optim))
    start = time.perf_counter()
    compiled = jax.jit(step, in_shardings=(state_sh, {k: v.sharding for k, v in batch_abs.items()}),
                       out_shardings=(state_sh, None), donate_argnums=0).lower(
                           state, batch_abs).compile()
    seconds = time.perf_counter() - start
  mem = compiled.memory_analysis()
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  shard_bytes = lambda tree: sum(  # noqa: E731  bytes one device holds, from the shardings
      int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize
      for x in jax.tree_util.tree_leaves(tree) if x.shape)
  devices = mesh.devices.size
  return {"layers": layers, "params": n_params, "devices": devices, "compile_s": seconds,
          "params_gib_per_device": shard_bytes(params) / GIB,
          "adam_gib_per_device": shard_bytes(opt) / GIB,
          "arguments_gib": mem.argument_size_in_bytes / GIB,
          "outputs_gib": mem.output_size_in_bytes / GIB,
          "temp_gib": mem.temp_size_in_bytes / GIB,
          "alias_gib": mem.alias_size_in_bytes / GIB, "question_len": cd.qformer_max_length}


def main():
  layers = int(os.environ.get("VAUJAX_PLAN_LAYERS", "4"))
  result = plan(layers)
  print(f"VA-GPT stage one, {layers} of 32 LLM layers, batch 8 x 2048 tokens, 64 frames, "
        f"bf16 compute, fp32 AdamW, fsdp={result['devices']}, remat per LLM and Q-Former layer:")
  for key, value in result.items():
    print(f"  {key}: {value:,.3f}" if isinstance(value, float) else f"  {key}: {value:,}")
  # Before/after: LLaMA-VID's longest Q-Former question (256 tokens) against the config's.
  longest = plan(layers, question_len=256)
  print(f"  temp with 256-token Q-Former questions: {longest['temp_gib']:,.3f} GiB "
        f"({longest['temp_gib'] / result['temp_gib']:.2f}x)")
  return [dict(benchmark="memory_plan", metric=f"temp GiB/device ({layers} layers)",
               vaujax=result["temp_gib"], reference="", ratio="", **result),
          dict(benchmark="memory_plan",
               metric=f"temp GiB/device, Q-Former question 256 / {result['question_len']} tokens",
               vaujax=result["temp_gib"], reference=longest["temp_gib"],
               ratio=longest["temp_gib"] / result["temp_gib"])]


if __name__ == "__main__":
  main()
