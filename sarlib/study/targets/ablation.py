"""Each part matters: the no-skip block and the SAR loss apart, and a smoothness loss in SAR's place."""

from __future__ import annotations

from .base import HEADLINE, Claim, Target

TARGET = Target(
    name="ablation", order=2,
    claim="each part matters",
    compares="baseline, no-skip, SAR, SAR + no-skip, TV smoothness instead of SAR",
    outputs="`ablation*.csv`, `figures/ablation.png`",
    arms=["baseline", "no-skip", "sar", "sar+no-skip", "tv"],
    claims=(
        Claim("SAR alone (standard last block) raises top-1", "sar - baseline", HEADLINE),
        Claim("the no-skip block alone raises top-1", "no-skip - baseline", HEADLINE),
    ),
    title="Ablation",
)
