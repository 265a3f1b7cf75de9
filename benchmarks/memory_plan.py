"""Memory plan of the paper-scale VA-GPT stage-one train step, without the hardware.

AOT-lowers and compiles the jitted train step of the paper config (Vicuna-7B + LLaMA-VID frame
tokens, fp32 master weights, bf16 compute, AdamW) on a simulated mesh of 8 CPU devices
(fsdp=8) with abstract inputs only (nothing is allocated), and prints per-device bytes from
`compiled.memory_analysis()`. The 8 devices live in a child process
(`--xla_force_host_platform_device_count=8`): a CPU client split into 8 devices runs the other
benchmarks' single-device steps 8-30% slower, so the suite itself keeps one.

The LLM's and the Q-Former's layers run as `lax.scan`s (the paper config's `scan_layers`), so
the full 32-layer plan compiles in under a minute. For the before/after, the same step with
both unrolled is compiled at a reduced depth (an unrolled 32-layer compile takes far longer):

  python -m benchmarks --only=memory_plan        # 32 layers; unrolled vs scan at 4
  VAUJAX_PLAN_LAYERS=8 VAUJAX_PLAN_UNROLLED_LAYERS=2 python -m benchmarks --only=memory_plan
  VAUJAX_PLAN_REMAT_POLICY=dots python -m benchmarks --only=memory_plan   # the main plan's policy
  VAUJAX_PLAN_BATCH=32 python -m benchmarks --only=memory_plan   # global batch (default 8)
  python -m benchmarks.memory_plan --layers=8 --remat_policy=dots --batch=32   # the same, as flags
  python -m benchmarks.memory_plan --rentals    # 8 GPUs fsdp=8, TPU v5e-16, v4-8: batch per chip
"""

import dataclasses
import json
import os
import time
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags

from benchmarks import common
from benchmarks.common import json_from_child

GIB = 1 << 30
DEVICES = 8


def plan(layers: int, batch: int = 8, seq: int = 2048, frames: int = 64, remat: bool = True,
         qformer_remat: bool = True, question_len: Optional[int] = None,
         scan_layers: bool = True, remat_policy: str = "full", mesh_shape=(1, -1, 1)):
  """The compiled train step's memory on a (data, fsdp, tensor) = `mesh_shape` mesh of this
  process's devices; `batch` is the global batch."""
  from configs import vagpt as model_configs
  from vaujax import sharding
  from vaujax.models import vagpt
  from vaujax.train import loop, optimizer, vagpt_task

  mesh = sharding.make_mesh(*mesh_shape)
  cd = model_configs.get_config(f"size=paper,frames={frames},sets=false")
  if question_len:                       # the Q-Former's padded question: [B*T, Q + this]
    cd.qformer_max_length = question_len
  cfg = vagpt.config_from_dict(cd)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, num_layers=layers, remat=remat,
                                                                scan_layers=scan_layers,
                                                                remat_policy=remat_policy),
                            qformer=cfg.qformer and dataclasses.replace(
                                cfg.qformer, remat=qformer_remat, scan_layers=scan_layers))
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
  return {"layers": layers, "batch": batch, "params": n_params, "devices": devices,
          "compile_s": seconds,
          "params_gib_per_device": shard_bytes(params) / GIB,
          "adam_gib_per_device": shard_bytes(opt) / GIB,
          "arguments_gib": mem.argument_size_in_bytes / GIB,
          "outputs_gib": mem.output_size_in_bytes / GIB,
          "temp_gib": mem.temp_size_in_bytes / GIB,
          "alias_gib": mem.alias_size_in_bytes / GIB, "question_len": cd.qformer_max_length,
          "remat_policy": remat_policy, "scan_layers": scan_layers}


def env_settings() -> dict:
  """The settings the VAUJAX_PLAN_* variables give (the defaults of the command-line flags)."""
  return dict(layers=int(os.environ.get("VAUJAX_PLAN_LAYERS", "32")),
              unrolled_layers=int(os.environ.get("VAUJAX_PLAN_UNROLLED_LAYERS", "4")),
              remat_policy=os.environ.get("VAUJAX_PLAN_REMAT_POLICY", "full"),
              batch=int(os.environ.get("VAUJAX_PLAN_BATCH", "8")))


def main():
  return rows(**env_settings())


def rows(layers: int = 32, unrolled_layers: int = 4, remat_policy: str = "full",
         batch: int = 8) -> list[dict]:
  """The plan's rows; in a child process with DEVICES CPU devices unless this is one."""
  if jax.device_count() != DEVICES:
    return _in_child(layers=layers, unrolled_layers=unrolled_layers, remat_policy=remat_policy,
                     batch=batch)
  result = plan(layers, batch=batch, remat_policy=remat_policy)
  print(f"VA-GPT stage one, {layers} of 32 LLM layers (scanned), batch {batch} x 2048 tokens, "
        f"64 frames, bf16 compute, fp32 AdamW, fsdp={result['devices']}, remat per LLM "
        f"(policy {remat_policy}) and Q-Former layer:")
  for key, value in result.items():
    print(f"  {key}: {value:,.3f}" if isinstance(value, float) else
          f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value}")
  # Before/after at a depth where the unrolled layers still compile in a minute.
  unrolled = plan(unrolled_layers, batch=batch, scan_layers=False)
  scanned = result if unrolled_layers == layers else plan(unrolled_layers, batch=batch)
  print(f"  temp at {unrolled_layers} layers: unrolled {unrolled['temp_gib']:,.3f} GiB, scanned "
        f"{scanned['temp_gib']:,.3f} GiB ({unrolled['temp_gib'] / scanned['temp_gib']:.2f}x); "
        f"compile {unrolled['compile_s']:.0f} s vs {scanned['compile_s']:.0f} s")
  return [dict(benchmark="memory_plan", metric=f"per-device GiB, {layers} layers scanned: "
                                               "temp + arguments",
               vaujax=result["temp_gib"] + result["arguments_gib"], reference="", ratio="",
               **result),
          dict(benchmark="memory_plan",
               metric=f"temp GiB/device at {unrolled_layers} layers: scanned vs unrolled",
               vaujax=scanned["temp_gib"], reference=unrolled["temp_gib"],
               ratio=unrolled["temp_gib"] / scanned["temp_gib"],
               compile_s=scanned["compile_s"], reference_compile_s=unrolled["compile_s"])]


def _in_child(devices: int = DEVICES, **settings) -> list[dict]:
  """rows(**settings) in a child process whose CPU client has `devices` devices."""
  xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
  return json_from_child("benchmarks.memory_plan", "--child",
                         *(f"--{name}={value}" for name, value in settings.items()), echo=True,
                         env={"XLA_FLAGS": xla_flags.strip(), "JAX_PLATFORMS": "cpu"})


# The meshes users rent: (name, devices, (data, fsdp, tensor), GiB per device a step may use).
# GPUs: an 80 GB A100/H100 leaves about 78 GiB to XLA (XLA_PYTHON_CLIENT_MEM_FRACTION=.97; the
# default .75 leaves 60). TPU v5e: 16 GiB HBM per chip, one JAX device per chip; TPU v4: 32 GiB
# per chip, one JAX device per chip (megacore), so a v4-8 is 4 devices.
RENTALS = (("8 GPUs, 80 GB each", 8, (1, 8, 1), 78.0),
           ("TPU v5e-16", 16, (1, 16, 1), 16.0),
           ("TPU v4-8", 4, (1, 4, 1), 32.0))


def rental(index: int, layers: int = 32) -> dict:
  """The paper step on RENTALS[index] at 1 and 2 sequences per device (run where the CPU client
  has that many devices): per-device GiB (temp + arguments) is affine in the per-device batch,
  so the two plans give the largest batch per device that fits the device's memory."""
  name, devices, shape, budget = RENTALS[index]
  one, two = (plan(layers, batch=b * devices, mesh_shape=shape) for b in (1, 2))
  total = lambda r: r["temp_gib"] + r["arguments_gib"]  # noqa: E731
  per_sequence = total(two) - total(one)
  fixed = total(one) - per_sequence
  fits = int((budget - fixed) // per_sequence) if per_sequence > 0 else 0
  return dict(mesh=name, devices=devices, mesh_shape=list(shape), budget_gib=budget,
              layers=layers, gib_at_1=total(one), gib_at_2=total(two),
              params_adam_gib=one["params_gib_per_device"] + one["adam_gib_per_device"],
              temp_gib_at_1=one["temp_gib"], per_sequence_gib=per_sequence, fixed_gib=fixed,
              max_batch_per_device=max(fits, 0),
              compile_s=one["compile_s"] + two["compile_s"])


def rental_rows(layers: int = 32) -> list[dict]:
  """`rental` for every mesh of RENTALS, each in a child process with its device count."""
  out = []
  for index, (_, devices, _, _) in enumerate(RENTALS):
    out += _in_child(devices, rental=index, layers=layers)
  for r in out:
    print(f"{r['mesh']}: {r['gib_at_1']:.2f} GiB/device at 1 sequence, {r['gib_at_2']:.2f} at 2 "
          f"({r['per_sequence_gib']:.2f} per sequence over {r['fixed_gib']:.2f}); fits "
          f"{r['max_batch_per_device']} per device in {r['budget_gib']:g} GiB", flush=True)
  return out


def define_flags(fv: flags.FlagValues) -> None:
  s = env_settings()
  flags.DEFINE_integer("layers", s["layers"], "LLM layers of the main (scanned) plan, of 32 "
                       "(env VAUJAX_PLAN_LAYERS)", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("unrolled_layers", s["unrolled_layers"], "depth of the unrolled vs "
                       "scanned comparison (env VAUJAX_PLAN_UNROLLED_LAYERS)", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_string("remat_policy", s["remat_policy"], "remat policy of the main plan: full "
                      "or dots (env VAUJAX_PLAN_REMAT_POLICY)", flag_values=fv)
  flags.DEFINE_integer("batch", s["batch"], "global batch, sequences of 2048 tokens "
                       "(env VAUJAX_PLAN_BATCH)", lower_bound=1, flag_values=fv)
  flags.DEFINE_bool("rentals", False, "plan the meshes users rent instead (RENTALS: 8 GPUs "
                    "fsdp=8, TPU v5e-16, TPU v4-8) at 1 and 2 sequences per device",
                    flag_values=fv)
  flags.DEFINE_integer("rental", -1, "internal: plan RENTALS[this] in this process",
                       flag_values=fv)
  flags.DEFINE_bool("child", False, "internal: this is the child process with the simulated "
                    "devices; print the rows as JSON", flag_values=fv)
  common.define_json_flag(fv)


def _rows(fv: flags.FlagValues) -> list[dict]:
  if fv.rental >= 0:
    out = [rental(fv.rental, layers=fv.layers)]
  elif fv.rentals:
    out = rental_rows(layers=fv.layers)
  else:
    out = rows(layers=fv.layers, unrolled_layers=fv.unrolled_layers,
               remat_policy=fv.remat_policy, batch=fv.batch)
  if fv.child:
    print(json.dumps(out))
  return out


def run(argv=None):
  """`python -m benchmarks.memory_plan`: main(), with the settings the flags give."""
  return common.run_module(__doc__, define_flags, _rows, argv)


if __name__ == "__main__":
  run()
