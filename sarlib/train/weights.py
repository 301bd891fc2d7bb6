"""A finished run's weights without pickle: what is needed to redraw its attention anywhere.

    save_weights(run_dir, out_dir)       # model.safetensors (float16) + config.json, metrics.json, log.jsonl
    model, cfg = load_weights(out_dir)   # in eval mode, [CLS] capture on, float32
    kept_snapshots(run_dir)              # [5, 10]: epochs a run kept (--keep-checkpoints 5,10), in epochs/
    model, cfg = load_weights(run_dir, epoch=5)

`checkpoint.pth` holds the optimizer too and is a torch zip file (about 2 MB for the cpu profile's micro
models); the results keep, per run, only the model's tensors in safetensors (a format that cannot carry
code) at half precision, about 330 KB for those models, beside the run's small text files. The numbers
in the results CSVs were computed by the float32 model during training; maps drawn from the float16
copy differ from it by rounding only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..utils.files import atomic_write, read_text_bounded
from .checkpoint import read_checkpoint
from .config import TrainConfig
from .rundir import CHECKPOINT, CONFIG, LOG, METRICS_JSON, read_metrics, saved_config
from .setup import build_model

__all__ = ["EPOCHS_DIR", "WEIGHTS_FILE", "WeightsError", "kept_snapshots", "load_weights", "read_log", "save_epoch_weights",
           "save_weights"]

WEIGHTS_FILE = "model.safetensors"
# a run's (or a weights folder's) snapshots after chosen epochs: epochs/<epoch>.safetensors
EPOCHS_DIR = "epochs"
# a copy is refused beyond this (the cpu profile's models need about 0.4 MB; a ViT-S about 44 MB)
MAX_WEIGHTS_BYTES = 512 << 20


class WeightsError(ValueError):
    """A weights folder cannot be read; the message names it and the fix."""


def _write_half(state: dict[str, torch.Tensor], path: Path) -> None:
    half = {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous().cpu() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(half, tmp, metadata={"format": "pt"}))


def _snapshot(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / EPOCHS_DIR / f"{int(epoch)}.safetensors"


def save_epoch_weights(model: torch.nn.Module, run_dir: str | Path, epoch: int) -> Path:
    """Keep the model as it is after `epoch` finished epochs: `<run>/epochs/<epoch>.safetensors` (float16)."""
    path = _snapshot(run_dir, epoch)
    _write_half(model.state_dict(), path)
    return path


def kept_snapshots(folder: str | Path) -> list[int]:
    """The epochs a run or weights folder kept a snapshot after (`epochs/<epoch>.safetensors`), ascending."""
    found = Path(folder) / EPOCHS_DIR
    names = [p.stem for p in found.glob("*.safetensors")] if found.is_dir() else []
    return sorted(int(n) for n in names if n.isdigit() and n == str(int(n)))


def save_weights(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Copy a finished run's model (float16 safetensors), its kept epoch snapshots, config, metrics and log
    into `out_dir`."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    read_metrics(run_dir)  # finished, and its metrics are a run's own
    fix = f"train it again (delete {run_dir})"
    state = read_checkpoint(run_dir / CHECKPOINT, fix=fix, needs=("model",))["model"]
    _write_half(state, out_dir / WEIGHTS_FILE)
    for epoch in kept_snapshots(run_dir):
        (out_dir / EPOCHS_DIR).mkdir(exist_ok=True)
        atomic_write(_snapshot(out_dir, epoch), lambda tmp, epoch=epoch: shutil.copyfile(_snapshot(run_dir, epoch), tmp))
    for name in (CONFIG, METRICS_JSON, LOG):
        atomic_write(out_dir / name, lambda tmp, name=name: shutil.copyfile(run_dir / name, tmp))
    return out_dir


def load_weights(folder: str | Path, *, epoch: int | None = None,
                 device: str | torch.device = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """The model a weights folder holds (or, with `epoch`, the snapshot a run or weights folder kept after
    that epoch), in eval mode with [CLS] capture on, and the run's config."""
    folder = Path(folder)
    fix = f"restore it (git checkout -- {folder}) or make it again from the run (save_weights)"
    path = folder / WEIGHTS_FILE if epoch is None else _snapshot(folder, epoch)
    if not path.is_file():
        raise WeightsError(f"{path} does not exist; {fix}")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{path} is {path.stat().st_size >> 20} MiB, more than a weights file of this suite; {fix}")
    found = saved_config(folder)
    if found is None:
        raise WeightsError(f"{folder / CONFIG} is missing; {fix}")
    try:
        cfg = TrainConfig.from_dict(found[0])
        state = load_file(path)
    except (SafetensorError, ValueError, TypeError, OSError) as err:
        raise WeightsError(f"{path} cannot be read ({' '.join(str(err).split())[:160]}); {fix}") from None
    head = state.get("head.weight")
    if head is None or head.ndim != 2:
        raise WeightsError(f"{path} holds no classifier head (head.weight); {fix}")
    model = build_model(cfg.replace(init_checkpoint=None), int(head.shape[0]))
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit the model its config describes "
                           f"({' '.join(str(err).split())[:160]}); {fix}") from None
    return model.to(device).eval(), cfg


def read_log(folder: str | Path) -> list[dict]:
    """The run's per-epoch records (log.jsonl of a run or a weights folder), [] when it has none yet."""
    path = Path(folder) / LOG
    if not path.is_file():
        return []
    text = read_text_bounded(path, fix=f"delete {path}; the run rewrites it from its checkpoint when resumed")
    try:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, RecursionError):
        records = None
    if records is None or not all(isinstance(r, dict) for r in records):
        raise WeightsError(f"{path} is not one JSON object per line; delete it (a resumed run rewrites it)")
    return records

