"""Reading and writing real video files with PyAV (which bundles FFmpeg).

Sampling follows LLaMA-VID: at a target `fps`, every `round(src_fps / fps)`-th frame from frame 0;
a fixed `num_frames` takes the centre frame of that many equal segments. With `fps` and
`max_frames` together (the policy for videos of any length, issue 26), a video that would give
more than `max_frames` frames at `fps` is sampled uniformly with `max_frames` instead, so a long
video is covered end to end rather than cut after its first `max_frames` frames. Timestamps are each
sampled frame's presentation time (pts x time_base, from the first frame), so a variable-frame-
rate clip is stamped where its frames really are; a frame that sits on the constant-rate grid
(within one tick of the container's clock) is stamped `frame_index / src_fps` exactly as
LLaMA-VID's `frame_time`, so constant-rate videos keep their timestamps to the last bit.
Decoding streams: frames that are not sampled are dropped as soon as they are decoded,
`iter_video_chunks` never holds more than one chunk, and a frame larger than `MAX_SIDE` is
scaled down while it is converted to RGB: the towers' preprocessing resizes to a few hundred
pixels anyway, and a 4000x4000 frame would otherwise cost 48 MB of RGB per sampled frame.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from typing import Iterator, Optional

import numpy as np

from vaujax import files
from vaujax.errors import InputError, require_file

# Longest side of a decoded frame. Frames up to full HD come out as decoded, bit for bit as
# before (so features of common videos do not change); larger ones are scaled down (aspect
# kept, area filter) while converted to RGB.
MAX_SIDE = 1920


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  path: str
  num_frames: int
  fps: float
  duration_s: float
  width: int
  height: int


def _open(path: str):
  import av
  require_file(path, "video file")
  try:
    # PyAV cannot open a gs:// URL: it reads the object through a seekable file object (a
    # block at a time, nothing staged whole)
    container = av.open(files.open_file(path, "rb") if files.is_url(path) else path)
  except av.error.FFmpegError as e:
    raise InputError(path, f"not a readable video (corrupt, truncated or unsupported "
                     f"container: {e})") from e
  if not container.streams.video:
    container.close()
    raise InputError(path, "contains no video stream")
  return container


def _count_frames(container, stream) -> int:
  """Frame count from the header, or by demuxing packets (no decoding) when it is absent."""
  if stream.frames:
    return int(stream.frames)
  count = sum(1 for p in container.demux(stream) if p.size)
  container.seek(0)
  return count


def probe_video(path: str | os.PathLike) -> VideoInfo:
  return _probe(path)[0]


def _probe(path: str | os.PathLike) -> tuple[VideoInfo, Fraction]:
  """(VideoInfo, the average frame rate as an exact fraction)."""
  path = os.fspath(path)
  container = _open(path)
  try:
    stream = container.streams.video[0]
    rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
    fps = float(rate)
    if fps <= 0:
      raise InputError(path, "video stream reports no frame rate")
    n = _count_frames(container, stream)
    if n == 0:
      raise InputError(path, "video has zero frames")
    return VideoInfo(path, n, fps, n / fps, stream.codec_context.width,
                     stream.codec_context.height), rate
  finally:
    container.close()


def sample_indices(num_frames: int, src_fps: float, *, fps: Optional[float] = None,
                   count: Optional[int] = None, max_frames: Optional[int] = None,
                   min_frames: Optional[int] = None) -> np.ndarray:
  """Frame indices to keep (sorted, unique). `fps` + `max_frames`: at `fps`, or `max_frames`
  uniformly when `fps` would give more; with `min_frames`, a video that would give fewer at
  `fps` gives that many uniformly (all it has, if fewer): a short clip is sampled faster, so
  its frames still place an event to better than a second. `max_frames` alone: the first
  `max_frames`."""
  if fps is not None and count is not None:
    raise ValueError("pass fps or num_frames, not both")
  if max_frames is not None and max_frames <= 0:
    raise ValueError(f"max_frames must be positive, got {max_frames}")
  if min_frames and max_frames and min_frames > max_frames:
    raise ValueError(f"min_frames {min_frames} > max_frames {max_frames}")
  if fps is not None:
    if fps <= 0:
      raise ValueError(f"fps must be positive, got {fps}")
    idx = np.arange(0, num_frames, max(1, round(src_fps / fps)))
    if max_frames and len(idx) > max_frames:
      return sample_indices(num_frames, src_fps, count=max_frames)
    if min_frames and len(idx) < min(min_frames, num_frames):
      return sample_indices(num_frames, src_fps, count=min(min_frames, num_frames))
  elif count is not None:
    if count <= 0:
      raise ValueError(f"num_frames must be positive, got {count}")
    idx = np.unique(((np.arange(count) + 0.5) * num_frames / count).astype(np.int64))
  else:
    idx = np.arange(num_frames)
  return idx[:max_frames] if max_frames else idx


def bounded_size(width: int, height: int, max_side: int) -> tuple[int, int]:
  """(width, height) scaled so the longer side is at most `max_side` (aspect kept, even sizes
  for chroma-subsampled sources, at least 2 pixels); unchanged when it already fits."""
  if max(width, height) <= max_side:
    return width, height
  scale = max_side / max(width, height)
  even = lambda x: max(2, int(x * scale) // 2 * 2)  # noqa: E731
  return even(width), even(height)


def _rgb(frame, max_side: int) -> np.ndarray:
  """One decoded frame as uint8 RGB [H, W, 3], scaled down first when larger than `max_side`."""
  width, height = bounded_size(frame.width, frame.height, max_side)
  if (width, height) == (frame.width, frame.height):
    return frame.to_ndarray(format="rgb24")
  return frame.reformat(width=width, height=height, format="rgb24",
                        interpolation="AREA").to_ndarray()


def _stamp(frame, index: int, rate: Fraction, start) -> float:
  """Seconds since the first frame: the frame's pts x time_base, or `index / rate` (the old
  formula, to the bit) when the pts is that constant-rate position to within one clock tick or
  the container gives no pts."""
  time_base = frame.time_base
  if frame.pts is None or start is None or not time_base:
    return index / float(rate)
  seconds = (frame.pts - start) * time_base
  if abs(seconds - index / rate) < time_base:
    return index / float(rate)
  return float(seconds)


def _decode(path: str, wanted: np.ndarray, chunk_size: int, rate: Fraction, max_side: int
            ) -> Iterator[tuple[np.ndarray, list[int], list[float]]]:
  import av
  container = _open(path)
  wanted_set, last = set(int(i) for i in wanted), int(wanted[-1]) if len(wanted) else -1
  frames, indices, stamps, index, start = [], [], [], -1, None
  try:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for index, frame in enumerate(container.decode(stream)):
      if index == 0:
        start = frame.pts
      if index in wanted_set:
        frames.append(_rgb(frame, max_side))
        indices.append(index)
        stamps.append(_stamp(frame, index, rate, start))
        if len(frames) == chunk_size:
          yield np.stack(frames), indices, stamps
          frames, indices, stamps = [], [], []
      if index >= last:
        break
  except av.error.FFmpegError as e:
    raise InputError(path, f"video is corrupt or truncated (decoding failed after frame "
                     f"{index}: {e})") from e
  finally:
    container.close()
  if index < 0:
    raise InputError(path, "video has zero decodable frames")
  if frames:
    yield np.stack(frames), indices, stamps


def read_video(path: str | os.PathLike, *, fps: Optional[float] = None,
               num_frames: Optional[int] = None, max_frames: Optional[int] = None,
               min_frames: Optional[int] = None,
               max_side: int = MAX_SIDE) -> tuple[np.ndarray, np.ndarray]:
  """Decodes sampled frames -> (uint8 [T, H, W, 3] RGB, float64 [T] timestamps in seconds);
  frames are at most `max_side` pixels on their longer side."""
  chunks = list(iter_video_chunks(path, chunk_size=1 << 30, fps=fps, num_frames=num_frames,
                                  max_frames=max_frames, min_frames=min_frames,
                                  max_side=max_side))
  if len(chunks) == 1:   # the usual case: no second copy of the frames
    return chunks[0]
  return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def iter_video_chunks(path: str | os.PathLike, *, chunk_size: int, fps: Optional[float] = None,
                      num_frames: Optional[int] = None, max_frames: Optional[int] = None,
                      min_frames: Optional[int] = None,
                      max_side: int = MAX_SIDE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (frames [<=chunk_size, H, W, 3], timestamps) without holding the whole video."""
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  if max_side < 2:
    raise ValueError(f"max_side must be >= 2, got {max_side}")
  info, rate = _probe(path)
  wanted = sample_indices(info.num_frames, info.fps, fps=fps, count=num_frames,
                          max_frames=max_frames, min_frames=min_frames)
  got = 0
  for frames, indices, stamps in _decode(info.path, wanted, chunk_size, rate, max_side):
    got += len(indices)
    yield frames, np.asarray(stamps, np.float64)
  if got < len(wanted):
    raise InputError(info.path, f"video is truncated: header promises {info.num_frames} frames "
                     f"but only {got} of the {len(wanted)} sampled frames could be decoded")


# libx264 with its default macroblock-tree rate control is not repeatable here: the same frames
# encoded twice in one process decode to pixels up to 14 levels apart (this build's mbtree
# depends on state earlier encodes leave behind). With mbtree off the encoder is a pure function
# of the frames, so generated datasets, their features and the demo repeat bit for bit.
X264_OPTIONS = {"crf": "12", "x264-params": "mbtree=0"}


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float,
                codec: str = "libx264", options: Optional[dict] = None) -> None:
  """Encodes uint8 [T, H, W, 3] RGB frames; written to a temporary name, then renamed.

  `options` are the codec's (default for libx264: `X264_OPTIONS`, repeatable output).
  """
  import av
  path = os.fspath(path)
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
  if len(frames) == 0:
    raise ValueError(f"{path}: refusing to write a video with zero frames")
  h, w = frames.shape[1:3]
  if codec == "libx264" and (h % 2 or w % 2):
    raise ValueError(f"{path}: libx264 needs even frame sizes, got {w}x{h}")
  if files.is_url(path):   # encoded to a local file, then uploaded whole
    import tempfile
    with tempfile.TemporaryDirectory(prefix="vaujax-video-") as local:
      staged = os.path.join(local, "video" + os.path.splitext(path)[1])
      write_video(staged, frames, fps, codec, options)
      files.copy(staged, path)
    return
  tmp = path + ".tmp" + os.path.splitext(path)[1]
  from fractions import Fraction
  with av.open(tmp, mode="w") as container:
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    if options is None:
      options = dict(X264_OPTIONS) if codec == "libx264" else {}
    stream.options = options
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  os.replace(tmp, path)
