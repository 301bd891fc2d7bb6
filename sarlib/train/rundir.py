"""A run directory: the files in it, the lock of the one process that trains it, and the checks that
keep a run from being resumed under another config.

    .lock            held (flock) by the process training the run: a second one is refused or waits
    config.json      the resolved config, written once set-up succeeded
    log.jsonl        one JSON line per epoch (losses, SAR term, lambda, lr, accuracy, Jaccard, speed)
    checkpoint.pth   after every epoch, written atomically; a new call on the same directory resumes
    metrics.json     the final summary; its presence marks the run complete (a rerun returns it)
"""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

from ..utils.files import LockHeldError, hold_lock, read_json
from .checkpoint import read_checkpoint
from .config import TrainConfig, config_differences, upgrade_config
from .distributed import DistInfo
from .records import METRICS, METRICS_RENAMED, check_record
from .setup import build_model

__all__ = ["CHECKPOINT", "CONFIG", "LOG", "LOCK", "METRICS_JSON", "RunDirectoryError", "RunLockedError",
           "check_run_dir", "finished", "load_trained_model", "lock_run_dir", "rank0_lock", "read_metrics", "saved_config",
           "wait_for_run"]

CHECKPOINT = "checkpoint.pth"


METRICS_JSON = "metrics.json"  # written last: its presence marks a finished run


LOG = "log.jsonl"


CONFIG = "config.json"


LOCK = ".lock"




class RunDirectoryError(RuntimeError):
    pass


class RunLockedError(RunDirectoryError):
    """Another live process trains in the run directory; `holder` names it ("PID 123 on host x")."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        super().__init__(message)
        self.holder = holder


def saved_config(run_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """The config a run directory was started with: config.json, else the one stored in the checkpoint."""
    saved, ckpt = run_dir / CONFIG, run_dir / CHECKPOINT
    if saved.is_file():
        fix = (f"delete it and run again: the config is then read from {ckpt}" if ckpt.is_file()
               else "delete it (no epoch has finished in this run) and run again")
        return read_json(saved, fix=fix), saved
    if ckpt.is_file():
        stored = read_checkpoint(ckpt, fix=f"delete {run_dir} to start the run over, or use another --output-dir").get("config")
        if not isinstance(stored, dict):
            raise RunDirectoryError(f"{ckpt} has no {CONFIG} beside it and stores no config, so it cannot be "
                                    f"resumed safely; delete {run_dir} to start over, or use another --output-dir")
        return stored, ckpt
    return None


# what sarlib itself may have put into a run directory before its config.json (locks, the SLURM
# launcher's record and job folder, the loggers' folders), each with the kind of entry it is; a name alone
# proves nothing (a user's own job.json, a file named tensorboard), so each is also checked for its form
_OWN_BEFORE_CONFIG = {LOCK: "file", ".submit.lock": "file", "job.json": "job record", "submitit": "folder",
                      "tensorboard": "event folder", "wandb": "folder"}


def _is_own_entry(path: Path) -> bool:
    """Whether `path`, in a run directory without config.json, is what sarlib puts there under that name
    (or an atomic write's temporary file)."""
    if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
        return True
    kind = _OWN_BEFORE_CONFIG.get(path.name)
    if kind == "file":
        return path.is_file() and not path.is_symlink()
    if kind == "folder":
        return path.is_dir() and not path.is_symlink()
    if kind == "event folder":  # TensorBoard's writer leaves only its event files
        return path.is_dir() and not path.is_symlink() and all(
            p.is_file() and p.name.startswith("events.out.tfevents.") for p in path.iterdir())
    if kind == "job record":  # sarlib.study.launch's record of a submitted job
        try:
            record = json.loads(path.read_text()) if path.is_file() and path.stat().st_size < 65536 else None
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and {"launcher", "job_id", "folder", "host"} <= set(record)
    return False


def _foreign_entries(run_dir: Path) -> list[str]:
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if not _is_own_entry(p))


def _is_our_config(saved: Any) -> bool:
    """Whether a config.json was written by sarlib: a JSON object with TrainConfig's core fields (a run of
    an earlier version may hold a field since renamed, so unknown extra keys alone do not disown it)."""
    return isinstance(saved, dict) and {"model", "dataset", "epochs", "seed", "output_dir", "regularizer"} <= set(saved)


def check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse a folder that is not a sarlib run (a run directory is empty or ours: never write over another
    tool's files), and a run directory that holds a run with another config (never resume under different
    flags)."""
    found = saved_config(run_dir)
    if found is None:
        foreign = _foreign_entries(run_dir)
        if foreign:
            raise RunDirectoryError(
                f"{run_dir} is not empty and holds no sarlib run ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}): sarlib writes only into an empty folder or its own run "
                "directory; pass another --output-dir")
        return
    old, source = found
    old = upgrade_config(old) if isinstance(old, dict) else old
    if not _is_our_config(old):
        raise RunDirectoryError(
            f"{source} was not written by sarlib (not a TrainConfig), so {run_dir} is another tool's folder; "
            "pass another --output-dir (nothing in it was changed)")
    if source.name == CONFIG and not (run_dir / CHECKPOINT).is_file() and not (run_dir / METRICS_JSON).is_file():
        return  # set-up succeeded once but no epoch finished: nothing to resume, the new config replaces it
    diff = config_differences(old, cfg)
    if diff:
        raise RunDirectoryError(
            f"{run_dir} holds a run with a different config ({', '.join(sorted(diff))} differ, per {source.name}); "
            "use another --output-dir, or delete that directory to start over"
        )


def read_metrics(run_dir: Path, *, fix: str | None = None) -> dict[str, Any]:
    """A finished run's metrics.json, checked against what a run writes; one line naming it otherwise."""
    path = run_dir / METRICS_JSON
    fix = fix or (f"delete it and run the same command again (the metrics are recomputed from "
                  f"{run_dir / CHECKPOINT}, or the run resumes)")
    metrics = read_json(path, fix=fix)
    if isinstance(metrics, dict):  # a run of an earlier version named the regularizer's term reg_final
        metrics = {METRICS_RENAMED.get(k, k): v for k, v in metrics.items()}
    problem = ("is not marked complete" if isinstance(metrics, dict) and metrics.get("complete") is not True
               else check_record(metrics, METRICS))
    if problem:
        raise RunDirectoryError(f"{path} {problem}, so it is not a sarlib run's result; {fix}")
    return metrics


def finished(cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    if saved_config(run_dir) is None:
        raise RunDirectoryError(f"{run_dir / METRICS_JSON} has no {CONFIG} or {CHECKPOINT} beside it, so it is not a "
                                "sarlib run's result; pass another --output-dir, or delete it to train this run there")
    check_run_dir(cfg, run_dir)
    return read_metrics(run_dir)


@contextmanager
def lock_run_dir(run_dir: str | Path, *, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run directory's lock (creating the directory); RunLockedError if taken and not `wait`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(hold_lock(run_dir / LOCK, wait=wait, on_wait=on_wait))
        except LockHeldError as err:
            raise RunLockedError(
                f"{run_dir} is being trained by {err.holder}; wait for it to finish (the same command then "
                "reuses or resumes the run), stop that process, or use another --output-dir", holder=err.holder,
            ) from None
        yield


def wait_for_run(run_dir: str | Path, *, on_wait: Callable[[str], None] | None = None) -> None:
    """Return once no other process trains in `run_dir` (at once if none does); `on_wait(holder)` before waiting."""
    run_dir = Path(run_dir)
    if (run_dir / LOCK).is_file():
        with lock_run_dir(run_dir, wait=True, on_wait=on_wait):
            pass


@contextmanager
def rank0_lock(run_dir: Path, info: DistInfo, wait: bool) -> Iterator[None]:
    """Rank 0 holds the run directory's lock for the whole run; every rank stops if it is taken."""
    with ExitStack() as stack:
        refusal = None
        if info.is_main:
            try:
                stack.enter_context(lock_run_dir(run_dir, wait=wait))
            except RunLockedError as err:
                refusal = err
        if info.enabled:
            box = [None if refusal is None else (str(refusal), refusal.holder)]
            dist.broadcast_object_list(box, src=0)
            if box[0] is not None and refusal is None:
                refusal = RunLockedError(*box[0])
        if refusal is not None:
            raise refusal
        yield


def load_trained_model(run_dir: str | Path, *, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild a run's model from its config.json and checkpoint.pth, in eval mode, [CLS] capture on."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}: train it first (python -m sarlib.train --output-dir {run_dir})")
    fix = f"delete {run_dir} and train it again"
    found = saved_config(run_dir)
    if found is None:
        raise RunDirectoryError(f"{run_dir} has no {CONFIG}; {fix}")
    cfg = TrainConfig.from_dict(found[0])
    ckpt = read_checkpoint(run_dir / CHECKPOINT, fix=fix, needs=("model",))
    num_classes = ckpt["model"]["head.weight"].shape[0]
    # the run's own weights replace any fine-tuning source, so that source is not read (it may be gone)
    model = build_model(cfg.replace(init_checkpoint=None), num_classes)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg
