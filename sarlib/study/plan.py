"""A target under a profile turned into its training runs (`plan`).

Run directories depend only on (profile, dataset, model, arm, fraction, seed, epochs, init), never on
the target, so targets share runs: the segmentation and attention-map targets reuse table2's models,
and a rerun (or a killed notebook run again) trains only what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ..train import TrainConfig, load_profile
from .targets import ARMS, PAPER_LAMBDA, STUDIES, TARGETS, target_arms

__all__ = ["Run", "plan"]


@dataclass(frozen=True)
class Run:
    arm: str
    dataset: str
    seed: int
    config: TrainConfig
    pretraining: bool = False  # a finetune target's pretraining run, not one of its compared arms

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)


def _run_dir(runs_root: Path, cfg: TrainConfig, arm: str) -> Path:
    parts = [cfg.profile, cfg.dataset, cfg.model, arm, f"e{cfg.epochs}"]
    if cfg.regularizer != "none" and cfg.lambda0 != PAPER_LAMBDA:
        parts.append(f"lam{cfg.lambda0:g}")
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
    if profile not in STUDIES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(STUDIES)}")
    prof = STUDIES[profile]
    unknown = [a for a in arms or () if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    # a profile may name a target's datasets (target_datasets); else a sweep, which multiplies runs by
    # len(lambdas), covers the profile's first dataset only, and every other target all of them
    default_datasets = prof["datasets"][:1] if target == "lambda-sweep" else prof["datasets"]
    datasets = list(datasets or prof.get("target_datasets", {}).get(target) or default_datasets)
    arms_of = {d: list(arms) if arms else target_arms(target, profile, d) for d in datasets}
    default_seeds = prof["sweep_seeds"] if target == "lambda-sweep" else prof["seeds"]
    seeds = list(seeds if seeds is not None else default_seeds)
    fractions = list(fractions or prof["fractions"]) if target == "sample-efficiency" else [1.0]
    root = Path(runs_root)
    base = dict(overrides or {})
    if data_root:
        base["data_root"] = data_root
    if epochs or prof["epochs"]:
        base["epochs"] = epochs or prof["epochs"]

    if target == "finetune":
        return _finetune_runs(profile, datasets, seeds, list(arms or target_arms(target, profile, "*")), base, root, runs_root=runs_root, data_root=data_root,
                              init_checkpoint=init_checkpoint, overrides=overrides, epochs=epochs)
    if target == "calibration":
        # the baseline alone on each candidate dataset (with its epochs), seed 0 unless seeds are given
        return [_run(profile, root, "baseline", base, {**extra, "dataset": dataset, "seed": seed})
                for dataset, extra in prof["calibration"] for seed in (seeds if seeds != default_seeds else [0])]
    if target == "lambda-sweep":
        values = [float(v) for v in (lambdas if lambdas is not None else prof["lambdas"])]
        if any(v < 0 for v in values):
            raise ValueError(f"lambdas must be >= 0; got {values}")
        # (arm, extra config) per lambda0: 0 is the architecture without the loss
        variants = [("no-skip", {}) if v == 0 else ("sar+no-skip", {"lambda0": v}) for v in values]
        return [_run(profile, root, arm, base, {**extra, "dataset": dataset, "seed": seed})
                for dataset in datasets for arm, extra in variants for seed in seeds]
    return [_run(profile, root, arm, base, {"dataset": dataset, "seed": seed, "train_fraction": fraction})
            for dataset in datasets for fraction in fractions for arm in arms_of[dataset] for seed in seeds]


def _run(profile: str, root: Path, arm: str, before: dict[str, Any], after: dict[str, Any]) -> Run:
    """One run of `arm` under `profile`: `before` < the arm's fields < `after`, in its own run directory."""
    cfg = load_profile(profile, **{**before, **ARMS[arm], **after})
    cfg = cfg.replace(output_dir=str(_run_dir(root, cfg, arm)))
    return Run(arm=arm, dataset=cfg.dataset, seed=cfg.seed, config=cfg)


def _finetune_runs(profile: str, datasets: list[str], seeds: list[int], arms: list[str], base: dict[str, Any],
                   root: Path, *, init_checkpoint: str | None, **pretraining: Any) -> list[Run]:
    """Each seed's pretraining (table2's baseline on the profile's `finetune_pretrain` dataset, default its
    first, unless `init_checkpoint` is given), then its fine-tuning runs."""
    prof = STUDIES[profile]
    ft_dataset = (datasets[0] if datasets and datasets != prof["datasets"] else prof["finetune_dataset"])
    pretrain = [prof.get("finetune_pretrain", prof["datasets"][0])]
    pretraining["epochs"] = pretraining.get("epochs") or prof.get("finetune_pretrain_epochs")
    pre = [] if init_checkpoint else [
        replace(r, pretraining=True)
        for r in plan("table2", profile=profile, datasets=pretrain, seeds=seeds, arms=["baseline"], **pretraining)]
    sources = {r.seed: str(r.run_dir / "checkpoint.pth") for r in pre} or {s: init_checkpoint for s in seeds}
    before = {**base, **prof.get("finetune_overrides", {}), "epochs": prof["finetune_epochs"]}
    # "scratch": the baseline from random weights on the same data and budget, the yardstick of pretraining
    return pre + [_run(profile, root, arm, before, {"dataset": ft_dataset, "seed": seed,
                                                    "init_checkpoint": None if arm == "scratch" else sources[seed],
                                                    "warmup_epochs": min(3, prof["finetune_epochs"] - 1)})
                  for seed in seeds for arm in arms]
