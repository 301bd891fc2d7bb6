"""Targets of SPEC section 5 turned into training runs, run (skipping finished ones), and tabulated.

    runs = plan("table2", profile="cpu")         # list of Run(arm, dataset, seed, config)
    rows = execute(runs, target="table2")          # trains what is missing; one row per run
    write_csv(rows, "results/table2.csv")
    summary = summarize(rows)                      # mean +- std per arm, paired SAR - baseline delta + 95% CI

Run directories depend only on (profile, dataset, model, arm, fraction, seed, epochs, init), never on
the target, so targets share runs: the segmentation and attention-map targets reuse table2's models,
and a rerun (or a killed notebook run again) trains only what is missing.
"""

from __future__ import annotations

import json
import numbers
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .config import TrainConfig, load_preset
from .files import atomic_write, read_json

__all__ = ["ARMS", "PROFILES", "TARGETS", "COLUMNS", "Run", "plan", "execute", "measure_jaccard", "write_csv", "summarize",
           "paired_delta", "git_commit", "check_parameters", "normalize_parameters", "ParameterError"]

# What each arm changes on top of the profile's config.
ARMS: dict[str, dict[str, Any]] = {
    "baseline": dict(regularizer="none", no_skip=False),
    "no-skip": dict(regularizer="none", no_skip=True),
    "sar": dict(regularizer="sar", no_skip=False),
    "sar+no-skip": dict(regularizer="sar", no_skip=True),
    "tv": dict(regularizer="tv", no_skip=False),
}

# Per profile: datasets, seeds and the defaults each target uses; notebooks may override any of them.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(datasets=["synthetic-tiny"], seeds=[0, 1], epochs=None, fractions=[0.5, 1.0],
                  finetune_dataset="synthetic-tiny", finetune_epochs=1),
    "cpu": dict(datasets=["synthetic-5k"], seeds=[0, 1, 2], epochs=None, fractions=[0.2, 0.5, 1.0],
                finetune_dataset="synthetic-1k", finetune_epochs=10),
    "paper": dict(datasets=["cifar10", "cifar100", "flowers102", "pets", "imagenet100"], seeds=[0, 1, 2],
                  epochs=None, fractions=[0.1, 0.25, 0.5, 1.0], finetune_dataset="cifar100", finetune_epochs=100),
}

# target -> arms compared. table2 adds plain SAR only where it is affordable (the authors' models use
# SAR with the no-skip block).
TARGETS: dict[str, dict[str, Any]] = {
    "table2": dict(arms={"smoke": ["baseline", "sar+no-skip"], "cpu": ["baseline", "sar+no-skip"],
                         "paper": ["baseline", "sar", "sar+no-skip"]}),
    "ablation": dict(arms=["baseline", "no-skip", "sar", "sar+no-skip", "tv"]),
    "sample-efficiency": dict(arms=["baseline", "sar+no-skip"]),
    # the pretrained baseline has the standard last block, so fine-tuning compares with/without the loss
    "finetune": dict(arms=["baseline", "sar"]),
    "segmentation": dict(arms=["baseline", "sar+no-skip"]),
    "attention-maps": dict(arms=["baseline", "sar+no-skip"]),
}

# SPEC section 7 columns, then where the run lives and its median training images/s
COLUMNS = ["target", "dataset", "model", "arm", "seed", "epochs", "train_fraction", "top1_best", "top1_final",
           "jaccard", "sar_weight", "regularizer", "no_skip", "profile", "git_commit", "device", "wall_seconds",
           "run_dir", "images_per_s"]


@dataclass(frozen=True)
class Run:
    arm: str
    dataset: str
    seed: int
    config: TrainConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)


def _run_dir(runs_root: Path, cfg: TrainConfig, arm: str) -> Path:
    parts = [cfg.profile, cfg.dataset, cfg.model, arm, f"e{cfg.epochs}"]
    if cfg.train_fraction < 1:
        parts.append(f"frac{cfg.train_fraction:g}")
    if cfg.init_checkpoint:
        parts.append("ft-" + Path(cfg.init_checkpoint).parent.name)
    return runs_root.joinpath(*parts, f"seed{cfg.seed}")


def plan(
    target: str,
    *,
    profile: str = "cpu",
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    arms: Sequence[str] | None = None,
    fractions: Sequence[float] | None = None,
    runs_root: str | os.PathLike = "results/runs",
    data_root: str | None = None,
    init_checkpoint: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[Run]:
    """The runs a target needs under a profile. `init_checkpoint` (finetune only) replaces pretraining."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    arm_spec = TARGETS[target]["arms"]
    arms = list(arms or (arm_spec[profile] if isinstance(arm_spec, dict) else arm_spec))
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    datasets = list(datasets or prof["datasets"])
    seeds = list(seeds if seeds is not None else prof["seeds"])
    fractions = list(fractions or prof["fractions"]) if target == "sample-efficiency" else [1.0]
    root = Path(runs_root)
    base = dict(overrides or {})
    if data_root:
        base["data_root"] = data_root
    if epochs or prof["epochs"]:
        base["epochs"] = epochs or prof["epochs"]

    runs: list[Run] = []
    if target == "finetune":
        # start from each seed's pretrained baseline (table2's) unless a checkpoint is given
        ft_dataset = (datasets[0] if datasets and datasets != prof["datasets"] else prof["finetune_dataset"])
        pre = [] if init_checkpoint else plan("table2", profile=profile, seeds=seeds, arms=["baseline"],
                                              runs_root=runs_root, data_root=data_root, overrides=overrides,
                                              epochs=epochs)
        sources = {r.seed: str(r.run_dir / "checkpoint.pth") for r in pre} or {s: init_checkpoint for s in seeds}
        runs.extend(pre)
        for seed in seeds:
            for arm in arms:
                cfg = load_preset(profile, **{**base, "epochs": prof["finetune_epochs"], **ARMS[arm],
                                              "dataset": ft_dataset, "seed": seed, "init_checkpoint": sources[seed],
                                              "warmup_epochs": min(3, prof["finetune_epochs"] - 1)})
                cfg = cfg.replace(output_dir=str(_run_dir(root, cfg, arm)))
                runs.append(Run(arm=arm, dataset=ft_dataset, seed=seed, config=cfg))
        return runs

    for dataset in datasets:
        for fraction in fractions:
            for arm in arms:
                for seed in seeds:
                    cfg = load_preset(profile, **{**base, **ARMS[arm], "dataset": dataset, "seed": seed,
                                                  "train_fraction": fraction})
                    cfg = cfg.replace(output_dir=str(_run_dir(root, cfg, arm)))
                    runs.append(Run(arm=arm, dataset=dataset, seed=seed, config=cfg))
    return runs


def _train_one(run: Run, nproc: int) -> dict[str, Any]:
    if nproc <= 1:
        from .engine import train

        return train(run.config, wait=True)
    # multi-GPU: one torchrun per run; the config travels as flags through the CLI
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "sarlib.train", "--preset", run.config.profile]
    for key, value in run.config.to_dict().items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    subprocess.run(args, check=True)
    return read_json(run.run_dir / "metrics.json", fix="delete it and run the target again (the run is not retrained)")


def wait_for_other_process(run: Run, *, progress: bool = True) -> None:
    """Block while another process (a second notebook, a CLI run) trains `run`; its result is then reused."""
    from .engine import wait_for_run

    def announce(holder: str) -> None:
        if progress:
            print(f"{run.run_dir} is being trained by {holder}; waiting for it to finish", flush=True)

    wait_for_run(run.run_dir, on_wait=announce)


def execute(runs: Iterable[Run], *, target: str, nproc: int = 1, progress: bool = True) -> pd.DataFrame:
    """Train every run that is not finished, in order, and return one row per run (COLUMNS)."""
    runs = list(runs)
    commit = git_commit()
    rows = []
    for i, run in enumerate(runs, 1):
        wait_for_other_process(run, progress=progress)
        finished = (run.run_dir / "metrics.json").is_file()
        if progress:
            state = "done, reusing" if finished else "training"
            print(f"[{i}/{len(runs)}] {run.dataset} {run.arm} seed={run.seed}: {state}", flush=True)
        start = time.time()
        metrics = _train_one(run, nproc)
        cfg = run.config
        rows.append(dict(
            target=target, dataset=run.dataset, model=cfg.model, arm=run.arm, seed=run.seed, epochs=cfg.epochs,
            train_fraction=cfg.train_fraction, top1_best=metrics["top1_best"], top1_final=metrics["top1_final"],
            jaccard=metrics.get("jaccard"), sar_weight=cfg.reg_weight if cfg.regularizer != "none" else 0.0,
            regularizer=cfg.regularizer, no_skip=cfg.no_skip, profile=cfg.profile, git_commit=commit,
            device=metrics["device"], wall_seconds=metrics["train_seconds"] if finished else time.time() - start,
            run_dir=str(run.run_dir), images_per_s=metrics.get("images_per_s"),
        ))
    return pd.DataFrame(rows, columns=COLUMNS)


def measure_jaccard(runs: Iterable[Run], *, seg_dataset: str | None = None, data_root: str | None = None,
                    void_as_background: bool = False, max_images: int | None = None) -> pd.DataFrame:
    """Jaccard (DINO protocol) of each finished run's model on `seg_dataset` (default: its own masks)."""
    import torch

    from .engine import build_segmentation_loader, load_trained_model
    from .segmentation import evaluate_jaccard

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for run in runs:
        model, cfg = load_trained_model(run.run_dir, device=device)
        cfg = cfg.replace(seg_dataset=seg_dataset or cfg.seg_dataset, data_root=data_root or cfg.data_root)
        loader = build_segmentation_loader(cfg, void_as_background=void_as_background)
        if loader is None:
            raise ValueError(f"{cfg.dataset} has no object masks: pass seg_dataset='voc2012' (and its data_root)")
        score = evaluate_jaccard(model, loader, device=device, mass=cfg.seg_mass, max_images=max_images)
        rows.append(dict(run_dir=str(run.run_dir), seg_dataset=cfg.seg_dataset or cfg.dataset, jaccard=score))
    return pd.DataFrame(rows)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a results table atomically (a killed notebook leaves the previous file intact)."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.4f"))


def paired_delta(frame: pd.DataFrame, metric: str, treated: str, control: str = "baseline",
                 by: Sequence[str] = ("dataset",)) -> pd.DataFrame:
    """Mean of (treated - control) over seeds run with both arms, with a 95% t confidence interval."""
    from scipy import stats

    out = []
    keys = list(by)
    for group, sub in frame.groupby(keys, sort=False):
        wide = sub.pivot_table(index="seed", columns="arm", values=metric)
        if treated not in wide or control not in wide:
            continue
        diff = (wide[treated] - wide[control]).dropna()
        n = len(diff)
        mean = float(diff.mean()) if n else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        group = group if isinstance(group, tuple) else (group,)
        out.append({**dict(zip(keys, group)), "comparison": f"{treated} - {control}", "metric": metric,
                    "n_seeds": n, "delta": mean, "ci95_low": mean - half, "ci95_high": mean + half})
    return pd.DataFrame(out)


def summarize(frame: pd.DataFrame, metrics: Sequence[str] = ("top1_best", "top1_final"),
              by: Sequence[str] = ("dataset", "arm")) -> pd.DataFrame:
    """mean, std and count over seeds of each metric, one row per group."""
    present = [m for m in metrics if m in frame and frame[m].notna().any()]
    agg = frame.groupby(list(by), sort=False)[present].agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{stat}" for m, stat in agg.columns]
    return agg.reset_index()


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



# ----------------------------------------------------------------------------- notebook parameters


class ParameterError(ValueError):
    """A notebook parameter is invalid. In a notebook it shows as one line instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting the traceback (papermill shows the same lines)
        return [f"parameter error: {self}"]


# notebook parameters that are not checked here (launchers, target-specific knobs checked where used)
_UNCHECKED = {"launcher", "slurm_partition", "gpus_per_node", "nodes", "timeout_min", "fractions", "arms",
              "lambdas", "init_checkpoint", "seg_dataset", "protocol"}


def _show(value: Any) -> str:
    kind = type(value).__name__
    return f"{value!r} ({'an' if kind[0] in 'aeiou' else 'a'} {kind})"


def _parse_text(name: str, value: Any, kind: type, example: str) -> Any:
    """`value`, or the list/dict a papermill string parameter holds (`-p seeds "[0, 1]"` arrives as text)."""
    if not isinstance(value, str):
        return value
    import yaml

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
    return [int(v) for v in value]


def _positive_int(name: str, value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        extra = " or None" if optional else ""
        raise ParameterError(f"{name} must be a positive int{extra}, e.g. -p {name} 2; got {_show(value)}")
    return int(value)


def _datasets(value: Any) -> list[str] | None:
    from .data import DATASETS

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
        load_preset(profile, **value)  # unknown fields and bad values, checked as a run would
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
    if profile not in PROFILES:
        raise ParameterError(f"profile must be one of {', '.join(PROFILES)}, e.g. -p profile smoke; got {_show(profile)}")
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
            out[name] = _positive_int(name, value, optional=False)
        elif name == "results_dir":
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ParameterError(f"results_dir must be a folder path, e.g. -p results_dir ../results; got {_show(value)}")
        elif name == "data_root":
            if value is not None and (not isinstance(value, (str, os.PathLike)) or not Path(value).is_dir()):
                raise ParameterError(f"data_root must be an existing folder holding the datasets, e.g. -p data_root "
                                     f"/data (or None for the embedded synthetic sets); got {_show(value)}")
        elif name == "overrides":
            out[name] = _overrides(value, profile)
        else:
            known = sorted({"profile", "seeds", "datasets", "epochs", "nproc", "jobs", "results_dir", "data_root",
                            "overrides"} | _UNCHECKED)
            raise ParameterError(f"unknown parameter {name!r} for {target}; known: {', '.join(known)}")
    return out


def check_parameters(target: str, **params: Any) -> None:
    """Validate a notebook's parameters; raise ParameterError (one line in the notebook) for a bad one.

    Strings holding a list or dict (papermill's `-p seeds "[0, 1]"`) are accepted; use
    `normalize_parameters` to get them parsed.
    """
    normalize_parameters(target, **params)
