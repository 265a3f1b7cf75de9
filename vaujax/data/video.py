"""Reading and writing real video files with PyAV (which bundles FFmpeg).

Sampling follows LLaMA-VID: at a target `fps`, every `round(src_fps / fps)`-th frame from frame 0;
a fixed `num_frames` takes the centre frame of that many equal segments. Timestamps are
`frame_index / src_fps` seconds (LLaMA-VID's `frame_time`), independent of container quirks.
Decoding streams: frames that are not sampled are dropped as soon as they are decoded, and
`iter_video_chunks` never holds more than one chunk.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Optional

import numpy as np

from vaujax.errors import InputError, require_file


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
    container = av.open(path)
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
  path = os.fspath(path)
  container = _open(path)
  try:
    stream = container.streams.video[0]
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    if fps <= 0:
      raise InputError(path, "video stream reports no frame rate")
    n = _count_frames(container, stream)
    if n == 0:
      raise InputError(path, "video has zero frames")
    return VideoInfo(path, n, fps, n / fps, stream.codec_context.width,
                     stream.codec_context.height)
  finally:
    container.close()


def sample_indices(num_frames: int, src_fps: float, *, fps: Optional[float] = None,
                   count: Optional[int] = None, max_frames: Optional[int] = None) -> np.ndarray:
  """Frame indices to keep (sorted, unique)."""
  if fps is not None and count is not None:
    raise ValueError("pass fps or num_frames, not both")
  if fps is not None:
    if fps <= 0:
      raise ValueError(f"fps must be positive, got {fps}")
    idx = np.arange(0, num_frames, max(1, round(src_fps / fps)))
  elif count is not None:
    if count <= 0:
      raise ValueError(f"num_frames must be positive, got {count}")
    idx = np.unique(((np.arange(count) + 0.5) * num_frames / count).astype(np.int64))
  else:
    idx = np.arange(num_frames)
  return idx[:max_frames] if max_frames else idx


def _decode(path: str, wanted: np.ndarray, chunk_size: int) -> Iterator[tuple[np.ndarray, list[int]]]:
  import av
  container = _open(path)
  wanted_set, last = set(int(i) for i in wanted), int(wanted[-1]) if len(wanted) else -1
  frames, indices, index = [], [], -1
  try:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for index, frame in enumerate(container.decode(stream)):
      if index in wanted_set:
        frames.append(frame.to_ndarray(format="rgb24"))
        indices.append(index)
        if len(frames) == chunk_size:
          yield np.stack(frames), indices
          frames, indices = [], []
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
    yield np.stack(frames), indices


def read_video(path: str | os.PathLike, *, fps: Optional[float] = None,
               num_frames: Optional[int] = None,
               max_frames: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """Decodes sampled frames -> (uint8 [T, H, W, 3] RGB, float64 [T] timestamps in seconds)."""
  chunks = list(iter_video_chunks(path, chunk_size=1 << 30, fps=fps, num_frames=num_frames,
                                  max_frames=max_frames))
  frames = np.concatenate([c[0] for c in chunks])
  return frames, np.concatenate([c[1] for c in chunks])


def iter_video_chunks(path: str | os.PathLike, *, chunk_size: int, fps: Optional[float] = None,
                      num_frames: Optional[int] = None, max_frames: Optional[int] = None
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (frames [<=chunk_size, H, W, 3], timestamps) without holding the whole video."""
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  info = probe_video(path)
  wanted = sample_indices(info.num_frames, info.fps, fps=fps, count=num_frames,
                          max_frames=max_frames)
  got = 0
  for frames, indices in _decode(info.path, wanted, chunk_size):
    got += len(indices)
    yield frames, np.asarray(indices, np.float64) / info.fps
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
