"""What a target is: one claim of spec section 5, declared once, and everything derived from it.

A `Target` holds the claim sentence, the arms it compares (per profile and dataset), how its runs are
planned, which rows of its paired-delta table answer which claim in the README, and how its results
are tabulated. The Makefile's `reproduce-<target>` list, the README's claims and targets tables,
docs/spec.md's and notebooks/README.md's tables are generated from the registry (`sarlib.study.targets`)
or checked against it by tests. Adding a target is one module in this package plus one notebook
(docs/development.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..runs import ARMS, Run, make_run

__all__ = ["CALIBRATION_CRITERION", "HEADLINE", "STUDIES", "Claim", "PlanRequest", "Target", "grid"]

# Per profile (sarlib/profiles/<name>.py, STUDY): datasets, seeds and the defaults each target uses;
# notebooks may override any of them. Listed smallest first (how messages name them); a new profile file
# is picked up after these.
_NAMES = sorted((p.stem for p in (Path(__file__).parents[2] / "profiles").glob("[a-z]*.py")),
                key=lambda name: (["smoke", "cpu", "paper"] + [name]).index(name))
STUDIES: dict[str, dict[str, Any]] = {name: importlib.import_module(f"sarlib.profiles.{name}").STUDY for name in _NAMES}

# What the cpu profile's main dataset must let the baseline do (spec section 6): fit its training set and
# generalize above chance; among candidates that pass, the widest train/test gap (the small-data regime).
# Where a candidate is also listed with twice its epochs, it must be trained to convergence: doubling
# moves its final test top-1 by less than max_doubling_gain points.
CALIBRATION_CRITERION = dict(min_train_top1=90.0, min_test_top1=60.0, max_doubling_gain=1.0)

# The top-1 every verdict uses: the final epoch's (spec section 5, protocol rules). The best epoch's
# (top1_best) is kept in every row for parity with the authors' logs, labelled so, and never used for
# a verdict, since choosing the epoch by its test score selects on the test set.
HEADLINE = "top1_final"


@dataclass(frozen=True)
class Claim:
    """One row of the README's claims table that this target answers: the paired delta `comparison` of
    `metric` in `<target>_delta.csv` (or in `<target>_<table>.csv` when `table` is given). A claim
    several targets can answer is declared by each, with the same text; the first target in the registry
    order that has rows for it wins."""

    text: str
    comparison: str
    metric: str
    table: str = "delta"
    reference: bool = False  # a yardstick (CNN, pretraining), listed after the claims themselves


@dataclass(frozen=True)
class PlanRequest:
    """What `sarlib.study.plan` resolved for a target's planner: the profile's choices with the caller's
    on top. `given_*` are the caller's own values (None: the profile decides)."""

    target: "Target"
    profile: str
    study: dict[str, Any]
    datasets: list[str]
    seeds: list[int]
    default_seeds: list[int]
    arms_of: dict[str, list[str]]
    fractions: list[float]
    base: dict[str, Any]  # fields every run gets: overrides, data_root, epochs
    root: Path
    given_arms: Sequence[str] | None = None
    given_seeds: Sequence[int] | None = None
    lambdas: Sequence[float] | None = None
    init_checkpoint: str | None = None
    # the keyword arguments `plan` was called with, for a planner that plans another target's runs
    call: dict[str, Any] = field(default_factory=dict)

    def run(self, arm: str, *, budget: str = "equal-epochs", **after: Any) -> Run:
        """One run of `arm`: this request's base fields < the arm's < `after`."""
        return make_run(self.profile, self.root, arm, self.base, after, budget=budget)


def grid(req: PlanRequest) -> list[Run]:
    """Every dataset x training fraction x arm x seed (table2, ablation, sample efficiency, the figures)."""
    return [req.run(arm, dataset=dataset, seed=seed, train_fraction=fraction)
            for dataset in req.datasets for fraction in req.fractions for arm in req.arms_of[dataset]
            for seed in req.seeds]


@dataclass(frozen=True)
class Target:
    """One claim of spec section 5 and all that the suite needs to test and report it."""

    name: str
    order: int  # position in every list and table (make help, README, results/README.md)
    claim: str  # the claim under test, one sentence (README, notebooks/README.md, docs/spec.md)
    compares: str  # the runs, in words
    outputs: str  # what it writes under results/ (Markdown)
    # arms compared: a list, or {profile: list}, whose list may be {dataset: list, "*": any other dataset}
    arms: Any = ()
    planner: Callable[[PlanRequest], list[Run]] = grid
    claims: tuple[Claim, ...] = ()
    # how the README generator reads its CSVs: "runs" (<name>.csv, _summary, _delta), "calibration",
    # "benchmark" (no training runs), "none"
    results: str = "runs"
    title: str = ""  # its section in results/README.md ("" : none)
    table_keys: tuple[str, ...] = ()  # extra keys of its summary rows (e.g. train_fraction)
    delta_metrics: tuple[str, ...] = (HEADLINE, "entropy", "regions", "jaccard")
    seeds_key: str = "seeds"  # the STUDY entry holding its default seeds
    first_dataset_only: bool = False  # by default only the profile's first dataset (a sweep multiplies runs)
    uses_fractions: bool = False  # plans the profile's training fractions
    # its notebook can be redrawn from the rows `<name>.csv` holds (the `from_rows` parameter); False where it
    # also reads the run folders (weights, attention maps, scores) or rows kept in another table
    redraws_from_rows: bool = True

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.name}.ipynb"

    @property
    def trains(self) -> bool:
        return self.results in ("runs", "calibration")

    def arms_for(self, profile: str, dataset: str) -> list[str]:
        """The arms compared under `profile` on `dataset`."""
        spec = self.arms[profile] if isinstance(self.arms, dict) else self.arms
        return list(spec.get(dataset, spec["*"]) if isinstance(spec, dict) else spec)

    def __post_init__(self) -> None:
        unknown = sorted({a for spec in _arm_lists(self.arms) for a in spec} - set(ARMS))
        if unknown:
            raise ValueError(f"target {self.name} names unknown arms {unknown}; choose from {', '.join(ARMS)}")


def _arm_lists(spec: Any) -> list[list[str]]:
    if isinstance(spec, dict):
        return [lst for value in spec.values() for lst in _arm_lists(value)]
    return [list(spec)]
