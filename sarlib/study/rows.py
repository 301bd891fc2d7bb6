"""A results row (one run of a target, spec section 7), declared once: its columns, how a row is made
from a run's metrics, and the check every reader applies before using a results CSV's numbers.

    row = make_row(run, metrics, target="table2", commit="4144590")
    problem = check_rows(frame)          # None, or what is wrong, in a few words
    frame = read_rows("results/table2.csv")  # read back and checked; ValueError naming the file otherwise
"""

from __future__ import annotations

import io
import os
import re
from typing import Any

import numpy as np
import pandas as pd

from ..train import TrainConfig
from ..utils.files import shown_path
from .runs import Run

__all__ = ["COLUMNS", "ENVIRONMENT_COLUMNS", "IDENTITY", "RENAMED_COLUMNS", "check_rows", "jaccard_protocol", "make_row",
           "read_rows", "read_table"]

# what the run was computed with, from its metrics.json (sarlib.utils.environment; empty for runs written
# before it was recorded)
ENVIRONMENT_COLUMNS = ["python", "torch", "torchvision", "timm", "numpy", "pillow", "scipy", "cuda", "cudnn",
                       "lock_hash", "cpu_model", "cpu_capability", "torch_threads", "gpu_name", "gpu_driver"]

# spec section 7 columns (budget: "equal-epochs" or "equal-steps", sarlib.study.runs.Run; train_top1: final accuracy on the fixed un-augmented training slice; entropy,
# regions, jaccard: the mechanism metrics on the test set, for every arm; reg_term: the regularizer's
# mean value in the last epoch, empty when the arm has none), where the run lives, its median training
# images/s, then the environment
COLUMNS = ["target", "dataset", "model", "arm", "seed", "epochs", "train_fraction", "budget", "top1_best", "top1_final",
           "train_top1", "entropy", "regions", "jaccard", "jaccard_protocol", "reg_term", "lambda0", "regularizer",
           "no_skip", "profile", "git_commit", "device", "wall_seconds", "run_dir", "images_per_s",
           *ENVIRONMENT_COLUMNS]

# columns renamed since earlier versions (the committed CSVs keep their names until regenerated)
RENAMED_COLUMNS = {"sar_weight": "lambda0", "sar_term": "reg_term"}

# what a reader needs of every row, and the range of each number it uses ((low, high), None: unbounded)
REQUIRED = ["target", "dataset", "arm", "seed", "top1_best", "top1_final", "device", "git_commit", "run_dir"]
_RANGES = {"top1_best": (0, 100), "top1_final": (0, 100), "train_top1": (0, 100), "entropy": (0, None),
           "regions": (0, None), "jaccard": (0, 1), "reg_term": (0, None), "lambda0": (0, None),
           "train_fraction": (0, 1), "epochs": (1, None), "seed": (0, None), "wall_seconds": (0, None),
           "images_per_s": (0, None)}
# a row is one run: these identify it (a run scored under two Jaccard protocols or datasets is two rows, and
# the full-set run of sample efficiency is the reference of both budgets, one row each)
IDENTITY = ["dataset", "model", "arm", "seed", "epochs", "train_fraction", "budget", "lambda0", "jaccard_protocol",
             "seg_dataset"]
_COMMIT = re.compile(r"^[0-9a-f]{7,40}(-dirty)?$|^unknown$")


def jaccard_protocol(metrics: dict[str, Any], cfg: TrainConfig) -> str | None:
    """The protocol of a run's Jaccard (runs written before the field existed used the DINO one)."""
    if metrics.get("jaccard") is None:
        return None
    return metrics.get("jaccard_protocol") or cfg.seg_protocol


def make_row(run: Run, metrics: dict[str, Any], *, target: str, commit: str) -> dict[str, Any]:
    """The results row of `run` from its checked metrics.json (sarlib.train.read_metrics)."""
    cfg = run.config
    env = dict(metrics.get("environment") or {})
    env["lock_hash"] = env.pop("lock", None)
    return dict(
        target=target, dataset=run.dataset, model=cfg.model, arm=run.arm, seed=run.seed, epochs=cfg.epochs,
        train_fraction=cfg.train_fraction, budget=run.budget, top1_best=metrics["top1_best"], top1_final=metrics["top1_final"],
        train_top1=metrics.get("train_top1_final"), entropy=metrics.get("entropy"),
        regions=metrics.get("regions"), jaccard=metrics.get("jaccard"),
        jaccard_protocol=jaccard_protocol(metrics, cfg), reg_term=metrics.get("reg_term"),
        lambda0=cfg.lambda0 if cfg.regularizer != "none" else 0.0,
        regularizer=cfg.regularizer, no_skip=cfg.no_skip, profile=cfg.profile, git_commit=commit,
        device=metrics["device"], wall_seconds=metrics.get("wall_seconds", metrics["train_seconds"]),
        run_dir=str(run.run_dir), images_per_s=metrics.get("images_per_s"),
        **{c: env.get(c) for c in ENVIRONMENT_COLUMNS},
    )


def check_rows(frame: pd.DataFrame) -> str | None:
    """What is wrong with a results table's rows (as read with `git_commit` as text), or None: missing
    columns or values, numbers that are not finite or out of range, a commit that is not one (a cut
    line), or one run listed twice."""
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        return f"lacks the columns {', '.join(missing)}"
    for column in REQUIRED:
        empty = frame[column].isna()
        if empty.any():
            return f"has no {column} in row {int(np.flatnonzero(empty)[0]) + 2}"
    for column, (low, high) in _RANGES.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = (frame[column].notna() & ~np.isfinite(values)) | (values < low) | ((values > high) if high is not None else False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"[{low}, {high}]" if high is not None else f">= {low}"
            return f"has {column} = {frame[column].iloc[i]} in row {i + 2}, not a number in {where}"
    commits = frame["git_commit"].astype(str)
    bad = ~commits.str.match(_COMMIT)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return f"has git_commit {commits.iloc[i]!r} in row {i + 2}, not a commit (a cut or edited line?)"
    keys = [k for k in IDENTITY if k in frame]
    twice = frame.duplicated(subset=keys, keep=False)
    if twice.any():
        first = frame[twice].iloc[0]
        return (f"lists one run twice ({', '.join(f'{k}={first[k]}' for k in ['dataset', 'arm', 'seed'])}): "
                "each run is one row")
    return None


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A results CSV as written by `write_csv`, read back: commits stay text (a hash of digits only would
    read as a number), columns renamed since are read under today's names, rows written before budgets
    existed are equal-epochs rows. ValueError saying what is wrong (is empty, is not text, does not parse)."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "binary data")
        frame = pd.read_csv(io.StringIO(data.decode("utf-8")), dtype={"git_commit": str})
    except pd.errors.EmptyDataError:
        raise ValueError("is empty") from None
    except UnicodeDecodeError:
        raise ValueError("is not text") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"does not parse as CSV ({' '.join(str(err).split())[:120]})") from None
    frame = frame.rename(columns={k: v for k, v in RENAMED_COLUMNS.items() if k in frame and v not in frame})
    if "train_fraction" in frame and "budget" not in frame:
        frame.insert(frame.columns.get_loc("train_fraction") + 1, "budget", "equal-epochs")
    return frame


def read_rows(path: str | os.PathLike) -> pd.DataFrame:
    """A target's rows CSV read back and checked (`check_rows`) before any of its numbers is used; a missing,
    damaged or edited file is one ValueError line that names it and the fix."""
    shown, stem = shown_path(path), os.path.basename(path).split(".")[0]
    fix = f"restore it (git checkout -- {shown}) or rebuild it (make reproduce-{stem})"
    if not os.path.isfile(path):
        raise ValueError(f"{shown} does not exist; {fix}")
    try:
        frame = read_table(path)
    except ValueError as err:
        raise ValueError(f"{shown} {err}; {fix}") from None
    problem = check_rows(frame)
    if problem is not None:
        raise ValueError(f"{shown} {problem}; {fix}")
    return frame
