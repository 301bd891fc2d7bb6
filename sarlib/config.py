"""One dataclass holds every knob of a training run; presets are tiny files that override a few.

    cfg = load_preset("cpu", dataset="synthetic-1k", regularizer="sar", seed=1)

Presets live in `sarlib/presets/<name>.py` as a `PRESET = dict(...)` of field overrides (SPEC
section 6): `smoke` proves the path runs in seconds, `cpu` is the embedded-data default, `paper` is the
authors' DeiT-S recipe (SPEC section 4).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "load_preset", "PRESETS"]

PRESETS = tuple(sorted(p.stem for p in (Path(__file__).parent / "presets").glob("[a-z]*.py")))


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
    reg_weight: float = 0.01  # lambda0
    reg_warmup: int = 10  # epochs of linear warm-up of lambda
    reg_schedule: str = "cosine"  # "cosine" | "constant"
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
    seg_protocol: str = "dino"  # "dino" (object masks, void excluded) | "authors" (their script; SPEC 5)
    # --- run
    seed: int = 0
    output_dir: str = "results/runs/default"
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    threads: int | None = None  # torch CPU threads (None: torch's default)
    progress: bool | None = None  # tqdm bars; None: only when stderr is a terminal
    profile: str = "custom"
    max_steps_per_epoch: int | None = None  # cap steps (smoke tests)

    def __post_init__(self) -> None:
        if self.regularizer not in ("none", "sar", "tv"):
            raise ValueError(f"regularizer must be 'none', 'sar' or 'tv'; got {self.regularizer!r}")
        if self.augment not in ("deit", "shift", "none"):
            raise ValueError(f"augment must be 'deit', 'shift' or 'none'; got {self.augment!r}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1]; got {self.train_fraction}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1; got {self.epochs}, {self.batch_size}")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be 'bfloat16' or 'float16'; got {self.amp_dtype!r}")
        if self.lr_step not in ("before_epoch", "after_epoch"):
            raise ValueError(f"lr_step must be 'before_epoch' or 'after_epoch'; got {self.lr_step!r}")
        if self.seg_protocol not in ("dino", "authors"):
            raise ValueError(f"seg_protocol must be 'dino' or 'authors'; got {self.seg_protocol!r}")
        if self.repeated_aug < 0:
            raise ValueError(f"repeated_aug must be >= 0 (0 or 1: off, 3: DeiT's); got {self.repeated_aug}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; see `python -m sarlib.train --help`")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return self.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        from .files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def load_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset's config with `overrides` applied on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = importlib.import_module(f"sarlib.presets.{name}").PRESET
    return TrainConfig.from_dict({**preset, "profile": name, **overrides})
