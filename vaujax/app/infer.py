r"""Ask a trained run about a video: "what happened, and when?".

  vaujax infer --run runs/stage2 --video clip.mp4 [--question "Are there any anomalies?"] \
      [--figure clip.png] [--json clip.json] [--gt 3.0,7.5] [--config.key=value ...]
  vaujax infer --run runs/stage2 --features clip.npz      # a feature file instead of a video
  (`python -m vaujax.infer` is the same command)

Prints the generated answer, the TETG interval and the structured answer
`{anomaly, class, start_s, end_s, frame_scores, explanation}` (validated against
vaujax/schemas/answer.schema.json). The run directory supplies the config, tokenizer, TETG
classifier, class list and the feature extractor (`data.encoder`, `model.num_frames`), so a
new video is encoded the way the run's features were. The video is checked before anything is
loaded, and compiled programs are cached on disk ($VAUJAX_COMPILATION_CACHE, default
~/.cache/vaujax/jax): a second call on the same run compiles nothing.
"""

from __future__ import annotations

import os

from absl import flags

from vaujax.app import cli


def define_flags(fv: flags.FlagValues, argv) -> None:
  cli.define_run_flags(fv, argv)
  flags.DEFINE_string("video", None, "the video file to ask about", flag_values=fv)
  flags.DEFINE_string("features", None, "or its feature file (.npz) instead of --video",
                      flag_values=fv)
  flags.DEFINE_string("question", "Are there any anomalies?", "the question", flag_values=fv)
  flags.DEFINE_string("gt", None, "ground-truth interval 'start,end' (seconds) for the figure",
                      flag_values=fv)
  flags.DEFINE_string("figure", None, "write a PNG figure (frames, TETG scores, SETS) here",
                      flag_values=fv)
  flags.DEFINE_string("json", None, "write the structured answer (JSON) here", flag_values=fv)


def _check_inputs(fv) -> tuple:
  """Every input checked before any model is loaded: a bad video fails in well under a second.
  -> (ground-truth interval or None, the --features file's features or None)."""
  from vaujax.errors import require_file
  cli.require(fv, "run")
  if bool(fv.video) == bool(fv.features):
    raise cli.fail("--video", "give exactly one of --video and --features")
  gt, feats = None, None
  if fv.gt:
    try:
      gt = tuple(float(x) for x in fv.gt.split(","))
    except ValueError:
      gt = ()
    if len(gt) != 2 or gt[1] < gt[0]:
      raise cli.fail("--gt", f"must be 'start,end' seconds with start <= end, got {fv.gt!r}")
  if fv.video:
    from vaujax.data import video as video_io
    info = video_io.probe_video(require_file(fv.video, "video"))
    if info.num_frames < 1:
      raise cli.fail(fv.video, "has no decodable frames")
  else:
    from vaujax.data import features
    feats = features.read_features(require_file(fv.features, "feature file"))
    if features.frame_count(feats) == 0:
      raise cli.fail(fv.features, "has zero frames: there is nothing to answer from")
  for flag in ("figure", "json"):
    target = fv[flag].value
    # (a gs:// URL has no folders to check: the object is written whole when the answer is)
    if target and "://" not in target and not os.path.isdir(
        os.path.dirname(os.path.abspath(target))):
      raise cli.fail(f"--{flag}", f"the folder of {target} does not exist")
  return gt, feats


def main(fv: flags.FlagValues) -> dict:
  gt, checked_feats = _check_inputs(fv)   # a --features file is read (and checked) once
  run = cli.load_run_from_flags(fv)
  cli.enable_compilation_cache()
  from vaujax import cpu_runtime, files
  from vaujax.data import features, frame_layout
  from vaujax.inference.assistant import Assistant, validate_answer
  cpu_runtime.reuse_host_memory()
  config = run.config
  frames = None
  if fv.video:
    encoder = features.encoder_from_spec(config.data.get("encoder") or "tiny:0")
    layout = frame_layout.FrameSettings.of_run(config)
    feats, frames = features.encode_video(fv.video, encoder, config.model.num_frames,
                                          fps=layout.sample_fps, min_frames=layout.min_frames,
                                          tetg_fps=config.data.get("tetg_fps", 0.0))
  else:
    feats = checked_feats
  assistant = Assistant.from_run(run)
  answer = assistant.ask(feats, fv.question)
  validate_answer(answer)
  print(f"Q: {fv.question}\nA: {answer['explanation']}")
  interval = (f"{answer['start_s']:.1f}-{answer['end_s']:.1f} s" if answer["start_s"] is not None
              else "none")
  print(f"anomaly: {answer['anomaly']}  class: {answer['class']}  interval: {interval}")
  if fv.json:
    files.write_json(fv.json, answer)
  if fv.figure:
    from vaujax.evaluate import plots
    view = assistant.tetg_view(feats)
    plots.video_figure(fv.figure, feats, frames, view and view.scores, view and view.interval,
                       gt, config.model.sets_ratio,
                       title=os.path.basename(fv.video or fv.features), answer=answer,
                       question=fv.question, score_times=view and view.timestamps)
    print(f"figure: {fv.figure}")
  return answer


def run(argv=None):
  return cli.run(__doc__, define_flags, main, argv)


if __name__ == "__main__":
  run()
