"""Mirrors of a run's JSON-lines log for the loggers people already use: TensorBoard and Weights & Biases.

`log.jsonl` stays the record the suite reads; `--log-to tensorboard,wandb` also sends every epoch's
numbers (losses, the SAR term, lambda, lr, top-1, the mechanism metrics, speed) to either, written
inside the run directory: `<run>/tensorboard/` (event files; `tensorboard --logdir results/runs`) and
`<run>/wandb/` (W&B runs offline unless WANDB_MODE says otherwise, so no account or network is needed;
`wandb sync <run>/wandb/offline-run-*` uploads one later). Each is an extra (`pip install
".[tensorboard]"`, `".[wandb]"`), so the core install stays light; asking for one that is not
installed fails when the config is made (`TrainConfig.validate`), in one line naming the install.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import Any

from .config import TrainConfig

__all__ = ["RunLoggers", "scalars"]


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of one epoch's record, grouped as the loggers show them ("train/loss", ...)."""
    out = {}
    for key, value in record.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        group = "train" if key in ("loss", "ce", "reg_term", "lambda", "reg_skips", "lr") else (
            "speed" if key in ("epoch_seconds", "images_per_s", "wall_seconds") else "eval")
        out[f"{group}/{key}"] = float(value)
    return out


class RunLoggers:
    """The loggers of one run (rank 0 only); `log(record)` after each epoch, `close()` at the end."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        names = [n for n in cfg.log_to.split(",") if n]
        self._tb = self._wandb = None
        # TrainConfig.validate has refused a logger whose package is missing, with the install line
        if "tensorboard" in names:
            writer_cls = importlib.import_module("torch.utils.tensorboard").SummaryWriter  # optional: tensorboard
            self._tb = writer_cls(log_dir=str(run_dir / "tensorboard"))
        if "wandb" in names:
            wandb = importlib.import_module("wandb")  # optional: wandb
            (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
            self._wandb = wandb.init(project="sar-repro", name=run_dir.name, group=str(run_dir.parent),
                                     dir=str(run_dir), config=cfg.to_dict(),
                                     mode=os.environ.get("WANDB_MODE", "offline"), reinit=True)

    def log(self, record: dict[str, Any]) -> None:
        values, step = scalars(record), int(record["epoch"])
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, global_step=step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
