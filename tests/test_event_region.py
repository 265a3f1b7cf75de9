"""Where an event happens, from the tower's patches and TETG's interval (models/event_region.py),
and the hint that says it (data.hint_regions)."""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vaujax.data import conversation, regions
from vaujax.errors import InputError
from vaujax.models import event_region, tetg

T = np.arange(10, dtype=np.float64)     # one frame a second
CLASSES = ("Fighting", "Explosion")


def _patches(events=(), seed=0, grid=8, dim=16):
  """[10, grid*grid, dim]: every patch drifts a little each frame (moving normal objects); each
  (cell, start, end) event adds a large change to that region's patches while it lasts."""
  rng = np.random.RandomState(seed)
  p = np.cumsum(rng.normal(0, 0.05, (len(T), grid * grid, dim)), 0)
  cells = event_region.patch_cells(grid * grid)
  for cell, start, end in events:
    on = (T >= start) & (T <= end)
    p[np.ix_(on, cells == cell)] += rng.normal(0, 1.0, (on.sum(), (cells == cell).sum(), dim))
  return p.astype(np.float32)


def test_patch_cells_agree_with_the_generators_region_of_each_patch_centre():
  for grid, side in ((8, 112), (16, 224), (3, 42)):
    cells = event_region.patch_cells(grid * grid)
    step = side / grid
    want = [regions.REGIONS.index(regions.region_of((j + 0.5) * step, (i + 0.5) * step,
                                                    side, side))
            for i in range(grid) for j in range(grid)]
    assert cells.tolist() == want
  assert np.bincount(event_region.patch_cells(64)).tolist() == [9, 6, 9, 6, 4, 6, 9, 6, 9]
  for bad in (63, 4):
    with pytest.raises(ValueError, match="square patch grid"):
      event_region.patch_cells(bad)


def test_the_region_that_changes_during_the_interval_is_found_in_every_cell():
  for cell in range(9):
    for seed in range(3):
      p = _patches([(cell, 4, 6)], seed=seed)
      assert event_region.event_region(p, T, (4.0, 6.0)) == cell
  # two events at other times: each interval finds its own region
  p = _patches([(0, 2, 3), (8, 6, 8)])
  assert event_region.event_region(p, T, (2.0, 3.0)) == 0
  assert event_region.event_region(p, T, (6.0, 8.0)) == 8


def test_the_reference_frame_and_where_nothing_can_be_said():
  # an event from the first frame: the first frame after it is the reference
  p = _patches([(5, 0, 3)])
  assert event_region.event_region(p, T, (0.0, 3.0)) == 5
  scores = event_region.region_scores(p, T, (0.0, 3.0))
  manual = np.abs(p[:4] - p[4][None]).sum(-1).mean(0)
  cells = event_region.patch_cells(64)
  assert np.allclose(scores, [manual[cells == c].mean() for c in range(9)], rtol=1e-5)
  assert event_region.region_scores(p, T, (20.0, 30.0)) is None          # no frame inside
  assert event_region.event_region(p, T, (0.0, 9.0)) is None             # no frame outside
  assert event_region.event_region(p[:1], T[:1], (0.0, 0.0)) is None     # one frame (an image)
  with pytest.raises(ValueError, match=r"patches \[T, N, D\] and timestamps \[T\]"):
    event_region.region_scores(p[0], T, (1.0, 2.0))
  with pytest.raises(ValueError, match="timestamps"):
    event_region.region_scores(p, T[:5], (1.0, 2.0))


def test_hint_text_says_where_each_run_happens():
  one = conversation.hint_text((1.0, 3.0), CLASSES, ["top left"])
  assert one == ("Known common crime types are: 'Fighting', 'Explosion'. There is one of the "
                 "crime types occurring from 1.0 to 3.0 seconds near the top left of the scene.")
  assert conversation.hint_text([(1.0, 3.0)], CLASSES, ["top left"]) == one
  two = conversation.hint_text([(1.0, 3.0), (5.0, 7.5)], CLASSES, ["centre", None])
  assert two.endswith("There are anomalies of the crime types occurring from 1.0 to 3.0 seconds "
                      "near the centre of the scene and from 5.0 to 7.5 seconds.")
  # no region known: exactly the hint without regions
  for where in (None, [None], (None,)):
    assert conversation.hint_text((1.0, 3.0), CLASSES, where) == conversation.hint_text(
        (1.0, 3.0), CLASSES)
  assert conversation.hint_text(None, CLASSES, None) == conversation.hint_text(None, CLASSES)
  with pytest.raises(ValueError, match="1 regions for 2 intervals"):
    conversation.hint_text([(1.0, 3.0), (5.0, 7.0)], CLASSES, ["centre"])
  with pytest.raises(ValueError, match="unknown region 'upstairs'"):
    conversation.hint_text((1.0, 3.0), CLASSES, ["upstairs"])


def _fixed_tetg(hint_intervals, hint_regions=True):
  """A TrainedTETG whose frame scores are the class embeddings' first column."""
  from vaujax.runs import tetg_files

  class Fixed(tetg_files.TrainedTETG):
    def scores(self, class_embeddings):
      return np.asarray(class_embeddings)[:, 0]
  return Fixed({}, tetg.TETGConfig(), hint_intervals, hint_regions)


def test_the_tetg_hint_names_each_runs_region_from_the_tower_patches():
  feats = {"dino_cls": np.array([0, .9, .8, 0, 0, 0, 1, 1, 1, 0])[:, None], "timestamps": T,
           "tower_patches": _patches([(2, 1, 2), (7, 6, 8)])}
  strongest = _fixed_tetg("strongest").view(feats, CLASSES)
  assert strongest.interval == (6.0, 8.0) and strongest.where == ("bottom centre",)
  assert strongest.hint == conversation.hint_text((6.0, 8.0), CLASSES, ["bottom centre"])
  every = _fixed_tetg("all").view(feats, CLASSES)
  assert every.intervals == ((1.0, 2.0), (6.0, 8.0))
  assert every.where == ("top right", "bottom centre")
  assert every.hint.endswith("from 1.0 to 2.0 seconds near the top right of the scene and from "
                             "6.0 to 8.0 seconds near the bottom centre of the scene.")
  # off: the hint is the one without regions, and the patches are not needed
  off = _fixed_tetg("all", hint_regions=False)
  assert off.view(feats, CLASSES).hint == conversation.hint_text(every.intervals, CLASSES)
  assert off.view(feats, CLASSES).where is None
  # a jittered training hint keeps each run's region
  hint = _fixed_tetg("all").hint_fn(CLASSES)
  text = hint("v", feats, jitter=0.5, rng=np.random.default_rng(0))
  assert re.fullmatch(r".*from [\d.]+ to [\d.]+ seconds near the top right of the scene and from "
                      r"[\d.]+ to [\d.]+ seconds near the bottom centre of the scene\.", text)
  # nothing found by TETG: no region, no patches needed
  quiet = {"dino_cls": np.zeros((10, 1)), "timestamps": T}
  assert _fixed_tetg("all").view(quiet, CLASSES).hint == conversation.hint_text(None, CLASSES)
  with pytest.raises(InputError, match=r"--config\.data\.hint_regions.*tower_patches"):
    _fixed_tetg("all").view({k: v for k, v in feats.items() if k != "tower_patches"}, CLASSES)


def test_hint_regions_is_a_recorded_checked_key(tmp_path):
  from configs import vagpt_stage1
  from vaujax.runs import run_dir, tetg_files
  from vaujax.train import config_checks
  obj = run_dir.config_to_json(vagpt_stage1.get_config("size=tiny"))
  assert obj["data"]["hint_regions"] is False
  obj["data"]["hint_regions"] = "yes"
  with pytest.raises(InputError, match=r"--config\.data\.hint_regions.*got 'yes'"):
    config_checks.check_vagpt(run_dir.config_from_json(obj))
  saved = ml_collections.ConfigDict({"data": {"batch_size": 2}})        # saved before the key
  given = ml_collections.ConfigDict({"data": {"batch_size": 2, "hint_regions": False}})
  assert run_dir.diff_configs(saved, given) == []
  given.data.hint_regions = True
  assert run_dir.diff_configs(saved, given) == ["data.hint_regions: False -> True"]
  cfg = tetg.TETGConfig(hidden=(4,))
  params = tetg.TETGClassifier(cfg).init(jax.random.key(0), jnp.zeros((1, 3)))
  tetg_files.save_tetg(str(tmp_path / "tetg"), params, cfg)
  config = ml_collections.ConfigDict({"data": {"tetg_params": str(tmp_path / "tetg")}})
  assert run_dir.run_tetg(config).hint_regions is False
  config.data.hint_regions = True
  assert run_dir.run_tetg(config).hint_regions is True


def test_labelled_regions_replace_the_towers_in_a_training_hint():
  """data.train_hint_labels: each run's region is its annotated event's (the one it
  overlaps most, or touches); a run that meets no event keeps the tower's; without events (or
  with hint_regions off) the hint is the tower's, byte for byte."""
  feats = {"dino_cls": np.array([0, .9, .8, 0, 0, 0, 1, 1, 1, 0])[:, None], "timestamps": T,
           "tower_patches": _patches([(2, 1, 2), (7, 6, 8)])}
  hint = _fixed_tetg("all").hint_fn(CLASSES)
  tower = hint("v", feats)
  assert "top right" in tower and "bottom centre" in tower
  events = [{"label": "Fighting", "start": 0.5, "end": 2.5, "region": "middle left"},
            {"label": "Explosion", "start": 5.5, "end": 6.5, "region": None},
            {"label": "Explosion", "start": 7.0, "end": 9.0, "region": "top left"}]
  assert hint("v", feats, events=events) == conversation.hint_text(
      [(1.0, 2.0), (6.0, 8.0)], CLASSES, ["middle left", "top left"])
  # the second run overlaps the region-less event more, but only events with a region count;
  # an event that only touches a run still names it; a run that meets none keeps the tower's
  touching = [{"label": "Fighting", "start": 2.0, "end": 3.0, "region": "centre"}]
  assert hint("v", feats, events=touching) == conversation.hint_text(
      [(1.0, 2.0), (6.0, 8.0)], CLASSES, ["centre", "bottom centre"])
  assert hint("v", feats, events=[]) == tower
  # jittered: the regions are the labels', the intervals move
  text = hint("v", feats, jitter=0.5, rng=np.random.default_rng(0), events=events)
  assert re.fullmatch(r".*from [\d.]+ to [\d.]+ seconds near the middle left of the scene and "
                      r"from [\d.]+ to [\d.]+ seconds near the top left of the scene\.", text)
  # the strongest run alone
  strongest = _fixed_tetg("strongest").hint_fn(CLASSES)
  assert strongest("v", feats, events=events) == conversation.hint_text(
      (6.0, 8.0), CLASSES, ["top left"])
  # hint_regions off: labels change nothing
  off = _fixed_tetg("all", hint_regions=False).hint_fn(CLASSES)
  assert off("v", feats, events=events) == conversation.hint_text([(1.0, 2.0), (6.0, 8.0)],
                                                                  CLASSES)


def test_train_hint_labels_is_a_recorded_checked_training_only_key():
  from configs import vagpt_stage1
  from vaujax.runs import run_dir
  from vaujax.train import config_checks, vagpt_task
  obj = run_dir.config_to_json(vagpt_stage1.get_config("size=tiny"))
  assert obj["data"]["train_hint_labels"] is False
  obj["data"]["train_hint_labels"] = "labels"
  with pytest.raises(InputError, match=r"--config\.data\.train_hint_labels.*got 'labels'"):
    config_checks.check_vagpt(run_dir.config_from_json(obj))
  obj["data"]["train_hint_labels"] = True
  with pytest.raises(InputError, match=r"--config\.data\.train_hint_labels: sets the regions "
                     r"and types the hint says: it needs data\.hint_regions or "
                     r"data\.hint_types"):
    config_checks.check_vagpt(run_dir.config_from_json(obj))
  saved = ml_collections.ConfigDict({"data": {"batch_size": 2}})        # saved before the key
  given = ml_collections.ConfigDict({"data": {"batch_size": 2, "train_hint_labels": False}})
  assert run_dir.diff_configs(saved, given) == []
  given.data.train_hint_labels = True
  assert run_dir.diff_configs(saved, given) == ["data.train_hint_labels: False -> True"]
  config = vagpt_stage1.get_config("size=tiny")
  config.data.hint_regions = config.data.train_hint_labels = True
  cfg = run_dir.model_config(config, 32000)
  assert vagpt_task.pipeline_config(config, cfg, train=True).hint_labels is True
  assert vagpt_task.pipeline_config(config, cfg, train=False).hint_labels is False
