"""Summaries, figures, the README's generated results section and the notebook runner."""
