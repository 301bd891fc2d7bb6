"""The loss is cheap: sarlib's batched loss against a per-map OpenCV implementation (benchmarks/)."""

from __future__ import annotations

from .base import Target

TARGET = Target(
    name="loss-speed", order=11,
    claim="the loss is cheap",
    compares="`sarlib.spatial_entropy` vs a per-map OpenCV reference",
    outputs="`loss-speed.csv`, `benchmarks.csv`, `figures/loss-speed.png`",
    results="benchmark",
)
