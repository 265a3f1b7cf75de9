"""One error type for every bad input, so users see which file is wrong and why."""

from __future__ import annotations

import json
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
  if not os.path.exists(path):
    raise InputError(path, f"{what} does not exist")
  if not os.path.isfile(path):
    raise InputError(path, f"{what} is not a regular file")
  return path


def require_dir(path: str | os.PathLike, what: str = "directory") -> str:
  """Returns `path` as a string if it is an existing directory, else raises InputError."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise InputError(path, f"{what} does not exist")
  if not os.path.isdir(path):
    raise InputError(path, f"{what} is not a directory")
  return path


def read_json(path: str | os.PathLike, what: str = "JSON file", kind: type = dict):
  """Loads a JSON `kind` (dict or list) from `path`; missing, non-UTF-8, malformed or
  wrongly-typed files raise InputError naming the file."""
  path = require_file(path, what)
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except json.JSONDecodeError as e:
    raise InputError(path, f"malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
  except UnicodeDecodeError as e:
    raise InputError(path, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from e
  if not isinstance(obj, kind):
    name = {dict: "object", list: "list"}.get(kind, kind.__name__)
    raise InputError(path, f"expected a JSON {name}, found {type(obj).__name__}")
  return obj
