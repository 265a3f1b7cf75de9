"""Where an anomaly happens: a 3x3 grid of named regions (the paper's spatial questions,
"bottom, centre, right, left").

The grid covers the centre square of the frame, the part the vision towers see (CLIP / LLaMA-VID
preprocessing crops the centre square): a 16:9 frame's outer strips are never shown to the
model, so a region names a ninth of what the model sees. On square frames the square is the
frame.

  region_of(x, y, width, height)  -> "top left" | ... | "centre" | ... | "bottom right"
  parse_region("near the upper right corner") -> "top right"
"""

from __future__ import annotations

import re
from typing import Optional

ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")
# row-major, index = 3 * row + column
REGIONS = ("top left", "top centre", "top right",
           "middle left", "centre", "middle right",
           "bottom left", "bottom centre", "bottom right")


def region_name(row: int, column: int) -> str:
  if not (0 <= row < 3 and 0 <= column < 3):
    raise ValueError(f"grid cell ({row}, {column}) is outside the 3x3 grid")
  return REGIONS[3 * row + column]


def region_cell(name: str) -> tuple[int, int]:
  """(row, column) of a region name."""
  if name not in REGIONS:
    raise ValueError(f"unknown region {name!r} (one of {REGIONS})")
  i = REGIONS.index(name)
  return i // 3, i % 3


def region_of(x: float, y: float, width: int, height: int) -> str:
  """The region of pixel (x, y) in a width x height frame: thirds of its centre square
  (a point outside the square counts in the nearest edge cell)."""
  side = min(width, height)
  x0, y0 = (width - side) / 2, (height - side) / 2

  def third(v):
    return min(2, max(0, int(3 * v / side)))
  return region_name(third(y - y0), third(x - x0))


def region_text(name: str) -> str:
  """How answers say a region: "the top left of the scene", "the centre of the scene"."""
  region_cell(name)
  return f"the {name} of the scene"


_VERTICAL = {"top": 0, "upper": 0, "bottom": 2, "lower": 2}
_HORIZONTAL = {"left": 0, "right": 2}
_CENTRE = ("centre", "center", "middle", "central")


def parse_region(text: str) -> Optional[str]:
  """The region a free-text answer names, or None when it names none or several.

  A vertical word (top / upper, bottom / lower) and a horizontal one (left / right) pick the
  row and column; a missing one is the middle, so "on the left" is "middle left" and "at the
  top" is "top centre"; "centre" / "center" / "middle" alone is the centre. Two different
  vertical (or horizontal) words, e.g. "top ... bottom", are ambiguous: None.
  """
  words = re.findall(r"[a-z]+", text.lower())
  rows = {_VERTICAL[w] for w in words if w in _VERTICAL}
  cols = {_HORIZONTAL[w] for w in words if w in _HORIZONTAL}
  if len(rows) > 1 or len(cols) > 1:
    return None
  if not rows and not cols and not any(w in _CENTRE for w in words):
    return None
  return region_name(rows.pop() if rows else 1, cols.pop() if cols else 1)
