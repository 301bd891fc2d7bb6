"""`train(cfg)`: one whole run, resumable, in its own run directory (see sarlib.train.rundir).

Resuming restores model, optimizer, scheduler, scaler, EMA and every RNG, and data order depends only
on (seed, epoch), so on CPU a run killed mid-epoch and restarted ends with the same metrics as one that
was never interrupted. A run directory is never resumed under a different config: the saved
config.json, or the config stored in the checkpoint when config.json is missing, must match.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from ..data import DATASETS
from ..sar.schedule import lambda_schedule
from ..utils.environment import lock_hash, machine, versions
from ..utils.files import append_text, atomic_write_text, shown_path
from .checkpoint import resume, save_checkpoint, seed_everything
from .config import TrainConfig, kept_epochs
from .distributed import DistInfo, cleanup_distributed, init_distributed
from .engine import evaluate_all, train_one_epoch
from .loaders import build_loaders, build_segmentation_loader, start_epoch
from .loggers import RunLoggers
from .records import EPOCH_RECORD, METRICS, check_record
from .rundir import CHECKPOINT, CONFIG, LOCK, LOG, METRICS_JSON, check_run_dir, finished, rank0_lock
from .setup import build_parts, check_model_fits
from .weights import save_epoch_weights

__all__ = ["train"]

Echo = Callable[[str], None]


def train(cfg: TrainConfig, *, wait: bool = False, echo: Echo | None = None) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one training run.

    Rank 0 holds the run directory's lock while it trains. If another process holds it, RunLockedError
    names that process, or with `wait=True` this call waits for it and then reuses (or resumes) the run.
    `echo` receives, on rank 0, one line saying what trains and where, and one line per evaluated epoch
    (`python -m sarlib.train` prints them; library callers such as the study stay quiet by default).
    """
    run_dir = Path(cfg.output_dir)
    done = run_dir / METRICS_JSON
    if done.is_file():  # metrics.json is written last and atomically: no lock is needed to read it
        return finished(cfg, run_dir)
    check_model_fits(cfg, DATASETS[cfg.dataset].num_classes)  # before the run directory is created
    if run_dir.is_dir() and not (run_dir / LOCK).is_file():
        check_run_dir(cfg, run_dir)  # another tool's folder is refused before a lock file is put into it
    info = init_distributed(cfg.device)
    try:
        with rank0_lock(run_dir, info, wait):
            if done.is_file():  # finished by the process this one waited for
                return finished(cfg, run_dir)
            return _run(cfg, info, run_dir, echo if info.is_main else None)
    finally:
        cleanup_distributed()


def _run(cfg: TrainConfig, info: DistInfo, run_dir: Path, echo: Echo | None = None) -> dict[str, Any]:
    """Set up (or resume), then one train_one_epoch per epoch, evaluating every `eval_every` epochs and
    checkpointing after each."""
    start_time = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    check_run_dir(cfg, run_dir)
    seed_everything(cfg.seed + info.rank)
    train_loader, val_loader, train_eval_loader, num_classes = build_loaders(cfg, info)
    seg_loader = build_segmentation_loader(cfg)
    ckpt_path = run_dir / CHECKPOINT
    parts = build_parts(cfg, info, num_classes, resuming=ckpt_path.is_file())
    state = {"epoch": 0, "best_top1": -1.0, "best_epoch": -1, "history": []}
    if ckpt_path.is_file():
        state = resume(parts, ckpt_path, cfg)
        if info.is_main:
            print(f"resuming {shown_path(run_dir)} after epoch {state['epoch']} of {cfg.epochs}", file=sys.stderr, flush=True)
    if info.is_main:
        cfg.save(run_dir / CONFIG)
        # the log is rewritten from the checkpoint's history: lines of an epoch that was killed vanish
        atomic_write_text(run_dir / LOG, "".join(json.dumps(r) + "\n" for r in state["history"]))
    if info.enabled:  # after resuming: DDP broadcasts rank 0's weights when it wraps the model
        parts.net = torch.nn.parallel.DistributedDataParallel(
            parts.model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    loggers = RunLoggers(cfg, run_dir) if info.is_main and cfg.log_to else None
    if echo is not None:
        echo(_start_line(cfg, parts.model, train_loader, val_loader, info, run_dir))

    keep = set(kept_epochs(cfg.keep_checkpoints))  # the explorer's epoch slider (--keep-checkpoints)
    for epoch in range(state["epoch"], cfg.epochs):
        epoch_start = time.perf_counter()
        start_epoch(train_loader, epoch, seed=cfg.seed, rank=info.rank)
        epoch_lr = parts.scheduler.start_epoch(epoch)
        lam = lambda_schedule(epoch, cfg.epochs, cfg.lambda0, cfg.lambda_warmup,
                              decay=cfg.lambda_decay) if parts.regularize else 0.0
        stats = train_one_epoch(parts, train_loader, epoch=epoch, lam=lam, info=info, run_dir=run_dir,
                                max_steps=cfg.max_steps_per_epoch, show=show, epochs=cfg.epochs)
        parts.scheduler.end_epoch(epoch)  # "after_epoch" timing; before the checkpoint, so resume sees it
        record: dict[str, Any] = {"epoch": epoch, "loss": stats["loss"], "ce": stats["ce"], "reg_term": stats["reg_term"],
                                  "lambda": lam, "reg_skips": stats["reg_skips"],
                                  "lr": epoch_lr,  # the lr this epoch trained at
                                  "epoch_seconds": stats["epoch_seconds"], "images_per_s": stats["images_per_s"]}
        last = epoch == cfg.epochs - 1
        if last or (epoch + 1) % cfg.eval_every == 0:
            loaders = dict(val=val_loader, train_eval=train_eval_loader, seg=seg_loader if last else None)
            record.update(evaluate_all(parts.model, parts.ema, loaders, cfg, info, parts.amp, last=last))
            if record["top1"] > state["best_top1"]:
                state["best_top1"], state["best_epoch"] = record["top1"], epoch
        record["wall_seconds"] = time.perf_counter() - epoch_start  # training and evaluation
        _check_written(record, EPOCH_RECORD, f"epoch {epoch}'s record")
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if info.is_main:
            if state["epoch"] in keep:  # before the checkpoint: a run killed between them redoes this epoch
                save_epoch_weights(parts.model, run_dir, state["epoch"])
            save_checkpoint(parts, state, cfg, ckpt_path)
            append_text(run_dir / LOG, json.dumps(record) + "\n")
            if loggers is not None:
                loggers.log(record)
            if echo is not None and "top1" in record:
                echo(_epoch_line(record, cfg.epochs))
        if info.enabled:
            dist.barrier()

    if loggers is not None:
        loggers.close()
    metrics = _summary(cfg, state, info, start_time)
    _check_written(metrics, METRICS, METRICS_JSON)
    if info.is_main:
        atomic_write_text(run_dir / METRICS_JSON, json.dumps(metrics, indent=2) + "\n")
    return metrics


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n))


def _size(loader) -> str:
    try:
        return _count(len(loader.dataset))
    except TypeError:  # a dataset without a length (streamed): say nothing rather than guess
        return "?"


def _start_line(cfg: TrainConfig, model: torch.nn.Module, train_loader, val_loader, info: DistInfo,
                run_dir: Path) -> str:
    """What trains and where it is written, on one line."""
    params = sum(p.numel() for p in model.parameters())
    reg = "no regularizer" if cfg.regularizer == "none" else f"regularizer {cfg.regularizer} (lambda0 {cfg.lambda0:g})"
    skip = ", no-skip block" if cfg.no_skip else ""
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name(info.device) if info.device.type == "cuda"
             else f"cpu, {threads} thread{'s' if threads > 1 else ''}")
    if info.world_size > 1:
        where += f", {info.world_size} processes"
    return (f"train {cfg.model} ({_count(params)} params{skip}) on {cfg.dataset} ({_size(train_loader)} train, "
            f"{_size(val_loader)} test images), {cfg.epochs} epochs, {reg}; {where} -> {shown_path(run_dir)}")


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One evaluated epoch, rounded: its losses, lambda, lr, test and training top-1, speed."""
    parts = [f"epoch {record['epoch'] + 1}/{epochs}", f"loss {record['loss']:.4f}"]
    if record.get("reg_term") is not None:
        parts += [f"reg_term {record['reg_term']:.4f}", f"lambda {record['lambda']:.4g}"]
    parts += [f"lr {record['lr']:.2e}", f"top-1 {record['top1']:.2f}"]
    if record.get("train_top1") is not None:
        parts.append(f"train top-1 {record['train_top1']:.2f}")
    if record.get("images_per_s"):
        parts.append(f"{record['images_per_s']:.0f} img/s")
    return "  ".join(parts)


def _summary(cfg: TrainConfig, state: dict[str, Any], info: DistInfo, start_time: float) -> dict[str, Any]:
    """metrics.json: the last epoch's metrics, the best top-1 and the run's time and throughput."""
    final, history = state["history"][-1], state["history"]
    return {
        "top1_best": state["best_top1"], "best_epoch": state["best_epoch"], "top1_final": final["top1"],
        "top5_final": final["top5"], "jaccard": final.get("jaccard"), "top1_ema_final": final.get("top1_ema"),
        "train_top1_final": final.get("train_top1"), "entropy": final.get("entropy"),
        "regions": final.get("regions"), "reg_term": final.get("reg_term"),
        "jaccard_protocol": cfg.seg_protocol if final.get("jaccard") is not None else None,
        "epochs": cfg.epochs, "reg_skips": sum(r["reg_skips"] for r in history),
        "images_per_s": _median_or_none([r["images_per_s"] for r in history]),
        "train_seconds": sum(r["epoch_seconds"] for r in history),
        "wall_seconds": sum(r.get("wall_seconds", r["epoch_seconds"]) for r in history),
        "wall_seconds_this_process": time.time() - start_time,
        "world_size": info.world_size, "device": _device_name(info.device),
        # what it was computed with: a result row reusing this run carries these, wherever it is built
        "environment": {**versions(), "lock": lock_hash(), **machine()},
        "complete": True,
    }


def _check_written(record: dict[str, Any], schema: dict, what: str) -> None:
    """The loop writes only what its readers accept (sarlib.train.records); anything else is a bug here."""
    problem = check_record(record, schema)
    if problem:
        raise RuntimeError(f"{what} {problem}; this is a bug in sarlib, please report it with the run's config.json")


def _median_or_none(values: list[float | None]) -> float | None:
    """Median of the finite values; None (valid JSON, unlike NaN) when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
