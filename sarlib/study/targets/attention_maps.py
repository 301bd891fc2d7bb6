"""SAR maps are compact, supervised maps scattered: the figure of per-head maps on the same images."""

from __future__ import annotations

from .base import Target

TARGET = Target(
    name="attention-maps", order=6, redraws_from_rows=False,
    claim="SAR maps are compact, supervised maps scattered",
    compares="DINO-style heat maps and coloured components per head, baseline and SAR on the same images",
    outputs="`attention-maps*.csv`, `figures/attention-maps-<dataset>.png`, "
            "`figures/attention-components-<dataset>.png`",
    arms=["baseline", "sar+no-skip"],
)
