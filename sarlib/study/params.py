"""A notebook's parameters, checked in one line each, and the Study they describe (`prepare`)."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import yaml

from ..data import DATASETS
from ..train import load_profile
from ..utils.files import ResultsFolderError, claim_results_dir, shown_path
from .execute import execute
from .plan import plan
from .rows import read_rows
from .runs import Run
from .targets import STUDIES, TARGETS

__all__ = ["NOTEBOOK_PARAMETERS", "ParameterError", "Study", "check_parameters", "normalize_parameters", "prepare"]


# Names a notebook's parameters cell may define; `prepare` reads exactly these from its namespace.
NOTEBOOK_PARAMETERS = ("profile", "results_dir", "datasets", "seeds", "epochs", "data_root", "overrides", "nproc",
                       "jobs", "arms", "fractions", "lambdas", "init_checkpoint", "launcher", "slurm_partition",
                       "gpus_per_node", "nodes", "timeout_min", "from_rows")


_SLURM_PARAMETERS = ("slurm_partition", "gpus_per_node", "nodes", "timeout_min")


@dataclass
class Study:
    """One notebook's work: a target's runs under a profile and where its outputs go."""

    target: str
    profile: str
    runs: list[Run]
    results_dir: Path
    nproc: int = 1
    jobs: int = 1
    launcher: str = "local"
    slurm: dict[str, Any] | None = None
    from_rows: bool = False  # read the rows <results_dir>/<target>.csv holds instead of training

    @property
    def figures(self) -> Path:
        return self.results_dir / "figures"

    def execute(self, *, progress: bool = True) -> pd.DataFrame:
        """Train what is missing; the rows of this target's own runs (not the runs it builds on, such as
        finetune's pretraining). With from_rows, the committed rows of the planned runs instead."""
        if self.from_rows:
            return self.committed_rows()
        rows = execute(self.runs, target=self.target, nproc=self.nproc, jobs=self.jobs, progress=progress,
                       launcher=self.launcher, slurm=self.slurm)
        return rows[[not r.pretraining for r in self.runs]].reset_index(drop=True)

    def committed_rows(self) -> pd.DataFrame:
        """The rows `<results_dir>/<target>.csv` holds for the planned runs, read back and checked, in the
        plan's order. A row is matched to its run by the run's folder under `runs/` and its budget, so a
        results folder that was copied or moved still redraws; its run_dir is the planned run's."""
        path = self.results_dir / f"{self.target}.csv"
        try:
            frame = read_rows(path)
        except ValueError as err:
            raise ParameterError(f"from_rows: {err}") from None

        def under_runs(run_dir: str) -> str:  # the run's folder below the last `runs` component
            parts = PurePosixPath(Path(run_dir).as_posix()).parts
            return "/".join(parts[len(parts) - parts[::-1].index("runs"):]) if "runs" in parts else run_dir

        budgets = frame["budget"] if "budget" in frame else ["equal-epochs"] * len(frame)
        where = {(under_runs(d), b): i for i, (d, b) in enumerate(zip(frame["run_dir"].astype(str), budgets))}
        own = [r for r in self.runs if not r.pretraining]
        keys = [(under_runs(str(r.run_dir)), r.budget) for r in own]
        missing = [r for r, k in zip(own, keys) if k not in where]
        if missing:
            raise ParameterError(f"from_rows: {shown_path(path)} has no row for {len(missing)} of the {len(own)} planned runs "
                                 f"(first: {missing[0].run_dir}, {missing[0].budget}); run without from_rows to train "
                                 "them, or plan the runs the rows were made with")
        rows = frame.iloc[[where[k] for k in keys]].reset_index(drop=True)
        rows["run_dir"] = [str(r.run_dir) for r in own]
        made = ", ".join(f"{n} on {m}" for m, n in rows.get("cpu_model", pd.Series(dtype=str)).fillna("-")
                         .value_counts().items())
        print(f"{len(rows)} rows read from {shown_path(path)} (commits {', '.join(sorted(rows['git_commit'].unique()))}; "
              f"{made or 'machine not recorded'}): nothing trained, the tables and figures below are redrawn from them")
        return rows


def prepare(target: str, namespace: dict[str, Any]) -> Study:
    """Check a notebook's parameters (one clear line for a bad one) and plan its runs.

    `namespace` is the notebook's `globals()`: the NOTEBOOK_PARAMETERS it defines are used, anything
    else is ignored, so the parameters cell stays the only place they are written.
    """
    params = normalize_parameters(target, **{k: namespace[k] for k in NOTEBOOK_PARAMETERS if k in namespace})
    profile = params.get("profile", "cpu")
    results = Path(params.get("results_dir") or "results")
    runs = plan(target, profile=profile, datasets=params.get("datasets"), seeds=params.get("seeds"),
                epochs=params.get("epochs"), arms=params.get("arms"), fractions=params.get("fractions"),
                lambdas=params.get("lambdas"), runs_root=results / "runs", data_root=params.get("data_root"),
                init_checkpoint=params.get("init_checkpoint"), overrides=params.get("overrides"))
    jobs = params.get("jobs") or STUDIES[profile]["jobs"]
    launcher = params.get("launcher") or "local"
    if launcher not in ("local", "slurm"):
        raise ParameterError(f"launcher must be 'local' or 'slurm', e.g. -p launcher slurm; got {launcher!r}")
    slurm = {k: params[k] for k in _SLURM_PARAMETERS if params.get(k) is not None}
    from_rows = params.get("from_rows") or False
    if from_rows and not TARGETS[target].redraws_from_rows:
        raise ParameterError(f"from_rows: {target}'s notebook also reads its run folders (weights, attention) or rows "
                             "kept in another table, so it cannot be redrawn from its rows alone; run it without "
                             "from_rows (finished runs are reused)")
    # last, once every parameter was checked (a notebook opened in JupyterLab comes here unclaimed)
    try:
        claim_results_dir(results)
    except ResultsFolderError as err:
        raise ParameterError(str(err)) from None
    study = Study(target=target, profile=profile, runs=runs, results_dir=results, nproc=params.get("nproc") or 1,
                  jobs=jobs, launcher=launcher, slurm=slurm or None, from_rows=from_rows)
    arms = sorted({r.arm for r in runs})
    how = "redrawn from their committed rows" if from_rows else f"{jobs} at a time"
    print(f"{target}, profile {profile}: {len(runs)} runs ({', '.join(arms)}; seeds "
          f"{sorted({r.seed for r in runs})}), {how}; outputs in {shown_path(results)}")
    return study


class ParameterError(ValueError):
    """A notebook parameter is invalid. In a notebook it shows as one line instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting the traceback (papermill shows the same lines)
        return [f"parameter error: {self}"]


# notebook parameters that are not checked here (launchers, target-specific knobs checked where used)
_UNCHECKED = {"launcher", "slurm_partition", "gpus_per_node", "nodes", "timeout_min", "arms",
              "init_checkpoint", "seg_dataset", "protocol", "protocols"}


def _show(value: Any) -> str:
    kind = type(value).__name__
    return f"{value!r} ({'an' if kind[0] in 'aeiou' else 'a'} {kind})"


def _parse_text(name: str, value: Any, kind: type, example: str) -> Any:
    """`value`, or the list/dict a papermill string parameter holds (`-p seeds "[0, 1]"` arrives as text)."""
    if not isinstance(value, str):
        return value
    try:
        parsed = yaml.safe_load(value)  # JSON is YAML, so both spellings work
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, kind):
        raise ParameterError(f"{name} must be a {kind.__name__}, e.g. -p {name} {example}; got {_show(value)}, "
                             f"which does not parse as a JSON/YAML {kind.__name__}")
    return parsed


def _int_list(name: str, value: Any, example: str) -> list[int] | None:
    if value is None:
        return None
    value = _parse_text(name, value, list, example)
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                  for v in value)
    if not ok or not value:
        raise ParameterError(f"{name} must be a non-empty list of ints, e.g. -p {name} {example}; got {_show(value)}")
    return _distinct(name, [int(v) for v in value])


def _distinct(name: str, values: list[Any]) -> list[Any]:
    """A list parameter naming a value twice would count one run as several (n=3 from one seed)."""
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ParameterError(f"{name} lists {', '.join(map(str, twice))} more than once; give each value once")
    return values


def _number_list(name: str, value: Any, example: str) -> list[float] | None:
    if value is None:
        return None
    value = _parse_text(name, value, list, example)
    ok = isinstance(value, (list, tuple)) and value and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and v >= 0 for v in value)
    if not ok:
        raise ParameterError(f"{name} must be a non-empty list of numbers >= 0, e.g. -p {name} {example}; "
                             f"got {_show(value)}")
    return _distinct(name, [float(v) for v in value])


def _positive_int(name: str, value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        extra = " or None" if optional else ""
        raise ParameterError(f"{name} must be a positive int{extra}, e.g. -p {name} 2; got {_show(value)}")
    return int(value)


def _datasets(value: Any) -> list[str] | None:
    if value is None:
        return None
    example = "'[\"cifar10\", \"pets\"]'"
    value = _parse_text("datasets", value, list, example)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"datasets must be a non-empty list of dataset names, e.g. -p datasets {example}; "
                             f"got {_show(value)}")
    unknown = [v for v in value if v not in DATASETS]
    if unknown:
        raise ParameterError(f"unknown datasets {unknown}; choose from {', '.join(DATASETS)}")
    return list(value)


def _overrides(value: Any, profile: str) -> dict[str, Any] | None:
    if value is None:
        return None
    value = _parse_text("overrides", value, dict, "'{\"epochs\": 2}'")
    if not isinstance(value, dict):
        raise ParameterError(f"overrides must be a dict of TrainConfig fields, e.g. -p overrides '{{\"epochs\": 2}}'; "
                             f"got {_show(value)}")
    try:
        load_profile(profile, **value)  # unknown fields and bad values, checked as a run would
    except ValueError as err:
        raise ParameterError(f"overrides: {err}") from None
    return dict(value)


def normalize_parameters(target: str, **params: Any) -> dict[str, Any]:
    """Checked notebook parameters, with list/dict parameters given as text (papermill -p) parsed.

    Raises ParameterError (shown as one line in notebooks) for the first invalid one. Parameters in
    _UNCHECKED pass through as they are; any other unknown name is an error.
    """
    if not isinstance(target, str) or not target:
        raise ParameterError(f"target must be a target name such as 'table2'; got {_show(target)}")
    out = dict(params)
    profile = params.get("profile", "cpu")
    if profile not in STUDIES:
        raise ParameterError(f"profile must be one of {', '.join(STUDIES)}, e.g. -p profile smoke; got {_show(profile)}")
    for name, value in params.items():
        if name in _UNCHECKED or name == "profile":
            continue
        if name == "seeds":
            out[name] = _int_list(name, value, '"[0, 1, 2]"')
        elif name == "datasets":
            out[name] = _datasets(value)
        elif name == "epochs":
            out[name] = _positive_int(name, value, optional=True)
        elif name in ("nproc", "jobs"):
            out[name] = _positive_int(name, value, optional=name == "jobs")  # jobs None: the profile's
        elif name == "results_dir":
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ParameterError(f"results_dir must be a folder path, e.g. -p results_dir ../results; got {_show(value)}")
        elif name == "data_root":
            if value is not None and (not isinstance(value, (str, os.PathLike)) or not Path(value).is_dir()):
                raise ParameterError(f"data_root must be an existing folder holding the datasets, e.g. -p data_root "
                                     f"/data (or None for the embedded synthetic sets); got {_show(value)}")
        elif name == "overrides":
            out[name] = _overrides(value, profile)
        elif name in ("fractions", "lambdas"):
            out[name] = _number_list(name, value, '"[0.01, 0.1]"')
        elif name == "from_rows":
            if not isinstance(value, bool):
                raise ParameterError(f"from_rows must be True or False, e.g. -p from_rows True (make: FROM_ROWS=True); "
                                     f"got {_show(value)}")
        else:
            known = sorted({"profile", "seeds", "datasets", "epochs", "nproc", "jobs", "results_dir", "data_root",
                            "overrides", "fractions", "lambdas", "from_rows"} | _UNCHECKED)
            raise ParameterError(f"unknown parameter {name!r} for {target}; known: {', '.join(known)}")
    return out


def check_parameters(target: str, **params: Any) -> None:
    """Validate a notebook's parameters; raise ParameterError (one line in the notebook) for a bad one.

    Strings holding a list or dict (papermill's `-p seeds "[0, 1]"`) are accepted; use
    `normalize_parameters` to get them parsed.
    """
    normalize_parameters(target, **params)
