"""Per-epoch schedules: the SAR weight lambda(epoch) (SPEC section 2) and the learning rate's timing."""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.scheduler import create_scheduler_v2

__all__ = ["sar_weight", "EpochLRSchedule", "LR_STEPS"]

LR_STEPS = ("before_epoch", "after_epoch")


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


class EpochLRSchedule:
    """timm's per-epoch cosine schedule (DeiT's: warm-up from `warmup_lr`, cosine to `min_lr`) with an
    explicit choice of when it steps.

    lr(e) is timm's value for epoch e. "before_epoch" steps at the start of epoch e, so epoch e trains at
    lr(e). "after_epoch" is the DeiT / authors' loop, which steps after training epoch e: epoch e trains
    at lr(e-1), and epoch 0 at the value the scheduler set when it was built (warmup_lr), so epochs 0
    and 1 share the warm-up start and the warm-up lasts one epoch longer.

    The state (timm's scheduler state; the current lr lives in the optimizer) is checkpointed like any
    scheduler, so a resumed run continues the same sequence under either timing.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, epochs: int, warmup_epochs: int, warmup_lr: float,
                 min_lr: float, step: str = "before_epoch") -> None:
        if step not in LR_STEPS:
            raise ValueError(f"lr_step must be one of {', '.join(LR_STEPS)}; got {step!r}")
        self.optimizer = optimizer
        self.when = step
        self.scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=epochs, min_lr=min_lr,
                                                warmup_lr=warmup_lr, warmup_epochs=warmup_epochs)

    def start_epoch(self, epoch: int) -> float:
        """Call before training epoch `epoch`; returns the lr that epoch trains at."""
        if self.when == "before_epoch":
            self.scheduler.step(epoch)
        return self.optimizer.param_groups[0]["lr"]

    def end_epoch(self, epoch: int) -> None:
        """Call after training epoch `epoch` (before checkpointing it)."""
        if self.when == "after_epoch":
            self.scheduler.step(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
