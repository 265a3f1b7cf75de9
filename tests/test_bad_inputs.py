"""The bad-input matrix: every reader, each bad input -> a clear error naming the file (or the
example) and the problem, or the documented skip-and-count. BUILD.md shows this table; each row
is one test here (`ROWS`: id, reader, input, expected)."""

import contextlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from vaujax.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, data):
  mode = "wb" if isinstance(data, bytes) else "w"
  with open(path, mode) as f:
    f.write(data)
  return str(path)


def _json(tmp, name, obj):
  return _write(tmp / name, obj if isinstance(obj, str) else json.dumps(obj))


# -- instruction JSON --------------------------------------------------------------------------

def instr_malformed(tmp):
  from vaujax.data.instructions import read_instructions
  read_instructions(_json(tmp, "train.json", '[{"id": 1,'))


def instr_not_list(tmp):
  from vaujax.data.instructions import read_instructions
  read_instructions(_json(tmp, "train.json", {"id": "x"}))


def instr_no_conversations(tmp):
  from vaujax.data.instructions import read_instructions
  read_instructions(_json(tmp, "train.json", [{"id": "a1", "video": "v.mp4"}]))


def instr_video_no_path(tmp):
  from vaujax.data.instructions import read_instructions
  read_instructions(_json(tmp, "train.json", [{"id": "a2", "conversations": [
      {"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "A"}]}]))


def instr_skip_and_count(tmp):
  from vaujax.data.instructions import read_instructions
  good = {"id": "ok", "video": "v.mp4", "conversations": [
      {"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "A"}]}
  items, problems = read_instructions(_json(tmp, "train.json", [good, {"id": "bad"}, 3]),
                                      skip_bad=True)
  assert [i["id"] for i in items] == ["ok"] and len(problems) == 2
  raise InputError(str(tmp / "train.json"), f"skipped {len(problems)}: {problems[0]}")


def instr_path_escape(tmp):
  from vaujax.data.pipeline import video_key
  video_key({"id": "evil", "video": "../../etc/passwd.mp4"})


def instr_too_long(tmp):
  from vaujax.data import pipeline
  from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
  tok = Tokenizer.load(train_sentencepiece(["what is in the video"] * 50, tmp / "sp", 300))
  np.savez(tmp / "v.npz", tower_patches=np.zeros((2, 4, 8), np.float32))
  cfg = pipeline.PipelineConfig(str(tmp), num_video_tokens=12, max_length=10, batch_size=1)
  pipeline.Prepare(cfg, tok).map({"id": "long", "video": "v.mp4", "conversations": [
      {"from": "human", "value": "what is in the video <video>"}, {"from": "gpt", "value": "x"}]})


def features_without_times(tmp):
  """Features extracted before timestamps were stored cannot feed a run sampled by fps."""
  from vaujax.data import pipeline
  from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
  tok = Tokenizer.load(train_sentencepiece(["what is in the video"] * 50, tmp / "sp", 300))
  np.savez(tmp / "v.npz", tower_patches=np.zeros((2, 4, 8), np.float32))
  cfg = pipeline.PipelineConfig(str(tmp), num_video_tokens=4, max_length=64, batch_size=1,
                                num_frames=2, variable_frames=True)
  pipeline.Prepare(cfg, tok).map({"id": "old", "video": "v.mp4", "conversations": [
      {"from": "human", "value": "<video>\nwhat is in the video"}, {"from": "gpt", "value": "x"}]})


# -- annotations -------------------------------------------------------------------------------

def uca_missing_field(tmp):
  from vaujax.data.annotations import read_uca
  read_uca(_json(tmp, "uca.json", {"Arson001": {"duration": 5, "sentences": ["a"]}}))


def uca_reversed_interval(tmp):
  from vaujax.data.annotations import read_uca
  read_uca(_json(tmp, "uca.json", {"Arson001": {"duration": 5, "timestamps": [[3, 1]],
                                                "sentences": ["a"]}}))


def uca_outside_video(tmp):
  from vaujax.data.annotations import read_uca
  read_uca(_json(tmp, "uca.json", {"Arson001": {"duration": 5, "timestamps": [[1, 9]],
                                                "sentences": ["a"]}}))


def ucf_gt_bad_line(tmp):
  from vaujax.data.annotations import read_ucf_temporal_gt
  read_ucf_temporal_gt(_write(tmp / "gt.txt", "Arson011_x264.mp4 Arson 10 20\n"))


def ucf_gt_not_int(tmp):
  from vaujax.data.annotations import read_ucf_temporal_gt
  read_ucf_temporal_gt(_write(tmp / "gt.txt", "Arson011_x264.mp4 Arson 10 x -1 -1\n"))


# -- benchmark files ---------------------------------------------------------------------------

def _mc(**over):
  return {"id": "q1", "video": "v.mp4", "question": "Which?", "options": ["a", "b", "c", "d"],
          "answer": "B", **over}


def mc_one_option(tmp):
  from vaujax.data.benchmark_files import read_mc
  read_mc(_json(tmp, "mc.json", [_mc(options=["a"])]))


def mc_bad_answer(tmp):
  from vaujax.data.benchmark_files import read_mc
  read_mc(_json(tmp, "mc.json", [_mc(answer="E")]))


def mc_duplicate_options(tmp):
  from vaujax.data.benchmark_files import read_mc
  read_mc(_json(tmp, "mc.json", [_mc(options=["a", "a", "c", "d"])]))


def qa_bad_interval(tmp):
  from vaujax.data.benchmark_files import read_ucf_qa
  read_ucf_qa(_json(tmp, "qa.json", [{"id": "q", "video": "v.mp4", "question": "?",
                                      "gt_interval": [5, 2]}]))


# -- feature files -----------------------------------------------------------------------------

def npz_missing(tmp):
  from vaujax.data import features
  features.read_features(str(tmp / "absent.npz"))


def npz_corrupt(tmp):
  from vaujax.data import features
  features.read_features(_write(tmp / "broken.npz", b"PK\x03\x04 definitely not a zip"))


def npz_truncated(tmp):
  from vaujax.data import features
  np.savez(tmp / "t.npz", tower_patches=np.ones((4, 16, 8), np.float32))
  data = open(tmp / "t.npz", "rb").read()
  features.read_features(_write(tmp / "cut.npz", data[:len(data) // 2]))


def npz_nan(tmp):
  from vaujax.data import features
  x = np.ones((4, 16, 8), np.float32)
  x[1, 2, 3] = np.nan
  np.savez(tmp / "nan.npz", tower_patches=x)
  features.read_features(str(tmp / "nan.npz"))


def npz_wrong_shape(tmp):
  from vaujax.data import features
  np.savez(tmp / "shape.npz", tower_patches=np.ones((4, 16, 8), np.float32))
  features.read_features(str(tmp / "shape.npz"), {"tower_patches": (16, 32)})


def npz_frames_disagree(tmp):
  from vaujax.data import features
  np.savez(tmp / "frames.npz", tower_patches=np.ones((4, 16, 8), np.float32),
           timestamps=np.arange(3.0))
  features.read_features(str(tmp / "frames.npz"))


def npz_object_array(tmp):
  from vaujax.data import features
  np.savez(tmp / "obj.npz", tower_patches=np.array([{"a": 1}], dtype=object))
  features.read_features(str(tmp / "obj.npz"))


class _Evil:
  def __reduce__(self):
    return (os.system, ("echo pwned > /tmp/vaujax_pwned",))


def pkl_code_payload(tmp):
  from vaujax.data import features
  features.read_features(_write(tmp / "evil.pkl", pickle.dumps({"feats": _Evil()})))


def pkl_not_features(tmp):
  from vaujax.data import features
  features.read_features(_write(tmp / "list.pkl", pickle.dumps([1, 2, 3])))


def safetensors_truncated(tmp):
  from safetensors.numpy import save_file

  from vaujax.convert import weights
  save_file({"w": np.ones((64, 64), np.float32)}, str(tmp / "m.safetensors"))
  data = open(tmp / "m.safetensors", "rb").read()
  weights.load_file(_write(tmp / "cut.safetensors", data[:100]))


def torch_bin_pickle_payload(tmp):
  from vaujax.convert import weights
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:   # a torch-like zip whose data.pkl runs code
    z.writestr("archive/data.pkl", pickle.dumps(_Evil()))
  weights.load_file(_write(tmp / "pytorch_model.bin", buf.getvalue()))


# -- videos ------------------------------------------------------------------------------------

def video_missing(tmp):
  from vaujax.data import video
  video.read_video(str(tmp / "nope.mp4"), num_frames=4)


def video_not_a_video(tmp):
  from vaujax.data import video
  video.read_video(_write(tmp / "text.mp4", "just some text, not h264"), num_frames=4)


def video_truncated(tmp):
  from vaujax import testing
  from vaujax.data import video
  data = open(testing.real_video(), "rb").read()
  video.read_video(_write(tmp / "cut.mp4", data[:2000]), num_frames=4)


# -- checkpoints, params, tokenizers, configs --------------------------------------------------

def ckpt_missing(tmp):
  from vaujax.runs import run_dir
  run_dir.vagpt_params(str(tmp / "no_run"), None)


def ckpt_empty(tmp):
  from vaujax.runs import run_dir
  os.makedirs(tmp / "run" / "checkpoints")
  run_dir.vagpt_params(str(tmp / "run"), None)


def run_without_artifact(tmp):
  from vaujax.runs import run_dir
  os.makedirs(tmp / "old_run" / "checkpoints")
  run_dir.load_run(str(tmp / "old_run"))


def params_dir_incomplete(tmp):
  from vaujax.convert import params_io
  os.makedirs(tmp / "params_dir" / "params")
  params_io.read_params_dir(str(tmp / "params_dir"))


def tetg_dir_wrong_kind(tmp):
  from vaujax.convert import params_io
  from vaujax.runs import tetg_files
  params_io.write_params_dir(str(tmp / "not_tetg"), {"w": np.ones(2)}, {"kind": "vit/clip"})
  tetg_files.load_tetg(str(tmp / "not_tetg"))


def tokenizer_corrupt(tmp):
  from vaujax.data.tokenizer import Tokenizer
  Tokenizer.load(_write(tmp / "tokenizer.model", b"\x00\x01garbage"))


def tokenizer_json_not_llama(tmp):
  from vaujax.data.tokenizer import Tokenizer
  Tokenizer.load(_json(tmp, "tokenizer.json", "{not json"))


def bert_vocab_without_specials(tmp):
  from vaujax.data.bert_tokenizer import BertTokenizer
  BertTokenizer.load(_write(tmp / "vocab.txt", "hello\nworld\n"))


def llama_config_missing_fields(tmp):
  from vaujax.convert import llama
  from vaujax.files import read_json
  path = _json(tmp, "config.json", {"hidden_size": 8})
  llama.config_from_hf(read_json(path), path)


def config_unknown_arg(tmp):
  from configs import vagpt
  vagpt.get_config("size=tiny,colour=blue")


def config_wrong_type(tmp):
  from configs import vagpt
  vagpt.get_config("frames=eight")


def config_cli_unknown_key(tmp):
  r = subprocess.run([sys.executable, "-m", "vaujax.train", "--config",
                      os.path.join(REPO, "configs/vagpt_stage1.py"), "--workdir", str(tmp / "w"),
                      "--config.optim.learnig_rate=0.1"], capture_output=True, text=True,
                     env=dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu"), timeout=120)
  assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
  raise ValueError(r.stderr.strip())


# -- bounded loading and feature-set consistency (issue 25) ----------------------------------

def _features_of(tmp, name, frames, **extra):
  np.savez(tmp / name, tower_patches=np.ones((frames, 4, 8), np.float32),
           timestamps=np.arange(frames, dtype=np.float64), **extra)
  return str(tmp / name)


def pkl_object_dtype(tmp):
  from vaujax.data import features
  feats = np.empty((2, 3, 4), dtype=object)
  feats[...] = 1.0
  features.read_features(_write(tmp / "obj.pkl", pickle.dumps({"feats": feats})))


def pkl_str_dtype(tmp):
  from vaujax.data import features
  features.read_features(_write(tmp / "str.pkl", pickle.dumps(
      {"feats": np.full((2, 3, 4), "a")})))


def pkl_structured_dtype(tmp):
  from vaujax.data import features
  features.read_features(_write(tmp / "rec.pkl", pickle.dumps(
      {"feats": np.zeros((2, 3, 4), dtype=[("a", "f4"), ("b", "i4")])})))


def pkl_bytearray_gigabyte(tmp):
  from vaujax.data import safe_pickle
  data = b"\x80\x02cbuiltins\nbytearray\nJ" + struct.pack("<i", 1 << 30) + b"\x85R."
  safe_pickle.load_restricted(_write(tmp / "alloc.pkl", data))


class _Uninitialised:
  def __reduce__(self):
    return np.ndarray.__reduce__(np.zeros(0))[0], (np.ndarray, (8, 257, 1408), np.dtype("f2"))


def pkl_uninitialised(tmp):
  from vaujax.data import features
  features.read_features(_write(tmp / "uninit.pkl", pickle.dumps({"feats": _Uninitialised()})))


def npz_non_array_member(tmp):
  from vaujax.data import features
  with zipfile.ZipFile(tmp / "member.npz", "w") as z:
    z.writestr("notes.txt", "not an array")
  features.read_features(str(tmp / "member.npz"))


def npz_zero_d(tmp):
  from vaujax.data import features
  np.savez(tmp / "scalar.npz", tower_patches=np.float32(1.0))
  features.read_features(str(tmp / "scalar.npz"))


def npz_plain_npy(tmp):
  from vaujax.data import features
  np.save(tmp / "plain.npy", np.ones((4, 16, 8), np.float32))
  os.rename(tmp / "plain.npy", tmp / "plain.npz")
  features.read_features(str(tmp / "plain.npz"))


def npz_huge_header(tmp):
  from vaujax.data import features
  header = io.BytesIO()
  np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                "shape": (10 ** 12,)})
  with zipfile.ZipFile(tmp / "huge.npz", "w") as z:
    z.writestr("tower_patches.npy", header.getvalue() + b"\0" * 64)
  features.read_features(str(tmp / "huge.npz"))


def npz_zip_bomb(tmp):
  from vaujax.data import features
  with zipfile.ZipFile(tmp / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("tower_patches.npy", "w") as f:
      np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                               "shape": (1 << 25,)})
      for _ in range(128):
        f.write(bytes(1 << 20))
  assert os.path.getsize(tmp / "bomb.npz") < 200_000
  features.read_features(str(tmp / "bomb.npz"))


def npz_wrong_frame_count(tmp):
  from vaujax.data import features
  features.read_features(_features_of(tmp, "seven.npz", 7), frames=8)


def npz_zero_frames(tmp):
  from vaujax.data import features
  features.read_features(_features_of(tmp, "zero.npz", 0), {"tower_patches": (4, 8)})


def _pipeline_case(tmp):
  from vaujax.data import pipeline
  from vaujax.data.tokenizer import Tokenizer, train_sentencepiece
  tok = Tokenizer.load(train_sentencepiece(["what is in the video"] * 50, tmp / "sp", 300))
  os.makedirs(tmp / "feats")
  cfg = pipeline.PipelineConfig(str(tmp / "feats"), num_video_tokens=0, max_length=32,
                                batch_size=1, feature_shapes={"tower_patches": (4, 8)})
  item = lambda vid: {"id": vid, "video": f"{vid}.mp4", "conversations": [  # noqa: E731
      {"from": "human", "value": "<video> what is in the video"}, {"from": "gpt", "value": "x"}]}
  return pipeline, cfg, tok, item


def pipeline_frame_count(tmp):
  pipeline, cfg, tok, item = _pipeline_case(tmp)
  _features_of(tmp / "feats", "v8.npz", 8)
  _features_of(tmp / "feats", "v7.npz", 7)
  prepare = pipeline.Prepare(cfg, tok)
  prepare.map(item("v8"))
  prepare.map(item("v7"))


def pipeline_symlink_outside(tmp):
  pipeline, cfg, tok, item = _pipeline_case(tmp)
  os.makedirs(tmp / "elsewhere")
  os.symlink(_features_of(tmp / "elsewhere", "secret.npz", 8), tmp / "feats" / "v.npz")
  pipeline.Prepare(cfg, tok).map(item("v"))


def instr_key_collision(tmp):
  from vaujax.data import pipeline
  _features_of(tmp, "001.npz", 1)           # a folder keyed by the bare name
  conv = [{"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "A"}]
  path = _json(tmp, "train.json", [
      {"id": "a", "video": "cam1/001.mp4", "conversations": conv},
      {"id": "a2", "video": "./cam1/001.mp4", "conversations": conv},
      {"id": "b", "video": "cam2/001.mp4", "conversations": conv}])
  pipeline.check_unique_keys(pipeline.json_source(path)[0], path, str(tmp))


def eval_key_collision(tmp):
  from vaujax.evaluate import evaluators
  _features_of(tmp, "001.npz", 1)
  item = {"question": "Which?", "options": ["a", "b"], "answer": "A"}
  evaluators.read_benchmark(_json(tmp, "bench.json", [
      {"id": "q0", "video": "x/001.mp4", **item}, {"id": "q1", "video": "x/001.avi", **item}]),
      str(tmp))


def infer_zero_frames(tmp):
  from vaujax.app import infer
  _features_of(tmp, "zero.npz", 0)
  err = io.StringIO()
  with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
    infer.run(["vaujax infer", f"--run={tmp / 'no_run'}", f"--features={tmp / 'zero.npz'}"])
  assert e.value.code == 2
  raise InputError(None, err.getvalue().strip())


def json_too_deep(tmp):
  from vaujax.files import read_json
  read_json(_write(tmp / "deep.json", "[" * 100_000), kind=list)


def json_over_budget(tmp):
  from vaujax.files import read_json
  read_json(_json(tmp, "big.json", list(range(1000))), kind=list, max_bytes=1024)


def safetensors_offsets_beyond_file(tmp):
  from vaujax.convert import weights
  header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 28],
                             "data_offsets": [0, 1 << 30]}}).encode()
  weights.load_file(_write(tmp / "beyond.safetensors",
                           struct.pack("<Q", len(header)) + header + bytes(64)))


def llama_config_rope_llama3(tmp):
  from vaujax.convert import llama
  from vaujax.files import read_json
  path = _json(tmp, "config.json", {
      "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
      "num_attention_heads": 4, "rope_parameters": {"rope_type": "llama3", "factor": 8.0,
                                                    "rope_theta": 500000.0}})
  llama.config_from_hf(read_json(path), path)



ROWS = [
    # id, reader, bad input, expected error fragments (all must appear)
    ("instr-malformed", "instructions.read_instructions", "truncated JSON", instr_malformed,
     InputError, ["train.json", "malformed JSON"]),
    ("instr-not-list", "instructions.read_instructions", "a JSON object, not a list",
     instr_not_list, InputError, ["train.json", "expected a JSON list"]),
    ("instr-no-conv", "instructions.read_instructions", "example without conversations",
     instr_no_conversations, InputError, ["train.json", "a1", "missing 'conversations'"]),
    ("instr-no-video", "instructions.read_instructions", "<video> placeholder, no video field",
     instr_video_no_path, InputError, ["train.json", "a2", "no 'video'"]),
    ("instr-skip", "instructions.read_instructions(skip_bad=True)", "2 bad of 3 examples",
     instr_skip_and_count, InputError, ["train.json", "skipped 2"]),
    ("instr-escape", "pipeline.video_key", "video '../../etc/passwd.mp4'", instr_path_escape,
     InputError, ["evil", "escapes the dataset root"]),
    ("instr-too-long", "pipeline.Prepare", "max_length cuts into the video slots", instr_too_long,
     InputError, ["long", "cuts into the video slots"]),
    ("features-no-times", "pipeline.Prepare", "fps-sampled run, features without timestamps",
     features_without_times, InputError, ["v.npz", "no 'timestamps'", "vaujax features"]),
    ("uca-missing", "annotations.read_uca", "entry without timestamps", uca_missing_field,
     InputError, ["uca.json", "Arson001", "missing ['timestamps']"]),
    ("uca-reversed", "annotations.read_uca", "interval [3, 1]", uca_reversed_interval,
     InputError, ["uca.json", "ends before it starts"]),
    ("uca-outside", "annotations.read_uca", "interval past the duration", uca_outside_video,
     InputError, ["uca.json", "outside the video"]),
    ("gt-line", "annotations.read_ucf_temporal_gt", "4 fields instead of 6", ucf_gt_bad_line,
     InputError, ["gt.txt", "line 1", "expected"]),
    ("gt-int", "annotations.read_ucf_temporal_gt", "non-integer frame index", ucf_gt_not_int,
     InputError, ["gt.txt", "must be integers"]),
    ("mc-options", "benchmark_files.read_mc", "1 option (2 to 8 are read)", mc_one_option,
     InputError, ["mc.json", "q1", "2 to 8 non-empty strings"]),
    ("mc-answer", "benchmark_files.read_mc", "answer 'E'", mc_bad_answer, InputError,
     ["mc.json", "answer 'E'"]),
    ("mc-dup", "benchmark_files.read_mc", "repeated options", mc_duplicate_options, InputError,
     ["mc.json", "ambiguous"]),
    ("qa-interval", "benchmark_files.read_ucf_qa", "gt_interval [5, 2]", qa_bad_interval,
     InputError, ["qa.json", "gt_interval"]),
    ("npz-missing", "features.read_features", "missing file", npz_missing, InputError,
     ["absent.npz", "does not exist"]),
    ("npz-corrupt", "features.read_features", "not a zip", npz_corrupt, InputError,
     ["broken.npz", "not a readable feature file"]),
    ("npz-truncated", "features.read_features", "half a file", npz_truncated, InputError,
     ["cut.npz", "not a readable feature file"]),
    ("npz-nan", "features.read_features", "a NaN in tower_patches", npz_nan, InputError,
     ["nan.npz", "NaN or Inf"]),
    ("npz-shape", "features.read_features", "[T, 16, 8] where [T, 16, 32] expected", npz_wrong_shape,
     InputError, ["shape.npz", "expected [T, 16, 32]"]),
    ("npz-frames", "features.read_features", "4 frames of patches, 3 timestamps", npz_frames_disagree,
     InputError, ["frames.npz", "disagree on the number of frames"]),
    ("npz-object", "features.read_features", "object array (needs pickle)", npz_object_array, InputError,
     ["obj.npz", "not a readable feature file"]),
    ("pkl-code", "features.read_features (.pkl)", "pickle calling os.system", pkl_code_payload,
     InputError, ["evil.pkl", "refusing to unpickle", "system"]),
    ("pkl-shape", "features.read_features (.pkl)", "a list, not LLaMA-VID feats", pkl_not_features,
     InputError, ["list.pkl", "expected a dict with 'feats'"]),
    ("st-truncated", "weights.load_file", "safetensors cut at 100 bytes", safetensors_truncated,
     InputError, ["cut.safetensors", "not a readable safetensors file"]),
    ("bin-pickle", "weights.load_file", "torch zip with a code-running data.pkl",
     torch_bin_pickle_payload, InputError, ["pytorch_model.bin", "not a loadable PyTorch"]),
    ("video-missing", "video.read_video", "missing file", video_missing, InputError,
     ["nope.mp4", "does not exist"]),
    ("video-text", "video.read_video", "a text file named .mp4", video_not_a_video, InputError,
     ["text.mp4"]),
    ("video-truncated", "video.read_video", "first 2 kB of a real h264 mp4", video_truncated,
     InputError, ["cut.mp4"]),
    ("ckpt-missing", "run_dir.vagpt_params", "no such run", ckpt_missing, InputError,
     ["no_run", "does not exist"]),
    ("ckpt-empty", "run_dir.vagpt_params", "checkpoints/ without a finished step", ckpt_empty,
     InputError, ["checkpoints", "no finished checkpoint"]),
    ("run-no-artifact", "run_dir.load_run", "a workdir without run/config.json",
     run_without_artifact, InputError, ["old_run", "not a vaujax run"]),
    ("params-incomplete", "params_io.read_params_dir", "params/ without vaujax.json", params_dir_incomplete,
     InputError, ["params_dir", "incomplete conversion"]),
    ("tetg-kind", "tetg_files.load_tetg", "a vision tower's params dir", tetg_dir_wrong_kind,
     InputError, ["not_tetg", "not a TETG classifier"]),
    ("sp-corrupt", "Tokenizer.load", "garbage tokenizer.model", tokenizer_corrupt, InputError,
     ["tokenizer.model", "not a SentencePiece model"]),
    ("tok-json", "Tokenizer.load", "malformed tokenizer.json", tokenizer_json_not_llama,
     InputError, ["tokenizer.json", "not a HF tokenizer.json"]),
    ("bert-vocab", "BertTokenizer.load", "vocab.txt without [CLS]/[SEP]",
     bert_vocab_without_specials, InputError, ["vocab.txt", "special tokens"]),
    ("llama-config", "convert.llama.config_from_hf", "config.json without sizes",
     llama_config_missing_fields, InputError, ["config.json", "missing LLaMA config fields"]),
    ("cfg-unknown", "configs/vagpt.py get_config", "unknown argument 'colour'",
     config_unknown_arg, ValueError, ["unknown config argument 'colour'"]),
    ("cfg-type", "configs/vagpt.py get_config", "frames=eight", config_wrong_type, ValueError,
     ["eight"]),
    ("cfg-cli-key", "python -m vaujax.train", "--config.optim.learnig_rate (typo)",
     config_cli_unknown_key, ValueError, ["learnig_rate"]),
    ("pkl-object", "features.read_features (.pkl)", "'feats' of object dtype", pkl_object_dtype,
     InputError, ["obj.pkl", "refusing to unpickle", "dtype('O')"]),
    ("pkl-str", "features.read_features (.pkl)", "'feats' of str dtype", pkl_str_dtype,
     InputError, ["str.pkl", "'feats' has dtype <U1; expected numbers"]),
    ("pkl-struct", "features.read_features (.pkl)", "'feats' of a structured dtype",
     pkl_structured_dtype, InputError, ["rec.pkl", "expected numbers"]),
    ("pkl-alloc", "safe_pickle.load_restricted", "30-byte pickle calling bytearray(2**30)",
     pkl_bytearray_gigabyte, InputError, ["alloc.pkl", "refusing to unpickle", "bytearray(int)"]),
    ("pkl-uninit", "features.read_features (.pkl)", "_reconstruct of [8, 257, 1408], no data",
     pkl_uninitialised, InputError, ["uninit.pkl", "uninitialised memory"]),
    ("npz-member", "features.read_features", "a zip member that is not .npy",
     npz_non_array_member, InputError, ["member.npz", "'notes.txt' is not a .npy array"]),
    ("npz-0d", "features.read_features", "a 0-d array", npz_zero_d, InputError,
     ["scalar.npz", "0-d array"]),
    ("npz-npy", "features.read_features", "a plain .npy renamed .npz", npz_plain_npy, InputError,
     ["plain.npz", "a single .npy array, not an .npz"]),
    ("npz-huge", "features.read_features", ".npy header declaring 10^12 elements",
     npz_huge_header, InputError, ["huge.npz", "declares (1000000000000,)", "holds 64 bytes"]),
    ("npz-bomb", "features.read_features", "128 MiB of zeros deflated to 128 kB", npz_zip_bomb,
     InputError, ["bomb.npz", "declares 134217728 bytes of arrays", "allowed"]),
    ("npz-frames-n", "features.read_features(frames=8)", "7 frames", npz_wrong_frame_count,
     InputError, ["seven.npz", "has 7 frames, expected 8"]),
    ("npz-zero", "features.read_features(expected)", "zero frames", npz_zero_frames, InputError,
     ["zero.npz", "has zero frames"]),
    ("pipe-frames", "pipeline.Prepare", "a 7-frame file after an 8-frame one",
     pipeline_frame_count, InputError, ["v7.npz", "has 7 frames but", "v8.npz has 8"]),
    ("pipe-symlink", "pipeline.Prepare", "feature file linking outside the feature dir",
     pipeline_symlink_outside, InputError, ["v.npz", "secret.npz",
                                            "outside the feature directory"]),
    ("instr-collision", "pipeline.check_unique_keys", "videos cam1/001.mp4 and cam2/001.mp4, "
     "features keyed by the bare name", instr_key_collision, InputError,
     ["train.json", "'cam1/001.mp4'", "'cam2/001.mp4'", "would both read the feature file",
      "001.npz"]),
    ("eval-collision", "evaluators.read_benchmark(feature_dir)", "x/001.mp4 and x/001.avi, "
     "features keyed by the bare name", eval_key_collision, InputError,
     ["bench.json", "'x/001.mp4' and 'x/001.avi'", "would both read the feature file"]),
    ("infer-zero", "vaujax infer --features", "a feature file with zero frames",
     infer_zero_frames, InputError, ["zero.npz: has zero frames"]),
    ("json-deep", "files.read_json", "100000 nested brackets", json_too_deep, InputError,
     ["deep.json", "nested too deeply"]),
    ("json-size", "files.read_json(max_bytes=1024)", "a 4.9 kB file", json_over_budget,
     InputError, ["big.json", "larger than the 1024 bytes allowed"]),
    ("st-offsets", "weights.load_file", "header declaring 1 GiB in a 64-byte data section",
     safetensors_offsets_beyond_file, InputError, ["beyond.safetensors",
                                                   "outside the 64 data bytes"]),
    ("llama-rope", "convert.llama.config_from_hf", "transformers-5 rope_parameters type llama3",
     llama_config_rope_llama3, InputError, ["config.json",
                                            "rope_parameters type 'llama3' is not supported"]),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(row, tmp_path):
  _, _, _, fn, error, fragments = row
  with pytest.raises(error) as e:
    fn(tmp_path)
  for fragment in fragments:
    assert fragment in str(e.value), (fragment, str(e.value))
  assert not os.path.exists("/tmp/vaujax_pwned")


def markdown_table() -> str:
  """The matrix as BUILD.md shows it (python -c 'import tests.test_bad_inputs as t;
  print(t.markdown_table())')."""
  lines = ["| # | reader | bad input | expected |", "|--:|---|---|---|"]
  for i, (rid, reader, what, _, error, fragments) in enumerate(ROWS, 1):
    lines.append(f"| {i} | `{reader}` | {what} | {error.__name__}: "
                 f"{' / '.join(repr(f) for f in fragments)} |")
  return "\n".join(lines)
