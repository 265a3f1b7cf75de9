"""Ablations on the synthetic data, in the paper's layout: none / SETS / TETG / both, and K.

  vaujax ablation --workdir ablation_out [--k 0.1,0.3,0.5,0.7,0.9] [--stage1_steps 800 ...]

Stage one is trained twice (with and without TETG hints in the prompt); every variant then runs
stage two from the matching stage-one run (SETS on with ratio K, or off) and is evaluated on the
held-out videos: 4-option MC by option log-likelihood and open QA by generate-then-parse, Total
Acc and Temporal Acc. The data, split and TETG classifier are the demo's (`vaujax.demo`).
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import flags

from vaujax import files
from vaujax.app import cli, demo

K_SWEEP = (0.1, 0.3, 0.5, 0.7, 0.9)


def variants(k_sweep=K_SWEEP) -> list[dict]:
  rows = [{"name": "none", "tetg": False, "sets": None},
          {"name": "SETS", "tetg": False, "sets": 0.5},
          {"name": "TETG", "tetg": True, "sets": None},
          {"name": "SETS + TETG", "tetg": True, "sets": 0.5}]
  rows += [{"name": f"SETS + TETG, K={k}", "tetg": True, "sets": k} for k in k_sweep if k != 0.5]
  return rows


def _stage(make, paths, c, steps, tetg_dir, use_tetg, sets_ratio):
  cfg = demo.stage_config(make, paths, c, steps, tetg_dir if use_tetg else "")
  cfg.model.use_tetg = use_tetg
  cfg.model.use_sets = sets_ratio is not None
  if sets_ratio is not None:
    cfg.model.sets_ratio = sets_ratio
  return cfg


def run_ablation(workdir: str, c: demo.DemoConfig, k_sweep=K_SWEEP, log=print) -> list[dict]:
  from configs import vagpt_stage1, vagpt_stage2
  from vaujax.evaluate import evaluators, qa
  from vaujax.inference.assistant import Assistant
  from vaujax.train import loop
  workdir = os.path.abspath(workdir)
  paths = demo.prepare_data(os.path.join(workdir, "data"), c, log=lambda s: None)
  tetg_dir, _, frame = demo.train_tetg(paths, workdir)
  log(f"TETG frame AUC {frame['frame_auc']:.3f} on {len(paths['test_ids'])} held-out videos")
  stage1 = {}
  for use_tetg in (False, True):
    s1 = _stage(vagpt_stage1.get_config, paths, c, c.stage1_steps, tetg_dir, use_tetg, None)
    s1.model.use_sets = False
    stage1[use_tetg] = os.path.join(workdir, f"stage1_{'tetg' if use_tetg else 'plain'}")
    loop.train_and_evaluate(s1, stage1[use_tetg])
  rows = []
  for v in variants(k_sweep):
    t0 = time.perf_counter()
    s2 = _stage(vagpt_stage2.get_config, paths, c, c.stage2_steps, tetg_dir, v["tetg"], v["sets"])
    s2.init_from = stage1[v["tetg"]]
    name = v["name"].replace(" ", "").replace(",", "_").replace("+", "_").replace("=", "")
    run_dir = os.path.join(workdir, "stage2_" + name)
    loop.train_and_evaluate(s2, run_dir)
    assistant = Assistant.from_run(run_dir)
    _, mc = qa.evaluate_mc(assistant, paths["mc"], paths["features"], method="loglik",
                           instruction=evaluators.mc_instruction(s2), progress=False)
    _, open_qa = qa.evaluate_open(assistant, paths["ucf_qa"], paths["features"], progress=False)
    row = {**v, "mc": mc, "open_qa": open_qa, "seconds": round(time.perf_counter() - t0, 1)}
    rows.append(row)
    log(f"{v['name']:22s} MC {mc['total_acc']:.1%} / {mc['temporal_acc']:.1%}   "
        f"open QA {open_qa['total_acc']:.1%} / {open_qa['temporal_acc']:.1%}")
  files.write_json(os.path.join(workdir, "ablation.json"),
                   {"config": dataclasses.asdict(c), "tetg": frame, "rows": rows})
  log(table(rows))
  return rows


def table(rows: list[dict]) -> str:
  """Markdown table: SETS / TETG check marks, K, then (Total Acc, Temporal Acc) per benchmark."""
  pct = lambda x: "n/a" if x != x else f"{100 * x:.2f}"  # noqa: E731
  lines = ["| SETS | TETG | K | MC Total Acc | MC Temporal Acc | QA Total Acc | QA Temporal Acc |",
           "|:-:|:-:|:-:|--:|--:|--:|--:|"]
  for r in rows:
    lines.append(f"| {'✓' if r['sets'] is not None else ''} | {'✓' if r['tetg'] else ''} | "
                 f"{r['sets'] if r['sets'] is not None else '-'} | {pct(r['mc']['total_acc'])} | "
                 f"{pct(r['mc']['temporal_acc'])} | {pct(r['open_qa']['total_acc'])} | "
                 f"{pct(r['open_qa']['temporal_acc'])} |")
  return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", "ablation_out", "where the runs and ablation.json go",
                      flag_values=fv)
  flags.DEFINE_list("k", [str(k) for k in K_SWEEP], "SETS ratios K to sweep (with TETG)",
                    flag_values=fv)
  defaults = dataclasses.replace(demo.DemoConfig(), stage1_steps=800)
  definers = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
  for field in dataclasses.fields(demo.DemoConfig):
    definers[type(field.default)](field.name, getattr(defaults, field.name),
                                  f"as in `vaujax demo --{field.name}`", flag_values=fv)


def main(fv: flags.FlagValues):
  try:
    ks = tuple(float(k) for k in fv.k if k)
  except ValueError as e:
    raise cli.fail("--k", f"not a list of numbers ({e})") from e
  if not all(0 < k <= 1 for k in ks):
    raise cli.fail("--k", f"every K must be in (0, 1], got {ks}")
  c = demo.DemoConfig(**{f.name: fv[f.name].value for f in dataclasses.fields(demo.DemoConfig)})
  return run_ablation(fv.workdir, c, ks)


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
