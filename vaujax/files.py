"""The one JSON reader and the one atomic writer: every file the library reads or writes
through these names the file in its error and never leaves a half-written file behind."""

from __future__ import annotations

import json
import os

from vaujax.errors import InputError, require_file


# The largest JSON file read (parsed JSON takes several times its size in memory): instruction
# files of a few hundred thousand examples are a few hundred MB.
MAX_JSON_BYTES = 1 << 30


def read_json(path: str | os.PathLike, what: str = "JSON file", kind: type = dict, *,
              max_bytes: int = MAX_JSON_BYTES):
  """Loads a JSON `kind` (dict or list) from `path`; missing, oversized (over `max_bytes`),
  non-UTF-8, malformed, too deeply nested or wrongly-typed files raise InputError naming the
  file. The size is checked before anything is read."""
  path = require_file(path, what)
  size = os.path.getsize(path)
  if size > max_bytes:
    raise InputError(path, f"{what} of {size} bytes is larger than the {max_bytes} bytes allowed")
  try:
    with open(path, encoding="utf-8") as f:
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


def write_json(path: str | os.PathLike, obj, indent: int = 1) -> str:
  """Writes `obj` as JSON under a temporary name, then renames it over `path` (atomic)."""
  path = os.fspath(path)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=indent)
  os.replace(tmp, path)
  return path


def write_text(path: str | os.PathLike, text: str) -> str:
  """Writes `text` atomically (temporary name, then rename)."""
  path = os.fspath(path)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(path + ".tmp", path)
  return path
