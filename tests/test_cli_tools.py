"""One CLI style for the tool commands: the converters, feature extraction, synthetic data and
the benchmarks all parse absl flags through `vaujax.app.cli`.

For each: `--help` prints every flag and exits 0; a missing input (or an unwritable output)
gives exactly one stderr line `error: <path>: <problem>` and exit 2, before any model is loaded
or compiled; an unknown flag gives one `error:` line and exit 2. Everything runs in-process
(`module.run(argv)`), except one check that an old `python -m` command still works.
"""

import importlib
import os
import subprocess
import sys

import pytest
from absl import flags

from benchmarks import __main__ as bench_runner
from vaujax.app import main as app_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = "/nonexistent/vaujax_cli_test"
APP = ["vaujax.app.convert_llama", "vaujax.app.convert_vision", "vaujax.app.convert_llamavid",
       "vaujax.app.features", "vaujax.app.synthetic"]
BENCHMARKS = ["benchmarks.__main__"] + [f"benchmarks.{name}" for name in bench_runner._modules()]
ALL = APP + BENCHMARKS


def _run(name, *args):
  """-> exit status of `<name> args` (0 when run() returns)."""
  module = importlib.import_module(name)
  try:
    module.run(["prog", *args])
  except SystemExit as e:
    return e.code
  return 0


def _one_error(capsys, *needles):
  err = capsys.readouterr().err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  for needle in needles:
    assert needle in lines[0], (needle, lines[0])
  return lines[0]


@pytest.mark.parametrize("name", ALL)
def test_help_lists_every_flag(name, capsys):
  module = importlib.import_module(name)
  assert callable(module.run) and callable(module.define_flags)
  assert _run(name, "--help") == 0
  out = capsys.readouterr().out
  fv = flags.FlagValues()
  module.define_flags(fv)
  assert list(fv), name
  for flag in list(fv) + ["verbose"]:
    assert f"\n  --{flag}: " in out, (flag, out)
  assert out.startswith(module.__doc__.strip().splitlines()[0])


@pytest.mark.parametrize("name", ALL)
def test_unknown_flag_is_one_error_line(name, capsys):
  assert _run(name, "--no_such_flag=1") == 2
  _one_error(capsys, "--no_such_flag")


MISSING_INPUTS = {
    "vaujax.app.convert_llama": [
        ["--hf_dir", MISSING, "--out", "{tmp}/out"],
        ["--params", MISSING, "--hf_out", "{tmp}/hf"]],
    "vaujax.app.convert_vision": [
        ["--kind", "clip", "--src", MISSING, "--out", "{tmp}/out"],
        ["--params", MISSING, "--export", "{tmp}/x.safetensors"]],
    "vaujax.app.convert_llamavid": [
        ["--release_dir", MISSING, "--out", "{tmp}/out"],
        ["--release_dir", "{tmp}", "--out", "{tmp}/out", "--eva", MISSING],
        ["--params", MISSING, "--release_out", "{tmp}/release"]],
    "vaujax.app.features": [
        ["--videos", MISSING, "--out", "{tmp}/feats", "--encoder", "tiny"],
        ["--videos", "{tmp}", "--out", "{tmp}/feats", "--encoder", f"{MISSING},{MISSING}"]],
    "vaujax.app.synthetic": [
        ["--out", MISSING + "_file"]],      # an existing file where the output folder goes
    **{name: [["--json", MISSING + "/rows.json"]] for name in BENCHMARKS},
}


@pytest.mark.parametrize("name,args", [(n, a) for n, cases in MISSING_INPUTS.items()
                                       for a in cases])
def test_missing_input_is_one_error_line_naming_it(name, args, tmp_path, capsys, monkeypatch):
  args = [a.format(tmp=tmp_path) for a in args]
  if name == "vaujax.app.synthetic":
    path = tmp_path / "a_file"
    path.write_text("")
    args = ["--out", str(path)]
  # Nothing heavy may run before the inputs are checked.
  from vaujax.convert import llama, llamavid, params_io, vision
  from vaujax.data import features
  for module, fn in [(features, "encoder_from_spec"), (features, "extract_folder"),
                     (llama, "load_hf"), (vision, "load_tower"), (llamavid, "import_release"),
                     (llamavid, "export_release"), (params_io, "read_params_dir")]:
    monkeypatch.setattr(module, fn, lambda *a, fn=fn, **k: pytest.fail(f"{fn} ran"))
  assert _run(name, *args) == 2
  _one_error(capsys, MISSING if name != "vaujax.app.synthetic" else str(tmp_path / "a_file"))


@pytest.mark.parametrize("args,flag", [
    (["--hf_dir", MISSING], "--out"),                 # half an import
    (["--params", MISSING], "--hf_out"),              # half an export
    ([], "--hf_dir"),                                  # neither
    (["--hf_dir", MISSING, "--out", "o", "--params", "p"], "--hf_dir"),   # both
])
def test_convert_llama_usage_errors(args, flag, capsys):
  assert _run("vaujax.app.convert_llama", *args) == 2
  _one_error(capsys, flag)


@pytest.mark.parametrize("name,args,flag", [
    ("vaujax.app.convert_vision", ["--kind", "vgg", "--src", "x", "--out", "o"], "--kind"),
    ("vaujax.app.convert_vision", ["--params", "p"], "--export"),
    ("vaujax.app.convert_llamavid", ["--release_dir", "r"], "--out"),
    ("vaujax.app.convert_llamavid", ["--release_dir", "r", "--out", "o", "--sets_ratio", "2"],
     "--sets_ratio"),
    ("vaujax.app.features", ["--videos", "v", "--out", "o"], "--encoder"),
    ("vaujax.app.features", ["--videos", "{tmp}", "--out", "o", "--encoder", "a,b,c"],
     "--encoder"),
    ("vaujax.app.features", ["--videos", "{tmp}", "--out", "o", "--encoder", "tiny:x"],
     "--encoder"),
    ("vaujax.app.features", ["--videos", "{tmp}", "--out", "o", "--encoder",
                             "dinov2-patches:0,{tmp}"], "--encoder"),
    ("vaujax.app.features", ["--videos", "{tmp}", "--out", "o", "--encoder",
                             "dinov2-patches:32,/nope/dino@112"], "/nope/dino: params directory"),
    ("vaujax.app.synthetic", [], "--out"),
    ("vaujax.app.synthetic", ["--out", "o", "--num_videos", "0"], "--num_videos"),
    ("benchmarks.__main__", ["--only", "llm_decode,nope"], "--only"),
    ("benchmarks.scaling", ["--frames", "8,x"], "--frames"),
    ("benchmarks.sets_payoff", ["--ratios", "1.0"], "--ratios"),
    ("benchmarks.host_memory", ["--sizes", "huge"], "--sizes"),
    ("benchmarks.input_pipeline", ["--steps", "4", "--warmup", "4"], "--warmup"),
])
def test_bad_flag_values(name, args, flag, tmp_path, capsys):
  assert _run(name, *[a.format(tmp=tmp_path) for a in args]) == 2
  _one_error(capsys, flag)


def test_verbose_shows_the_traceback(capsys):
  with pytest.raises(Exception, match="does not exist"):
    importlib.import_module("vaujax.app.features").run(
        ["prog", "--videos", MISSING, "--out", "o", "--encoder", "tiny", "--verbose"])


def test_synthetic_and_features_commands(tmp_path, capsys):
  """The two data commands end to end on a tiny dataset, through the `vaujax` dispatcher."""
  app_main.main(["vaujax", "synthetic", "--out", str(tmp_path / "syn"), "--num_videos", "2",
                 "--seconds", "4", "--size", "64"])
  assert len(os.listdir(tmp_path / "syn" / "videos")) == 2
  report = app_main.main(["vaujax", "features", "--videos", str(tmp_path / "syn" / "videos"),
                          "--out", str(tmp_path / "feats"), "--encoder", "tiny:1",
                          "--num_frames", "2"])
  assert report["written"] == 2 and not report["failed"]
  assert "2 written" in capsys.readouterr().out
  # the folder remembers its sampling: other frames into it are refused in one line, exit 2
  with pytest.raises(SystemExit) as e:
    app_main.main(["vaujax", "features", "--videos", str(tmp_path / "syn" / "videos"),
                   "--out", str(tmp_path / "feats"), "--encoder", "tiny:1", "--num_frames", "3"])
  assert e.value.code == 2
  assert "num_frames 2 (asked: 3)" in _one_error(capsys, str(tmp_path / "feats"))


def test_vaujax_lists_every_command(capsys):
  with pytest.raises(SystemExit) as e:
    app_main.main(["vaujax", "--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for command in app_main.COMMANDS:
    assert f"\n  {command} " in out, command
  with pytest.raises(SystemExit) as e:
    app_main.main(["vaujax", "nope"])
  assert e.value.code == 2
  _one_error(capsys, "nope")


@pytest.mark.parametrize("command", ["convert-llama", "convert-vision", "convert-llamavid",
                                     "features", "synthetic"])
def test_vaujax_routes_the_tool_commands(command, capsys):
  assert app_main.COMMANDS[command][0] in APP
  with pytest.raises(SystemExit) as e:
    app_main.main(["vaujax", command, "--help"])
  assert e.value.code == 0 and "--verbose" in capsys.readouterr().out


def test_old_python_m_command_still_works():
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-m", "vaujax.convert.llama", "--help"], cwd=REPO, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "--hf_dir: " in r.stdout and "--hf_out: " in r.stdout
  r = subprocess.run([sys.executable, "-m", "vaujax.convert.llama", "--hf_dir", MISSING,
                      "--out", "o"], cwd=REPO, env=env, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [
      f"error: {MISSING}: HF model directory does not exist"], r.stderr[-2000:]
