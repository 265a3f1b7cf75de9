"""Runs and checkpoints: the run directory as an artifact (`run_dir`), orbax checkpoints of the
training state (`checkpoint`), and the trained TETG classifier on disk (`tetg_files`).

Training writes these; evaluation, inference and stage two read them. Nothing here trains.
"""
