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
import json
import os
import shutil
import subprocess
import sys
import tempfile

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


# -- disk full: a real EFBIG from the kernel, in a subprocess --------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Runs `python -m <module> <args>` with every write past <limit> bytes of a file failing as on a
# full disk: RLIMIT_FSIZE (Python ignores SIGXFSZ, so the write returns EFBIG instead of killing
# the process). Set in the child itself: a preexec_fn would fork the multithreaded test process.
_LIMITED = ("import resource, runpy, sys; "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY));"
            " target = sys.argv[2]; sys.argv = [target] + sys.argv[3:]; "
            "runpy.run_path(target, run_name='__main__') if target.endswith('.py') else "
            "runpy.run_module(target, run_name='__main__', alter_sys=True)")


def _command(module, args, limit):
  """`python -m module args` (or `python script.py args`) with writes limited to `limit` bytes
  a file; -> (exit code, non-empty stderr lines, stdout)."""
  env = dict(os.environ, PYTHONPATH=REPO)
  cache = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if cache and os.path.isdir(cache):   # a linked copy: under the limit JAX leaves truncated
    private = os.path.join(tempfile.mkdtemp(prefix="no-room-"), "cache")   # entries behind
    shutil.copytree(cache, private, copy_function=os.link)
    env.update(JAX_COMPILATION_CACHE_DIR=private, VAUJAX_COMPILATION_CACHE=private)
  r = subprocess.run([sys.executable, "-c", _LIMITED, str(limit), module, *args], cwd=REPO,
                     capture_output=True, text=True, env=env, timeout=600)
  return r.returncode, [l for l in r.stderr.splitlines() if l.strip()], r.stdout


def _train_flags(paths, workdir, steps):
  return [f"--config=configs/vagpt_stage1.py:size=tiny,frames=4,steps={steps}",
          f"--workdir={workdir}", f"--config.data.train_json={paths['train_json']}",
          f"--config.data.feature_dir={paths['features']}",
          f"--config.data.tokenizer={paths['tokenizer']}",
          f"--config.data.tetg_params={paths['tetg']}", "--config.data.batch_size=2",
          "--config.data.max_length=384", "--config.mesh.data=1", "--config.mesh.fsdp=1",
          "--config.mesh.tensor=1", "--config.mesh.devices=1", f"--config.ckpt_every={EVERY}",
          "--config.keep=10", "--config.progress=False"]


def _whole_lines(path):
  with open(path, "rb") as f:
    data = f.read()
  assert data.endswith(b"\n"), f"{path} ends in a torn line"
  return [json.loads(l) for l in data.splitlines()]


@pytest.mark.slow
def test_disk_full_during_training_stops_in_one_line_and_the_rerun_resumes(base, tmp_path):
  """State "disk full" x resume: the checkpoint of step 8 cannot be written (its data files
  are larger than the writes allowed). One line `error: <dir>: ...`, exit 2; checkpoints 2, 4,
  6 and every metrics line byte-identical, no half-written step folder; with space back the
  same command resumes from step 6 and finishes."""
  workdir = _state("finished", base, tmp_path)
  before, before_records = _snapshot(workdir)
  code, lines, _ = _command("vaujax.train", _train_flags(base["paths"], workdir, STEPS + 4),
                         100_000)
  assert code == 2 and len(lines) == 1, lines
  assert lines[0].startswith(f"error: {workdir}/checkpoints: writing the checkpoint of step "
                             f"{STEPS + 2} failed (File too large); training stopped. The last "
                             f"complete checkpoint is step {STEPS}"), lines
  after = _snapshot(workdir)[0]
  assert {k: v for k, v in after.items() if k.startswith("checkpoints")} == {
      k: v for k, v in before.items() if k.startswith("checkpoints")}
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6"]
  records = [json.dumps(r) for r in _whole_lines(os.path.join(workdir, "metrics.jsonl"))]
  assert records[:len(before_records)] == before_records
  _train(base, workdir, steps=STEPS + 4)     # space is back
  assert checkpoint_lib.complete_steps(os.path.join(workdir, "checkpoints"))[-1] == STEPS + 4
  assert [r["step"] for r in _whole_lines(os.path.join(workdir, "metrics.jsonl"))] == list(
      range(1, STEPS + 5))
  missing = [r for r in before_records if r not in _snapshot(workdir)[1]]
  assert not missing


@pytest.mark.slow
def test_disk_full_during_evaluation_keeps_whole_answers_and_the_rerun_finishes(base, tmp_path):
  """State "disk full" x evaluate: the partial-results file cannot grow past 1500 bytes. One
  line `error: <partial file>: cannot write (File too large)...`, exit 2; every line in it
  whole; the rerun resumes and gives what an uninterrupted evaluation gives."""
  from vaujax.evaluate import evaluators
  from vaujax.inference.assistant import Assistant
  paths, workdir = base["paths"], base["finished"]
  videos = sorted(n for n in os.listdir(paths["features"]) if n.endswith(".npz"))
  options = ["Explosion", "Road accident", "There is no anomaly.", "Arson"]
  bench = str(tmp_path / "bench.json")
  with open(bench, "w") as f:
    json.dump([{"id": f"q{i}", "video": os.path.splitext(videos[i % len(videos)])[0] + ".mp4",
                "question": "Which?", "options": options, "answer": "ABCD"[i % 4],
                "category": "type"} for i in range(12)], f)
  out = str(tmp_path / "eval")
  code, lines, _ = _command("vaujax.evaluate", [
      f"--run={workdir}", f"--benchmark={bench}", f"--feature_dir={paths['features']}",
      f"--out={out}", "--method=loglik", "--batch_size=2"], 1500)
  partial = os.path.join(out, "bench_loglik.partial.jsonl")
  errors = [l for l in lines if l.startswith("error:")]
  assert code == 2 and not any("Traceback" in l for l in lines), lines
  assert errors == [f"error: {partial}: cannot write (File too large): free disk space (or "
                    "raise the file-size limit) and rerun the same command; nothing written "
                    "before was lost"]
  kept = _whole_lines(partial)[1:]
  assert 0 < len(kept) < 12 and sorted(os.listdir(out)) == ["bench_loglik.partial.jsonl"]
  assistant = Assistant.from_run(workdir)
  resumed = evaluators.evaluate_benchmark(assistant, bench, paths["features"], out,
                                          method="loglik", batch_size=2, progress=False)
  fresh = evaluators.evaluate_benchmark(assistant, bench, paths["features"],
                                        str(tmp_path / "fresh"), method="loglik", batch_size=2,
                                        progress=False)
  assert json.dumps(resumed) == json.dumps(fresh)       # (NaN: no temporal questions)
  assert resumed["bench_loglik"]["num_questions"] == 12
  rows = json.load(open(os.path.join(out, "bench_loglik.json")))["results"]
  assert [r["id"] for r in rows] == [f"q{i}" for i in range(12)]
  assert rows[:len(kept)] == kept                     # the answers written before, kept


_WRITERS = r"""
import json, os, sys
from vaujax import files
from vaujax.errors import InputError
from vaujax.runs import run_dir
root = sys.argv[1]
out = {}
def attempt(name, fn):
  try:
    fn()
    out[name] = "ok"
  except InputError as e:
    out[name] = str(e)
log = os.path.join(root, "metrics.jsonl")
attempt("append", lambda: files.append_lines(log, ["x" * 100] * 3))   # 300 + 303 > 500
attempt("json", lambda: files.write_json(os.path.join(root, "config.json"), {"k": "v" * 600}))
attempt("copy", lambda: run_dir._copy(os.path.join(root, "src"), os.path.join(root, "dst")))
attempt("same", lambda: run_dir._copy(os.path.join(root, "small"), os.path.join(root, "same")))
print(json.dumps(out))   # a pipe: no size limit
"""


def test_a_write_that_finds_no_room_leaves_no_torn_or_half_written_file(tmp_path):
  """files.append_lines, files.write_json and the run artifact's copy under a real EFBIG: the
  error names the file; an appended log is cut back to its whole lines, a replaced file keeps
  its old content, no temporary file is left; a copy whose content is there already writes
  nothing."""
  root = tmp_path / "root"
  root.mkdir()
  (root / "metrics.jsonl").write_text('{"step": 1}\n' * 25)                  # 300 bytes
  (root / "config.json").write_text('{"old": 1}')
  os.makedirs(root / "src")
  (root / "src" / "big.bin").write_bytes(b"\1" * 2000)
  (root / "small").write_bytes(b"s" * 100)
  (root / "same").write_bytes(b"s" * 100)
  before = {p: open(root / p, "rb").read() for p in ("metrics.jsonl", "config.json", "same")}
  script = tmp_path / "writers.py"
  script.write_text(_WRITERS)
  code, lines, stdout = _command(str(script), [str(root)], 500)
  assert code == 0, lines
  result = json.loads(stdout)
  no_room = "cannot write (File too large): free disk space"
  assert result["append"].startswith(f"{root}/metrics.jsonl: {no_room}")
  assert result["json"].startswith(f"{root}/config.json: {no_room}")
  assert result["copy"].startswith(f"{root}/dst: {no_room}")
  assert result["same"] == "ok"
  assert {p: open(root / p, "rb").read() for p in before} == before
  assert sorted(os.listdir(root)) == ["config.json", "metrics.jsonl", "same", "small", "src"]
