"""Targets of SPEC section 5 turned into training runs, run (skipping finished ones), and tabulated.

    runs = plan("table2", profile="cpu")         # list of Run(arm, dataset, seed, config)
    rows = execute(runs, target="table2")          # trains what is missing; one row per run
    write_csv(rows, "results/table2.csv")
    delta = paired_delta(rows, "top1_best", "sar+no-skip")   # paired SAR - baseline delta + 95% CI

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

from ..train.config import TrainConfig, load_preset
from ..utils.files import atomic_write, read_json

__all__ = ["ARMS", "PROFILES", "TARGETS", "COLUMNS", "Run", "Study", "plan", "prepare", "execute", "measure_jaccard",
           "with_jaccard", "write_csv", "paired_delta", "git_commit", "check_parameters", "normalize_parameters",
           "ParameterError"]

# What each arm changes on top of the profile's config.
ARMS: dict[str, dict[str, Any]] = {
    "baseline": dict(regularizer="none", no_skip=False),
    "no-skip": dict(regularizer="none", no_skip=True),
    "sar": dict(regularizer="sar", no_skip=False),
    "sar+no-skip": dict(regularizer="sar", no_skip=True),
    "tv": dict(regularizer="tv", no_skip=False),
}

_LAMBDAS = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]  # SPEC section 5, lambda-sweep
# Per profile: datasets, seeds and the defaults each target uses; notebooks may override any of them.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(datasets=["synthetic-colour-tiny"], seeds=[0, 1], epochs=None, fractions=[0.5, 1.0],
                  finetune_dataset="synthetic-tiny", finetune_epochs=1, lambdas=[0.0, 0.01, 1.0], sweep_seeds=[0], jobs=1,
                  calibration=[("synthetic-tiny", {}), ("synthetic-colour-tiny", {})]),
    # cpu: 5 paired seeds, the most that keep table2 (2 arms x 40 epochs, 2 runs at a time) within 15
    # minutes on 2 cores
    "cpu": dict(datasets=["synthetic-colour-1k"], seeds=[0, 1, 2, 3, 4], epochs=None, fractions=[0.2, 0.5, 1.0],
                finetune_dataset="synthetic-1k", finetune_epochs=10, lambdas=_LAMBDAS, sweep_seeds=[0, 1, 2], jobs=2,
                # equal budgets: 40 epochs x 1k images = 20 x 2k
                calibration=[("synthetic-1k", {}), ("synthetic-colour-1k", {}), ("synthetic-colour-2k", {"epochs": 20})]),
    # finetune_overrides: the authors fine-tune with the model in eval mode, which for a ViT without
    # dropout or BatchNorm is exactly training without drop-path
    "paper": dict(datasets=["cifar10", "cifar100", "flowers102", "pets", "imagenet100"], seeds=[0, 1, 2],
                  epochs=None, fractions=[0.1, 0.25, 0.5, 1.0], finetune_dataset="cifar100", finetune_epochs=100,
                  lambdas=_LAMBDAS, sweep_seeds=[0, 1, 2], jobs=1, finetune_overrides=dict(drop_path=0.0),
                  calibration=[("cifar100", {}), ("flowers102", {})]),
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
    # dose-response: SAR + no-skip at each lambda0 of the profile; lambda0 = 0 is the no-skip model
    # without SAR, so the curve starts at the architecture alone
    "lambda-sweep": dict(arms=["no-skip", "sar+no-skip"]),
    # the baseline on each candidate task at the same budget of image passes: the cpu profile's data is
    # chosen by the baseline alone (CALIBRATION_CRITERION)
    "calibration": dict(arms=["baseline"]),
}

# What the cpu profile's main dataset must let the baseline do (SPEC section 6): fit its training set and
# generalize above chance; among candidates that pass, the widest train/test gap (the small-data regime).
CALIBRATION_CRITERION = dict(min_train_top1=90.0, min_test_top1=60.0)

# SAR's lambda0 in the authors' commands (SPEC section 2); every profile's SAR arms use it unless a
# lambda sweep sets another.
PAPER_LAMBDA = 0.01

# SPEC section 7 columns (train_top1: final accuracy on the fixed un-augmented training slice; entropy,
# regions, jaccard: the mechanism metrics on the test set, for every arm; sar_term: the regularizer's
# mean value in the last epoch, empty when the arm has none), then where the run lives and its median
# training images/s
COLUMNS = ["target", "dataset", "model", "arm", "seed", "epochs", "train_fraction", "top1_best", "top1_final",
           "train_top1", "entropy", "regions", "jaccard", "jaccard_protocol", "sar_term", "sar_weight", "regularizer", "no_skip", "profile", "git_commit", "device", "wall_seconds",
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
    if cfg.regularizer != "none" and cfg.reg_weight != PAPER_LAMBDA:
        parts.append(f"lam{cfg.reg_weight:g}")
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
    lambdas: Sequence[float] | None = None,
    runs_root: str | os.PathLike = "results/runs",
    data_root: str | None = None,
    init_checkpoint: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[Run]:
    """The runs a target needs under a profile.

    `init_checkpoint` (finetune only) replaces pretraining; `lambdas` (lambda-sweep only) are the lambda0
    values, 0 meaning the no-skip model without SAR. Seeds default to the profile's, except that the
    lambda sweep uses its own (usually fewer) `sweep_seeds`.
    """
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
    # a sweep multiplies runs by len(lambdas): by default it covers the profile's first dataset only
    datasets = list(datasets or (prof["datasets"][:1] if target == "lambda-sweep" else prof["datasets"]))
    default_seeds = prof["sweep_seeds"] if target == "lambda-sweep" else prof["seeds"]
    seeds = list(seeds if seeds is not None else default_seeds)
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
                cfg = load_preset(profile, **{**base, **prof.get("finetune_overrides", {}),
                                              "epochs": prof["finetune_epochs"], **ARMS[arm],
                                              "dataset": ft_dataset, "seed": seed, "init_checkpoint": sources[seed],
                                              "warmup_epochs": min(3, prof["finetune_epochs"] - 1)})
                cfg = cfg.replace(output_dir=str(_run_dir(root, cfg, arm)))
                runs.append(Run(arm=arm, dataset=ft_dataset, seed=seed, config=cfg))
        return runs

    if target == "calibration":
        # the baseline alone on each candidate dataset (with its epochs), seed 0 unless seeds are given
        for dataset, extra in prof["calibration"]:
            for seed in (seeds if seeds != default_seeds else [0]):
                cfg = load_preset(profile, **{**base, **ARMS["baseline"], **extra, "dataset": dataset, "seed": seed})
                cfg = cfg.replace(output_dir=str(_run_dir(root, cfg, "baseline")))
                runs.append(Run(arm="baseline", dataset=dataset, seed=seed, config=cfg))
        return runs

    if target == "lambda-sweep":
        values = [float(v) for v in (lambdas if lambdas is not None else prof["lambdas"])]
        if any(v < 0 for v in values):
            raise ValueError(f"lambdas must be >= 0; got {values}")
        # (arm, extra config) per lambda0: 0 is the architecture without the loss
        variants = [("no-skip", {}) if v == 0 else ("sar+no-skip", {"reg_weight": v}) for v in values]
    else:
        variants = [(arm, {}) for arm in arms]
    for dataset in datasets:
        for fraction in fractions:
            for arm, extra in variants:
                for seed in seeds:
                    cfg = load_preset(profile, **{**base, **ARMS[arm], **extra, "dataset": dataset, "seed": seed,
                                                  "train_fraction": fraction})
                    cfg = cfg.replace(output_dir=str(_run_dir(root, cfg, arm)))
                    runs.append(Run(arm=arm, dataset=dataset, seed=seed, config=cfg))
    return runs


def _train_one(run: Run, nproc: int) -> dict[str, Any]:
    if nproc <= 1:
        from ..train.engine import train

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
    from ..train.engine import wait_for_run

    def announce(holder: str) -> None:
        if progress:
            print(f"{run.run_dir} is being trained by {holder}; waiting for it to finish", flush=True)

    wait_for_run(run.run_dir, on_wait=announce)


def _train_in_parallel(runs: list[Run], jobs: int, progress: bool) -> None:
    """Train `runs` as `jobs` independent processes at once, each with its share of the CPU threads.

    Small models on a few cores use threads poorly, so side-by-side runs finish sooner in total (the
    cpu profile measures this: see the README). Results are read back from each run's metrics.json.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from ..train.engine import train

    threads = max(1, (runs[0].config.threads or os.cpu_count() or 1) // jobs)
    # spawn, not fork: a forked child would inherit the parent's torch thread pools and locks
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(train, run.config.replace(threads=threads), wait=True): run for run in runs}
        for done in as_completed(futures):
            run = futures[done]
            done.result()  # re-raises a failed run's error here, in the notebook
            if progress:
                print(f"  finished {run.dataset} {run.arm} seed={run.seed}", flush=True)


def execute(runs: Iterable[Run], *, target: str, nproc: int = 1, jobs: int = 1, progress: bool = True,
            launcher: str = "local", slurm: dict[str, Any] | None = None) -> pd.DataFrame:
    """Train every run that is not finished and return one row per run (COLUMNS).

    nproc > 1 launches each run with torchrun on that many GPUs; jobs > 1 trains that many runs at once
    as separate processes (CPU threads are split between them). `launcher="slurm"` first trains the
    unfinished runs as SLURM jobs (`sarlib.study.launch.run_with_submitit`, whose keyword arguments `slurm`
    holds: slurm_partition, gpus_per_node, nodes, timeout_min, ...).
    """
    runs = list(runs)
    if launcher != "local":
        from .launch import run_with_submitit

        run_with_submitit([r for r in runs if not (r.run_dir / "metrics.json").is_file()], launcher=launcher,
                          progress=progress, **(slurm or {}))
    commit = git_commit()
    finished = {run.run_dir: (run.run_dir / "metrics.json").is_file() for run in runs}
    if progress:
        for i, run in enumerate(runs, 1):
            state = "done, reusing" if finished[run.run_dir] else "training"
            print(f"[{i}/{len(runs)}] {run.dataset} {run.arm} seed={run.seed}: {state}", flush=True)
    missing = [run for run in runs if not finished[run.run_dir]]
    if jobs > 1 and nproc <= 1 and len(missing) > 1:
        _train_in_parallel(missing, jobs, progress)
    rows = []
    for run in runs:
        wait_for_other_process(run, progress=progress)  # a second notebook or CLI run may hold it
        metrics = _train_one(run, nproc)  # returns the stored metrics of a finished run
        rows.append(_row(run, metrics, target=target, commit=commit))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(run: Run, metrics: dict[str, Any], *, target: str, commit: str) -> dict[str, Any]:
    cfg = run.config
    return dict(
        target=target, dataset=run.dataset, model=cfg.model, arm=run.arm, seed=run.seed, epochs=cfg.epochs,
        train_fraction=cfg.train_fraction, top1_best=metrics["top1_best"], top1_final=metrics["top1_final"],
        train_top1=metrics.get("train_top1_final"), entropy=metrics.get("entropy"),
        regions=metrics.get("regions"), jaccard=metrics.get("jaccard"),
        jaccard_protocol=_jaccard_protocol(metrics, cfg), sar_term=metrics.get("reg_final"),
        sar_weight=cfg.reg_weight if cfg.regularizer != "none" else 0.0,
        regularizer=cfg.regularizer, no_skip=cfg.no_skip, profile=cfg.profile, git_commit=commit,
        device=metrics["device"], wall_seconds=metrics.get("wall_seconds", metrics["train_seconds"]),
        run_dir=str(run.run_dir), images_per_s=metrics.get("images_per_s"),
    )


# Names a notebook's parameters cell may define; `prepare` reads exactly these from its namespace.
NOTEBOOK_PARAMETERS = ("profile", "results_dir", "datasets", "seeds", "epochs", "data_root", "overrides", "nproc",
                       "jobs", "arms", "fractions", "lambdas", "init_checkpoint", "launcher", "slurm_partition",
                       "gpus_per_node", "nodes", "timeout_min")
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

    @property
    def figures(self) -> Path:
        return self.results_dir / "figures"

    def execute(self, *, progress: bool = True) -> pd.DataFrame:
        """Train what is missing; the rows of this target's own runs (finetune: not the pretraining)."""
        rows = execute(self.runs, target=self.target, nproc=self.nproc, jobs=self.jobs, progress=progress,
                       launcher=self.launcher, slurm=self.slurm)
        if self.target == "finetune":
            rows = rows[[bool(r.config.init_checkpoint) for r in self.runs]].reset_index(drop=True)
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
    jobs = params.get("jobs") or PROFILES[profile]["jobs"]
    launcher = params.get("launcher") or "local"
    if launcher not in ("local", "slurm"):
        raise ParameterError(f"launcher must be 'local' or 'slurm', e.g. -p launcher slurm; got {launcher!r}")
    slurm = {k: params[k] for k in _SLURM_PARAMETERS if params.get(k) is not None}
    study = Study(target=target, profile=profile, runs=runs, results_dir=results, nproc=params.get("nproc") or 1,
                  jobs=jobs, launcher=launcher, slurm=slurm or None)
    arms = sorted({r.arm for r in runs})
    print(f"{target}, profile {profile}: {len(runs)} runs ({', '.join(arms)}; seeds "
          f"{sorted({r.seed for r in runs})}), {jobs} at a time; outputs in {results}")
    return study


def _jaccard_protocol(metrics: dict[str, Any], cfg: TrainConfig) -> str | None:
    """The protocol of a run's Jaccard (runs written before the field existed used the DINO one)."""
    if metrics.get("jaccard") is None:
        return None
    return metrics.get("jaccard_protocol") or cfg.seg_protocol


def with_jaccard(trained: pd.DataFrame, study: Study, *, seg_dataset: str | None = None,
                 protocols: Sequence[str] | None = None) -> pd.DataFrame:
    """The trained rows, one copy per Jaccard protocol, scored on `seg_dataset` (default: each run's own
    masks). Protocols default to DINO's, plus the authors' for the paper profile (SPEC section 5)."""
    protocols = list(protocols or (["dino", "authors"] if study.profile == "paper" else ["dino"]))
    data_root = study.runs[0].config.data_root if study.runs else None
    parts = []
    for protocol in protocols:
        scores = measure_jaccard(study.runs, seg_dataset=seg_dataset, data_root=data_root, protocol=protocol)
        scored = trained.drop(columns=["jaccard", "jaccard_protocol"]).merge(
            scores.rename(columns={"protocol": "jaccard_protocol"}), on="run_dir")
        parts.append(scored)
    rows = pd.concat(parts, ignore_index=True)
    return rows[[c for c in COLUMNS if c in rows] + ["seg_dataset"]]


def measure_jaccard(runs: Iterable[Run], *, seg_dataset: str | None = None, data_root: str | None = None,
                    void_as_background: bool = False, max_images: int | None = None,
                    protocol: str = "dino") -> pd.DataFrame:
    """Jaccard of each finished run's model on `seg_dataset` (default: its own masks) under `protocol`:
    "dino" (the corrected default) or "authors" (their evaluation script; SPEC section 5). One row per
    run: run_dir, seg_dataset, protocol, jaccard."""
    import torch

    from ..train.engine import build_segmentation_loader, load_trained_model
    from ..metrics.jaccard import evaluate_jaccard

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for run in runs:
        model, cfg = load_trained_model(run.run_dir, device=device)
        cfg = cfg.replace(seg_dataset=seg_dataset or cfg.seg_dataset, data_root=data_root or cfg.data_root,
                          seg_protocol=protocol)
        loader = build_segmentation_loader(cfg, void_as_background=void_as_background)
        if loader is None:
            raise ValueError(f"{cfg.dataset} has no object masks: pass seg_dataset='voc2012' (and its data_root)")
        score = evaluate_jaccard(model, loader, device=device, mass=cfg.seg_mass, max_images=max_images,
                                 protocol=protocol)
        rows.append(dict(run_dir=str(run.run_dir), seg_dataset=cfg.seg_dataset or cfg.dataset, protocol=protocol,
                         jaccard=score))
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
_UNCHECKED = {"launcher", "slurm_partition", "gpus_per_node", "nodes", "timeout_min", "arms",
              "init_checkpoint", "seg_dataset", "protocol", "protocols"}


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


def _number_list(name: str, value: Any, example: str) -> list[float] | None:
    if value is None:
        return None
    value = _parse_text(name, value, list, example)
    ok = isinstance(value, (list, tuple)) and value and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and v >= 0 for v in value)
    if not ok:
        raise ParameterError(f"{name} must be a non-empty list of numbers >= 0, e.g. -p {name} {example}; "
                             f"got {_show(value)}")
    return [float(v) for v in value]


def _positive_int(name: str, value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        extra = " or None" if optional else ""
        raise ParameterError(f"{name} must be a positive int{extra}, e.g. -p {name} 2; got {_show(value)}")
    return int(value)


def _datasets(value: Any) -> list[str] | None:
    from ..data.datasets import DATASETS

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
        else:
            known = sorted({"profile", "seeds", "datasets", "epochs", "nproc", "jobs", "results_dir", "data_root",
                            "overrides", "fractions", "lambdas"} | _UNCHECKED)
            raise ParameterError(f"unknown parameter {name!r} for {target}; known: {', '.join(known)}")
    return out


def check_parameters(target: str, **params: Any) -> None:
    """Validate a notebook's parameters; raise ParameterError (one line in the notebook) for a bad one.

    Strings holding a list or dict (papermill's `-p seeds "[0, 1]"`) are accepted; use
    `normalize_parameters` to get them parsed.
    """
    normalize_parameters(target, **params)
