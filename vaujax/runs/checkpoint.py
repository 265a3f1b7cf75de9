"""Orbax checkpointing of the whole training state and the data iterator, behind one class.

Layout: WORKDIR/checkpoints/<step>/{state, data}. `state` holds params, optimizer state, step
and RNG (restored into an abstract sharded target, so a checkpoint saved on one mesh restores
onto another); `data` is the Grain iterator state (JSON). Saves are asynchronous; the newest
`keep` checkpoints (and the best by `best_metric`, if set) are preserved. Restoring walks back
from the newest checkpoint and skips any that cannot be read, saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Optional

import numpy as np
import orbax.checkpoint as ocp

from vaujax import files
from vaujax.errors import InputError


class CheckpointError(InputError):
  """A checkpoint could not be written (disk full, permissions); earlier checkpoints are
  untouched. An InputError, so that the CLI prints it as one line `error: <dir>: ...`, exit 2."""

  def __init__(self, directory: str, step: int, complete: list, cause: Exception):
    last = f"step {complete[-1]}" if complete else "none"
    code = files.no_room(cause)
    reason = os.strerror(code) if code else \
        f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0][:300]}"
    of_step = f" of step {step}" if step >= 0 else ""
    super().__init__(directory, f"writing the checkpoint{of_step} failed ({reason}); training "
                     f"stopped. The last complete checkpoint is {last}; free space and rerun "
                     "to resume from it.")


class Checkpointer:
  def __init__(self, workdir: str, *, every_steps: int, keep: int = 3,
               best_metric: Optional[str] = None, best_mode: str = "min"):
    policies = [ocp.checkpoint_managers.LatestN(keep)]
    if best_metric:
      policies.append(ocp.checkpoint_managers.BestN(
          get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min", n=1))
    self.directory = os.path.join(files.absolute(workdir), "checkpoints")   # or a gs:// URL
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(every_steps),
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=True))
    self._pending = -1   # the step of the async save in flight, if any

  def save(self, step: int, state: Any, data_state: Optional[dict], metrics: Optional[dict] = None,
           force: bool = False) -> bool:
    """Starts an (async) save when the policy says so; a failed write (disk full, permissions)
    raises CheckpointError naming the step and the last complete checkpoint."""
    args = {"state": ocp.args.StandardSave(state)}
    if data_state is not None:
      args["data"] = ocp.args.JsonSave(data_state)
    self.wait()   # the previous (async) save: its failure names its own step
    try:
      saved = self.manager.save(step, args=ocp.args.Composite(**args), metrics=metrics,
                                force=force)
    except (OSError, ValueError) as e:
      self._failed(step, e)
    if saved:
      self._pending = step
    return saved

  def _failed(self, step: int, cause: Exception):
    """Lets the other writes land, removes the failed step's temporary folders (half-written,
    never read as a checkpoint, but they hold the space) and raises CheckpointError."""
    with contextlib.suppress(Exception):
      self.manager.wait_until_finished()
    for name in files.listdir(self.directory) if files.isdir(self.directory) else ():
      if name.startswith(f"{step}.") and "tmp" in name:
        with contextlib.suppress(OSError):
          files.rmtree(os.path.join(self.directory, name))
    raise CheckpointError(self.directory, step, self.complete_steps(), cause) from cause

  def complete_steps(self) -> list[int]:
    """Steps with a finished checkpoint (orbax writes to a temporary name, then renames)."""
    return complete_steps(self.directory)

  def restore_latest(self, abstract_state: Any) -> Optional[tuple[int, Any, Optional[dict]]]:
    """(step, state, data_state) of the newest readable checkpoint, or None if there is none.

    An unreadable checkpoint is moved aside to WORKDIR/damaged_checkpoints/ (never deleted), so
    that training can write that step again and later messages count only readable steps.
    """
    self.manager.wait_until_finished()
    moved = False
    try:
      for step in sorted(self.manager.all_steps(), reverse=True):
        try:
          restored = self.manager.restore(step, args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
          return step, restored["state"], restored.get("data")
        except Exception as e:  # orbax raises many types for damaged checkpoints
          logging.warning("checkpoint %s/%d is unreadable (%s: %s)", self.directory, step,
                          type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
          kept = self._set_aside(step)
          moved = True
          print(f"warning: checkpoint step {step} in {self.directory} is unreadable "
                f"({type(e).__name__}); moved to {kept} and falling back to an earlier "
                "checkpoint", flush=True)
      return None
    finally:
      if moved:
        self.manager.reload()

  def _set_aside(self, step: int) -> str:
    """Moves a damaged step folder to WORKDIR/damaged_checkpoints/<step>[-n]; returns it."""
    return files.move_aside(os.path.join(self.directory, str(step)),
                            os.path.join(os.path.dirname(self.directory), "damaged_checkpoints"),
                            str(step))

  def wait(self):
    """Waits for the async save in flight; its failure is a CheckpointError naming its step."""
    try:
      self.manager.wait_until_finished()
    except (OSError, ValueError) as e:   # an async write failed
      step, self._pending = self._pending, -1
      self._failed(step, e)
    self._pending = -1

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def complete_steps(directory: str) -> list[int]:
  """Steps with a finished checkpoint in a `checkpoints/` folder (orbax writes each under a
  temporary name and renames it when complete)."""
  if not files.isdir(directory):
    return []
  if files.is_url(directory):   # there orbax writes a step in place, then its commit file
    return sorted(int(n) for n in files.listdir(directory) if n.isdigit() and files.exists(
        os.path.join(directory, n, "commit_success.txt")))
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def restore_params_only(path: str, abstract_params: Any) -> Any:
  """Initial params from elsewhere (`config.init_from`), onto `abstract_params`' dtypes:

  - a training run's workdir (its newest checkpoint): stage two starts from stage one;
  - a converted VA-GPT params directory (`python -m vaujax.convert.llamavid`): the published
    LLaMA-VID model, every tensor;
  - a converted LLaMA params directory (`python -m vaujax.convert.llama`): the LLM only, the
    rest keeps its fresh initialisation (`abstract_params` must then be concrete).
  Shapes must match the model config exactly; the error names the parameter.
  """
  import jax
  from vaujax.convert import params_io
  if files.exists(os.path.join(files.absolute(path), params_io.METADATA)):
    loaded, meta = params_io.read_params_dir(path)
    kind = meta.get("kind")
    if kind == "vagpt":
      tree = loaded
    elif kind == "llama":
      tree = {"params": {**abstract_params["params"], "llm": loaded["params"]}}
    else:
      raise InputError(path, f"cannot initialise VA-GPT from a {kind!r} params directory "
                       "(expected a training run, a 'vagpt' or a 'llama' directory)")
    _check_like(tree, abstract_params, path)
    return jax.tree_util.tree_map(lambda target, value: np.asarray(value).astype(target.dtype),
                                  abstract_params, tree)
  if not files.isdir(os.path.join(files.absolute(path), "checkpoints")):
    raise InputError(path, "no checkpoints/ directory (nor vaujax.json) to initialise from")
  params = read_run_params(path)
  return jax.tree_util.tree_map(lambda target, value: value.astype(target.dtype),
                                abstract_params, params)


def read_run_params(checkpoint: str) -> Any:
  """The `params` of a training run's newest finished checkpoint, onto this host's first device.

  `checkpoint` is a workdir (holding `checkpoints/`) or the `checkpoints/` folder itself. Only
  the params are read (no optimizer state), and the run may have been sharded over a mesh this
  machine does not have.
  """
  import jax
  path = files.absolute(checkpoint)
  if not files.exists(path):
    raise InputError(checkpoint, "checkpoint path does not exist")
  ckpt_dir = os.path.join(path, "checkpoints") if files.isdir(
      os.path.join(path, "checkpoints")) else path
  try:
    manager = ocp.CheckpointManager(ckpt_dir, options=ocp.CheckpointManagerOptions(
        read_only=True))
    step = manager.latest_step()
  except Exception as e:  # noqa: BLE001 - orbax raises many types for a non-checkpoint folder
    raise InputError(ckpt_dir, f"not an orbax checkpoint directory ({e})") from e
  if step is None:
    raise InputError(ckpt_dir, "contains no finished checkpoint")
  manager.close()
  state_dir = os.path.join(ckpt_dir, str(step), "state")
  try:
    checkpointer = ocp.PyTreeCheckpointer()
    meta = checkpointer.metadata(state_dir).item_metadata.tree
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = {"params": jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta["params"])}
    restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True))
  except Exception as e:  # noqa: BLE001
    raise InputError(state_dir, f"unreadable checkpoint ({e})") from e
  return restored["params"]


def _check_like(tree, like, source, path=()):
  """Same keys and shapes as `like`, else an InputError naming the parameter."""
  if hasattr(like, "shape"):
    if tuple(np.shape(tree)) != tuple(like.shape):
      raise InputError(source, f"parameter {'/'.join(path)} has shape {np.shape(tree)}, the "
                       f"model needs {tuple(like.shape)}")
    return
  missing = sorted(set(like) - set(tree))
  extra = sorted(set(tree) - set(like))
  if missing or extra:
    raise InputError(source, f"parameters under {'/'.join(path) or '/'} do not match the model: "
                     f"missing {missing[:3]}, unexpected {extra[:3]}")
  for k in like:
    _check_like(tree[k], like[k], source, path + (k,))
