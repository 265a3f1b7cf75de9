r"""Train VA-GPT (stage one or two) or the TETG classifier from an ml_collections config.

  vaujax train --config configs/vagpt_stage1.py:size=tiny --workdir runs/stage1 \
      --config.data.train_json=train.json --config.data.feature_dir=feats \
      --config.data.tokenizer=tokenizer.model [--config.key=value ...]
  vaujax train --config configs/tetg.py --workdir runs/tetg \
      --config.data.feature_dir=feats --config.data.labels_json=labels.json
  (`python -m vaujax.train` is the same command)

The workdir resumes from its newest readable checkpoint (a damaged one is moved to
damaged_checkpoints/); a workdir trained with another config is refused (--overwrite moves it
to superseded/); nothing is ever deleted. The config is validated before any work. Besides checkpoints/ and metrics.jsonl it gets
run/: the resolved config, the tokenizer(s), the TETG classifier and every setting evaluate and
infer need (vaujax/runs/run_dir.py). Exit 143 after a SIGTERM (checkpoint written: rerun to
resume); exit 2 for a bad input, naming it.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from vaujax.app import cli


def define_flags(fv: flags.FlagValues, argv) -> None:
  config_flags.DEFINE_config_file(
      "config", None, "ml_collections config file (configs/*.py[:arg]); override any key with "
      "--config.key=value", lock_config=True, flag_values=fv, sys_argv=list(argv))
  flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and the run's "
                      "artifact (run/); resumed when it has checkpoints", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "when the workdir holds a run of another config, move "
                    "it to WORKDIR/superseded/<n>/ and start afresh (without this flag, such a "
                    "rerun is an error naming the changed keys)", flag_values=fv)


def main(fv: flags.FlagValues):
  cli.require(fv, "config", "workdir")
  config = fv.config
  from vaujax import cpu_runtime
  from vaujax.train import distributed
  distributed.initialize(config)
  cpu_runtime.reuse_host_memory()   # before the first computation; VAUJAX_REUSE_HOST_MEMORY=0: off
  if config.get("task", "vagpt") == "tetg":
    from vaujax.train import tetg_trainer
    return tetg_trainer.run(config, fv.workdir)
  from vaujax.train import loop
  try:   # a failed checkpoint write (disk full) is an InputError: one line, exit 2
    return loop.train_and_evaluate(config, fv.workdir, overwrite=fv.overwrite)
  except loop.Preempted as e:
    print(f"vaujax train: {e}", flush=True)
    raise SystemExit(143)   # 128 + SIGTERM: schedulers read this as "preempted, retry"
  except loop.NonFiniteLoss as e:
    raise SystemExit(f"error: {e}")


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
