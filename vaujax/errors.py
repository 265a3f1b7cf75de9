"""One error type for every bad input, so users see which file is wrong and why."""

from __future__ import annotations

import os


class InputError(ValueError):
  """A user-supplied input (file, directory, config value) is missing or malformed.

  The message always names the offending source first, then the problem:
  `"<path>: <problem>"`.
  """

  def __init__(self, source: str | os.PathLike | None, problem: str):
    self.source = None if source is None else os.fspath(source)
    self.problem = problem
    super().__init__(problem if source is None else f"{self.source}: {problem}")


def require_file(path: str | os.PathLike, what: str = "file") -> str:
  """Returns `path` as a string if it is an existing file, else raises InputError."""
  path = os.fspath(path)
  if "://" in path:   # a URL (gs://...): asked of the bucket through etils.epath
    from etils import epath
    exists, isfile = (lambda p: epath.Path(p).exists()), (lambda p: epath.Path(p).is_file())
  else:
    exists, isfile = os.path.exists, os.path.isfile
  if not exists(path):
    raise InputError(path, f"{what} does not exist")
  if not isfile(path):
    raise InputError(path, f"{what} is not a regular file")
  return path


def require_dir(path: str | os.PathLike, what: str = "directory") -> str:
  """Returns `path` as a string if it is an existing directory, else raises InputError."""
  path = os.fspath(path)
  if "://" in path:   # a URL (gs://...): asked of the bucket through etils.epath
    from etils import epath
    exists, isdir = (lambda p: epath.Path(p).exists()), (lambda p: epath.Path(p).is_dir())
  else:
    exists, isdir = os.path.exists, os.path.isdir
  if not exists(path):
    raise InputError(path, f"{what} does not exist")
  if not isdir(path):
    raise InputError(path, f"{what} is not a directory")
  return path
