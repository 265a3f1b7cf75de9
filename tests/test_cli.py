"""The commands of the application layer (train, evaluate, infer, demo, ablation) and the
`vaujax` console script: `--help` exits 0 and explains every flag; a missing input, a bad flag
value or an unknown flag is one line `error: <file or flag>: <problem>` with exit 2, before any
model is loaded. Run in process: the checks must not need JAX to compile anything."""

import importlib
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMANDS = ["train", "evaluate", "infer", "demo", "ablation"]


def _run(name, args, capsys):
  module = importlib.import_module(f"vaujax.app.{name}")
  with pytest.raises(SystemExit) as exit_:
    module.run([f"vaujax {name}", *args])
  out = capsys.readouterr()
  return exit_.value.code, out.out, out.err


@pytest.mark.parametrize("name", COMMANDS)
def test_help_exits_0_and_explains_every_flag(name, capsys):
  from absl import flags
  from vaujax.app import cli
  code, out, _ = _run(name, ["--help"], capsys)
  assert code == 0
  module = importlib.import_module(f"vaujax.app.{name}")
  fv = flags.FlagValues()
  try:
    module.define_flags(fv)
  except TypeError:
    module.define_flags(fv, ["prog"])
  for flag in fv:
    if not flag.startswith("config."):
      assert f"--{flag}: {fv[flag].help}" in out, flag
  assert "--verbose:" in out and module.__doc__.strip().splitlines()[0] in out
  assert "error" not in out.lower().split("flags:")[0] or name == "demo"
  del cli


@pytest.mark.parametrize("name,args,message", [
    ("train", ["--config=/nope/config.py", "--workdir=/tmp/x"], "--config: "),
    ("train", ["--workdir=/tmp/x"], "--config: is required"),
    ("evaluate", ["--run=/nope/run", "--benchmark=/nope/b.json", "--feature_dir=/nope"],
     "/nope/b.json: benchmark file does not exist"),
    ("evaluate", ["--benchmark=b.json"], "--run: is required"),
    ("infer", ["--run=/nope/run", "--video=/nope/v.mp4"], "/nope/v.mp4: video does not exist"),
    ("infer", ["--run=/nope/run", "--features=/nope/f.npz"],
     "/nope/f.npz: feature file does not exist"),
    ("infer", ["--run=/nope/run"], "--video: give exactly one of --video and --features"),
    ("demo", ["--seconds=0"], "--seconds: must be positive"),
    ("demo", ["--fresh_videos=-1"], "--fresh_videos: must be 0 or more"),
    ("demo", ["--tetg_fps=-1"], "--tetg_fps: must be positive"),
    ("demo", ["--slow_clock_seconds=10"], "--slow_clock_seconds: must be 0 or at least "
     "--max_seconds (16)"),
    ("demo", ["--fast_clock_seconds=5"], "--fast_clock_seconds: must be at most --seconds "
     "(4)"),
    ("demo", ["--tower=clip"], "--tower: must be tiny or dinov2, got 'clip'"),
    ("demo", ["--spatial=1", "--mirror_copies=4"], "--mirror_copies: must be 0 to 3, got 4"),
    ("demo", ["--mirror_copies=1"], "--mirror_copies: mirrors the where-answers: it needs "
                                    "--spatial=1"),
    ("demo", ["--train_hint_labels=1"], "--train_hint_labels: sets the hint's regions and "
                                        "types: it needs --hint_regions=1 or --hint_types=1"),
    ("demo", ["--hint_drills=-5"], "--hint_drills: must be positive, got -5"),
    ("demo", ["--aspects=1,-2"], "--aspects: aspects must be positive ratios, got (1.0, -2.0)"),
    ("demo", ["--hint_drills=10", "--seconds=0.5"], "--hint_drills: drill durations (0.25, 48.0) must "
     "be positive, at least min_event_s 1.0"),
    ("demo", ["--check_out_of_range"], "--check_out_of_range: adds a goal to --check: give "
                                       "--check too"),
    ("demo", ["--tower=dinov2", "--dinov2=tiny"], "--tower: dinov2 projects the real DINOv2's "
     "patches: it needs --dinov2=real"),
    ("ablation", ["--k=0.5,abc"], "--k: not a list of numbers"),
    ("demo", ["--frames=x"], "--frames: "),
    ("evaluate", ["--bogus=1"], "--bogus: unknown flag (see --help)"),
])
def test_bad_input_is_one_line_and_exit_2(name, args, message, capsys):
  code, _, err = _run(name, args, capsys)
  assert code == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), err


def test_an_unreadable_run_is_reported_after_the_inputs(tmp_path, capsys):
  video = tmp_path / "clip.mp4"
  from vaujax import testing
  video.write_bytes(open(testing.real_video(), "rb").read())
  code, _, err = _run("infer", [f"--run={tmp_path}", f"--video={video}"], capsys)
  assert code == 2 and err.strip() == (f"error: {tmp_path}: not a vaujax run: no run/config.json "
                                       "(runs written by `vaujax train` have one)")


def test_verbose_shows_the_traceback(capsys):
  from vaujax.errors import InputError
  from vaujax.app import evaluate
  with pytest.raises(InputError, match="benchmark file does not exist"):
    evaluate.run(["vaujax evaluate", "--run=/nope", "--benchmark=/nope/b.json",
                  "--feature_dir=/nope", "--verbose"])


def test_console_script_lists_and_dispatches_commands(capsys):
  from vaujax.app import main
  with pytest.raises(SystemExit) as exit_:
    main.main(["vaujax", "--help"])
  out = capsys.readouterr().out
  assert exit_.value.code == 0 and all(name in out for name in main.COMMANDS)
  with pytest.raises(SystemExit) as exit_:
    main.main(["vaujax", "infer", "--help"])
  assert exit_.value.code == 0 and "--video:" in capsys.readouterr().out
  with pytest.raises(SystemExit) as exit_:
    main.main(["vaujax", "nope"])
  assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: nope: unknown")


def test_run_overrides_are_applied_and_printed(tmp_path):
  """`--config.key=value` over a run's saved config: applied, and printed against the saved."""
  import ml_collections
  from absl import flags
  from vaujax.app import cli
  from vaujax.runs import run_dir
  config = ml_collections.ConfigDict(dict(data=dict(classes="a,b", mc_instruction="text"),
                                          model=dict(num_frames=8)))
  run_dir.write_artifact(str(tmp_path), config, log=lambda s: None)
  fv = flags.FlagValues()
  argv = ["prog", f"--run={tmp_path}", "--config.data.classes=c,d"]
  cli.define_run_flags(fv, argv)
  fv(argv)
  printed = []
  run = cli.load_run_from_flags(fv, log=printed.append)
  assert run.config.data.classes == "c,d" and run.saved.data.classes == "a,b"
  assert run_dir.classes(run.config) == ("c", "d")
  assert printed == ["override of the run's saved config: data.classes: 'a,b' -> 'c,d'"]


_FAILING_AFTERMATH = '''
import asyncio, threading, time
from vaujax.app import cli
from vaujax.errors import InputError

async def _fails():
  raise ValueError("OUT_OF_RANGE: a write of a background task failed")

def main(fv):
  loop = asyncio.new_event_loop()
  task = loop.create_task(_fails())     # its exception is never retrieved
  loop.run_until_complete(asyncio.sleep(0))
  loop.close()
  threading.Thread(target=lambda: (time.sleep(0.3), 1 / 0)).start()   # dies after the error
  raise InputError("/ckpt", "writing the checkpoint failed")

cli.run("A command whose failed write leaves a task and a thread behind.", lambda fv: None, main)
'''


def test_a_failed_write_leaves_only_the_one_line_behind(tmp_path):
  """A failed orbax write leaves an asyncio task whose exception nobody retrieved (logged at
  collection) and threads that die with it: after the one-line error, stderr stays empty —
  and with --verbose they are shown."""
  import subprocess
  import sys
  script = tmp_path / "cmd.py"
  script.write_text(_FAILING_AFTERMATH)
  env = dict(os.environ, PYTHONPATH=REPO)
  quiet = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
  assert quiet.returncode == 2
  assert quiet.stderr.splitlines() == ["error: /ckpt: writing the checkpoint failed"]
  loud = subprocess.run([sys.executable, str(script), "--verbose"], capture_output=True,
                        text=True, env=env)
  assert "ZeroDivisionError" in loud.stderr and "InputError" in loud.stderr
