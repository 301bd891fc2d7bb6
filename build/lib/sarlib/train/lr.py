"""When the learning rate steps: timm's per-epoch cosine schedule with an explicit timing (DeiT's loop or ours)."""

from __future__ import annotations

from typing import Any

import torch
from timm.scheduler import create_scheduler_v2

__all__ = ["EpochLRSchedule", "LR_STEPS"]

LR_STEPS = ("before_epoch", "after_epoch")


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
