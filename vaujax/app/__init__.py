"""The application layer: every command (train, evaluate, infer, demo, ablation, features,
synthetic data, converters) and the demo's report. Library packages never import it.

Each command module has `define_flags(fv)`, `main(fv)` and `run(argv=None)`; `vaujax.app.cli`
runs them all the same way (absl flags, `--help`, one-line errors), and `vaujax.app.main` is
the `vaujax` console script that exposes them as subcommands.
"""
