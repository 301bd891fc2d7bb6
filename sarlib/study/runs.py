"""One training run of a study: its arm, its config and its run directory.

Run directories depend only on (profile, dataset, model, arm, epochs, lambda0, fraction and its budget,
fine-tuning source, seed), never on the target, so targets share runs: the segmentation and attention-map targets
reuse table2's models, and a rerun (or a killed notebook run again) trains only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..train import TrainConfig, resolve_config

__all__ = ["ARMS", "LOCAL_ARCHITECTURES", "PAPER_LAMBDA", "Run", "make_run", "run_dir"]

# What each arm changes on top of the profile's config.
ARMS: dict[str, dict[str, Any]] = {
    "baseline": dict(regularizer="none", no_skip=False),
    "no-skip": dict(regularizer="none", no_skip=True),
    "sar": dict(regularizer="sar", no_skip=False),
    "sar+no-skip": dict(regularizer="sar", no_skip=True),
    "tv": dict(regularizer="tv", no_skip=False),
    # the convolutional reference at the ViT's parameter count, same recipe and budget (sarlib.models.cnn)
    "cnn": dict(model="cnn_micro", model_kwargs={}, regularizer="none", no_skip=False),
    # finetune only: the baseline trained from random weights on the fine-tuning data and budget
    "scratch": dict(regularizer="none", no_skip=False),
}

# ViTs that build locality into the architecture (the local-bias target): each alone and with SAR as the
# authors use it (with the no-skip last block); the model of each comes from the profile (STUDY
# `local_models`), so that every profile compares architectures of its own ViT's size
LOCAL_ARCHITECTURES = ("spt-lsa", "convit", "conv-stem")
for _arch in LOCAL_ARCHITECTURES:
    ARMS[_arch] = dict(ARMS["baseline"])
    ARMS[f"{_arch}+sar"] = dict(ARMS["sar+no-skip"])

# SAR's lambda0 in the authors' commands (spec section 2); every profile's SAR arms use it unless a
# lambda sweep sets another.
PAPER_LAMBDA = 0.01


@dataclass(frozen=True)
class Run:
    arm: str
    dataset: str
    seed: int
    config: TrainConfig
    pretraining: bool = False  # a finetune target's pretraining run, not one of its compared arms
    # how its training budget was set (sample efficiency): "equal-epochs" (the profile's epochs at any
    # fraction) or "equal-steps" (epochs and every epoch-counted schedule scaled by 1/fraction, so a slice
    # sees as many images, hence about as many optimizer steps, as the full set)
    budget: str = "equal-epochs"
    # field -> the layer that set it: default, profile, profile's dataset family, study base, arm, run
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)


def run_dir(runs_root: Path, cfg: TrainConfig, arm: str, budget: str = "equal-epochs") -> Path:
    parts = [cfg.profile, cfg.dataset, cfg.model, arm, f"e{cfg.epochs}"]
    if cfg.regularizer != "none" and cfg.lambda0 != PAPER_LAMBDA:
        parts.append(f"lam{cfg.lambda0:g}")
    if cfg.train_fraction < 1:
        parts.append(f"frac{cfg.train_fraction:g}")
        if budget != "equal-epochs":  # its schedules are scaled too: never the same run as e<N> at equal epochs
            parts.append(budget)
    if cfg.init_checkpoint:
        parts.append("ft-" + Path(cfg.init_checkpoint).parent.name)
    return runs_root.joinpath(*parts, f"seed{cfg.seed}")


def make_run(profile: str, root: Path, arm: str, before: dict[str, Any], after: dict[str, Any], *,
             budget: str = "equal-epochs") -> Run:
    """One run of `arm` under `profile`: `before` < the arm's fields < `after`, in its own run directory;
    `Run.sources` says which layer set each field."""
    cfg, sources = resolve_config(profile, [("study base", before), (f"arm {arm}", ARMS[arm]), ("run", after)])
    cfg = cfg.replace(output_dir=str(run_dir(root, cfg, arm, budget)))
    sources["output_dir"] = "run directory"
    return Run(arm=arm, dataset=cfg.dataset, seed=cfg.seed, config=cfg, budget=budget, sources=sources)
