"""python -m vaujax.train --config configs/vagpt_stage1.py --workdir DIR [--config.key=value]"""

from absl import app, flags
from ml_collections import config_flags

from vaujax import cpu_runtime
from vaujax.train import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and metrics")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = _CONFIG.value
  distributed.initialize(config)
  cpu_runtime.reuse_host_memory()   # before the first computation; VAUJAX_REUSE_HOST_MEMORY=0: off
  if config.get("task", "vagpt") == "tetg":
    from vaujax.train import tetg_trainer
    tetg_trainer.run(config, _WORKDIR.value)
    return
  from vaujax.train import loop
  from vaujax.train.checkpoint import CheckpointError
  try:
    loop.train_and_evaluate(config, _WORKDIR.value)
  except loop.Preempted as e:
    print(f"vaujax.train: {e}", flush=True)
    raise SystemExit(143)   # 128 + SIGTERM: schedulers read this as "preempted, retry"
  except (loop.NonFiniteLoss, CheckpointError) as e:
    raise SystemExit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
