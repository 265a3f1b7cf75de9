"""`model.llm_sizes` (a named LLM's sizes changed from the config: a deeper tiny LLM) and the demo's
model flags (`--llm_layers`, `--stage1_lr`)."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from configs import vagpt_stage1
from vaujax.errors import InputError
from vaujax.models import llama, vagpt
from vaujax.runs import run_dir
from vaujax.train import config_checks


def test_zeros_keep_the_named_llm_and_values_replace_its_sizes():
  assert llama.llm_config("tiny", {k: 0 for k in llama.LLM_SIZES}) == llama.llm_config("tiny")
  assert llama.llm_config("tiny", None) == llama.tiny_llama()
  deeper = llama.llm_config("tiny", {"num_layers": 4, "hidden_size": 0})
  assert (deeper.num_layers, deeper.hidden_size) == (4, llama.tiny_llama().hidden_size)
  wider = llama.llm_config("vicuna_7b_v15", {"hidden_size": 128, "intermediate_size": 256,
                                             "num_heads": 4, "num_kv_heads": 4,
                                             "num_layers": 1})
  # only the sizes change: the named LLM's other settings stay (v1.5: eps 1e-5, 4096 positions)
  assert (wider.hidden_size, wider.num_layers, wider.rms_norm_eps,
          wider.max_position_embeddings) == (128, 1, 1e-5, 4096)
  with pytest.raises(ValueError, match="unknown LLM size 'vocab_size'"):
    llama.llm_config("tiny", {"vocab_size": 8})


def test_the_config_key_builds_a_model_with_that_many_layers():
  c = vagpt_stage1.get_config("size=tiny,frames=4")
  assert dict(c.model.llm_sizes) == {k: 0 for k in llama.LLM_SIZES}
  c.model.llm_sizes.num_layers = 3
  cfg = vagpt.config_from_dict(c.model)
  assert cfg.llm.num_layers == 3
  ids = jnp.ones((1, 8), jnp.int32)
  shapes = jax.eval_shape(lambda: llama.Llama(cfg.llm).init(jax.random.key(0), ids))
  layers = sorted(k for k in shapes["params"] if k.startswith("layers_"))
  assert layers == ["layers_0", "layers_1", "layers_2"]


def test_runs_saved_before_the_key_read_zero_and_bad_values_name_the_flag():
  saved = ml_collections.ConfigDict({"model": {"num_frames": 8}})
  given = ml_collections.ConfigDict({"model": {"num_frames": 8, "llm_sizes": {
      k: 0 for k in llama.LLM_SIZES}}})
  assert run_dir.diff_configs(saved, given) == []
  given.model.llm_sizes.num_layers = 4
  assert run_dir.diff_configs(saved, given) == ["model.llm_sizes.num_layers: 0 -> 4"]
  # run_dir spells the sizes out (it does not import JAX): the same list as llama's
  assert sorted(k.rsplit(".", 1)[1] for k in run_dir.LEGACY_VALUES
                if k.startswith("model.llm_sizes.")) == sorted(llama.LLM_SIZES)

  obj = run_dir.config_to_json(vagpt_stage1.get_config("size=tiny,frames=4"))

  def check(**sizes):
    model = {**obj["model"], "llm_sizes": {**obj["model"]["llm_sizes"], **sizes}}
    config_checks.check_vagpt(run_dir.config_from_json({**obj, "model": model}))
  for good in ({"num_layers": 4}, {"hidden_size": 128, "num_heads": 8, "num_kv_heads": 4}):
    with pytest.raises(InputError) as err:      # the next problem: no training data given
      check(**good)
    assert "llm_sizes" not in str(err.value.source)
  for bad, key, problem in (({"num_layers": -1}, "num_layers", "must be >= 0"),
                            ({"num_layers": 2.5}, "num_layers", "must be an integer"),
                            ({"num_layers": True}, "num_layers", "must be an integer"),
                            ({"depth": 4}, "depth", "is not an LLM size"),
                            ({"num_heads": 3}, None, "not a multiple of num_kv_heads"),
                            ({"hidden_size": 60}, None, "head_dim=15 must be even")):
    with pytest.raises(InputError, match=problem) as err:
      check(**bad)
    assert err.value.source == "--config.model.llm_sizes" + (f".{key}" if key else "")


def test_the_demo_flag_sets_the_stage_configs_layers():
  from vaujax.app import demo
  paths = {"train_json": "t.json", "features": "f", "tokenizer": "tok", "classes": ["a", "b"],
           "encoder": "tiny:0", "dino_dim": 64}
  for layers, built in ((0, 2), (4, 4)):
    c = demo.stage_config(vagpt_stage1.get_config, paths, demo.DemoConfig(llm_layers=layers),
                          100, "tetg")
    assert c.model.llm_sizes.num_layers == layers
    assert vagpt.config_from_dict(c.model).llm.num_layers == built
  # a workdir recorded before the flag existed trained the 2-layer LLM: no flag differs
  recorded = {k: v for k, v in demo.dataclasses.asdict(demo.DemoConfig()).items()
              if k != "llm_layers"}
  assert demo._differing_flag(recorded, demo.DemoConfig()) is None
  assert demo._differing_flag(recorded, demo.DemoConfig(llm_layers=4))[0] == "llm_layers"


def test_the_demo_stage_one_learning_rate_flag():
  from configs import vagpt_stage2
  from vaujax.app import demo
  paths = {"train_json": "t.json", "features": "f", "tokenizer": "tok", "classes": ["a", "b"],
           "encoder": "tiny:0", "dino_dim": 64}
  c = demo.DemoConfig(stage1_lr=1e-3)
  default = demo.stage_config(vagpt_stage1.get_config, paths, c, 100, "tetg")
  assert default.optim.learning_rate == vagpt_stage1.get_config("size=tiny").optim.learning_rate
  s1 = demo.stage_config(vagpt_stage1.get_config, paths, c, 100, "tetg",
                         learning_rate=c.stage1_lr)
  assert s1.optim.learning_rate == 1e-3
  s2 = demo.stage_config(vagpt_stage2.get_config, paths, c, 100, "tetg")
  assert s2.optim.learning_rate == vagpt_stage2.get_config("size=tiny").optim.learning_rate
  recorded = {k: v for k, v in demo.dataclasses.asdict(demo.DemoConfig()).items()
              if k != "stage1_lr"}
  assert demo._differing_flag(recorded, demo.DemoConfig()) is None
  assert demo._differing_flag(recorded, c)[0] == "stage1_lr"
