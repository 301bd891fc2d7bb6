"""A target under a profile turned into its training runs (`plan`).

What a target compares and how its runs are laid out is declared by the target itself
(`sarlib.study.targets`); this module resolves the profile's choices and the caller's and hands them to
the target's planner. Run directories are shared between targets (`sarlib.study.runs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .runs import ARMS, Run
from .targets import STUDIES, TARGETS, PlanRequest

__all__ = ["Run", "plan"]


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
    values, 0 meaning the no-skip model without SAR. Seeds default to the profile's, except where a target
    names its own (the lambda sweep's `sweep_seeds`).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    spec = TARGETS[target]
    if not spec.trains:
        raise ValueError(f"{target} trains no models (it is a benchmark): run `make reproduce-{target}`")
    if profile not in STUDIES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(STUDIES)}")
    prof = STUDIES[profile]
    for name, values in (("seeds", seeds), ("fractions", fractions), ("lambdas", lambdas), ("arms", arms),
                         ("datasets", datasets)):
        twice = sorted({str(v) for v in values or () if list(values).count(v) > 1})
        if twice:  # one run counted as several would report n seeds and an interval from one
            raise ValueError(f"{name} lists {', '.join(twice)} more than once; give each value once")
    unknown = [a for a in arms or () if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    # a profile may name a target's datasets (target_datasets); else a target that multiplies its runs
    # (the sweep) covers the profile's first dataset only, and every other target all of them
    default_datasets = prof["datasets"][:1] if spec.first_dataset_only else prof["datasets"]
    datasets = list(datasets or prof.get("target_datasets", {}).get(target) or default_datasets)
    default_seeds = list(prof[spec.seeds_key])
    base = dict(overrides or {})
    if data_root:
        base["data_root"] = data_root
    if epochs or prof["epochs"]:
        base["epochs"] = epochs or prof["epochs"]
    call = dict(plan=plan, runs_root=runs_root, data_root=data_root, overrides=overrides, epochs=epochs)
    request = PlanRequest(
        target=spec, profile=profile, study=prof, datasets=datasets,
        seeds=list(seeds if seeds is not None else default_seeds), default_seeds=default_seeds,
        arms_of={d: list(arms) if arms else spec.arms_for(profile, d) for d in datasets},
        fractions=list(fractions or prof["fractions"]) if spec.uses_fractions else [1.0],
        base=base, root=Path(runs_root), given_arms=arms, given_seeds=seeds, lambdas=lambdas, init_checkpoint=init_checkpoint,
        call=call)
    return spec.planner(request)
