"""The structured answer's schema (vaujax/schemas/answer.schema.json) with issue 29's optional
region and events: old answers stay valid, new ones are filled from the text (and TETG's runs),
invalid ones are refused."""

import jsonschema
import numpy as np
import pytest

from vaujax.inference.assistant import structured_answer, validate_answer

CLASSES = ("Explosion", "Fighting", "Arson")
TS = np.array([0.5, 1.5, 2.5])
SCORES = np.array([0.1, 0.9, 0.8])
TWO = ("Yes, there are two anomalies: a fighting from 1.0 to 3.0 seconds at the top left of the "
       "scene, and an explosion from 5.0 to 7.0 seconds at the centre of the scene.")
OLD = {"anomaly": True, "class": "Explosion", "start_s": 1.5, "end_s": 2.5,
       "frame_scores": [{"t": 0.5, "score": 0.1}], "explanation": "Yes, an explosion."}


def test_old_answers_stay_valid():
  validate_answer(OLD)
  validate_answer({"anomaly": False, "class": None, "start_s": None, "end_s": None,
                   "frame_scores": [], "explanation": "No."})
  # a normal answer is written in the old shape
  normal = structured_answer("No, there are no anomalies.", None, TS, None, CLASSES)
  assert set(normal) == set(OLD) and normal["anomaly"] is False
  validate_answer(normal)


def test_an_answer_about_two_anomalies_names_each_with_its_time_and_place():
  answer = structured_answer(TWO, SCORES, TS, (1.5, 2.5), CLASSES, [(1.5, 2.5)])
  validate_answer(answer)
  assert answer["class"] is None and answer["region"] is None     # several: no single one
  assert (answer["start_s"], answer["end_s"]) == (1.5, 2.5)       # TETG's, as before
  assert answer["events"] == [
      {"class": "Fighting", "start_s": 1.0, "end_s": 3.0, "region": "top left"},
      {"class": "Explosion", "start_s": 5.0, "end_s": 7.0, "region": "centre"}]
  one = structured_answer("Yes, there is arson from 1.0 to 2.0 seconds at the bottom right.",
                          SCORES, TS, None, CLASSES)
  validate_answer(one)
  assert one["region"] == "bottom right" and one["events"] == [
      {"class": "Arson", "start_s": 1.0, "end_s": 2.0, "region": "bottom right"}]


def test_event_times_come_from_tetg_where_the_text_gives_none():
  text = "Yes, there is fighting on the left and an explosion at the top."
  runs = [(1.0, 2.0), (6.0, 8.0)]
  filled = structured_answer(text, SCORES, TS, (6.0, 8.0), CLASSES, runs)
  validate_answer(filled)
  assert [(e["class"], e["start_s"], e["end_s"], e["region"]) for e in filled["events"]] == [
      ("Fighting", 1.0, 2.0, "middle left"), ("Explosion", 6.0, 8.0, "top centre")]
  # TETG found another number of runs: which is whose is unknown, so no times
  unsure = structured_answer(text, SCORES, TS, (6.0, 8.0), CLASSES, runs[:1])
  assert [(e["start_s"], e["end_s"]) for e in unsure["events"]] == [(None, None)] * 2
  validate_answer(unsure)
  # one event: the answer's interval (TETG's strongest run, as start_s / end_s)
  one = structured_answer("Yes, there is an explosion.", SCORES, TS, (1.5, 2.5), CLASSES,
                          [(0.5, 0.5), (1.5, 2.5)])
  assert one["events"] == [{"class": "Explosion", "start_s": 1.5, "end_s": 2.5, "region": None}]


NEW = {**OLD, "region": "top left",
       "events": [{"class": "Explosion", "start_s": 1.5, "end_s": 2.5, "region": "top left"}]}


def _event(**change):
  return {**NEW, "events": [{**NEW["events"][0], **change}]}


def _without(key):
  event = dict(NEW["events"][0])
  del event[key]
  return {**NEW, "events": [event]}


@pytest.mark.parametrize("answer", [
    {**NEW, "region": "upper left"},                       # not a region name
    {**NEW, "region": "Top left"},
    _event(region="somewhere"),
    _without("class"),                                     # an event without class
    _event(**{"class": None}), _event(**{"class": ""}),
    _without("start_s"), _without("region"),
    _event(end_s=None),                                    # a start without an end
    _event(start_s=None),                                  # an end without a start
    _event(start_s=-1.0),
    _event(extra=1),
    {**NEW, "events": {"class": "Explosion"}},             # not a list
    {**NEW, "anomaly": False, "class": None, "start_s": None, "end_s": None,
     "region": None},                                      # no anomaly, an event
    {**OLD, "anomaly": False, "class": None, "start_s": None, "end_s": None,
     "region": "centre"},                                  # no anomaly, a region
])
def test_invalid_answers_are_refused(answer):
  with pytest.raises(jsonschema.ValidationError):
    validate_answer(answer)


def test_an_event_without_times_or_region_is_valid():
  validate_answer(NEW)     # the valid answer the refused ones above change
  validate_answer(_event(start_s=None, end_s=None, region=None))
  validate_answer({**OLD, "region": None, "events": []})
