"""Does SAR's effect depend on the patch grid? The profile's ViT beside the same ViT on another grid.

The paper's loss runs on DeiT-S's 14x14 grid; the cpu profile's ViT sees a 7x7 grid (28 px, 4 px patches),
where few connected regions are possible at all. The profile names the model of the other grid (STUDY
`grid_model`: the cpu profile's `vit_micro_patch2`, 2 px patches, 14x14 on 28 px; the paper profile's a
7x7 ViT-S/32). Both grids train baseline and SAR + no-skip on the same seeds, the profile's grid reusing
table2's runs; the other grid's baseline is also trained for twice the epochs on the first seed, so the
calibration criterion (fits its training set, converged by epoch doubling) is checked on the new grid too.
"""

from __future__ import annotations

from ..runs import Run
from .base import HEADLINE, Claim, PlanRequest, Target

# DeiT-S's grid at 224 px: the README reads SAR's effect there from grid_contrast.csv
# (sarlib.report.summaries.grid_contrast)
PAPER_GRID = "14x14"


def _plan(req: PlanRequest) -> list[Run]:
    other = req.study.get("grid_model")
    if not other:
        raise ValueError(f"profile {req.profile} names no grid_model in its STUDY: the grid target compares the "
                         "profile's model with that one")
    runs = []
    for dataset in req.datasets:
        for extra in ({}, {"model": other}):
            runs += [req.run(arm, dataset=dataset, seed=seed, **extra)
                     for arm in req.arms_of[dataset] for seed in req.seeds]
        once = req.run("baseline", dataset=dataset, seed=req.seeds[0], model=other)
        runs.append(req.run("baseline", dataset=dataset, seed=req.seeds[0], model=other, epochs=2 * once.config.epochs))
    return runs


TARGET = Target(
    name="grid", order=8, redraws_from_rows=False,
    claim="SAR's effect holds on the paper's 14x14 patch grid",
    compares="baseline vs SAR + no-skip on the profile's grid and on another (cpu: 7x7 and 14x14 on Fashion-MNIST; "
             "paper: 14x14 and 7x7); the other grid's baseline also at twice the epochs (convergence)",
    outputs="`grid*.csv`, `figures/grid.png`",
    arms=["baseline", "sar+no-skip"], planner=_plan,
    claims=(
        Claim("SAR + no-skip raises top-1 on the paper's 14x14 patch grid", f"sar+no-skip - baseline, {PAPER_GRID}",
              HEADLINE, table="contrast"),
        Claim("SAR + no-skip lowers the spatial entropy on the 14x14 grid", f"sar+no-skip - baseline, {PAPER_GRID}",
              "entropy", table="contrast"),
        Claim("(grid) SAR's top-1 effect on the finer grid minus on the coarser", "finer - coarser", HEADLINE,
              table="contrast", reference=True),
    ),
    title="Patch grid", table_keys=("grid",), seeds_key="grid_seeds", first_dataset_only=True,
)
