"""Image examples beside videos (issue 29): an image, or one cut frame of a video, batches as a
one-frame video (padded to T, slots for its one frame, no TETG interval). Text-only examples
(neither video nor image: LLaVA's text conversations, the demo's hint drills) batch beside them
with blank frame arrays that no slot reads."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vaujax.data import conversation as conv
from vaujax.data import features, frame_layout, instructions, pipeline
from vaujax.errors import InputError

T = 4                  # model.num_frames
CLASSES = ("Arson", "Fighting")


class CharTokenizer:
  """Each character its own id inside a 300-word vocabulary (enough for the pipeline)."""
  bos_id, eos_id, pad_id = 1, 2, 0

  def encode(self, text):
    return [ord(c) % 290 + 5 for c in text]


def _chat(question, answer):
  return [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny VA-GPT (SETS on, context + content tokens), a 3-frame video's and an image's feature
  files, and the pipeline config of an fps-sampled run with frame times as text."""
  from configs import vagpt as vagpt_config
  from vaujax.models import vagpt
  cd = vagpt_config.get_config(f"size=tiny,frames={T},qformer=False")
  cfg = vagpt.config_from_dict(cd)
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, vocab_size=300))
  rng = np.random.RandomState(0)
  arrays = lambda n: {  # noqa: E731
      "tower_patches": rng.randn(n, cfg.num_patches, cfg.frame_tokens.vision_dim).astype("f4"),
      "dino_patches": rng.randn(n, cfg.dino_patches, cd.dino_dim).astype("f4"),
      "dino_cls": rng.randn(n, cd.dino_dim).astype("f4")}
  root = tmp_path_factory.mktemp("images")
  (root / "feats" / "frames").mkdir(parents=True)
  video = {**arrays(3), "timestamps": np.array([0.0, 1.5, 3.0])}
  image = {**arrays(1), "timestamps": np.zeros(1)}
  features.write_features(str(root / "feats" / "v1.npz"), video)
  features.write_features(str(root / "feats" / "frames" / "x.npz"), image)
  pcfg = pipeline.PipelineConfig(
      feature_dir=str(root / "feats"), num_video_tokens=cfg.num_video_tokens, max_length=384,
      batch_size=2, num_frames=T, variable_frames=True, frame_times="text",
      feature_shapes={"tower_patches": (cfg.num_patches, cfg.frame_tokens.vision_dim),
                      "dino_patches": (cfg.dino_patches, cd.dino_dim)})
  items = {"video": {"id": "v", "video": "videos/v1.mp4",
                     "conversations": _chat("What happens?", "A fire starts.")},
           "image": {"id": "i", "image": "frames/x.jpg",
                     "conversations": _chat("Is this normal?", "No, a fight.")},
           "cut": {"id": "c", "video": "videos/v1.mp4", "frame_s": 1.2,
                   "conversations": _chat("Is this normal?", "No, a fire.")}}
  model = vagpt.VAGPT(cfg)
  prep = pipeline.Prepare(pcfg, CharTokenizer())
  first = prep.map(items["video"])
  params = jax.jit(model.init)(jax.random.key(0), first["input_ids"][None],
                               first["tower_patches"][None], first["dino_patches"][None])
  return dict(cfg=cfg, model=model, params=params, pcfg=pcfg, items=items, video=video,
              image=image, root=root, prep=prep)


def _losses(s, examples, cfg=None):
  """Per-example token-mean next-token loss of one batch of prepared examples."""
  from vaujax.models import vagpt
  from vaujax.train.losses import next_token_loss
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  model = s["model"] if cfg is None else vagpt.VAGPT(cfg)
  logits = jax.jit(model.apply)(s["params"], batch["input_ids"], batch["tower_patches"],
                                batch["dino_patches"], attention_mask=batch["attention_mask"])
  return [float(next_token_loss(logits[i:i + 1], jnp.asarray(batch["labels"][i:i + 1]))[0])
          for i in range(len(examples))]


def test_image_and_video_in_one_batch_give_each_ones_loss_alone(setup):
  """THE issue's test: the image padded to T beside a 3-frame video, in one batch, gives each
  the loss it has alone; and the padded image's loss equals the image in a model built for one
  frame (unpadded), so padding changes nothing the LLM sees (SETS included: it would rank the
  image's patches by their norm if padded with zero frames)."""
  s = setup
  video, image = (s["prep"].map(s["items"][k]) for k in ("video", "image"))
  assert video["tower_patches"].shape == image["tower_patches"].shape[:1] + \
      video["tower_patches"].shape[1:] and image["tower_patches"].shape[0] == T
  assert image["frame_mask"].tolist() == [1, 0, 0, 0]
  assert (image["input_ids"] == conv.VIDEO_TOKEN_ID).sum() == s["cfg"].num_video_tokens // T
  together = _losses(s, [video, image])
  alone = _losses(s, [video]) + _losses(s, [image])
  np.testing.assert_allclose(together, alone, atol=1e-5)
  assert abs(together[0] - together[1]) > 1e-3        # two different examples
  one = dataclasses.replace(s["cfg"], num_frames=1)
  unpadded = {**image, **{k: image[k][:1] for k in ("tower_patches", "dino_patches")}}
  np.testing.assert_allclose(_losses(s, [unpadded], one), alone[1:], atol=1e-5)


def test_one_frame_keeps_its_patches_in_order_under_sets(setup):
  """SETS on a padded one-frame example keeps the first k patches in order, as unpadded."""
  from vaujax.models import sets
  s = setup
  image = s["prep"].map(s["items"]["image"])
  kept = sets.select_batch(jnp.asarray(image["dino_patches"][None]),
                           jnp.asarray(image["tower_patches"][None]), 0.5)["tokens"][0, 0]
  k = kept.shape[0]
  np.testing.assert_array_equal(np.asarray(kept), image["tower_patches"][0, :k])


def test_cut_frame_is_the_nearest_frame_of_the_video(setup):
  """A cut frame reads the video's file: every per-frame array at the frame nearest frame_s,
  timestamps [0.0] (as an image's), prompt slots for one frame."""
  s = setup
  _, cut = pipeline._read_example_features(s["pcfg"], s["items"]["cut"])
  for key in ("tower_patches", "dino_patches", "dino_cls"):
    np.testing.assert_array_equal(cut[key], s["video"][key][1:2])      # 1.2 s -> the 1.5 s frame
  assert cut["timestamps"].tolist() == [0.0]
  for frame_s, want in ((0.0, 0), (0.75, 0), (0.76, 1), (2.9, 2), (4.5, 2)):  # ties: earlier
    got = frame_layout.cut_frame(s["video"], frame_s)
    np.testing.assert_array_equal(got["dino_cls"], s["video"]["dino_cls"][want:want + 1])
  out = s["prep"].map(s["items"]["cut"])
  assert out["frame_mask"].tolist() == [1, 0, 0, 0]
  np.testing.assert_array_equal(out["tower_patches"][0], s["video"]["tower_patches"][1])
  ids = out["input_ids"].tolist()
  assert ids.count(conv.VIDEO_TOKEN_ID) == s["cfg"].num_video_tokens // T
  slot = ids.index(conv.VIDEO_TOKEN_ID)
  assert ids[slot - 4:slot] == CharTokenizer().encode("0.0s")        # an image's time


def test_image_gets_the_class_sentence_only(setup):
  """A TETG that marks every frame anomalous gives the video an interval and the image (or a cut
  frame) the class sentence alone: an image has no time axis."""
  import flax.linen as nn

  from vaujax.models import tetg
  from vaujax.runs.tetg_files import TrainedTETG
  s = setup
  config = tetg.TETGConfig(hidden=(8,), threshold=0.0)
  params = nn.unbox(tetg.TETGClassifier(config).init(jax.random.key(0),
                                                     jnp.zeros((1, s["video"]["dino_cls"].shape[1]))))
  class_only = conv.hint_text(None, CLASSES)
  for named in ("strongest", "all"):     # data.hint_intervals
    hints, trained = [], TrainedTETG(params, config, named).hint_fn(CLASSES)
    prep = pipeline.Prepare(s["pcfg"], CharTokenizer(),
                            hint_fn=lambda vid, f: hints.append(trained(vid, f)) or hints[-1])
    for key in ("video", "image", "cut"):
      prep.map(s["items"][key])
    assert hints[0].startswith(class_only) and hints[0] != class_only
    assert hints[1:] == [class_only, class_only]


def test_one_frame_examples_refused_where_they_cannot_be(setup, tmp_path):
  s = setup
  fixed = dataclasses.replace(s["pcfg"], variable_frames=False, frame_times="none")
  with pytest.raises(InputError, match=r"^i: is an image \(key 'x'\).*data.sample_fps > 0"):
    pipeline.Prepare(fixed, CharTokenizer()).map(s["items"]["image"])
  with pytest.raises(InputError, match=r"^c: is a cut frame \(key 'v1'\)"):
    pipeline.Prepare(fixed, CharTokenizer()).map(s["items"]["cut"])
  kept, problems = pipeline.drop_examples_without_features(list(s["items"].values()), fixed)
  assert [i["id"] for i in kept] == [] and len(problems) == 3   # the video has 3 frames, not T
  late = dict(s["items"]["cut"], frame_s=5.0)
  with pytest.raises(InputError, match=r"v1.npz: has no frame near frame_s 5: its last sampled "
                     r"frame is at 3.00 s"):
    s["prep"].map(late)
  video_named = dict(s["items"]["image"], image="frames/v1.png")      # finds v1.npz, 3 frames
  with pytest.raises(InputError, match=r"v1.npz: has 3 frames, but it is the feature file of "
                     r"the image of example i"):
    s["prep"].map(video_named)
  with pytest.raises(InputError, match=r"examples v and i: videos 'videos/v1.mp4' and "
                     r"'frames/v1.png' would both read the feature file .*v1.npz"):
    pipeline.check_unique_keys([s["items"]["video"], video_named], "train.json",
                               s["pcfg"].feature_dir)
  pipeline.check_unique_keys(list(s["items"].values()), "train.json", s["pcfg"].feature_dir)
  with pytest.raises(InputError, match="image path '../x.jpg' escapes the dataset root"):
    s["prep"].map(dict(s["items"]["image"], image="../x.jpg"))
  untimed = {k: v for k, v in s["video"].items() if k != "timestamps"}
  with pytest.raises(InputError, match=r"old.npz: has no 'timestamps' array, which a cut frame"):
    frame_layout.cut_frame(untimed, 1.0, "old.npz")


@pytest.mark.parametrize("item,problem", [
    ({"image": "x.jpg", "video": "v.mp4"}, "has both 'image' and 'video'"),
    ({"image": 3}, "'image' must be the path of an image file, got 3"),
    ({"frame_s": 1.0}, "has 'frame_s' but no 'video'"),
    ({"video": "v.mp4", "frame_s": -1}, "'frame_s' must be a finite number of seconds >= 0, "
     "got -1"),
    ({"video": "v.mp4", "frame_s": "3"}, "'frame_s' must be a finite number"),
    ({"video": "v.mp4", "frame_s": True}, "'frame_s' must be a finite number"),
    ({"video": "v.mp4", "frame_s": float("nan")}, "'frame_s' must be a finite number of "
     "seconds >= 0, got nan"),
    ({"video": "v.mp4", "frame_s": float("inf")}, "'frame_s' must be a finite number of "
     "seconds >= 0, got inf"),
    ({}, r"has an <image> placeholder but no 'image' \(or 'video' and 'frame_s'"),
])
def test_bad_image_items(tmp_path, item, problem):
  path = tmp_path / "train.json"
  path.write_text(json.dumps([{"id": "x", **item, "conversations": _chat("q?", "a.")}]))
  with pytest.raises(InputError, match=f"train.json: example x: {problem}"):
    instructions.read_instructions(str(path))


def test_good_image_items_are_read(tmp_path):
  path = tmp_path / "train.json"
  good = [{"id": "a", "image": "frames/x.jpg", "conversations": _chat("q?", "a.")},
          {"id": "b", "video": "v.mp4", "frame_s": 0, "conversations": _chat("q?", "a.")},
          {"id": "c", "video": "v.mp4", "frame_s": 2.5, "conversations": _chat("q?", "a.")},
          {"id": "d", "video": "v.mp4", "conversations": _chat("q?", "a.")}]   # LLaMA-VID's
  path.write_text(json.dumps(good))
  assert instructions.read_instructions(str(path)) == (good, [])


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
  """A 4-frame video (the towers' chunk for one image: one compile) and its 3rd frame (as
  decoded) saved as a PNG beside it, both extracted by `extract_folder` with the tiny towers;
  plus a JPEG in a subfolder."""
  from PIL import Image

  from vaujax.data import video as video_io
  root = tmp_path_factory.mktemp("extract")
  (root / "media" / "frames").mkdir(parents=True)
  y, x = np.mgrid[:64, :80]
  frames = np.stack([np.stack([(x * 3 + 20 * t) % 256, (y * 4) % 256,
                               np.full_like(x, 40 * t)], -1) for t in range(4)]).astype(np.uint8)
  video_io.write_video(root / "media" / "clip.mp4", frames, fps=2.0)
  decoded, stamps = video_io.read_video(root / "media" / "clip.mp4")
  Image.fromarray(decoded[2]).save(root / "media" / "still.png")
  Image.fromarray(decoded[3]).save(root / "media" / "frames" / "cam.jpg", quality=90)
  report = features.extract_folder(str(root / "media"), str(root / "feats"),
                                   features.tiny_encoder(), log=lambda s: None)
  return root, report, stamps


def test_image_extraction_equals_that_frame_of_the_video(extracted):
  """An image file's features are the video's at that frame, through the same towers and
  preprocessing; the cut frame of the video at that time is the same feature dict."""
  root, report, stamps = extracted
  assert report["written"] == 3 and report["failed"] == []
  video = features.read_features(str(root / "feats" / "clip.npz"))
  image = features.read_features(str(root / "feats" / "still.npz"))
  assert image["timestamps"].tolist() == [0.0] and features.frame_count(video) == 4
  cut = frame_layout.cut_frame(video, float(stamps[2]))
  assert sorted(cut) == sorted(image)
  for key in image:
    np.testing.assert_allclose(cut[key], image[key], atol=1e-5, err_msg=key)
  sub = features.read_features(str(root / "feats" / "frames" / "cam.npz"))
  assert features.frame_count(sub) == 1                  # keyed by the path, folders kept
  assert features.video_feature_path(str(root / "feats"), "frames/cam.jpg").endswith(
      "frames/cam.npz")


def test_bad_image_files_are_refused_naming_the_file(tmp_path):
  import struct
  import zlib

  from PIL import Image
  Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "ok.png")
  assert features.read_image(str(tmp_path / "ok.png")).shape == (1, 48, 64, 3)
  assert features.read_image(str(tmp_path / "ok.png"), max_side=32).shape == (1, 24, 32, 3)
  good = (tmp_path / "ok.png").read_bytes()

  def declaring(width, height):      # the PNG header (IHDR) rewritten, its CRC kept valid
    ihdr = b"IHDR" + struct.pack(">II", width, height) + good[24:29]
    return good[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + good[33:]

  (tmp_path / "big.png").write_bytes(declaring(8000, 8000))
  (tmp_path / "bomb.png").write_bytes(declaring(100000, 100000))
  (tmp_path / "cut.png").write_bytes(good[:len(good) // 2])
  (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg" * 20)
  cases = {"big.png": r"declares 8000x8000 pixels, more than the 40000000",
           "bomb.png": "declares more pixels than an image may have",
           "cut.png": "not a readable image", "junk.jpg": "not a readable image",
           "none.png": "image file does not exist"}
  for name, problem in cases.items():
    with pytest.raises(InputError, match=f"{name}: {problem}"):
      features.read_image(str(tmp_path / name))
  (tmp_path / "none.png").unlink(missing_ok=True)
  report = features.extract_folder(str(tmp_path), str(tmp_path / "f"), features.tiny_encoder(),
                                   log=lambda s: None)
  assert report["written"] == 1 and sorted(n for n, _ in report["failed"]) == sorted(
      n for n in cases if n != "none.png")


def test_tfds_builder_refuses_image_examples(tmp_path):
  """The TFDS records keep a video path only: an image or cut frame there would train as the
  whole video (or fail on a missing key), so the builder refuses it naming the example."""
  from vaujax.data import tfds_builders
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "train.json").write_text(json.dumps(
      [{"id": "c", "video": "v.mp4", "frame_s": 1.0, "conversations": _chat("q?", "a.")}]))
  with pytest.raises(InputError, match=r"train.json: example c: image and cut-frame examples"):
    tfds_builders.build(tfds_builders.InstructionData, str(tmp_path / "tfds"), str(manual))


def test_tfds_keeps_text_only_examples(tmp_path):
  """A text-only example goes through TFDS with an empty video path: read back, it is text only
  and its conversation is unchanged."""
  import tensorflow_datasets as tfds

  from vaujax.data import tfds_builders
  manual = tmp_path / "manual"
  manual.mkdir()
  video = {"id": "v", "video": "videos/v1.mp4", "conversations": _chat("q?", "a.")}
  (manual / "train.json").write_text(json.dumps([TEXT, video]))
  tfds_builders.build(tfds_builders.InstructionData, str(tmp_path / "tfds"), str(manual))
  source = pipeline.TFDSInstructionSource(tfds.data_source(
      "vaujax_instructions", data_dir=str(tmp_path / "tfds"), split="train"))
  text, back = source[0], source[1]
  assert pipeline.is_text_only(text) and text["conversations"] == TEXT["conversations"]
  assert not pipeline.is_text_only(back) and back["video"] == "videos/v1.mp4"


TEXT = {"id": "t", "conversations": [
    {"from": "human", "value": "There is one of the crime types occurring from 2.0 to 5.0 "
     "seconds. When does the anomaly happen?"}, {"from": "gpt", "value": "From 2.0 to 5.0."}]}


def test_text_only_and_video_in_one_batch_give_each_ones_loss_alone(setup):
  """A text-only example has no slot, the run's keys and shapes (blank frames, all masked), and
  beside a video in one batch each has the loss it has alone; its loss does not move when its
  blank arrays are replaced by noise (no visual token reaches the LLM)."""
  s = setup
  video, text = s["prep"].map(s["items"]["video"]), s["prep"].map(TEXT)
  assert sorted(text) == sorted(video)
  assert all(text[k].shape == video[k].shape and text[k].dtype == video[k].dtype for k in text)
  assert (text["input_ids"] == conv.VIDEO_TOKEN_ID).sum() == 0
  assert text["frame_mask"].tolist() == [0] * T
  assert text["timestamps"].tolist() == [frame_layout.PAD_TIME] * T
  ids, _ = conv.tokenize_conversation(TEXT["conversations"], CharTokenizer(),
                                      num_video_tokens=s["cfg"].num_video_tokens, video_ids=[])
  np.testing.assert_array_equal(text["input_ids"][:len(ids)], ids)
  together = _losses(s, [video, text])
  alone = _losses(s, [video]) + _losses(s, [text])
  np.testing.assert_allclose(together, alone, atol=1e-5)
  rng = np.random.RandomState(1)
  noisy = {**text, **{k: rng.randn(*text[k].shape).astype("f4")
                      for k in ("tower_patches", "dino_patches")}}
  np.testing.assert_allclose(_losses(s, [video, noisy]), together, atol=1e-5)


def test_text_only_in_a_fixed_frame_run_and_without_a_hint(setup):
  """Fixed frames: the same keys as a T-frame video (no times, no mask: what the model reads).
  A text-only example gets no TETG hint (the hint function is not called for it) and is kept
  by the skip-bad pass; shapes the config leaves unknown are refused naming it."""
  s = setup
  fixed = dataclasses.replace(s["pcfg"], variable_frames=False, frame_times="none")
  root = s["root"] / "fixed"
  root.mkdir()
  arrays = {k: np.concatenate([v, v[-1:]]) for k, v in s["video"].items()}     # T frames
  arrays["timestamps"] = np.arange(T, dtype=np.float64)
  features.write_features(str(root / "v1.npz"), arrays)
  fixed = dataclasses.replace(fixed, feature_dir=str(root))
  calls = []
  prep = pipeline.Prepare(fixed, CharTokenizer(),
                          hint_fn=lambda vid, f: calls.append(vid) or "Known.")
  video, text = prep.map(s["items"]["video"]), prep.map(TEXT)
  assert sorted(video) == sorted(text) == ["attention_mask", "dino_patches", "example_index",
                                           "input_ids", "labels", "tower_patches"]
  assert calls == ["v1"]
  assert all(text[k].shape == video[k].shape for k in text)
  kept, problems = pipeline.drop_examples_without_features([TEXT, s["items"]["video"]], fixed)
  assert [i["id"] for i in kept] == ["t", "v"] and problems == []
  unknown = dataclasses.replace(fixed, feature_shapes={"tower_patches": None})
  with pytest.raises(InputError, match=r"^t: is a text-only example .* every feature shape"):
    pipeline.Prepare(unknown, CharTokenizer()).map(TEXT)
  pipeline.check_unique_keys([TEXT, s["items"]["video"]], "train.json", fixed.feature_dir)
