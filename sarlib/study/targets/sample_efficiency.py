"""The gain grows as data shrinks: baseline and SAR at several training-set fractions, under two budgets.

A slice trained for the full set's epochs gets fewer optimizer steps, so a gain there may only be faster
convergence. Each fraction is therefore trained twice where the profile lists both budgets (STUDY
`budgets`): "equal-epochs" (the profile's epochs) and "equal-steps" (epochs, learning-rate warm-up, lambda
warm-up and the evaluation interval scaled by 1/fraction: the slice sees as many images as the full set,
and as many optimizer steps up to each epoch's last short batch). The full-set run is the reference of
both. Where a cell is cheap (small fractions at equal epochs) the profile may give it more seeds (STUDY
`sample_seeds`), so that every fraction's interval is about as narrow.
"""

from __future__ import annotations

import dataclasses

from ...train import TrainConfig
from ..runs import Run
from .base import HEADLINE, PlanRequest, Target

BUDGETS = ("equal-epochs", "equal-steps")

# TrainConfig fields counted in epochs: an equal-steps run scales them all, so its schedules end where
# the full set's do
_EPOCH_FIELDS = ("epochs", "warmup_epochs", "lambda_warmup", "eval_every")


def steps_scaled(cfg: TrainConfig, fraction: float) -> dict[str, int]:
    """The epoch-counted fields of `cfg` for a `fraction` slice to see as many images as the full set."""
    return {name: max(1 if name in ("epochs", "eval_every") else 0, round(getattr(cfg, name) / fraction))
            for name in _EPOCH_FIELDS}


def _seeds(req: PlanRequest, budget: str, fraction: float) -> list[int]:
    """The caller's seeds, else the profile's count for this (budget, fraction), else its seeds."""
    if req.given_seeds is not None:
        return list(req.seeds)
    count = req.study.get("sample_seeds", {}).get(budget, {}).get(fraction)
    return list(range(count)) if count else list(req.seeds)


def _plan(req: PlanRequest) -> list[Run]:
    budgets = list(req.study.get("budgets", BUDGETS[:1]))
    unknown = [b for b in budgets if b not in BUDGETS]
    if unknown:
        raise ValueError(f"the profile's budgets {unknown} are not budgets; choose from {', '.join(BUDGETS)}")
    runs = []
    for dataset in req.datasets:
        for fraction in req.fractions:
            for budget in budgets:
                for arm in req.arms_of[dataset]:
                    for seed in _seeds(req, budget, fraction):
                        run = req.run(arm, dataset=dataset, seed=seed, train_fraction=fraction)
                        if budget == "equal-steps" and fraction < 1:
                            run = req.run(arm, budget=budget, dataset=dataset, seed=seed, train_fraction=fraction,
                                          **steps_scaled(run.config, fraction))
                        runs.append(dataclasses.replace(run, budget=budget))
    return runs


TARGET = Target(
    name="sample-efficiency", order=3,
    claim="the gain grows as data shrinks",
    compares="baseline vs SAR + no-skip (and the CNN on real data) at training fractions, at equal epochs and at "
             "equal optimizer steps",
    outputs="`sample-efficiency*.csv`, `figures/sample-efficiency.png`",
    arms={"smoke": ["baseline", "sar+no-skip"], "paper": ["baseline", "sar+no-skip"],
          "cpu": {"synthetic-colour-1k": ["baseline", "sar+no-skip"], "*": ["baseline", "sar+no-skip", "cnn"]}},
    planner=_plan, title="Sample efficiency", table_keys=("budget", "train_fraction"), delta_metrics=(HEADLINE,),
    uses_fractions=True,
)
