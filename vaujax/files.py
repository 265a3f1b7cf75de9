"""The one JSON reader and the one atomic writer: every file the library reads or writes
through these names the file in its error and never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from typing import Optional

from vaujax.errors import InputError, require_file

# A write that failed for want of room: the disk or a quota is full, or the process's file-size
# limit (RLIMIT_FSIZE, `ulimit -f`) was reached.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# The largest JSON file read (parsed JSON takes several times its size in memory): instruction
# files of a few hundred thousand examples are a few hundred MB.
MAX_JSON_BYTES = 1 << 30


def read_json(path: str | os.PathLike, what: str = "JSON file", kind: type = dict, *,
              max_bytes: int = MAX_JSON_BYTES):
  """Loads a JSON `kind` (dict or list) from `path`; missing, oversized (over `max_bytes`),
  non-UTF-8, malformed, too deeply nested or wrongly-typed files raise InputError naming the
  file. The size is checked before anything is read."""
  path = require_file(path, what)
  size = getsize(path)
  if size > max_bytes:
    raise InputError(path, f"{what} of {size} bytes is larger than the {max_bytes} bytes allowed")
  try:
    with open_file(path, encoding="utf-8") as f:
      obj = json.load(f)
  except json.JSONDecodeError as e:
    raise InputError(path, f"malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
  except UnicodeDecodeError as e:
    raise InputError(path, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from e
  except RecursionError as e:
    raise InputError(path, "malformed JSON (nested too deeply to parse)") from e
  if not isinstance(obj, kind):
    name = {dict: "object", list: "list"}.get(kind, kind.__name__)
    raise InputError(path, f"expected a JSON {name}, found {type(obj).__name__}")
  return obj


def no_room(e: BaseException) -> Optional[int]:
  """The errno (ENOSPC, EDQUOT, EFBIG) if `e`, or an exception it was raised from, is a write
  that found no room; else None. Libraries that re-raise such an error as text (shutil's
  copytree, tensorstore under orbax) are read from their message."""
  while e is not None:
    if isinstance(e, OSError) and e.errno in NO_ROOM:
      return e.errno
    found = re.search(r"\[Errno (\d+)\]|os_error_code='(\d+)'", str(e))
    if found and int(found.group(1) or found.group(2)) in NO_ROOM:
      return int(found.group(1) or found.group(2))
    e = e.__cause__ or e.__context__
  return None


def no_room_error(path: str | os.PathLike, e: BaseException) -> InputError:
  """The one-line error for a write to `path` that found no room."""
  return InputError(path, f"cannot write ({os.strerror(no_room(e) or errno.ENOSPC)}): free "
                    "disk space (or raise the file-size limit) and rerun the same command; "
                    "nothing written before was lost")


@contextlib.contextmanager
def writing(path: str | os.PathLike):
  """Turns a write under this block that found no room (disk full, quota, file-size limit)
  into the one-line InputError naming the file (`path` if the error does not say)."""
  try:
    yield
  except InputError:
    raise
  except Exception as e:  # noqa: BLE001 - only the no-room kind is converted
    if not no_room(e):
      raise
    raise no_room_error(getattr(e, "filename", None) or path, e) from e


def _write_through_temporary(path: str, write) -> str:
  """Calls `write(file)` on `path`.tmp, then renames it over `path` (atomic). A failed write
  removes the temporary file and leaves `path` as it was."""
  if is_url(path):   # an object is uploaded whole: no temporary name needed
    return _write_object(path, write)
  tmp = path + ".tmp"
  try:
    with writing(path):
      with open(tmp, "w", encoding="utf-8") as f:
        write(f)
        f.flush()
      os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise
  return path


def write_json(path: str | os.PathLike, obj, indent: int = 1) -> str:
  """Writes `obj` as JSON under a temporary name, then renames it over `path` (atomic)."""
  return _write_through_temporary(os.fspath(path), lambda f: json.dump(obj, f, indent=indent))


def write_text(path: str | os.PathLike, text: str) -> str:
  """Writes `text` atomically (temporary name, then rename)."""
  return _write_through_temporary(os.fspath(path), lambda f: f.write(text))


def append_lines(path: str | os.PathLike, lines, *, sync: bool = False) -> None:
  """Appends whole lines to `path` (and fsyncs them when `sync`). A write cut short (no room)
  is undone: the file is cut back to its length before, so no torn last line is left."""
  path = os.fspath(path)
  text = "".join(l if l.endswith("\n") else l + "\n" for l in lines)
  if is_url(path):
    return _append_object(path, text)
  data = memoryview(text.encode())
  with writing(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      start = os.lseek(fd, 0, os.SEEK_END)
      try:
        while data:
          data = data[os.write(fd, data):]
        if sync:
          os.fsync(fd)
      except BaseException:
        with contextlib.suppress(OSError):
          os.ftruncate(fd, start)
        raise
    finally:
      os.close(fd)


# ---- The path layer: local paths and URLs (gs://bucket/...) through one set of functions ----
# Local paths keep their os/builtins behaviour (temporary name + rename, symlink checks where a
# caller makes them); a URL goes through etils.epath (fsspec/gcsfs for gs://), the layer orbax and
# grain use. Object stores have no rename, append or symlink: an object upload is atomic, so a URL
# is written in one upload of the whole content, and an "append" rewrites the object.


def is_url(path: str | os.PathLike) -> bool:
  """Whether `path` names an object store location (`gs://`, `s3://`, ...), not a local file."""
  return "://" in os.fspath(path)


def as_path(path: str | os.PathLike):
  """`path` as an etils.epath.Path (what orbax takes)."""
  from etils import epath
  return epath.Path(os.fspath(path))


def _fresh(path: str):
  """epath.Path of a URL whose listings fsspec may have cached: another process (a killed run,
  tensorstore's array writes) changes a bucket behind this process's back."""
  p = as_path(path)
  fs = getattr(getattr(p, "_backend", None), "fs", None)
  if fs is not None:
    with contextlib.suppress(Exception):
      fs(p._path_str).invalidate_cache()
  return p


def absolute(path: str | os.PathLike) -> str:
  """os.path.abspath for a local path; a URL is already absolute (abspath would mangle it)."""
  path = os.fspath(path)
  return path.rstrip("/") if is_url(path) else os.path.abspath(path)


def join(path: str | os.PathLike, *parts: str) -> str:
  return os.path.join(os.fspath(path), *parts)


def exists(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  return _fresh(path).exists() if is_url(path) else os.path.exists(path)


def isdir(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  return _fresh(path).is_dir() if is_url(path) else os.path.isdir(path)


def isfile(path: str | os.PathLike) -> bool:
  path = os.fspath(path)
  return _fresh(path).is_file() if is_url(path) else os.path.isfile(path)


def getsize(path: str | os.PathLike) -> int:
  path = os.fspath(path)
  return _fresh(path).stat().length if is_url(path) else os.path.getsize(path)


def makedirs(path: str | os.PathLike) -> str:
  """Creates `path` and its parents (an object store needs no folders: a no-op marker there)."""
  path = os.fspath(path)
  if is_url(path):
    as_path(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)
  return path


def listdir(path: str | os.PathLike) -> list[str]:
  """Names of the entries of folder `path` (files and sub-folders), unsorted as os.listdir."""
  path = os.fspath(path)
  if not is_url(path):
    return os.listdir(path)
  return [p.name for p in _fresh(path).iterdir() if p.name]


def walk_files(path: str | os.PathLike) -> list[str]:
  """Every file under folder `path`, as sorted paths relative to it ('/'-separated)."""
  path = os.fspath(path)
  if not is_url(path):
    out = []
    for root, dirs, names in os.walk(path):
      dirs.sort()
      out += [os.path.relpath(os.path.join(root, n), path) for n in names]
    return sorted(out)
  import posixpath
  base = path.split("://", 1)[1].rstrip("/")   # epath's walk yields folders without the scheme
  return sorted(posixpath.relpath(posixpath.join(str(top).split("://")[-1], n), base)
                for top, _, names in _fresh(path).walk() for n in names)


def open_file(path: str | os.PathLike, mode: str = "r", encoding: str | None = None,
              errors: str | None = None):
  """builtins.open for a local path; a URL opens its object (read, or written whole on close)."""
  path = os.fspath(path)
  if not is_url(path):
    return open(path, mode, encoding=encoding, errors=errors)
  if any(c in mode for c in "ax+"):
    raise ValueError(f"{path}: objects are written whole; mode {mode!r} is not supported")
  f = _fresh(path).open(mode.replace("t", "") if "b" in mode else mode.replace("t", "") + "b")
  if "b" in mode:
    return f
  import io
  return io.TextIOWrapper(f, encoding=encoding or "utf-8", errors=errors)


def read_bytes(path: str | os.PathLike, what: str = "file", *, max_bytes: int | None = None
               ) -> bytes:
  """The bytes of file `path`; missing or over `max_bytes` raise InputError naming it (the size
  is checked before anything is read)."""
  path = require_file(path, what)
  size = getsize(path)
  if max_bytes is not None and size > max_bytes:
    raise InputError(path, f"{what} of {size} bytes is larger than the {max_bytes} bytes allowed")
  with open_file(path, "rb") as f:
    return f.read()


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
  """Writes `data` atomically: a local file under a temporary name then renamed, an object in
  one upload (an object store never shows half an object)."""
  path = os.fspath(path)
  if is_url(path):
    with open_file(path, "wb") as f:
      f.write(data)
    return path
  tmp = path + ".tmp"
  try:
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise
  return path


def _write_object(path: str, write) -> str:
  """`write(text file)` into the object `path`, uploaded whole when it closes."""
  with open_file(path, "w", encoding="utf-8") as f:
    write(f)
  return path


def _append_object(path: str, data: str) -> None:
  """An object store has no append: the object is rewritten with `data` after its content."""
  old = read_bytes(path) if exists(path) else b""
  write_bytes(path, old + data.encode())


def remove(path: str | os.PathLike) -> None:
  path = os.fspath(path)
  if is_url(path):
    as_path(path).unlink()
  else:
    os.remove(path)


def rmtree(path: str | os.PathLike) -> None:
  path = os.fspath(path)
  if is_url(path):
    _fresh(path).rmtree()
  else:
    import shutil
    shutil.rmtree(path)


def copy(src: str | os.PathLike, dst: str | os.PathLike) -> str:
  """Copies file or folder `src` to `dst` (replacing a file; a folder is copied into place),
  local or URL on either side."""
  src, dst = os.fspath(src), os.fspath(dst)
  if not is_url(src) and not is_url(dst):
    import shutil
    if os.path.isdir(src):
      shutil.copytree(src, dst)
    else:
      shutil.copyfile(src, dst)
    return dst
  if isdir(src):
    for name in walk_files(src):
      target = join(dst, name)
      makedirs(os.path.dirname(target))
      copy(join(src, name), target)
    return dst
  with open_file(src, "rb") as f:
    write_bytes(dst, f.read())
  return dst


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> str:
  """os.replace for local paths; on an object store a file or folder is copied, then the source
  deleted (there is no rename): `dst` is whole before `src` goes."""
  src, dst = os.fspath(src), os.fspath(dst)
  if not is_url(src) and not is_url(dst):
    os.replace(src, dst)
    return dst
  if isdir(src):
    if exists(dst):
      rmtree(dst)
    copy(src, dst)
    rmtree(src)
  else:
    copy(src, dst)
    remove(src)
  return dst


def move_aside(path: str | os.PathLike, aside_dir: str | os.PathLike, name: str) -> str:
  """Moves `path` (file or folder) to the first free name of `aside_dir/name`, `name-1`, ...
  (never over something set aside before); returns where it went."""
  makedirs(aside_dir)
  target, n = join(aside_dir, name), 1
  while exists(target):
    target, n = join(aside_dir, f"{name}-{n}"), n + 1
  return replace(path, target)


@contextlib.contextmanager
def local_copy(path: str | os.PathLike, what: str = "file", *, max_bytes: int | None = None):
  """A local file name holding `path`'s content, for readers that need a real file (a URL is
  staged to a temporary file of at most `max_bytes`, removed afterwards)."""
  path = os.fspath(path)
  if not is_url(path):
    yield require_file(path, what)
    return
  import tempfile
  data = read_bytes(path, what, max_bytes=max_bytes)
  suffix = os.path.splitext(path)[1]
  with tempfile.TemporaryDirectory(prefix="vaujax-stage-") as tmp:
    local = os.path.join(tmp, "staged" + suffix)
    with open(local, "wb") as f:
      f.write(data)
    yield local



class _ObjectRecordWriter:
  """A tensorboardX record writer for a URL: the event file is kept in memory and uploaded
  whole on each flush (objects cannot be appended to)."""

  def __init__(self, path: str):
    import io
    self.path, self.buffer = path, io.BytesIO()

  def write(self, data: bytes) -> None:
    self.buffer.write(data)

  def flush(self) -> None:
    write_bytes(self.path, self.buffer.getvalue())

  def close(self) -> None:
    self.flush()


class _ObjectRecordWriterFactory:
  def open(self, path: str) -> _ObjectRecordWriter:
    return _ObjectRecordWriter(path)

  def directory_check(self, path: str) -> None:
    makedirs(path)


def register_tensorboard_writer(scheme: str) -> None:
  """Makes tensorboardX write `scheme://` event files through this layer (its own `gs://`
  writer needs google-cloud-storage credentials of its own; this one shares epath's)."""
  from tensorboardX import record_writer
  record_writer.register_writer_factory(scheme, _ObjectRecordWriterFactory())
