"""(A precondition) the baseline learns the task: the cpu profile's data and budget are chosen by the
baseline alone (CALIBRATION_CRITERION)."""

from __future__ import annotations

from ..runs import Run
from .base import PlanRequest, Target


def _plan(req: PlanRequest) -> list[Run]:
    # the baseline alone on each candidate dataset (with its epochs), seed 0 unless seeds are given
    seeds = req.seeds if req.seeds != req.default_seeds else [0]
    return [req.run("baseline", **{**extra, "dataset": dataset, "seed": seed})
            for dataset, extra in req.study["calibration"] for seed in seeds]


TARGET = Target(
    name="calibration", order=0,
    claim="(precondition) the baseline learns the task",
    compares="baseline only, on each candidate task and budget; where listed, twice the epochs checks convergence",
    outputs="`calibration.csv`, `figures/calibration.png`",
    arms=["baseline"], planner=_plan, results="calibration",
)
