"""The TFDS MC benchmark builder takes what the benchmark reader takes: 2 to 8 options."""

import json

import pytest

from vaujax.data import tfds_builders
from vaujax.errors import InputError


def _item(i, options):
  return {"id": f"v{i}_spatial", "video": f"v{i}.mp4", "question": "Where?", "options": options,
          "answer": "B", "category": "spatial", "gt_interval": None, "label": "Arson"}


def test_mc_builder_takes_two_to_eight_options(tmp_path):
  import tensorflow_datasets as tfds
  manual = tmp_path / "m"
  manual.mkdir()
  (manual / "test.json").write_text(json.dumps([_item(0, ["a", "b"]), _item(1, list("abc")),
                                                _item(2, list("abcdefgh"))]))
  tfds_builders.build(tfds_builders.MultipleChoiceBenchmark, str(tmp_path / "t"), str(manual))
  src = tfds.data_source("vaujax_multiple_choice", data_dir=str(tmp_path / "t"), split="test")
  assert sorted(len(json.loads(src[i]["options"])) for i in range(3)) == [2, 3, 8]
  (manual / "test.json").write_text(json.dumps([_item(0, list("abcdefghi"))]))
  with pytest.raises(InputError, match=r"test.json: item 0: 9 options \(the benchmark reader "
                     r"takes 2 to 8\)"):
    tfds_builders.build(tfds_builders.MultipleChoiceBenchmark, str(tmp_path / "u"), str(manual))
