"""Preset files: each holds `PRESET`, a dict of TrainConfig fields that differ from the defaults."""
