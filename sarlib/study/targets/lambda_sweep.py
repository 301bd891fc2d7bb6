"""The effect follows the dose: SAR + no-skip at each lambda0 of the profile."""

from __future__ import annotations

from ..runs import Run
from .base import PlanRequest, Target


def _plan(req: PlanRequest) -> list[Run]:
    values = [float(v) for v in (req.lambdas if req.lambdas is not None else req.study["lambdas"])]
    if any(v < 0 for v in values):
        raise ValueError(f"lambdas must be >= 0; got {values}")
    # (arm, extra config) per lambda0: 0 is the no-skip architecture without the loss, so the curve starts
    # at the architecture alone
    variants = [("no-skip", {}) if v == 0 else ("sar+no-skip", {"lambda0": v}) for v in values]
    return [req.run(arm, **{**extra, "dataset": dataset, "seed": seed})
            for dataset in req.datasets for arm, extra in variants for seed in req.seeds]


TARGET = Target(
    name="lambda-sweep", order=7,
    claim="the effect follows the dose",
    compares="SAR + no-skip at lambda0 in {0, 0.01, 0.03, 0.1, 0.3, 1}, 3 seeds",
    outputs="`lambda-sweep*.csv`, `figures/lambda-sweep.png`",
    arms=["no-skip", "sar+no-skip"], planner=_plan, title="Lambda sweep",
    seeds_key="sweep_seeds", first_dataset_only=True,
)
