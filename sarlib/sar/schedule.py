"""The regularizer's weight lambda(epoch): linear warm-up, then cosine decay (spec section 2).

`lambda0` is the weight the schedule rises to (the authors' 0.01); `lambda` (a keyword in Python, so
`lam` in code) is the weight one epoch trains with.
"""

from __future__ import annotations

import math

__all__ = ["lambda_schedule"]


def lambda_schedule(epoch: int, epochs: int, lambda0: float = 0.01, warmup: int = 10, *, decay: str = "cosine") -> float:
    """lambda for `epoch` (0-based) of a run of `epochs` epochs.

    "cosine" (the authors'): linear from 0 at epoch 0 to `lambda0` at epoch `warmup - 1`, then cosine from
    `lambda0` down to 0 at the last epoch. "constant": `lambda0` at every epoch.
    """
    if epochs < 1 or not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, {epochs}) for a run of {epochs} epochs; got {epoch}")
    if warmup < 0 or lambda0 < 0:
        raise ValueError(f"warmup and lambda0 must be >= 0; got warmup={warmup}, lambda0={lambda0}")
    if decay == "constant":
        return float(lambda0)
    if decay != "cosine":
        raise ValueError(f"decay must be 'cosine' or 'constant'; got {decay!r}")
    if epoch < warmup:
        # warm-up reaches lambda0 exactly at epoch warmup-1 (epoch 0 -> 0)
        return lambda0 * epoch / (warmup - 1) if warmup > 1 else float(lambda0)
    decay_epochs = epochs - warmup  # epochs warmup .. epochs-1 run the cosine; the last one lands at 0
    if decay_epochs <= 1:
        return float(lambda0) if epoch < epochs - 1 or decay_epochs == 0 else 0.0
    progress = (epoch - warmup) / (decay_epochs - 1)
    return 0.5 * lambda0 * (1.0 + math.cos(math.pi * progress))
