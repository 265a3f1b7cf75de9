"""A training run directory as a self-describing artifact.

    WORKDIR/
      checkpoints/<step>/     orbax state + data iterator (`runs.checkpoint`)
      metrics.jsonl, tensorboard/
      run/                    everything needed to evaluate, ask or resume the run:
        config.json           the fully resolved config (paths point into run/ where copied)
        manifest.json         sha256 of every copied file, and where each came from
        tokenizer/            the LLM's tokenizer (copied)
        bert_vocab.txt        the Q-Former's vocab (copied, models with a Q-Former)
        tetg/                 the TETG classifier (copied, runs with TETG hints)

The config carries the rest of what a user would otherwise have to remember: the TETG hint's
class list (`data.classes`), the MC prompt style (`data.mc_instruction`), frames and sampling
(`model.num_frames`, `data.fps`) and the feature extractor (`data.encoder`), so that features of
a new video are made the same way. `load_run(WORKDIR)` gives that config back with its paths
resolved; `python -m vaujax.evaluate --run WORKDIR` and `python -m vaujax.infer --run WORKDIR`
need nothing else. Copies are checked against the manifest's hashes on load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Optional, Sequence

import ml_collections

from vaujax import files
from vaujax.data.annotations import UCF_CRIME_CLASSES
from vaujax.errors import InputError, require_dir

ARTIFACT = "run"
CONFIG = "config.json"
MANIFEST = "manifest.json"
# config key -> name inside run/ of the file or directory it points at (copied on write)
COPIED = {"data.tokenizer": "tokenizer", "data.bert_vocab": "bert_vocab.txt",
          "data.tetg_params": "tetg"}


def artifact_dir(workdir: str) -> str:
  return os.path.join(files.absolute(workdir), ARTIFACT)


def config_value(config, dotted: str, default=None):
  """`config["a"]["b"]` for `dotted` "a.b", or `default` where a key (or a parent) is missing."""
  node = config
  for part in dotted.split("."):
    if not hasattr(node, "keys") or part not in node:
      return default
    node = node[part]
  return node


def _set(config, dotted: str, value) -> None:
  *parents, last = dotted.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[last] = value


def _sha256(path: str) -> str:
  """Content hash of a file, or of a directory tree (relative names and contents, sorted)."""
  h = hashlib.sha256()
  if files.isfile(path):   # files.*: a local path or a gs:// URL
    with files.open_file(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()
  for name in files.walk_files(path):   # sorted relative names, as os.walk gave them
    h.update(name.encode() + b"\0" + _sha256(os.path.join(path, name)).encode())
  return h.hexdigest()


def _copy(src: str, dst: str) -> None:
  """Copies a file or a directory tree to `dst` through a temporary name (replaces `dst`).

  A `dst` with the content of `src` already is left alone (a rerun writes nothing); a copy that
  fails (disk full) removes its temporary and leaves `dst` as it was."""
  if files.exists(dst) and files.isdir(src) == files.isdir(dst) \
      and _sha256(src) == _sha256(dst):
    return
  if files.is_url(src) or files.is_url(dst):   # an object is uploaded whole: no temporary
    with files.writing(dst):
      if files.exists(dst):
        _remove(dst)
      files.copy(src, dst)
    return
  tmp = dst + ".tmp"
  _remove(tmp)
  try:
    with files.writing(dst):
      if os.path.isdir(src):
        shutil.copytree(src, tmp)
      else:
        shutil.copyfile(src, tmp)
  except BaseException:
    _remove(tmp)
    raise
  _remove(dst)
  os.replace(tmp, dst)


def _remove(path: str) -> None:
  if files.is_url(path):
    if files.isdir(path):
      files.rmtree(path)
    elif files.exists(path):
      files.remove(path)
    return
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path)
  elif os.path.lexists(path):
    os.remove(path)


def _write_json_if_changed(path: str, obj) -> None:
  """`files.write_json` unless `path` holds `obj` already (a rerun of a run writes nothing)."""
  if files.isfile(path):
    try:
      if files.read_json(path) == json.loads(json.dumps(obj)):
        return
    except InputError:
      pass
  files.write_json(path, obj)


def _tokenizer_source(path: str) -> str:
  """The tokenizer file behind `data.tokenizer` (a file, or a directory holding one)."""
  from vaujax.data.tokenizer import Tokenizer
  return Tokenizer.resolve_path(path)


def config_to_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def config_from_json(obj: dict) -> ml_collections.ConfigDict:
  """A ConfigDict from its JSON form; lists become tuples, as the configs declare them."""
  def tuples(x):
    if isinstance(x, dict):
      return {k: tuples(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(tuples(v) for v in x)
    return x
  return ml_collections.ConfigDict(tuples(obj))


# Keys a rerun may change without changing what the checkpoints hold: how long to train and
# the learning-rate schedule (continuing a run at a lower rate is common), how often to save,
# log and evaluate, and where it runs. A change of these is printed, not refused.
RESUME_SAFE = ("total_steps", "optim.total_steps", "optim.warmup_steps",
               "optim.learning_rate", "ckpt_every", "keep",
               "log_every", "progress", "eval.", "evals.", "best_metric", "mesh.", "distributed.",
               "data.read_threads", "data.prefetch_buffer", "init_from")
SUPERSEDED = "superseded"


def recorded_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` as run/config.json records it: copied paths replaced by their names in run/."""
  recorded = config_from_json(config_to_json(config))
  for key, name in COPIED.items():
    if config_value(config, key) and not (key == "data.tetg_params"
                                          and not config_value(config, "model.use_tetg", True)):
      _set(recorded, key, name)
  return recorded


def changes_against_saved(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
  """What a rerun with `config` would change in the run saved in WORKDIR: config keys outside
  `RESUME_SAFE` ('key: saved -> given') and copied files whose content differs. Empty when
  WORKDIR has no saved run."""
  out = artifact_dir(workdir)
  path = os.path.join(out, CONFIG)
  if not files.exists(path):
    return []
  saved = config_from_json(files.read_json(path, "run config"))
  changes = [c for c in diff_configs(saved, recorded_config(config))
             if not c.split(":", 1)[0].startswith(RESUME_SAFE)]
  manifest = files.read_json(os.path.join(out, MANIFEST), "run manifest")
  for key, name in COPIED.items():
    src = config_value(config, key)
    if not src or key not in manifest.get("sources", {}):
      continue
    src = _tokenizer_source(src) if key == "data.tokenizer" else src
    copied = [n for n in manifest.get("files", {}) if n == name or n.startswith(name + "/")]
    if files.exists(src) and copied and _sha256(src) != manifest["files"][copied[0]]:
      changes.append(f"{key}: the content of {src} differs from the run's copy")
  return changes


def set_aside(workdir: str) -> Optional[str]:
  """Moves a run's checkpoints, metrics, TensorBoard logs and run/ into
  WORKDIR/superseded/<n>/ (nothing is deleted); returns that folder, or None if empty."""
  workdir = files.absolute(workdir)
  names = [n for n in ("checkpoints", "damaged_checkpoints", "metrics.jsonl",
                       "metrics.superseded.jsonl", "tensorboard", ARTIFACT, "eval")
           if files.exists(os.path.join(workdir, n))]
  if not names:
    return None
  n = 1
  while files.exists(os.path.join(workdir, SUPERSEDED, str(n))):
    n += 1
  target = files.makedirs(os.path.join(workdir, SUPERSEDED, str(n)))
  for name in names:
    files.replace(os.path.join(workdir, name), os.path.join(target, name))
  return target


def write_artifact(workdir: str, config: ml_collections.ConfigDict,
                   log=print) -> ml_collections.ConfigDict:
  """Writes WORKDIR/run/ (see the module doc) and returns the config as recorded there.

  A rerun rewrites it; keys whose values changed since the last write are listed on the log.
  """
  out = files.makedirs(artifact_dir(workdir))
  recorded = recorded_config(config)
  manifest = {"files": {}, "sources": {}}
  for key, name in COPIED.items():
    src = config_value(config, key)
    if not src or (key == "data.tetg_params"
                   and not config_value(config, "model.use_tetg", True)):
      continue
    src = files.absolute(_tokenizer_source(src) if key == "data.tokenizer" else src)
    if not files.exists(src):
      raise InputError(f"--config.{key}", f"{src} does not exist")
    dst = os.path.join(out, name)
    if key == "data.tokenizer":   # under the name Tokenizer.load looks for in a directory
      from vaujax.data.tokenizer import HF_JSON_NAME, SP_MODEL_NAME
      files.makedirs(dst)
      canonical = HF_JSON_NAME if src.endswith(".json") else SP_MODEL_NAME
      dst, name = os.path.join(dst, canonical), os.path.join(name, canonical)
    if files.absolute(src) != files.absolute(dst):
      _copy(src, dst)
    manifest["files"][name] = _sha256(dst)
    manifest["sources"][key] = src
  encoder = str(config_value(config, "data.encoder", "") or "")
  if encoder and not encoder.startswith("tiny"):
    for part in encoder.split(","):   # converted towers: referenced by path and metadata hash
      meta = os.path.join(part, "vaujax.json")
      if files.exists(meta):
        manifest["sources"][f"encoder:{part}"] = _sha256(meta)
  previous = os.path.join(out, CONFIG)
  if files.exists(previous):
    changed = diff_configs(config_from_json(files.read_json(previous)), recorded)
    if changed:
      log(f"{out}: config changed since the last run: " + "; ".join(changed))
  _write_json_if_changed(os.path.join(out, MANIFEST), manifest)
  _write_json_if_changed(previous, config_to_json(recorded))   # last: marks a whole run/
  return recorded


@dataclasses.dataclass
class Run:
  """A run directory read back: its config (paths resolved into run/) and where it lives."""
  workdir: str
  config: ml_collections.ConfigDict
  saved: ml_collections.ConfigDict   # the config as recorded (before overrides)


def load_run(workdir: str, check_hashes: bool = True) -> Run:
  """The run in WORKDIR (a training workdir), with every copied path resolved into run/."""
  workdir = files.absolute(require_dir(workdir, "run directory"))
  out = artifact_dir(workdir)
  path = os.path.join(out, CONFIG)
  if not files.exists(path):
    raise InputError(workdir, f"not a vaujax run: no {ARTIFACT}/{CONFIG} (runs written by "
                     "`vaujax train` have one)")
  config = config_from_json(files.read_json(path, "run config"))
  manifest = files.read_json(os.path.join(out, MANIFEST), "run manifest")
  if check_hashes:
    for name, digest in manifest.get("files", {}).items():
      full = os.path.join(out, name)
      if not files.exists(full):
        raise InputError(full, "missing from the run (listed in its manifest)")
      if _sha256(full) != digest:
        raise InputError(full, "content differs from the run's manifest (modified or damaged)")
  for key, name in COPIED.items():
    if config_value(config, key) == name:
      _set(config, key, os.path.join(out, name))
  saved = config_from_json(config_to_json(config))
  return Run(workdir, config, saved)


def identity(run: Run) -> dict:
  """What an evaluation's results belong to: the run, its newest finished checkpoint step and
  the sha256 of its resolved config (overrides included). Results of two identities never mix."""
  from vaujax.runs.checkpoint import complete_steps
  steps = complete_steps(os.path.join(run.workdir, "checkpoints"))
  text = json.dumps(config_to_json(run.config), sort_keys=True).encode()
  return {"run": run.workdir, "step": steps[-1] if steps else None,
          "config_sha256": hashlib.sha256(text).hexdigest()}


# Keys added after runs were saved, with the value that reproduces what those runs did: a run
# saved without the key and continued with this value has not changed (readers of a saved
# config treat the absent key the same way: frame_layout.FrameSettings.of_run, conversation).
LEGACY_VALUES = {"data.sample_fps": 0.0, "data.frame_times": "none", "data.imgsp": False,
                 "data.imgsp_turns": 3, "data.hint_intervals": "strongest",
                 "model.patch_position": False, "data.min_frames": 0, "data.hint_jitter": 0.0,
                 "model.content_grid": 1, "data.tetg_fps": 0.0, "data.hint_regions": False,
                 "data.hint_types": False, "data.train_hint_labels": False,
                 "data.group_by_modality": False,
                 # llama.LLM_SIZES, spelled out: this module does not import JAX
                 **{f"model.llm_sizes.{k}": 0 for k in (
                     "hidden_size", "intermediate_size", "num_layers", "num_heads",
                     "num_kv_heads")}}


def diff_configs(saved: ml_collections.ConfigDict, given: ml_collections.ConfigDict) -> list[str]:
  """'key: saved -> given' for every leaf that differs (keys only in one side included; a key
  the saved run predates counts as its LEGACY_VALUES entry)."""
  def leaves(obj, prefix=""):
    if isinstance(obj, dict):
      for k, v in obj.items():
        yield from leaves(v, f"{prefix}{k}.")
    else:
      yield prefix[:-1], obj
  a = dict(leaves(config_to_json(saved)))
  b = dict(leaves(config_to_json(given)))
  a.update({k: v for k, v in LEGACY_VALUES.items() if k not in a and k in b})
  return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
          for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


def classes(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The TETG hint's class list: `data.classes` as 'a,b,c' (or a sequence); empty: UCF-Crime's
  13 classes."""
  value = config_value(config, "data.classes", "") or ""
  names = value.split(",") if isinstance(value, str) else list(value)
  names = tuple(n.strip() for n in names if n.strip())
  return names or UCF_CRIME_CLASSES


def model_config(config: ml_collections.ConfigDict, vocab_size: int):
  """The model config (`vagpt.VAGPTConfig`) with the tokenizer's vocab (and the BERT vocab
  file's, with a Q-Former). JAX is imported here, not with this module, so that a command can
  read and check a run before paying for it."""
  from vaujax.models import vagpt
  cfg = vagpt.config_from_dict(config.model)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, vocab_size=vocab_size))
  if cfg.qformer is not None and not config.model.get("qformer_vocab_size"):
    cfg = dataclasses.replace(cfg, qformer=dataclasses.replace(
        cfg.qformer, vocab_size=bert_tokenizer(config, cfg).vocab_size))
  return cfg


def bert_tokenizer(config: ml_collections.ConfigDict, cfg):
  """The Q-Former's BERT tokenizer (`data.bert_vocab`) when the model has a Q-Former."""
  if cfg.qformer is None:
    return None
  from vaujax.data.bert_tokenizer import BertTokenizer
  return BertTokenizer.load(config.data.get("bert_vocab", ""))


def run_tetg(config: ml_collections.ConfigDict):
  """The run's TETG classifier (`data.tetg_params`), or None when the run uses no hints."""
  from vaujax.runs import tetg_files
  path = config_value(config, "data.tetg_params", "")
  if not path or not config_value(config, "model.use_tetg", True):
    return None
  trained = tetg_files.load_tetg(path)
  hint_types = bool(config_value(config, "data.hint_types", LEGACY_VALUES["data.hint_types"]))
  if hint_types and trained.types is None:
    raise InputError(path, "has no type head, which data.hint_types needs (train TETG with "
                     "configs/tetg.py's types: the anomaly classes)")
  return dataclasses.replace(
      trained,
      hint_intervals=config_value(config, "data.hint_intervals",
                                  LEGACY_VALUES["data.hint_intervals"]),
      hint_regions=bool(config_value(config, "data.hint_regions",
                                     LEGACY_VALUES["data.hint_regions"])),
      hint_types=hint_types)


def vagpt_params(checkpoint: str, config: ml_collections.ConfigDict) -> dict:
  """`{"params": ...}` of a run's newest checkpoint, LoRA adapters merged in."""
  from vaujax.runs.checkpoint import read_run_params
  return merge_lora(read_run_params(checkpoint), config, checkpoint)


def merge_lora(params: dict, config: ml_collections.ConfigDict,
               source: Optional[str] = None) -> dict:
  """Training state params (`{"base", "lora"}` with LoRA, else `{"params"}`) -> `{"params"}`."""
  if "lora" in params:
    from vaujax.models import lora
    rank = config.lora.rank
    alpha = config.lora.get("alpha", 2.0 * rank)
    params = {"params": lora.merge(params["base"]["params"], params["lora"], alpha, rank)}
  if "params" not in params:
    raise InputError(source, "checkpoint holds no model params")
  return {"params": params["params"]}


def lora_loss(compute_loss, config):
  """`compute_loss(params, batch)` on LoRA training state (adapters merged in each step)."""
  from vaujax.models import lora
  rank = config.lora.rank
  alpha = config.lora.get("alpha", 2.0 * rank)

  def loss(p, batch):
    return compute_loss({"params": lora.merge(p["base"]["params"], p["lora"], alpha, rank)},
                        batch)
  return loss


def classes_text(names: Sequence[str]) -> str:
  """`data.classes` as written in a config: comma-separated."""
  return ",".join(names)
