"""Did a rerun reproduce the committed results? Rerun a target's runs into a scratch folder and compare.

    make verify-table2 SEEDS='[0]'          # python -m sarlib.report.verify table2 --seeds '[0]'
    python -m sarlib.report.verify table2 --results results --scratch results/verify/table2

The target's notebook runs as `make reproduce-<target>` runs it, with its results and runs in `--scratch`
(so every run is trained again and nothing committed is touched). Then every rerun row is matched with the
committed row of the same run (dataset, model, arm, seed, epochs, fraction, budget, lambda0) and each
metric compared, and every paired verdict the rerun could compute (the same seeds as the committed one)
is compared with the committed verdict. One table is printed; the status is 0 when every value is within
TOLERANCE and every verdict compared held, 1 otherwise.

TOLERANCE is what the same machine and environment give: training on CPU is deterministic (same seed,
same data order, same kernels), and the CSVs keep 4 decimals, so a rerun there must match to the last
written digit. On another machine torch may pick other kernels (another ISA level, another thread
count), whose rounding differs; the rows record the machine (`cpu_model`, `cpu_capability`,
`torch_threads`) and the environment (versions, lock hash), and a difference between the committed rows'
and the rerun's is named in one line before the table, as the likely cause of any value that moved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..study import HEADLINE, TARGETS, check_rows, paired_delta, write_csv
from ..study.rows import IDENTITY, read_table
from ..utils.files import shown_path
from . import notebook

__all__ = ["MACHINE_KEYS", "METRICS", "SPREAD_NAME", "TOLERANCE", "compare_rows", "compare_verdicts",
           "machine_differences", "machine_spread", "main"]

# the metrics compared per run, as the CSVs hold them
METRICS = (HEADLINE, "top1_best", "train_top1", "entropy", "regions", "jaccard")
# on the same machine and environment a rerun reproduces every written digit (the CSVs keep 4 decimals)
TOLERANCE = 0.5e-4
# what a row records of where it ran; a difference explains values that move
MACHINE_KEYS = ("cpu_model", "cpu_capability", "torch_threads", "gpu_name", "torch", "numpy", "timm", "lock_hash")
_REPO = Path(__file__).resolve().parents[2]
# the committed measurement of how far a rerun elsewhere moves the intervals (README marks fragile verdicts by it)
SPREAD_NAME = "machine_spread.csv"
_DELTA_KEYS = ("dataset", "comparison", "metric", "train_fraction", "budget", "grid")


def _read(path: Path) -> pd.DataFrame:
    """A results CSV read back (its rows are checked by compare_rows before their numbers are compared)."""
    if not path.is_file():
        raise ValueError(f"{shown_path(path)} does not exist: the committed results to compare with are missing "
                         f"(git checkout -- {shown_path(path)}, or `make reproduce-{path.stem.split('_')[0]}` first)")
    try:
        return read_table(path)
    except ValueError as err:
        raise ValueError(f"{shown_path(path)} {err}: git checkout -- {shown_path(path)}, or rerun its target") from None


def compare_rows(committed: pd.DataFrame, rerun: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per rerun run and metric: committed value, rerun value (rounded as the CSV rounds it), difference,
    and whether it is within `tolerance` (a value missing on both sides, the CNN's attention, matches)."""
    for name, frame in (("committed", committed), ("rerun", rerun)):
        problem = check_rows(frame)
        if problem:
            raise ValueError(f"the {name} rows {problem}")
    keys = [k for k in IDENTITY if k in committed and k in rerun]
    metrics = [m for m in METRICS if m in committed and m in rerun]
    merged = rerun[keys + metrics].merge(committed[keys + metrics], on=keys, how="left", suffixes=("", "_committed"),
                                         indicator="matched")
    out = []
    for r in merged.itertuples(index=False):
        row = r._asdict()
        found = row["matched"] == "both"
        for m in metrics:
            new, old = round(float(row[m]), 4), float(row[f"{m}_committed"])
            both_missing = found and np.isnan(new) and np.isnan(old)
            diff = 0.0 if both_missing else new - old
            out.append(dict(**{k: row[k] for k in ("dataset", "arm", "seed") if k in row}, metric=m, committed=old,
                            rerun=new, difference=diff, within=bool(both_missing or abs(diff) <= tolerance),
                            note="" if found else "not in the committed rows"))
    return pd.DataFrame(out)


def compare_verdicts(committed: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """Per paired delta of the rerun: the committed verdict and the rerun's; `held` is None where the seed
    counts differ (a subset of seeds answers a different question)."""
    keys = [k for k in _DELTA_KEYS if k in committed and k in rerun]
    merged = rerun[keys + ["n_seeds", "verdict"]].merge(committed[keys + ["n_seeds", "verdict"]], on=keys, how="left",
                                                        suffixes=("", "_committed"))
    held = [None if pd.isna(r.n_seeds_committed) or r.n_seeds != r.n_seeds_committed else r.verdict == r.verdict_committed
            for r in merged.itertuples()]
    return merged.assign(held=held)


def _machine(frame: pd.DataFrame) -> str:
    parts = [", ".join(sorted(map(str, frame[k].dropna().unique()))) or "?" for k in ("cpu_capability", "torch_threads")
             if k in frame]
    return f"{parts[0]}, {parts[1]} threads" if len(parts) == 2 else "not recorded"


def machine_spread(committed: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and metric, how far the rerun moved things: the largest shift of an end of a paired
    interval (each arm against the baseline, both intervals computed on the rerun's seeds, so a rerun of a
    few seeds measures it too) and the largest per-run difference. A verdict whose interval end lies closer
    to 0 than that shift may read differently on the other machine."""
    by = [k for k in ("dataset", "train_fraction", "budget") if k in committed and k in rerun]
    ran = rerun[["dataset", "seed"]].drop_duplicates()
    same = committed.merge(ran, on=["dataset", "seed"])  # the committed rows of the seeds rerun
    metrics = [m for m in METRICS if m in committed and m in rerun]
    shifts = []
    for treated in sorted(set(rerun.arm) - {"baseline"}):
        for m in metrics:
            new, old = (paired_delta(frame, m, treated, "baseline", by=by) for frame in (rerun, same))
            if not len(new) or not len(old):
                continue
            pair = new.merge(old, on=by + ["comparison", "metric", "n_seeds"], suffixes=("", "_committed"))
            pair["shift"] = np.maximum((pair.ci95_low - pair.ci95_low_committed).abs(),
                                       (pair.ci95_high - pair.ci95_high_committed).abs())
            shifts.append(pair)
    if not shifts:
        raise ValueError("the rerun and the committed rows share no paired comparison (a baseline and another arm "
                         "on the same seeds): nothing to measure the spread on")
    pairs = pd.concat(shifts, ignore_index=True)
    rows = compare_rows(committed, rerun)
    rows = rows[rows.note == ""].assign(difference=lambda f: f.difference.abs())
    out = []
    for (dataset, metric), sub in pairs.groupby(["dataset", "metric"], sort=False):
        runs = rows[(rows.dataset == dataset) & (rows.metric == metric)].difference.dropna()
        out.append(dict(dataset=dataset, metric=metric, interval_shift=float(sub["shift"].max()),
                        comparisons=len(sub), seeds=int(sub["n_seeds"].max()),
                        run_difference=float(runs.max()) if len(runs) else float("nan"), runs=len(runs),
                        committed_machine=_machine(committed), rerun_machine=_machine(rerun),
                        rerun_commit=str(rerun["git_commit"].iloc[0]) if "git_commit" in rerun else ""))
    return pd.DataFrame(out)


def machine_differences(committed: pd.DataFrame, rerun: pd.DataFrame) -> list[str]:
    """'key: committed values -> rerun values' for each machine or environment record that differs."""
    out = []
    for key in MACHINE_KEYS:
        before = sorted(map(str, committed[key].dropna().unique())) if key in committed else []
        after = sorted(map(str, rerun[key].dropna().unique())) if key in rerun else []
        if before != after:
            out.append(f"{key}: {', '.join(before) or 'not recorded'} -> {', '.join(after) or 'not recorded'}")
    return out


def _rerun(target: str, scratch: Path, profile: str, seeds: str | None, datasets: str | None) -> int:
    args = ["--cwd", str(_REPO / "notebooks"), str(_REPO / "notebooks" / f"{target}.ipynb"),
            str(scratch / "notebooks" / f"{target}.ipynb"),
            "-p", "profile", profile, "-p", "results_dir", str(scratch.resolve())]
    args += ["-p", "seeds", seeds] if seeds else []
    args += ["-p", "datasets", datasets] if datasets else []
    return notebook.main(args)  # it claims the scratch folder before writing there


def _list(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not value:
        raise ValueError(f"--{name} must be a JSON list, e.g. --{name} '[0, 1]'; got {text!r}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sarlib.report.verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    trains = [name for name, t in TARGETS.items() if t.results == "runs"]
    parser.add_argument("target", choices=trains)
    parser.add_argument("--results", default="results", help="the committed results to compare with")
    parser.add_argument("--scratch", default=None, help="where the rerun goes (default: <results>/verify/<target>)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seeds", default=None, help="a JSON list: rerun only these seeds")
    parser.add_argument("--datasets", default=None, help="a JSON list: rerun only these datasets")
    parser.add_argument("--no-rerun", action="store_true", help="compare what --scratch already holds")
    parser.add_argument("--spread-out", default=None,
                        help=f"also write how far the rerun moved each dataset's intervals and runs, per metric, to "
                             f"this CSV (the committed one is results/{SPREAD_NAME}, from a rerun at another ISA level)")
    args = parser.parse_args(argv)
    results = Path(args.results)
    scratch = Path(args.scratch) if args.scratch else results / "verify" / args.target
    try:
        seeds, datasets = _list("seeds", args.seeds), _list("datasets", args.datasets)
        if args.spread_out and (Path(args.spread_out).is_dir() or not Path(args.spread_out).parent.is_dir()):
            raise ValueError(f"--spread-out must name a file in an existing folder; got {args.spread_out!r}")
        committed = _read(results / f"{args.target}.csv")
        committed_delta = _read(results / f"{args.target}_delta.csv")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.no_rerun:
        status = _rerun(args.target, scratch, args.profile, seeds, datasets)
        if status:
            return status  # the runner printed its one line
    try:
        rerun = _read(scratch / f"{args.target}.csv")
        rerun_delta = _read(scratch / f"{args.target}_delta.csv")
        rows = compare_rows(committed, rerun)
        verdicts = compare_verdicts(committed_delta, rerun_delta)
        spread = machine_spread(committed, rerun) if args.spread_out else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if spread is not None:
        write_csv(spread, args.spread_out)
        print(f"spread per dataset and metric written to {shown_path(args.spread_out)}")
    return report(rows, verdicts, machine_differences(committed, rerun), args.target)


def report(rows: pd.DataFrame, verdicts: pd.DataFrame, machines: list[str], target: str) -> int:
    """Print the comparison; 0 when every value is within TOLERANCE and every compared verdict held."""
    if machines:
        print(f"the rerun ran elsewhere than the committed rows ({'; '.join(machines)}): torch's CPU kernels depend "
              "on the ISA level and thread count, so values may move by rounding; the rows below say by how much")
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_columns", None):
        print(rows.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        print()
        print(verdicts.to_string(index=False))
    moved, missing = int((~rows["within"]).sum()), int((rows["note"] != "").sum())
    compared = verdicts["held"].notna()
    changed = int((verdicts.loc[compared, "held"] == False).sum())  # noqa: E712 - a column of True/False/None
    not_compared = int((~compared).sum())
    print(f"{target}: {len(rows) - moved} of {len(rows)} values within {TOLERANCE:g} of the committed ones"
          + (f" ({missing} have no committed row)" if missing else "")
          + f"; {int(compared.sum()) - changed} of {int(compared.sum())} verdicts held"
          + (f" ({not_compared} not compared: the rerun has other seeds than the committed rows)" if not_compared else ""))
    return 0 if moved == 0 and changed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
