"""Training a target's runs: in this process, several at once, with torchrun, or as SLURM jobs; then one
row per run (COLUMNS). Finished runs are reused, runs another process holds are waited for."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Iterable

import pandas as pd

from ..train import METRICS_JSON, TrainConfig, read_metrics, train, wait_for_run
from .launch import run_with_submitit
from .plan import Run
from .progress import TargetProgress, training_images
from .tables import git_commit
from .rows import COLUMNS, make_row

__all__ = ["execute", "wait_for_other_process"]


def _train_one(run: Run, nproc: int) -> dict[str, Any]:
    if nproc <= 1:
        return train(run.config, wait=True)
    # multi-GPU: one torchrun per run; the config travels as flags through the CLI, without the CLI's
    # per-epoch lines (the target's progress bar reads log.jsonl)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "sarlib.train", "--profile", run.config.profile]
    for key, value in {**run.config.to_dict(), "progress": False}.items():
        if value is None or key == "profile":
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    subprocess.run(args, check=True)
    return read_metrics(run.run_dir)


def wait_for_other_process(run: Run, *, progress: bool = True) -> None:
    """Block while another process (a second notebook, a CLI run) trains `run`; its result is then reused."""
    def announce(holder: str) -> None:
        if progress:
            print(f"{run.run_dir} is being trained by {holder}; waiting for it to finish", flush=True)

    wait_for_run(run.run_dir, on_wait=announce)


def _train_in_parallel(runs: list[Run], jobs: int) -> None:
    """Train `runs` as `jobs` independent processes at once, each with its share of the CPU threads.

    Small models on a few cores use threads poorly, so side-by-side runs finish sooner in total (the
    cpu profile measures this: see the README). Results are read back from each run's metrics.json.
    """
    threads = max(1, (runs[0].config.threads or os.cpu_count() or 1) // jobs)
    # longest first: the short runs then fill the gaps at the end, instead of one long run finishing
    # alone while the other workers idle (results do not depend on the order: each run seeds itself)
    runs = sorted(runs, key=lambda run: -training_images(run))
    # spawn, not fork: a forked child would inherit the parent's torch thread pools and locks
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(train, run.config.replace(threads=threads), wait=True) for run in runs]
        for done in as_completed(futures):
            done.result()  # re-raises a failed run's error here, in the notebook


def execute(runs: Iterable[Run], *, target: str, nproc: int = 1, jobs: int = 1, progress: bool = True,
            launcher: str = "local", slurm: dict[str, Any] | None = None) -> pd.DataFrame:
    """Train every run that is not finished and return one row per run (COLUMNS).

    nproc > 1 launches each run with torchrun on that many GPUs; jobs > 1 trains that many runs at once
    as separate processes (CPU threads are split between them). `launcher="slurm"` first trains the
    unfinished runs as SLURM jobs (`sarlib.study.launch.run_with_submitit`, whose keyword arguments `slurm`
    holds: slurm_partition, gpus_per_node, nodes, timeout_min, ...).
    """
    runs = list(runs)
    commit = git_commit()
    # one training per run directory: a run listed twice (the full-set run of both sample-efficiency
    # budgets) is trained and counted once, and gives a row each time it is listed
    distinct = list({run.run_dir: run for run in runs}.values())
    missing = [run for run in distinct if not (run.run_dir / METRICS_JSON).is_file()]
    if progress:
        print(f"{target}: {len(distinct)} runs, {len(distinct) - len(missing)} finished (reused), {len(missing)} to "
              "train", flush=True)
    if launcher != "local":  # its own bar, over the same image-epochs, while it waits for the jobs
        run_with_submitit(missing, launcher=launcher, progress=progress, desc=target, **(slurm or {}))
    with TargetProgress(distinct, desc=target, enabled=progress and launcher == "local" and bool(missing)):
        if launcher == "local" and jobs > 1 and nproc <= 1 and len(missing) > 1:
            _train_in_parallel(missing, jobs)
        rows = []
        for run in runs:
            wait_for_other_process(run, progress=progress)  # a second notebook or CLI run may hold it
            metrics = _train_one(run, nproc)  # returns the stored metrics of a finished run
            rows.append(make_row(run, metrics, target=target, commit=commit))
    return pd.DataFrame(rows, columns=COLUMNS)
