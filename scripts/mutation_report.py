"""Per-module mutation score of a `mutmut run` (see `make mutation`) -> a markdown report.

    python scripts/mutation_report.py build/mutation benchmarks/results/mutation.md
    python scripts/mutation_report.py --globs        # the mutants in scope, for `mutmut run`

Reads mutmut's result files (mutants/<module>.py.meta) for the mutants in SCOPE, sets aside the
mutants listed in EQUIVALENT (each with the line it must produce, checked against mutmut's own
diff, and why no test can tell it from the original), and writes one row per module:
score = killed / (mutants - equivalent). Exits 1 when a module scores under --min (90%), when a
mutant in scope was not run, or when an EQUIVALENT entry no longer matches its mutant.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import sys

# module -> mutant-name globs in scope (mutmut names a mutant <module>.x_<function>__mutmut_<n>,
# or <module>.xǁ<Class>ǁ<method>__mutmut_<n>)
SCOPE = {
    "vaujax/models/sets.py": ["vaujax.models.sets.*"],
    "vaujax/models/tetg.py": ["vaujax.models.tetg.*"],
    "vaujax/models/frame_tokens.py": ["vaujax.models.frame_tokens.*"],
    "vaujax/evaluate/metrics.py": ["vaujax.evaluate.metrics.*"],
    "vaujax/evaluate/parsing.py": ["vaujax.evaluate.parsing.*"],
    # the grading only (running a model over a benchmark is tested end to end elsewhere)
    "vaujax/evaluate/qa.py": ["vaujax.evaluate.qa.x_grade_*", "vaujax.evaluate.qa.x_summarize_*",
                              "vaujax.evaluate.qa.x_frame_metrics_*"],
    "vaujax/data/conversation.py": ["vaujax.data.conversation.*"],
    "vaujax/data/safe_pickle.py": ["vaujax.data.safe_pickle.*"],
    "vaujax/convert/mapping.py": ["vaujax.convert.mapping.*"],
    # the LLaMA table and both directions through it (not config.json parsing)
    "vaujax/convert/llama.py": ["vaujax.convert.llama.x_rules_*",
                                "vaujax.convert.llama.x_params_*"],
}

# mutant -> (a line the mutant has, on a "+" line of its diff; why it is equivalent)
_NAN = "float(\"NAN\")", "float() reads \"NAN\" as it reads \"nan\""
_NONE_FLAG = "`supervised` is only tested for truth; None is false, like False"
_TIE_ORDER = ("the order within a run of equal scores does not matter: precision and recall are "
              "read only at the last frame of each tie (and numpy reads kind names "
              "case-insensitively)")
_RANK_TIES = ("every frame of a run of equal scores gets the run's average rank, so the order "
              "within a tie does not matter (and numpy reads kind names case-insensitively)")
_CAST_IN_MODEL = ("TETGClassifier casts its input to its float32 compute dtype first, so "
                  "embeddings in float16, bfloat16 or float32 reach it unchanged either way, and "
                  "float64 ones become float32 either way (64-bit mode is off)")
_RINDEX = "LETTERS is \"ABCD\": each letter occurs once, so rindex == index"
_POINT = ("the union is 0 only when both intervals are the same single point (start <= end, as "
          "parse_interval and the annotations guarantee), where every end is equal")
_F32 = ("jnp.zeros makes float32 by default while 64-bit mode is off (vaujax never turns it on): "
        "the dtype given")
EQUIVALENT: dict[str, tuple[str, str]] = {
    "vaujax.evaluate.qa.x_summarize_mc__mutmut_9": _NAN,
    "vaujax.evaluate.qa.x_summarize_open__mutmut_22": _NAN,
    "vaujax.evaluate.qa.x_summarize_open__mutmut_33": _NAN,
    "vaujax.evaluate.qa.x_summarize_open__mutmut_47": _NAN,
    "vaujax.evaluate.qa.x_summarize_open__mutmut_58": _NAN,
    "vaujax.evaluate.qa.x_frame_metrics__mutmut_6": (
        "np.asarray(scores[k], None)",
        "metrics.roc_auc / average_precision convert the pooled scores to float64 themselves"),
    "vaujax.evaluate.qa.x_frame_metrics__mutmut_8": (
        "np.asarray(scores[k], )",
        "metrics.roc_auc / average_precision convert the pooled scores to float64 themselves"),
    "vaujax.models.tetg.x_extract_interval__mutmut_17": (
        "config.smooth >= 1",
        "a moving average over 1 frame (kernel [1], no padding) returns the probabilities as "
        "they are"),
    "vaujax.evaluate.parsing.x__normal__mutmut_14": (
        'strip("XX .XX")', "the text is lower-cased first, so it holds no 'X' to strip"),
    "vaujax.evaluate.parsing.x_parse_choice__mutmut_6": ("LETTERS.rindex", _RINDEX),
    "vaujax.evaluate.parsing.x_parse_choice__mutmut_11": ("LETTERS.rindex", _RINDEX),
    "vaujax.evaluate.parsing.x_parse_choice__mutmut_18": ("LETTERS.rindex", _RINDEX),
    "vaujax.evaluate.parsing.x_parse_choice__mutmut_23": ("LETTERS.rindex", _RINDEX),
    "vaujax.evaluate.parsing.x_parse_choice__mutmut_35": (
        "if len(exact) == 2:",
        "the exact-match shortcut only saves work: when one option equals the answer, every "
        "contained option is part of it and it is the longest, so the containment rule returns "
        "it too (and for two equal options both rules return the first)"),
    "vaujax.evaluate.parsing.x_interval_iou__mutmut_44": ("float(a[1] == b[0])", _POINT),
    "vaujax.evaluate.parsing.x_interval_iou__mutmut_46": ("float(a[0] == b[1])", _POINT),
    "vaujax.models.tetg.x_extract_interval__mutmut_64": (
        "-r[1]))",
        "runs are disjoint and in order, so the earlier run has both the smaller start and the "
        "smaller end: the tie-break picks the same run"),
    "vaujax.data.conversation.x__encode__mutmut_18": (
        "video_seen = None", "video_seen is only read as `not video_seen`; None is false too"),
    "vaujax.data.safe_pickle.x_load_llamavid_features__mutmut_36": (
        '"XXbiufXX"', "no numpy dtype has the kind 'X', so the allowed kinds are unchanged"),
    "vaujax.data.safe_pickle.x__reconstruct__mutmut_7": (
        "np.dtype(None)",
        "the size only decides zero or not: prod(shape) * 8 (float64) is 0 exactly when "
        "prod(shape) * 1 (uint8) is"),
    "vaujax.data.safe_pickle.x__encode__mutmut_18": (
        "_codecs.encode(text, encoding, )", "errors defaults to 'strict', the value passed"),
    "vaujax.data.conversation.x__encode__mutmut_49": (", None)", _NONE_FLAG),
    "vaujax.data.conversation.x__encode__mutmut_56": (", None)", _NONE_FLAG),
    "vaujax.data.conversation.x__encode__mutmut_62": (", None)", _NONE_FLAG),
    "vaujax.data.conversation.x__encode__mutmut_69": (", None)", _NONE_FLAG),
    "vaujax.data.conversation.x_tokenize_conversation__mutmut_4": (
        "for_generation=None", "for_generation is only tested for truth; None is false too"),
    "vaujax.data.safe_pickle.x__reconstruct__mutmut_23": (
        "._reconstruct(subtype, shape, None)",
        "the array made here is empty, and ndarray.__setstate__ (BUILD, checked next) replaces "
        "its dtype with the state's"),
    "vaujax.evaluate.metrics.x_average_precision__mutmut_12": ("kind=None", _TIE_ORDER),
    "vaujax.evaluate.metrics.x_average_precision__mutmut_14": ("np.argsort(-s, )", _TIE_ORDER),
    "vaujax.evaluate.metrics.x_average_precision__mutmut_17": ('kind="MERGESORT"', _TIE_ORDER),
    "vaujax.models.tetg.x_tetg_loss__mutmut_7": (
        "labels.astype(None)",
        "JAX's astype(None) casts to the default float type, which is float32 while 64-bit mode "
        "is off (vaujax never turns it on): the same labels as astype(float32)"),
    "vaujax.models.tetg.x_frame_probabilities__mutmut_8": ("jnp.asarray(class_embeddings, None)",
                                                          _CAST_IN_MODEL),
    "vaujax.models.tetg.x_frame_probabilities__mutmut_10": ("jnp.asarray(class_embeddings, )",
                                                           _CAST_IN_MODEL),
    "vaujax.models.sets.x_frame_differences__mutmut_7": ("jnp.zeros(f.shape[:2], None)", _F32),
    "vaujax.models.sets.x_frame_differences__mutmut_9": ("jnp.zeros(f.shape[:2], )", _F32),
    "vaujax.models.sets.x_frame_differences__mutmut_23": (
        "jnp.concatenate([diffs[:1], diffs], )",
        "jnp.concatenate joins along axis 0 by default, the axis given"),
    "vaujax.models.sets.x_select_indices__mutmut_10": (
        "jnp.sort(idx, )", "jnp.sort sorts along the last axis by default, the axis given"),
    "vaujax.models.sets.x_select_indices__mutmut_11": (
        "jnp.sort(idx, axis=+1)",
        "the indices are [T, k] (select_indices takes [T, N] scores; batches go through vmap), "
        "so axis 1 is the last axis"),
    "vaujax.models.sets.x_grid_map__mutmut_32": (
        "src + 1)]",
        "the clamp never binds: for a cell d < dst, (d + 0.5) / dst * src is below src by at least "
        "src / (2 dst), so its int is at most src - 1 and min() with src - 1 or src + 1 returns it"),
    "vaujax.evaluate.metrics.x_roc_auc__mutmut_21": ("kind=None", _RANK_TIES),
    "vaujax.evaluate.metrics.x_roc_auc__mutmut_23": ("np.argsort(s, )", _RANK_TIES),
    "vaujax.evaluate.metrics.x_roc_auc__mutmut_25": ('kind="MERGESORT"', _RANK_TIES),
    "vaujax.data.conversation.x_render_prompt__mutmut_14": (
        "(text.endswith(\" ASSISTANT:\")) or True",
        "str.removesuffix already leaves a text without the suffix unchanged"),
}

KILLED, TIMEOUT = {1, 3}, {24, -24, 36, 152, 255}
SURVIVED, NO_TESTS, NOT_RUN = {0}, {5, 33}, {None}


def in_scope(name: str, module: str) -> bool:
  return any(fnmatch.fnmatchcase(name, g) for g in SCOPE[module])


def diff_of(name: str, module: str) -> str:
  from pathlib import Path

  from mutmut.mutation.diff_apply import get_diff_for_mutant
  return get_diff_for_mutant(name, path=Path(module))


def status(code) -> str:
  for label, codes in (("killed", KILLED), ("timeout", TIMEOUT), ("survived", SURVIVED),
                       ("no tests", NO_TESTS), ("not run", NOT_RUN)):
    if code in codes:
      return label
  return f"suspicious (exit {code})"


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("run_dir", nargs="?")
  ap.add_argument("out", nargs="?")
  ap.add_argument("--globs", action="store_true", help="print the mutant globs in scope")
  ap.add_argument("--min", type=float, default=90.0, help="lowest acceptable score (%%)")
  ap.add_argument("--date", default=datetime.date.today().isoformat())
  args = ap.parse_args(argv)
  if args.globs:
    print(" ".join(f"'{g}'" for globs in SCOPE.values() for g in globs))
    return 0
  if not args.run_dir or not args.out:
    ap.error("run_dir and out are required")

  out_path = os.path.abspath(args.out)
  os.chdir(args.run_dir)
  rows, details, problems = [], [], []
  seen_equivalent = set()
  for module in SCOPE:
    with open(os.path.join("mutants", module + ".meta")) as f:
      codes = json.load(f)["exit_code_by_key"]
    names = sorted((n for n in codes if in_scope(n, module)),
                   key=lambda n: (n.rsplit("__mutmut_", 1)[0], int(n.rsplit("_", 1)[1])))
    counts = {"killed": 0, "timeout": 0, "equivalent": 0, "survived": 0, "not run": 0}
    for name in names:
      st = status(codes[name])
      if st in ("killed", "timeout"):
        counts[st] += 1
        if name in EQUIVALENT:
          problems.append(f"{name} is listed as equivalent but was killed: remove it from the list")
          seen_equivalent.add(name)
        continue
      if st == "not run":
        counts["not run"] += 1
        continue
      if st.startswith("suspicious"):
        problems.append(f"{name}: {st}")
      diff = diff_of(name, module)
      if name in EQUIVALENT:
        seen_equivalent.add(name)
        line, reason = EQUIVALENT[name]
        if any(l.startswith("+") and line in l for l in diff.splitlines()):
          counts["equivalent"] += 1
          details.append((module, name, "equivalent", reason, diff))
          continue
        problems.append(f"{name}: no longer the mutant listed as equivalent ({line!r})")
      counts["survived"] += 1
      details.append((module, name, st, "", diff))
    total = len(names)
    relevant = total - counts["equivalent"] - counts["not run"]
    caught = counts["killed"] + counts["timeout"]
    score = 100.0 * caught / relevant if relevant else 100.0
    rows.append((module, total, caught, counts["timeout"], counts["equivalent"],
                 counts["survived"], score, counts["not run"]))
    if counts["not run"]:
      problems.append(f"{module}: {counts['not run']} of {total} mutants not run yet")
    elif score < args.min:
      problems.append(f"{module}: {score:.1f}% < {args.min}%")
  for name in sorted(set(EQUIVALENT) - seen_equivalent):
    problems.append(f"{name}: listed as equivalent but not among this run's mutants")

  lines = [
      f"Mutation run of {args.date} (`make mutation`: mutmut "
      f"{_mutmut_version()}, scores written by scripts/mutation_report.py).",
      "",
      "| module | mutants | killed (of which timeouts) | equivalent | survived | not run | "
      "score |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for module, total, caught, timeouts, eq, survived, score, not_run in rows:
    shown = (f"{score:.1f}%" if not not_run else "not run" if caught + survived == 0
             else f"({score:.1f}% of those run)")
    lines.append(f"| {module} | {total} | {caught} ({timeouts}) | {eq} | {survived} | "
                 f"{not_run} | {shown} |")
  t = [sum(r[i] for r in rows) for i in (1, 2, 3, 4, 5, 7)]
  run = t[0] - t[3] - t[5]
  overall = 100.0 * t[1] / run if run else 100.0
  lines.append(f"| **all** | {t[0]} | {t[1]} ({t[2]}) | {t[3]} | {t[4]} | {t[5]} | "
               f"{overall:.1f}% |")
  lines += ["", "Score = killed / (mutants - equivalent - not run); a timeout counts as killed.",
            ""]
  for kind, title in (("equivalent", "Equivalent mutants"), (None, "Surviving mutants")):
    chosen = [d for d in details if (d[2] == "equivalent") == (kind == "equivalent")]
    lines += [f"### {title} ({len(chosen)})", ""]
    if not chosen:
      lines += ["None.", ""]
    for module, name, st, reason, diff in chosen:
      changed = [l for l in diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
      lines.append(f"- `{name}` ({st}): " + (reason or "no test fails"))
      lines += ["  ```diff"] + [f"  {l}" for l in changed] + ["  ```"]
    lines.append("")
  if problems:
    lines += ["### Problems", ""] + [f"- {p}" for p in problems] + [""]
  report = "\n".join(lines)
  _write_section(out_path, report)
  print(report)
  for p in problems:
    print("mutation_report:", p, file=sys.stderr)
  return 1 if problems else 0


BEGIN, END = "<!-- mutation-report:begin -->", "<!-- mutation-report:end -->"


def _write_section(path: str, report: str) -> None:
  """Replaces the generated part of `path` (between the markers), keeping the text around it."""
  text = open(path).read() if os.path.exists(path) else f"# Mutation testing\n\n{BEGIN}\n{END}\n"
  if BEGIN not in text or END not in text:
    text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
  head, rest = text.split(BEGIN, 1)
  tail = rest.split(END, 1)[1]
  with open(path, "w") as f:
    f.write(f"{head}{BEGIN}\n{report.rstrip()}\n{END}{tail}")


def _mutmut_version() -> str:
  from importlib.metadata import version
  return version("mutmut")


if __name__ == "__main__":
  sys.exit(main())
