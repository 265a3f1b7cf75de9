"""The run-directory state matrix: every state a workdir passes through x every action a user
takes on it has a defined outcome, and no cell loses a checkpoint or a metrics line.

States: empty, mid-run (killed after a checkpoint), finished, newest checkpoint damaged,
last-step checkpoint damaged, temporary folders left by a kill, read-only, disk full.
Actions: train (the same config), resume for longer, train with a changed config (with and
without --overwrite), evaluate / infer (`Assistant.from_run`), init_from (stage two).

After every cell: each checkpoint step that existed is still there (in checkpoints/, or moved to
damaged_checkpoints/ or superseded/), and each metrics line that existed is still in
metrics.jsonl, metrics.superseded.jsonl or superseded/. A finished run rerun with any flags is
byte-identical unless --overwrite was asked for.
"""

import errno
import glob
import hashlib
import os
import shutil

import pytest

from configs import tetg as tetg_configs
from configs import vagpt_stage1, vagpt_stage2
from vaujax import testing
from vaujax.errors import InputError
from vaujax.runs import checkpoint as checkpoint_lib
from vaujax.train import loop

STEPS, EVERY = 6, 2


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  """A finished tiny run (checkpoints 2, 4, 6) and its data."""
  root = tmp_path_factory.mktemp("states")
  paths = testing.make_tiny_vagpt_data(str(root / "data"), num_videos=6, num_frames=4)
  paths["tetg"] = testing.train_tiny_tetg(paths, str(root / "tetg"),
                                          tetg_configs.get_config("epochs=2"))
  workdir = str(root / "finished")
  loop.train_and_evaluate(config(paths), workdir)
  return {"paths": paths, "finished": workdir}


def config(paths, steps=STEPS, make=vagpt_stage1.get_config):
  c = make(f"size=tiny,frames=4,steps={steps}")
  c.data.train_json, c.data.feature_dir = paths["train_json"], paths["features"]
  c.data.tokenizer, c.data.tetg_params = paths["tokenizer"], paths["tetg"]
  c.data.batch_size, c.data.max_length = 2, 384
  c.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  c.ckpt_every, c.keep, c.progress = EVERY, 10, False
  return c


def _damage(workdir, step):
  """Overwrites every file of one step's state with garbage (a half-written disk block)."""
  for path in glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**", "*"),
                        recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"\0garbage")


def _state(name, base, tmp_path):
  """A copy of the finished run put into state `name`; -> its workdir."""
  workdir = str(tmp_path / "run")
  if name == "empty":
    return workdir
  shutil.copytree(base["finished"], workdir)
  ckpts = os.path.join(workdir, "checkpoints")
  if name in ("mid_run", "newest_damaged"):   # killed after step 5: checkpoint 6 never landed
    shutil.rmtree(os.path.join(ckpts, str(STEPS)))
  if name == "newest_damaged":
    _damage(workdir, STEPS - EVERY)
  if name == "last_step_damaged":
    _damage(workdir, STEPS)
  if name == "temporary_left":
    os.makedirs(os.path.join(ckpts, f"{STEPS + 2}.orbax-checkpoint-tmp-1700000000"))
  return workdir


def _snapshot(workdir):
  """{relative path: sha256} of every file, and every metrics record ever written."""
  digests, records = {}, []
  for path in sorted(glob.glob(os.path.join(workdir, "**", "*"), recursive=True)):
    if os.path.isfile(path):
      with open(path, "rb") as f:
        digests[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
      if os.path.basename(path).startswith("metrics"):
        records += [line.strip() for line in open(path) if line.strip()]
  return digests, records


def _steps_anywhere(workdir):
  found = set()
  for folder in ("checkpoints", "damaged_checkpoints", "superseded/*/checkpoints",
                 "superseded/*/damaged_checkpoints"):
    for path in glob.glob(os.path.join(workdir, folder, "*")):
      name = os.path.basename(path).split("-")[0]
      if name.isdigit():
        found.add(int(name))
  return found


class _ReadOnly:
  """Any write under `root` fails as on a read-only mount (tests run as root, so chmod would
  not stop a write)."""

  def __init__(self, monkeypatch, root):
    import builtins
    self.root = os.path.abspath(root)
    real_open, real_makedirs, real_replace = builtins.open, os.makedirs, os.replace

    def guard(path):
      if os.path.abspath(os.fspath(path)).startswith(self.root):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

    def open_(path, mode="r", *a, **k):
      if any(c in mode for c in "wax+") and isinstance(path, (str, os.PathLike)):
        guard(path)
      return real_open(path, mode, *a, **k)

    def makedirs(path, *a, **k):
      if not os.path.isdir(path):
        guard(path)
      return real_makedirs(path, *a, **k)

    def replace(src, dst, *a, **k):
      guard(dst)
      return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "makedirs", makedirs)
    monkeypatch.setattr(os, "replace", replace)


def _train(base, workdir, **kw):
  c = config(base["paths"], kw.pop("steps", STEPS))
  if kw.pop("changed", False):
    c.lora.rank = 4
  return loop.train_and_evaluate(c, workdir, overwrite=kw.pop("overwrite", False))


def _evaluate(base, workdir):
  from vaujax.inference.assistant import Assistant
  from vaujax.data import features
  a = Assistant.from_run(workdir)
  vid = sorted(os.listdir(base["paths"]["features"]))[0]
  feats = features.read_features(os.path.join(base["paths"]["features"], vid))
  return a.identity["step"], a.ask(feats, max_new_tokens=2)


def _init_from(base, workdir, tmp_path):
  c = config(base["paths"], 1, vagpt_stage2.get_config)
  c.init_from, c.ckpt_every = workdir, 1
  return loop.train_and_evaluate(c, str(tmp_path / "stage2"))


ACTIONS = ("train", "resume_longer", "changed_config", "changed_overwrite", "evaluate",
           "init_from")
# state -> action -> expected: "ok", ("ok", newest step after), or ("error", fragment)
EXPECTED = {
    "empty": {"train": ("ok", 6), "resume_longer": ("ok", 8), "changed_config": ("ok", 6),
              "changed_overwrite": ("ok", 6), "evaluate": ("error", "run directory does not exist"),
              "init_from": ("error", "does not exist")},
    "mid_run": {"train": ("ok", 6), "resume_longer": ("ok", 8),
                "changed_config": ("error", "lora.rank: 0 -> 4"),
                "changed_overwrite": ("ok", 6), "evaluate": ("ok", 4), "init_from": ("ok", 1)},
    "finished": {"train": ("ok", 6), "resume_longer": ("ok", 8),
                 "changed_config": ("error", "lora.rank: 0 -> 4"),
                 "changed_overwrite": ("ok", 6), "evaluate": ("ok", 6), "init_from": ("ok", 1)},
    "newest_damaged": {"train": ("ok", 6), "resume_longer": ("ok", 8),
                       "changed_config": ("error", "lora.rank: 0 -> 4"),
                       "changed_overwrite": ("ok", 6),
                       "evaluate": ("error", "unreadable checkpoint"),
                       "init_from": ("error", "unreadable checkpoint")},
    "last_step_damaged": {"train": ("ok", 6), "resume_longer": ("ok", 8),
                          "changed_config": ("error", "lora.rank: 0 -> 4"),
                          "changed_overwrite": ("ok", 6),
                          "evaluate": ("error", "unreadable checkpoint"),
                          "init_from": ("error", "unreadable checkpoint")},
    "temporary_left": {"train": ("ok", 6), "resume_longer": ("ok", 8),
                       "changed_config": ("error", "lora.rank: 0 -> 4"),
                       "changed_overwrite": ("ok", 6), "evaluate": ("ok", 6),
                       "init_from": ("ok", 1)},
    "read_only": {"train": ("error", "cannot write to the workdir"),
                  "resume_longer": ("error", "cannot write to the workdir"),
                  "changed_config": ("error", "cannot write to the workdir"),
                  "changed_overwrite": ("error", "cannot write to the workdir"),
                  "evaluate": ("ok", 6), "init_from": ("ok", 1)},
}


def _act(action, base, workdir, tmp_path):
  if action == "train":
    _train(base, workdir)
  elif action == "resume_longer":
    _train(base, workdir, steps=STEPS + 2)
  elif action == "changed_config":
    _train(base, workdir, changed=True)
  elif action == "changed_overwrite":
    _train(base, workdir, changed=True, overwrite=True)
  elif action == "evaluate":
    return _evaluate(base, workdir)[0]
  elif action == "init_from":
    _init_from(base, workdir, tmp_path)
    return 1
  return max(checkpoint_lib.complete_steps(os.path.join(workdir, "checkpoints")))


CELLS = [(s, a) for s in EXPECTED for a in ACTIONS]


@pytest.mark.slow
@pytest.mark.parametrize("state,action", CELLS, ids=[f"{s}-{a}" for s, a in CELLS])
def test_state_action_cell(state, action, base, tmp_path, monkeypatch):
  workdir = _state("finished" if state == "read_only" else state, base, tmp_path)
  before_files, before_records = _snapshot(workdir)
  before_steps = _steps_anywhere(workdir)
  if state == "read_only":
    _ReadOnly(monkeypatch, workdir)
  outcome, detail = EXPECTED[state][action]
  if outcome == "error":
    with pytest.raises(InputError) as e:
      _act(action, base, workdir, tmp_path)
    assert detail in str(e.value), str(e.value)
    assert _snapshot(workdir)[0] == before_files      # a refused action changes nothing
  else:
    assert _act(action, base, workdir, tmp_path) == detail
  monkeypatch.undo()
  after_files, after_records = _snapshot(workdir)
  assert before_steps <= _steps_anywhere(workdir), "a checkpoint was lost"
  missing = [r for r in before_records if r not in after_records]
  assert not missing, f"metrics lines lost: {missing[:2]}"
  if state == "finished" and action in ("train", "evaluate", "changed_config"):
    assert after_files == before_files                 # byte-identical
  if action == "changed_overwrite" and outcome == "ok" and state != "empty":
    assert glob.glob(os.path.join(workdir, "superseded", "1", "checkpoints", str(STEPS - EVERY)))


def test_the_last_step_damaged_is_retrained_and_set_aside(base, tmp_path, capsys):
  """The issue's case: the newest checkpoint is the last step and damaged. The rerun moves it
  to damaged_checkpoints/, retrains the last steps and writes the last step again."""
  workdir = _state("last_step_damaged", base, tmp_path)
  _train(base, workdir)
  out = capsys.readouterr().out
  assert f"checkpoint step {STEPS}" in out and "damaged_checkpoints" in out
  assert checkpoint_lib.complete_steps(os.path.join(workdir, "checkpoints"))[-1] == STEPS
  assert os.path.isdir(os.path.join(workdir, "damaged_checkpoints", str(STEPS)))
  # and the rerun after that is a no-op
  files = _snapshot(workdir)[0]
  _train(base, workdir)
  assert _snapshot(workdir)[0] == files


def test_a_changed_config_names_the_keys_and_touches_nothing(base, tmp_path):
  workdir = _state("finished", base, tmp_path)
  before = _snapshot(workdir)[0]
  c = config(base["paths"])
  c.lora.rank, c.optim.weight_decay = 4, 0.1
  with pytest.raises(InputError, match=r"lora.rank: 0 -> 4; optim.weight_decay: 0.0 -> "
                                       r"0.1\); use a new --workdir, or --overwrite"):
    loop.train_and_evaluate(c, workdir)
  assert _snapshot(workdir)[0] == before


def test_data_that_runs_out_writes_a_checkpoint_and_names_the_key(base, tmp_path):
  c = config(base["paths"], steps=40)
  c.data.num_epochs = 1       # 6 examples (one conversation per video) / batch 2: 3 steps
  workdir = str(tmp_path / "short")
  with pytest.raises(InputError, match=r"--config.data.num_epochs: the training data ran out "
                                       r"after step 3 of 40"):
    loop.train_and_evaluate(c, workdir)
  assert 3 in checkpoint_lib.complete_steps(os.path.join(workdir, "checkpoints"))


@pytest.mark.parametrize("key,value,problem", [
    ("optim.learning_rate", -1e-3, "must be > 0"),
    ("data.batch_size", 0, "must be >= 1"),
    ("ckpt_every", 0, "must be >= 1"),
    ("data.max_length", 0, "must be >= 1"),
    ("total_steps", 0, "must be >= 1"),
    ("keep", 0, "must be >= 1"),
    ("model.sets_ratio", 1.5, "must be <= 1"),
    ("data.train_json", "/nope.json", "/nope.json: instruction file does not exist"),
])
def test_config_validation_before_any_work(base, tmp_path, key, value, problem):
  c = config(base["paths"])
  node = c
  *parents, last = key.split(".")
  for p in parents:
    node = node[p]
  node[last] = value
  with pytest.raises(InputError, match=f"--config.{key}: {problem}"):
    loop.train_and_evaluate(c, str(tmp_path / "never"))
  assert not os.path.exists(tmp_path / "never")
