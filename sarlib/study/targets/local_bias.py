"""The paper's central comparison: SAR against ViTs that build locality into the architecture, and on top
of them.

The abstract argues that an architectural local bias (SPT + LSA, ConViT, a convolutional stem) reduces the
samples a ViT needs but costs it generality, while SAR adds the bias through a loss, "equivalent or
better" than those architectures, "complementary" to them and "beneficial with different VT
architectures". Each architecture of the profile (STUDY `local_models`, at its ViT's size and recipe) is
trained alone and with SAR (and the no-skip last block, as the authors' model), beside table2's ViT,
ViT + SAR and CNN runs (reused). Three verdicts, fixed before the runs (docs/spec.md, "Local-bias
verdicts"):

- equivalent or better: (ViT + SAR) - X against +-EQUIVALENCE_MARGIN points of top-1
  (`local-bias_equivalence.csv`);
- complementary: (X + SAR) - X, the usual paired verdict (`local-bias_delta.csv`);
- across architectures: the same deltas, read over every X.
"""

from __future__ import annotations

from ..runs import LOCAL_ARCHITECTURES, Run
from .base import HEADLINE, Claim, PlanRequest, Target

# The equivalence margin in points of top-1, fixed before any local-bias run: the smallest difference
# between architectures the SPT + LSA paper's small-dataset tables report is about 3 points, and 5 paired
# seeds resolve about +-1 point on the cpu profile's Fashion-MNIST (table2); a gap under 1 point is
# below what either would call a difference.
EQUIVALENCE_MARGIN = 1.0

_NAMES = {"spt-lsa": "SPT + LSA", "convit": "ConViT", "conv-stem": "a conv-stem ViT"}


def _plan(req: PlanRequest) -> list[Run]:
    models = req.study.get("local_models") or {}
    runs = []
    for dataset in req.datasets:
        for arm in req.arms_of[dataset]:
            arch = arm.removesuffix("+sar")
            if arch in LOCAL_ARCHITECTURES and arch not in models:
                raise ValueError(f"profile {req.profile} names no model for {arch} (STUDY local_models); give one "
                                 f"or leave the arm out")
            extra = {"model": models[arch]} if arch in LOCAL_ARCHITECTURES else {}
            runs += [req.run(arm, dataset=dataset, seed=seed, **extra) for seed in req.seeds]
    return runs


def _arms(archs: tuple[str, ...], cnn: bool = True) -> list[str]:
    return ["baseline", "sar+no-skip"] + [a for x in archs for a in (x, f"{x}+sar")] + (["cnn"] if cnn else [])


TARGET = Target(
    name="local-bias", order=9, redraws_from_rows=False,
    claim="SAR is equivalent or better than ViTs with an architectural local bias, complementary to them, and "
          "helps across VT architectures",
    compares="ViT, ViT + SAR, SPT + LSA, ConViT and a conv-stem ViT each alone and + SAR, at the ViT's size and "
             "budget, and the CNN; table2's runs reused",
    outputs="`local-bias*.csv`, `figures/local-bias.png`",
    arms={"smoke": _arms(("spt-lsa",), cnn=False), "cpu": _arms(LOCAL_ARCHITECTURES),
          "paper": _arms(LOCAL_ARCHITECTURES, cnn=False)},
    planner=_plan,
    claims=tuple(
        [Claim(f"ViT + SAR is equivalent or better than {_NAMES[x]} (margin +-{EQUIVALENCE_MARGIN:g} point)",
               f"sar+no-skip - {x}", HEADLINE, table="equivalence") for x in LOCAL_ARCHITECTURES]
        + [Claim(f"SAR raises the top-1 of {_NAMES[x]} (complementary)", f"{x}+sar - {x}", HEADLINE)
           for x in LOCAL_ARCHITECTURES]),
    title="Local bias",
)
