"""SAR attention segments objects: the Jaccard of table2's models against object masks."""

from __future__ import annotations

from .base import Target

TARGET = Target(
    name="segmentation", order=5, redraws_from_rows=False,
    claim="SAR attention segments objects",
    compares="Jaccard of table2's models (DINO protocol; the paper profile adds the authors')",
    outputs="`segmentation*.csv`, `figures/segmentation.png`",
    arms=["baseline", "sar+no-skip"], title="Segmentation",
)
