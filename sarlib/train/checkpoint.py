"""A run's checkpoint: what it holds (weights, optimizer, scheduler, scaler, EMA, history, every RNG),
written atomically after each epoch and read back with weights_only=True to resume."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.checkpoint import CheckpointError, load_checkpoint
from ..utils.files import atomic_torch_save
from ..utils.text import one_line
from .config import TrainConfig, config_differences

__all__ = ["read_checkpoint", "resume", "save_checkpoint", "rng_state", "set_rng_state", "seed_everything"]

# Checkpoints written before the RNG state was stored as plain values hold numpy's MT19937 state as an
# ndarray. Exactly the globals that rebuild such an array are allowed, and only when resuming a run.
_LEGACY_RNG_GLOBALS = [np.ndarray, np.dtype, np.dtypes.UInt32DType,
                       getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct]


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values, so the checkpoint loads with weights_only=True."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]  # a tensor of keys, or an ndarray in checkpoints of older versions
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_checkpoint(path: Path, *, fix: str, needs: tuple[str, ...] = ()) -> dict[str, Any]:
    """A run's own checkpoint.pth (see `load_checkpoint`), of this format or the earlier one."""
    return load_checkpoint(path, fix=fix, needs=needs, allow=_LEGACY_RNG_GLOBALS)


def save_checkpoint(parts: Any, state: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Everything a resumed run needs, after a finished epoch (`parts`: sarlib.train.setup.Parts)."""
    atomic_torch_save({
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "scaler": parts.scaler.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "state": state, "rng": rng_state(), "config": cfg.to_dict(),
    }, path)


def resume(parts: Any, path: Path, cfg: TrainConfig) -> dict[str, Any]:
    """Load `path` into `parts` and every RNG; returns the run's state (epoch, best top-1, history).

    The checkpoint must be this run's: the config it stores must agree with `cfg` on every field that
    determines results, or its weights (another run's, whose tensors may well fit) are refused in one line.
    """
    fix = "delete it to restart this run from epoch 0 (or use another --output-dir)"
    ckpt = read_checkpoint(path, fix=fix, needs=("model", "optimizer", "scheduler", "scaler", "state", "rng", "config"))
    saved = ckpt["config"]
    diff = config_differences(saved, cfg) if isinstance(saved, dict) else {"(not a config)"}
    if diff:
        raise CheckpointError(f"{path} belongs to another run (its {', '.join(sorted(diff))} differ from this run's), so "
                              f"its weights are not resumed; {fix}")
    try:
        parts.model.load_state_dict(ckpt["model"])
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        parts.scheduler.load_state_dict(ckpt["scheduler"])
        parts.scaler.load_state_dict(ckpt["scaler"])
        if parts.ema is not None and ckpt.get("ema") is not None:
            parts.ema.load_state_dict(ckpt["ema"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path} does not fit this run's model or optimizer ({one_line(err, limit=100)}); {fix}") from None
    set_rng_state(ckpt["rng"])
    return ckpt["state"]
