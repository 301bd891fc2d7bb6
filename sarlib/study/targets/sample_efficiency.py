"""The gain grows as data shrinks: baseline and SAR at several training-set fractions."""

from __future__ import annotations

from .base import HEADLINE, Target

TARGET = Target(
    name="sample-efficiency", order=3,
    claim="the gain grows as data shrinks",
    compares="baseline vs SAR + no-skip (and the CNN on real data) at training fractions",
    outputs="`sample-efficiency*.csv`, `figures/sample-efficiency.png`",
    arms={"smoke": ["baseline", "sar+no-skip"], "paper": ["baseline", "sar+no-skip"],
          "cpu": {"synthetic-colour-1k": ["baseline", "sar+no-skip"], "*": ["baseline", "sar+no-skip", "cnn"]}},
    title="Sample efficiency", table_keys=("train_fraction",), delta_metrics=(HEADLINE,),
    uses_fractions=True,
)
