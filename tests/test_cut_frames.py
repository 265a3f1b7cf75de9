"""Cut-frame image items built from annotated videos (the paper's image + video mix)."""

from vaujax.data import cut_frames, instructions
from vaujax.data.annotations import Event, VideoAnnotation


def _videos():
  fight = VideoAnnotation("Fighting001_x264", 10.0, ((1.0, 9.0), (2.0, 4.0)),
                          ("A car drives by.", "Two people fight near the top left of the scene."),
                          "Fighting", ((2.0, 4.0),),
                          events=(Event("Fighting", 2.0, 4.0, "top left"),))
  two = VideoAnnotation("Arson002_x264", 12.0, ((1.0, 3.0), (6.0, 10.0)),
                        ("A fire.", "An explosion."), "Arson", ((1.0, 3.0), (6.0, 10.0)),
                        events=(Event("Arson", 1.0, 3.0, "centre"),
                                Event("Explosion", 6.0, 10.0, "bottom right")))
  real = VideoAnnotation("Stealing003_x264", 8.0, ((3.0, 5.0),), ("A theft.",), "Stealing",
                         ((3.0, 5.0),))                       # no events: region unknown
  normal = VideoAnnotation("Normal_Videos_004_x264", 6.0, ((0.0, 6.0),), ("Traffic.",))
  return [fight, two, real, normal]


def test_frames_fall_inside_their_events_and_answers_name_class_and_region():
  items = cut_frames.cut_frame_items(_videos(), per_event=2, seed=3, video_dir_prefix="videos/")
  by_id = {i["id"]: i for i in items}
  assert len(items) == 2 + 4 + 2 + 1
  fight = [by_id[f"Fighting001_x264_event0_frame{k}"] for k in (0, 1)]
  assert [f["frame_s"] for f in fight] == [2.8, 3.2]     # middle half of [2, 4], evenly spaced
  conv = fight[0]["conversations"]
  assert conv[0]["value"].startswith("<image>\n") and conv[-2]["value"] == \
      instructions.FINAL_QUESTION
  assert conv[1]["value"] == "A car drives by. Two people fight near the top left of the scene."
  assert conv[3]["value"] == "At the top left of the scene."
  assert conv[5]["value"] == "Yes, there is a fighting at the top left of the scene."
  assert fight[0]["video"] == "videos/Fighting001_x264.mp4"
  explosion = by_id["Arson002_x264_event1_frame0"]
  assert 7.0 <= explosion["frame_s"] <= 9.0 and explosion["label"] == "Explosion"
  assert explosion["conversations"][5]["value"] == \
      "Yes, there is an explosion at the bottom right of the scene."
  # no region known: the type question instead of the where question, no region in the answer
  real = by_id["Stealing003_x264_event0_frame0"]["conversations"]
  assert real[3]["value"] == "Stealing." and real[5]["value"] == "Yes, there is a stealing."
  normal = by_id["Normal_Videos_004_x264_frame0"]
  assert 0.6 <= normal["frame_s"] <= 5.4 and normal["label"] == "Normal"
  assert normal["conversations"][5]["value"] == "No, there are no anomalies in the image."


def test_items_are_seeded_and_pass_the_instruction_reader(tmp_path):
  a = cut_frames.cut_frame_items(_videos(), seed=1)
  assert a == cut_frames.cut_frame_items(_videos(), seed=1)
  path = tmp_path / "frames.json"
  instructions.write_json(str(path), a)
  items, problems = instructions.read_instructions(str(path))
  assert len(items) == len(a) and not problems
