"""The 3x3 region grid: naming pixels, parsing free-text answers."""

import pytest

from vaujax.data import regions


def test_region_of_splits_the_centre_square_in_thirds():
  # 112 x 112: thirds at 37.3 and 74.7
  assert regions.region_of(10, 10, 112, 112) == "top left"
  assert regions.region_of(56, 56, 112, 112) == "centre"
  assert regions.region_of(100, 50, 112, 112) == "middle right"
  assert regions.region_of(38, 111, 112, 112) == "bottom centre"
  assert regions.region_of(37, 75, 112, 112) == "bottom left"
  # 16:9, 90 px high: the square spans x 35..125; x = 60 is its left third although it lies
  # in the frame's centre third, x = 100 its right third although in the frame's centre third
  assert regions.region_of(60, 10, 160, 90) == "top left"
  assert regions.region_of(80, 80, 160, 90) == "bottom centre"
  assert regions.region_of(100, 80, 160, 90) == "bottom right"
  # outside the square: the nearest edge cell
  assert regions.region_of(5, 45, 160, 90) == "middle left"
  assert regions.region_of(155, 45, 160, 90) == "middle right"


def test_every_region_round_trips_through_its_answer_text():
  for name in regions.REGIONS:
    assert regions.parse_region(f"It happens at {regions.region_text(name)}.") == name
    row, col = regions.region_cell(name)
    assert regions.region_name(row, col) == name


@pytest.mark.parametrize("text,region", [
    ("near the upper right corner", "top right"),
    ("In the lower left.", "bottom left"),
    ("on the left side of the road", "middle left"),
    ("at the top of the frame", "top centre"),
    ("right in the center", "middle right"),  # "right" is read as the side: no idioms
    ("in the middle", "centre"),
    ("Bottom, centre.", "bottom centre"),
    ("at the top left and the bottom right", None),
    ("somewhere", None),
    ("", None),
])
def test_parse_region_on_hand_written_answers(text, region):
  assert regions.parse_region(text) == region


def test_bad_cells_and_names_are_refused():
  with pytest.raises(ValueError, match="outside"):
    regions.region_name(3, 0)
  with pytest.raises(ValueError, match="unknown region"):
    regions.region_cell("upper left")
