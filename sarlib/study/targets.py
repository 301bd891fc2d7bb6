"""What each target of spec section 5 compares: the arms, the profiles' study settings, the columns of
every results row."""

from __future__ import annotations


import importlib
from pathlib import Path
from typing import Any

__all__ = ["ARMS", "CALIBRATION_CRITERION", "COLUMNS", "PAPER_LAMBDA", "STUDIES", "TARGETS", "target_arms"]

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

# Per profile (sarlib/profiles/<name>.py, STUDY): datasets, seeds and the defaults each target uses;
# notebooks may override any of them.
# Listed smallest first (how messages name them); a new profile file is picked up after these.
_NAMES = sorted((p.stem for p in (Path(__file__).parents[1] / "profiles").glob("[a-z]*.py")),
                key=lambda name: (["smoke", "cpu", "paper"] + [name]).index(name))
STUDIES: dict[str, dict[str, Any]] = {name: importlib.import_module(f"sarlib.profiles.{name}").STUDY for name in _NAMES}

# target -> arms compared: one list, or one per profile, whose value may be one list per dataset ("*":
# any other). table2 compares the authors' model (SAR with the no-skip block) with the baseline; on the
# cpu profile's real data also the CNN reference. SAR on the standard block is the ablation's (within
# table2's 30-minute budget on 2 cores it would cost the CNN).
TARGETS: dict[str, dict[str, Any]] = {
    "table2": dict(arms={"smoke": ["baseline", "sar+no-skip"],
                         "cpu": {"synthetic-colour-1k": ["baseline", "sar+no-skip"],
                                 "*": ["baseline", "sar+no-skip", "cnn"]},
                         "paper": ["baseline", "sar", "sar+no-skip"]}),
    "ablation": dict(arms=["baseline", "no-skip", "sar", "sar+no-skip", "tv"]),
    "sample-efficiency": dict(arms={"smoke": ["baseline", "sar+no-skip"], "paper": ["baseline", "sar+no-skip"],
                                    "cpu": {"synthetic-colour-1k": ["baseline", "sar+no-skip"],
                                            "*": ["baseline", "sar+no-skip", "cnn"]}}),
    # the pretrained baseline has the standard last block, so fine-tuning compares with/without the loss;
    # "scratch" (the same data and budget from random weights) measures what the pretraining gives
    "finetune": dict(arms=["baseline", "sar", "scratch"]),
    "segmentation": dict(arms=["baseline", "sar+no-skip"]),
    "attention-maps": dict(arms=["baseline", "sar+no-skip"]),
    # dose-response: SAR + no-skip at each lambda0 of the profile; lambda0 = 0 is the no-skip model
    # without SAR, so the curve starts at the architecture alone
    "lambda-sweep": dict(arms=["no-skip", "sar+no-skip"]),
    # the baseline on each candidate task at the same budget of image passes: the cpu profile's data is
    # chosen by the baseline alone (CALIBRATION_CRITERION)
    "calibration": dict(arms=["baseline"]),
}


# What the cpu profile's main dataset must let the baseline do (spec section 6): fit its training set and
# generalize above chance; among candidates that pass, the widest train/test gap (the small-data regime).
# Where a candidate is also listed with twice its epochs, it must be trained to convergence: doubling
# moves its final test top-1 by less than max_doubling_gain points.
CALIBRATION_CRITERION = dict(min_train_top1=90.0, min_test_top1=60.0, max_doubling_gain=1.0)


# SAR's lambda0 in the authors' commands (spec section 2); every profile's SAR arms use it unless a
# lambda sweep sets another.
PAPER_LAMBDA = 0.01


# spec section 7 columns (train_top1: final accuracy on the fixed un-augmented training slice; entropy,
# regions, jaccard: the mechanism metrics on the test set, for every arm; reg_term: the regularizer's
# mean value in the last epoch, empty when the arm has none), then where the run lives and its median
# training images/s
COLUMNS = ["target", "dataset", "model", "arm", "seed", "epochs", "train_fraction", "top1_best", "top1_final",
           "train_top1", "entropy", "regions", "jaccard", "jaccard_protocol", "reg_term", "lambda0", "regularizer", "no_skip", "profile", "git_commit", "device", "wall_seconds",
           "run_dir", "images_per_s"]


def target_arms(target: str, profile: str, dataset: str) -> list[str]:
    """The arms `target` compares under `profile` on `dataset` (TARGETS)."""
    spec = TARGETS[target]["arms"]
    spec = spec[profile] if isinstance(spec, dict) else spec
    return list(spec.get(dataset, spec["*"]) if isinstance(spec, dict) else spec)
