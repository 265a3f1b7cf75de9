"""Inference: `Assistant` (a trained run answering about videos) and the structured answer."""
