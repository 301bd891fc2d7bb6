"""One dataclass holds every knob of a training run; profiles are tiny files that override a few.

    cfg = load_profile("cpu", dataset="synthetic-1k", regularizer="sar", seed=1)

Profiles live in `sarlib/profiles/<name>.py` as a `CONFIG = dict(...)` of field overrides (spec
section 6): `smoke` proves the path runs in seconds, `cpu` is the embedded-data default, `paper` is the
authors' DeiT-S recipe (spec section 4).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.util
import json
import numbers
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import CLASSIFICATION_DATASETS, DATASETS, SEGMENTATION_DATASETS
from ..models.cnn import CNN_MODELS
from ..utils.files import atomic_write_text

__all__ = ["TrainConfig", "dataset_config", "load_profile", "PROFILES", "upgrade_config"]

PROFILES = tuple(sorted(p.stem for p in (Path(__file__).parents[1] / "profiles").glob("[a-z]*.py")))


@dataclass
class TrainConfig:
    # --- data
    dataset: str = "synthetic-5k"
    data_root: str | None = None
    download: bool = False  # only when the user asks and has a network
    train_fraction: float = 1.0  # class-stratified subset of the training split (sample-efficiency)
    img_size: int = 224
    num_workers: int = 8
    cache_dir: str | None = None  # synthetic-data cache (default: $SARLIB_CACHE or ~/.cache/sarlib)
    # --- model
    model: str = "deit_small_patch16_224"
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm kwargs (embed_dim, depth, ...)
    drop_path: float = 0.1
    no_skip: bool = False  # the authors' --use-nosn: last block without attention residual and LN2
    init_checkpoint: str | None = None  # fine-tuning: start from these weights (a sarlib checkpoint or a state_dict)
    # --- attention regularizer
    regularizer: str = "none"  # "none" | "sar" | "tv"
    lambda0: float = 0.01  # lambda0
    lambda_warmup: int = 10  # epochs of linear warm-up of lambda
    lambda_decay: str = "cosine"  # "cosine" | "constant"
    # --- optimization (DeiT)
    epochs: int = 300
    batch_size: int = 128  # per process; global batch = batch_size * world size
    lr: float = 5e-4  # for a global batch of 512, scaled linearly
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: int = 5
    weight_decay: float = 0.05
    opt: str = "adamw"
    clip_grad: float | None = None
    # when timm's per-epoch scheduler steps: "before_epoch" (epoch e trains at lr(e)) or "after_epoch"
    # (the authors' and DeiT's loop: epoch e trains at lr(e-1), epochs 0 and 1 at warmup_lr)
    lr_step: str = "before_epoch"
    # --- augmentation and targets
    augment: str = "deit"  # "deit" (RandAugment + random erasing) | "shift" (random translation) | "none"
    rand_augment: str = "rand-m9-mstd0.5-inc1"
    reprob: float = 0.25
    mixup: float = 0.8
    cutmix: float = 1.0
    smoothing: float = 0.1
    repeated_aug: int = 0  # DeiT's repeated augmentation: each image k times per epoch (0/1 off, 3 = DeiT)
    # --- numerics and extras
    amp: bool = True  # autocast on CUDA only; the SAR term is always computed in float32
    amp_dtype: str = "bfloat16"  # "bfloat16" | "float16" (the latter with a gradient scaler)
    model_ema: bool = False
    model_ema_decay: float = 0.99996
    # --- evaluation
    eval_every: int = 1
    train_eval_images: int = 1000  # fixed un-augmented training slice scored at every eval (0: off)
    seg_mass: float = 0.6  # DINO protocol: keep the smallest patch set holding this share of attention
    seg_dataset: str | None = None  # default: the training set's own masks when it has them
    seg_max_images: int | None = None
    seg_protocol: str = "dino"  # "dino" (object masks, void excluded) | "authors" (their script; spec section 5)
    # --- run
    seed: int = 0
    output_dir: str = "results/runs/default"
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    threads: int | None = None  # torch CPU threads (None: torch's default)
    progress: bool | None = None  # tqdm bars; None: only when stderr is a terminal
    log_to: str = ""  # mirror log.jsonl to "tensorboard" and/or "wandb" (comma-separated; extras of the same names)
    profile: str = "custom"
    max_steps_per_epoch: int | None = None  # cap steps (smoke tests)

    def __post_init__(self) -> None:
        # paths given as pathlib.Path (notebooks) are stored as text, so config.json stays JSON
        for name in ("data_root", "cache_dir", "init_checkpoint", "output_dir"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (one line naming the flag and its fix) for any value a run cannot use.

        Everything checkable without building the run is checked here, so a bad command fails before
        anything is written into its run directory.
        """
        _check_types(self)
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"{name} must be {_or(choices)}; got {value!r} (--{_flag(name)})")
        for name, (low, high, what) in _RANGES.items():
            value = getattr(self, name)
            if value is not None and not (low(value) and high(value)):
                raise ValueError(f"{name} must be {what}; got {value!r} (--{_flag(name)})")
        loggers = [name for name in self.log_to.split(",") if name]
        if any(name not in LOGGERS for name in loggers) or len(set(loggers)) != len(loggers):
            raise ValueError(f"log_to must be empty or a comma-separated choice of {', '.join(LOGGERS)}; got "
                             f"{self.log_to!r} (--log-to tensorboard,wandb)")
        missing = [name for name in loggers if not _installed(name)]
        if missing:  # before anything is written into the run directory
            raise ValueError(f"--log-to {','.join(missing)} needs the package: pip install \".[{missing[0]}]\" (or "
                             f"pip install {' '.join(missing)}), or drop it from --log-to")
        _check_model_kwargs(self.model_kwargs)
        _check_datasets(self.dataset, self.seg_dataset)
        if self.model in CNN_MODELS and (self.regularizer != "none" or self.no_skip):
            raise ValueError(f"{self.model} is a CNN without [CLS] attention: it takes no regularizer and no no-skip "
                             "block (--regularizer none --no-no-skip), or pick a ViT with --model")
        if (self.mixup > 0 or self.cutmix > 0) and self.batch_size % 2:
            # timm's Mixup mixes each image with its mirror in the batch; an odd batch stops it mid-epoch
            raise ValueError(f"mixup/CutMix need an even batch_size per process; got {self.batch_size} (--batch-size "
                             f"{self.batch_size + 1}, or --mixup 0 --cutmix 0)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        values = upgrade_config(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; see `python -m sarlib.train --help`")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


# names an earlier version wrote into config.json and checkpoints: such a run still loads and resumes
RENAMED_FIELDS = {"reg_weight": "lambda0", "reg_warmup": "lambda_warmup", "reg_schedule": "lambda_decay"}
RENAMED_MODELS = {"sarlib_cnn": "cnn_micro"}


def upgrade_config(values: dict[str, Any]) -> dict[str, Any]:
    """A saved config's fields under today's names (RENAMED_FIELDS, RENAMED_MODELS); other keys unchanged."""
    out = {RENAMED_FIELDS.get(k, k): v for k, v in values.items()}
    if isinstance(out.get("model"), str):
        out["model"] = RENAMED_MODELS.get(out["model"], out["model"])
    return out


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _or(choices: tuple[str, ...]) -> str:
    quoted = [repr(c) for c in choices]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


# the loggers `log_to` may name (sarlib.train.loggers mirrors each epoch's record to them)
LOGGERS = ("tensorboard", "wandb")


def _installed(package: str) -> bool:
    return package in sys.modules or importlib.util.find_spec(package) is not None

_CHOICES: dict[str, tuple[str, ...]] = {
    "regularizer": ("none", "sar", "tv"),
    "augment": ("deit", "shift", "none"),
    "amp_dtype": ("bfloat16", "float16"),
    "lambda_decay": ("cosine", "constant"),
    "device": ("auto", "cpu", "cuda"),
    "lr_step": ("before_epoch", "after_epoch"),
    "seg_protocol": ("dino", "authors"),
}


def _at_least(bound: float) -> Any:
    return lambda v: v >= bound


def _above(bound: float) -> Any:
    return lambda v: v > bound


def _at_most(bound: float) -> Any:
    return lambda v: v <= bound


def _below(bound: float) -> Any:
    return lambda v: v < bound


_ANY = _at_least(float("-inf"))
# name -> (lower test, upper test, what a valid value is); None is allowed where the field is optional
_RANGES: dict[str, tuple[Any, Any, str]] = {
    "train_fraction": (_above(0), _at_most(1), "in (0, 1]"),
    "img_size": (_at_least(1), _ANY, "an integer >= 1"),
    "num_workers": (_at_least(0), _ANY, "an integer >= 0"),
    "drop_path": (_at_least(0), _below(1), "in [0, 1)"),
    "lambda0": (_at_least(0), _ANY, ">= 0"),
    "lambda_warmup": (_at_least(0), _ANY, "an integer >= 0"),
    "epochs": (_at_least(1), _ANY, "an integer >= 1"),
    "repeated_aug": (_at_least(0), _ANY, "an integer >= 0 (0 or 1: off, 3: DeiT's)"),
    "train_eval_images": (_at_least(0), _ANY, "an integer >= 0 (0: off)"),
    "batch_size": (_at_least(1), _ANY, "an integer >= 1"),
    "lr": (_above(0), _ANY, "> 0"),
    "min_lr": (_at_least(0), _ANY, ">= 0"),
    "warmup_lr": (_at_least(0), _ANY, ">= 0"),
    "warmup_epochs": (_at_least(0), _ANY, "an integer >= 0"),
    "weight_decay": (_at_least(0), _ANY, ">= 0"),
    "clip_grad": (_above(0), _ANY, "> 0 or None"),
    "reprob": (_at_least(0), _at_most(1), "in [0, 1]"),
    "mixup": (_at_least(0), _ANY, ">= 0"),
    "cutmix": (_at_least(0), _ANY, ">= 0"),
    "smoothing": (_at_least(0), _below(1), "in [0, 1)"),
    "model_ema_decay": (_above(0), _below(1), "in (0, 1)"),
    "eval_every": (_at_least(1), _ANY, "an integer >= 1 (evaluate every N epochs)"),
    "seg_mass": (_above(0), _at_most(1), "in (0, 1]"),
    "seg_max_images": (_at_least(1), _ANY, "an integer >= 1 or None (all images)"),
    "threads": (_at_least(1), _ANY, "an integer >= 1 or None (torch's default)"),
    "max_steps_per_epoch": (_at_least(1), _ANY, "an integer >= 1 or None (whole epochs)"),
}


@functools.cache
def _field_types() -> dict[str, tuple[type, bool]]:
    """field -> (scalar type, None allowed?) from the dataclass annotations."""
    out = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        kind = args[0] if optional else hint
        out[name] = (dict if typing.get_origin(kind) is dict else kind, optional)
    return out


def _check_types(cfg: TrainConfig) -> None:
    for name, (kind, optional) in _field_types().items():
        value = getattr(cfg, name)
        if value is None and optional:
            continue
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        elif kind is float:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            expected = f"{article} {kind.__name__}" + (" or None" if optional else "")
            raise ValueError(f"{name} must be {expected}; got {value!r} (a {type(value).__name__})")


def _check_model_kwargs(kwargs: dict[str, Any]) -> None:
    dim, heads = kwargs.get("embed_dim"), kwargs.get("num_heads")
    if isinstance(dim, int) and isinstance(heads, int) and heads > 0 and dim % heads:
        lower, upper = dim // heads * heads, (dim // heads + 1) * heads
        raise ValueError(
            f"model_kwargs embed_dim={dim} is not divisible by num_heads={heads}; use a multiple of "
            f"num_heads such as {lower or upper} or {upper} (--model-kwargs '{{\"embed_dim\": {upper}, ...}}')"
        )


def _check_datasets(dataset: str, seg_dataset: str | None) -> None:
    if dataset not in DATASETS:
        close = difflib.get_close_matches(dataset, CLASSIFICATION_DATASETS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"unknown dataset {dataset!r}; {hint}choose one of {', '.join(CLASSIFICATION_DATASETS)} (--dataset)")
    if dataset not in CLASSIFICATION_DATASETS:
        raise ValueError(
            f"{dataset} has object masks but no class labels, so it cannot be trained on: train on a "
            "classification set (e.g. --dataset cifar10) and score its attention maps on it "
            f"with --seg-dataset {dataset} --data-root DIR"
        )
    if seg_dataset is not None and seg_dataset not in SEGMENTATION_DATASETS:
        raise ValueError(f"seg_dataset must be one of {', '.join(SEGMENTATION_DATASETS)} or None; got {seg_dataset!r}")


def dataset_config(name: str, dataset: str) -> dict[str, Any]:
    """The fields profile `name` sets for `dataset`'s family (its `DATASET_CONFIG`), e.g. the cpu profile's
    recipe for every `fashion-mnist*` set: a key matches the dataset itself or the names it prefixes."""
    families = getattr(importlib.import_module(f"sarlib.profiles.{name}"), "DATASET_CONFIG", {})
    keys = [k for k in families if dataset == k or dataset.startswith(k + "-")]
    return dict(families[max(keys, key=len)]) if keys else {}


def load_profile(name: str, **overrides: Any) -> TrainConfig:
    """The profile's config, then the profile's fields for the chosen dataset (`dataset_config`), then
    `overrides` on top."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    base = importlib.import_module(f"sarlib.profiles.{name}").CONFIG
    dataset = overrides.get("dataset", base.get("dataset", TrainConfig.dataset))
    return TrainConfig.from_dict({**base, **dataset_config(name, dataset), "profile": name, **overrides})
