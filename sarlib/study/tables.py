"""Results tables: written atomically, paired deltas with their t intervals (the one t-interval of the
suite), and the commit that produced them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..utils.files import atomic_write

__all__ = ["git_commit", "paired_delta", "seeds_for_margin", "t_half_width", "write_csv"]


def t_half_width(values: pd.Series) -> float:
    """Half-width of the 95% t confidence interval of the mean of `values` (NaN below two values)."""
    values = values.dropna()
    n = len(values)
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def seeds_for_margin(delta: float, half_width: float, n: int, margin: float, most: int = 100) -> int | None:
    """The fewest seeds at which a paired delta's 95% t interval, with the seed-to-seed spread that
    `half_width` shows over `n` seeds, keeps both ends more than `margin` from 0 (an estimate: the mean and
    the spread are taken to stay as measured); None when |delta| <= margin or it takes more than `most`."""
    if n < 2 or not np.isfinite(half_width) or abs(delta) <= margin:
        return None
    sd = half_width * np.sqrt(n) / stats.t.ppf(0.975, n - 1)
    for m in range(n, most + 1):
        if abs(delta) - stats.t.ppf(0.975, m - 1) * sd / np.sqrt(m) > margin:
            return m
    return None


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a results table atomically (a killed notebook leaves the previous file intact)."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.4f"))


def paired_delta(frame: pd.DataFrame, metric: str, treated: str, control: str = "baseline",
                 by: Sequence[str] = ("dataset",)) -> pd.DataFrame:
    """Mean of (treated - control) over seeds run with both arms, with a 95% t confidence interval."""
    out = []
    keys = list(by)
    for group, sub in frame.groupby(keys, sort=False):
        wide = sub.pivot_table(index="seed", columns="arm", values=metric)
        if treated not in wide or control not in wide:
            continue
        diff = (wide[treated] - wide[control]).dropna()
        n = len(diff)
        if n == 0:  # e.g. an attention metric of the CNN, which has no [CLS] attention
            continue
        mean = float(diff.mean()) if n else float("nan")
        half = t_half_width(diff)
        group = group if isinstance(group, tuple) else (group,)
        out.append({**dict(zip(keys, group)), "comparison": f"{treated} - {control}", "metric": metric,
                    "n_seeds": n, "delta": mean, "ci95_low": mean - half, "ci95_high": mean + half})
    return pd.DataFrame(out)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        # results/ is excluded: papermill rewrites the tracked executed notebook while it runs
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)results"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
