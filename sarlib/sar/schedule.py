"""The SAR weight lambda(epoch): linear warm-up, then cosine decay (spec section 2)."""

from __future__ import annotations

import math

__all__ = ["sar_weight"]


def sar_weight(epoch: int, epochs: int, base: float = 0.01, warmup: int = 10, *, schedule: str = "cosine") -> float:
    """lambda for `epoch` (0-based) of a run of `epochs` epochs.

    "cosine" (the authors'): linear from 0 at epoch 0 to `base` at epoch `warmup - 1`, then cosine from
    `base` down to 0 at the last epoch. "constant": `base` at every epoch.
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, {epochs}) for a run of {epochs} epochs; got {epoch}")
    if warmup < 0 or base < 0:
        raise ValueError(f"warmup and base must be >= 0; got warmup={warmup}, base={base}")
    if schedule == "constant":
        return float(base)
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'constant'; got {schedule!r}")
    if epoch < warmup:
        # warm-up reaches base exactly at epoch warmup-1 (epoch 0 -> 0)
        return base * epoch / (warmup - 1) if warmup > 1 else float(base)
    decay_epochs = epochs - warmup  # epochs warmup .. epochs-1 run the cosine; the last one lands at 0
    if decay_epochs <= 1:
        return float(base) if epoch < epochs - 1 or decay_epochs == 0 else 0.0
    progress = (epoch - warmup) / (decay_epochs - 1)
    return 0.5 * base * (1.0 + math.cos(math.pi * progress))
