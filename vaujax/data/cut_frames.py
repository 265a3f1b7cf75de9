"""Cut-frame image examples from annotated videos.

VA-GPT's fine-tuning set mixes 4,077 UCF-Crime videos with 7,730 images cut from them. A cut
frame here is an instruction item that names a video and a time (`frame_s`); the pipeline reads
that video's feature file and keeps the frame nearest that time, so it goes through the same
towers, SETS and frame tokens as a one-frame video, with no new extraction (see
`vaujax/data/pipeline.py`). Its questions are about the one frame: what happens, where the
anomaly is, and (last, as for videos) "Are there any anomalies?", answered without times.

  items = cut_frame_items(videos, per_event=1, seed=0, video_dir_prefix="videos/")
"""

from __future__ import annotations

from typing import Iterable, Sequence

from vaujax.data.annotations import NORMAL, VideoAnnotation, events_of
from vaujax.data.benchmark_files import seeded_rng   # the per-video stream benchmarks use
from vaujax.data.conversation import IMAGE_PLACEHOLDER
from vaujax.data.instructions import FINAL_QUESTION, article, readable
from vaujax.data.regions import region_text

WHERE_QUESTIONS = ("Where in the image is the anomaly?",
                   "Which part of the image shows the anomaly?",
                   "Where does the anomaly happen in this image?")
NORMAL_QUESTIONS = ("Is anything unusual happening in the image?",
                    "Does anything in this image look abnormal?")


def _active_sentences(v: VideoAnnotation, t: float) -> str:
  said = [s for (a, b), s in zip(v.timestamps, v.sentences) if a <= t <= b]
  return " ".join(said) if said else "A quiet street scene with nothing happening."


def _conversation(pairs: Sequence[tuple[str, str]]) -> list[dict]:
  out = []
  for i, (q, a) in enumerate(pairs):
    out.append({"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{q}" if i == 0 else q})
    out.append({"from": "gpt", "value": a})
  return out


def cut_frame_items(videos: Iterable[VideoAnnotation], *, per_event: int = 1,
                    normal_frames: int = 1, seed: int = 0, video_dir_prefix: str = "",
                    video_ext: str = ".mp4") -> list[dict]:
  """Instruction items of frames cut from `videos`: `per_event` frames inside each anomaly
  (evenly spaced over its middle half, so the event is visible), `normal_frames` drawn from
  each normal video. Needs regions on the events for the where-question; events without a
  region (real annotations) get the type question instead."""
  items = []
  for v in videos:
    rng = seeded_rng(seed, v.video_id)
    path = video_dir_prefix + v.video_id + video_ext
    events = events_of(v)
    if v.label == NORMAL or not events:
      for k in range(normal_frames):
        t = round(float(rng.uniform(0.1 * v.duration, 0.9 * v.duration)), 1)
        pairs = [("What happens in the image?", _active_sentences(v, t)),
                 (NORMAL_QUESTIONS[rng.randint(len(NORMAL_QUESTIONS))],
                  "No, everything in the image looks normal."),
                 (FINAL_QUESTION, "No, there are no anomalies in the image.")]
        items.append({"id": f"{v.video_id}_frame{k}", "video": path, "frame_s": t,
                      "label": NORMAL, "conversations": _conversation(pairs)})
      continue
    for e_index, event in enumerate(events):
      name = readable(event.label).lower()
      for k in range(per_event):
        u = (k + 1) / (per_event + 1)      # inside the event's middle half
        t = round(event.start + (0.25 + 0.5 * u) * (event.end - event.start), 1)
        if event.region is not None:
          where = region_text(event.region)
          second = (WHERE_QUESTIONS[rng.randint(len(WHERE_QUESTIONS))],
                    f"At {where}.")
          final = f"Yes, there is {article(name)} {name} at {where}."
        else:
          second = ("What type of anomaly does the image show?", f"{readable(event.label)}.")
          final = f"Yes, there is {article(name)} {name}."
        pairs = [("What happens in the image?", _active_sentences(v, t)), second,
                 (FINAL_QUESTION, final)]
        items.append({"id": f"{v.video_id}_event{e_index}_frame{k}", "video": path,
                      "frame_s": t, "label": event.label, "region": event.region,
                      "conversations": _conversation(pairs)})
  return items
