"""One dataclass holds every knob of a training run; profiles are tiny files that override a few.

    cfg = load_profile("cpu", dataset="synthetic-1k", regularizer="sar", seed=1)
    cfg, source = resolve_config("cpu", [("config run.json", {...}), ("command line", {...})])

Profiles live in `sarlib/profiles/<name>.py` as a `CONFIG = dict(...)` of field overrides (spec
section 6): `smoke` proves the path runs in seconds, `cpu` is the embedded-data default, `paper` is the
authors' DeiT-S recipe (spec section 4).

Each field declares its help text, its `--help` group, and its valid values (`range`, `choices`) next to
its default, so `validate()` and `python -m sarlib.train --help` read the same declaration.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import importlib.util
import json
import math
import numbers
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import timm.optim
import torch
from timm.data.auto_augment import rand_augment_transform

from ..data import CLASSIFICATION_DATASETS, DATASETS, SEGMENTATION_DATASETS
from ..metrics.jaccard import PROTOCOLS
from ..models.cnn import CNN_MODELS, create_cnn
from ..models.vit import check_model_name, create_model
from ..sar.regularizers import REGULARIZERS
from ..utils.files import atomic_write_text
from .lr import LR_STEPS

__all__ = ["GROUPS", "LOGGERS", "PROFILES", "TrainConfig", "dataset_config", "field_types", "kept_epochs",
           "load_profile", "resolve_config", "upgrade_config"]

PROFILES = tuple(sorted(p.stem for p in (Path(__file__).parents[1] / "profiles").glob("[a-z]*.py")))

# the loggers `log_to` may name (sarlib.train.loggers mirrors each epoch's record to them)
LOGGERS = ("tensorboard", "wandb")

# the `--help` sections, in order; every field names one of them as its group
GROUPS = {
    "data": "the training set, its size and how it is loaded",
    "model": "the network and its starting weights",
    "regularizer": "the attention regularizer on the last block's [CLS] map and its weight lambda",
    "optimization": "DeiT's optimizer and learning-rate schedule",
    "augmentation": "augmentation and soft targets",
    "numerics": "mixed precision and weight averaging",
    "evaluation": "what is scored, how often, and on which images",
    "run": "seed, where the run is written, device and logging",
}


class Range(NamedTuple):
    """A closed or open interval, declared in interval notation ("[0, 1)", "(0, inf)")."""

    low: float
    high: float
    low_open: bool
    high_open: bool

    @classmethod
    def parse(cls, text: str) -> "Range":
        low, high = (part.strip() for part in text[1:-1].split(","))
        return cls(float(low), float(high), text[0] == "(", text[-1] == ")")

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self, integer: bool) -> str:
        """'an integer >= 1', '> 0', 'in [0, 1)'."""
        if math.isinf(self.high):
            text = f"{'>' if self.low_open else '>='} {_number(self.low)}"
            return f"an integer {text}" if integer else text
        return f"in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}{')' if self.high_open else ']'}"


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _f(default: Any, group: str, help: str, *, range: str | None = None, choices: Sequence[Any] | None = None,
       none: str | None = None, note: str | None = None, factory: Any = None) -> Any:
    """A TrainConfig field with what `--help` and `validate()` need: its help text and group, its valid
    `range` (interval notation) or `choices`, what None means for an optional field (`none`), and what
    special values mean (`note`, e.g. "0: off")."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}; got {group!r}")
    metadata = dict(help=help, group=group, range=Range.parse(range) if range else None,
                    choices=tuple(choices) if choices is not None else None, none=none, note=note)
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    # --- data
    dataset: str = _f("synthetic-5k", "data", "the training set (a classification set; layouts under --data-root "
                      "below)")
    data_root: str | None = _f(None, "data", "folder holding the real datasets", none="synthetic sets only")
    download: bool = _f(False, "data", "download a missing dataset (only when asked: it needs a network)")
    train_fraction: float = _f(1.0, "data", "class-stratified share of the training split (sample-efficiency)",
                               range="(0, 1]")
    img_size: int = _f(224, "data", "input side in pixels", range="[1, 8192]")
    num_workers: int = _f(8, "data", "data-loader worker processes per training process", range="[0, 256]")
    cache_dir: str | None = _f(None, "data", "where generated synthetic sets are cached",
                               none="$SARLIB_CACHE or ~/.cache/sarlib")
    # --- model
    model: str = _f("deit_small_patch16_224", "model", "a timm ViT/DeiT name, vit_micro_patch4, vit_nano_patch4, "
                    "a ViT with a locality bias (vit_micro_spt_lsa_patch4, convit_micro_patch4, vit_micro_convstem), "
                    "or the CNN reference cnn_micro")
    model_kwargs: dict[str, Any] = _f(None, "model", "extra model keyword arguments as JSON (embed_dim, depth, "
                                      "num_heads, patch_size, ...)", factory=dict)
    drop_path: float = _f(0.1, "model", "stochastic-depth rate", range="[0, 1)")
    no_skip: bool = _f(False, "model", "the authors' --use-nosn: the last block without attention residual and LN2")
    init_checkpoint: str | None = _f(None, "model", "fine-tuning: start from these weights (a sarlib checkpoint or "
                                     "a state_dict)", none="random initialization")
    # --- attention regularizer
    regularizer: str = _f("none", "regularizer", "sar: the spatial entropy (the paper's loss); tv: total "
                          "variation (the ablation's alternative)", choices=("none", *REGULARIZERS))
    lambda0: float = _f(0.01, "regularizer", "the regularizer's weight after warm-up (the paper's 0.01)",
                        range="[0, 1000]")
    lambda_warmup: int = _f(10, "regularizer", "epochs of linear warm-up of lambda from 0", range="[0, 100000]")
    lambda_decay: str = _f("cosine", "regularizer", "lambda after warm-up: cosine to 0 at the last epoch, or "
                           "constant", choices=("cosine", "constant"))
    # --- optimization (DeiT)
    epochs: int = _f(300, "optimization", "training epochs", range="[1, 100000]")
    batch_size: int = _f(128, "optimization", "images per step and process; the global batch is this times "
                         "the number of processes", range="[1, 65536]")
    lr: float = _f(5e-4, "optimization", "peak learning rate for a global batch of 512 (scaled linearly to the "
                   "real one)", range="(0, 10]")
    min_lr: float = _f(1e-5, "optimization", "learning rate the cosine ends at", range="[0, 10]")
    warmup_lr: float = _f(1e-6, "optimization", "learning rate the warm-up starts from", range="[0, 10]")
    warmup_epochs: int = _f(5, "optimization", "epochs of learning-rate warm-up", range="[0, 100000]")
    weight_decay: float = _f(0.05, "optimization", "decoupled weight decay", range="[0, 10]")
    opt: str = _f("adamw", "optimization", "a timm optimizer name")
    clip_grad: float | None = _f(None, "optimization", "clip the gradient norm to this", range="(0, 1000000]",
                                 none="no clipping")
    lr_step: str = _f("before_epoch", "optimization", "when the per-epoch schedule steps: before_epoch (epoch e "
                      "trains at lr(e)) or after_epoch (the authors' and DeiT's loop: epoch e trains at lr(e-1), "
                      "epochs 0 and 1 at warmup_lr)", choices=LR_STEPS)
    # --- augmentation and targets
    augment: str = _f("deit", "augmentation", "deit: RandAugment and random erasing; shift: random translation "
                      "(synthetic sets); none", choices=("deit", "shift", "none"))
    rand_augment: str = _f("rand-m9-mstd0.5-inc1", "augmentation", "timm's RandAugment spec (--augment deit)")
    reprob: float = _f(0.25, "augmentation", "random-erasing probability (--augment deit)", range="[0, 1]")
    mixup: float = _f(0.8, "augmentation", "mixup alpha", range="[0, 100]", note="0: off")
    cutmix: float = _f(1.0, "augmentation", "CutMix alpha", range="[0, 100]", note="0: off")
    smoothing: float = _f(0.1, "augmentation", "label smoothing", range="[0, 1)")
    repeated_aug: int = _f(0, "augmentation", "DeiT's repeated augmentation: each image this many times per "
                           "epoch", range="[0, 64]", note="0 or 1: off, 3: DeiT's")
    # --- numerics and extras
    amp: bool = _f(True, "numerics", "autocast on CUDA (never on CPU); the SAR term is always computed in float32")
    amp_dtype: str = _f("bfloat16", "numerics", "autocast dtype; float16 adds a gradient scaler",
                        choices=("bfloat16", "float16"))
    model_ema: bool = _f(False, "numerics", "keep an exponential moving average of the weights (scored as top1_ema)")
    model_ema_decay: float = _f(0.99996, "numerics", "the moving average's decay per step", range="(0, 1)")
    # --- evaluation
    eval_every: int = _f(1, "evaluation", "score the test set every this many epochs (and at the last)",
                         range="[1, 100000]", note="evaluate every N epochs")
    train_eval_images: int = _f(1000, "evaluation", "fixed un-augmented training images scored at every "
                                "evaluation (does the model fit?)", range="[0, 100000000]", note="0: off")
    seg_mass: float = _f(0.6, "evaluation", "DINO's protocol: the smallest patch set holding this share of the "
                         "attention is the predicted mask", range="(0, 1]")
    seg_dataset: str | None = _f(None, "evaluation", "where the Jaccard is scored (a set with object masks)",
                                 choices=SEGMENTATION_DATASETS, none="the training set's own masks, if it has them")
    seg_max_images: int | None = _f(None, "evaluation", "images the Jaccard scores", range="[1, 100000000]",
                                    none="all images")
    seg_protocol: str = _f("dino", "evaluation", "dino: object masks, void excluded; authors: their script (spec "
                           "section 5)", choices=PROTOCOLS)
    # --- run
    seed: int = _f(0, "run", "seeds weights, data order and augmentation (each process adds its rank)",
                   range="[0, 2147483647]")
    output_dir: str = _f("results/runs/default", "run", "the run directory; the same one again resumes the run "
                         "or shows its result")
    device: str = _f("auto", "run", "auto: CUDA when visible", choices=("auto", "cpu", "cuda"))
    threads: int | None = _f(None, "run", "torch CPU threads per process", range="[1, 4096]",
                             none="torch's default")
    progress: bool | None = _f(None, "run", "the per-step bar (stderr) and python -m sarlib.train's lines "
                               "(stdout); off: errors only", none="the lines, and the bar when stderr is a terminal")
    log_to: str = _f("", "run", "mirror log.jsonl to these loggers (comma-separated; extras of the same names)",
                     choices=LOGGERS)
    profile: str = _f("custom", "run", "the profile the config started from (--profile)", choices=("custom", *PROFILES))
    max_steps_per_epoch: int | None = _f(None, "run", "cap the steps of each epoch (smoke tests)", range="[1, 1000000000]",
                                         none="whole epochs")
    keep_checkpoints: str = _f("", "run", "after these epochs (comma-separated, e.g. 5,10,50) also keep the model's "
                               "weights, float16 safetensors in the run's epochs/ folder: the explorer's epoch slider",
                               note="empty: none")

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
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        loggers = [name for name in self.log_to.split(",") if name]
        missing = [name for name in loggers if not _installed(name)]
        if missing:  # before anything is written into the run directory
            raise ValueError(f"--log-to {','.join(missing)} needs the package: pip install \".[{missing[0]}]\" (or "
                             f"pip install {' '.join(missing)}), or drop it from --log-to")
        _check_model_kwargs(self.model_kwargs)
        late = [e for e in kept_epochs(self.keep_checkpoints) if e > self.epochs]
        if late:
            raise ValueError(f"keep_checkpoints names epoch {late[0]}, after the run's last ({self.epochs}); keep "
                             f"epochs 1-{self.epochs} (--keep-checkpoints), or raise --epochs")
        _check_datasets(self.dataset)
        if self.model not in CNN_MODELS:
            try:
                check_model_name(self.model)
            except ValueError as err:
                raise ValueError(f"{err} (--model)") from None
        problem = _unbuildable(self.model, json.dumps(self.model_kwargs, sort_keys=True), self.img_size, self.no_skip)
        if problem:
            raise ValueError(problem)
        _check_optimizer(self.opt)
        _check_rand_augment(self.rand_augment)
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
        _refuse_unknown(values)
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


# fields that may differ between the config a run was started with and the one resuming it: where and how
# fast it runs, never what it computes
RESUME_MUTABLE = frozenset({"num_workers", "progress", "device", "threads", "output_dir", "data_root", "cache_dir",
                            "download", "log_to", "keep_checkpoints"})


def config_differences(saved: dict[str, Any], cfg: TrainConfig) -> set[str]:
    """The fields that determine results on which a saved config (any earlier version's) differs from `cfg`;
    a field the saved config lacks was added later, and the run used its default."""
    old, defaults = upgrade_config(saved), TrainConfig().to_dict()
    return {k for k, v in cfg.to_dict().items() if k not in RESUME_MUTABLE and old.get(k, defaults[k]) != v}


def _refuse_unknown(values: dict[str, Any], where: str = "") -> None:
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown config fields {unknown}{where}; see `python -m sarlib.train --help`")


def flag(name: str) -> str:
    """The command-line flag of a field, without its dashes."""
    return name.replace("_", "-")


def _or(choices: Sequence[Any]) -> str:
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _installed(package: str) -> bool:
    return package in sys.modules or importlib.util.find_spec(package) is not None


@functools.cache
def field_types() -> dict[str, tuple[type, bool]]:
    """field -> (scalar type, None allowed?) from the dataclass annotations (strings under `from __future__`)."""
    out = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        kind = args[0] if optional else hint
        out[name] = (dict if typing.get_origin(kind) is dict else kind, optional)
    return out


def _has_type(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, kind)


def describe_values(f: dataclasses.Field) -> str:
    """What a valid value of field `f` is, as `validate()` says it and `--help` shows it: "an integer >= 1 or
    None (all images)", "'cosine' or 'constant'"."""
    kind, optional = field_types()[f.name]
    meta = f.metadata
    if meta["range"] is not None:
        text = meta["range"].describe(kind is int)
    elif meta["choices"] is not None:
        text = _or(meta["choices"])
    else:
        text = ("an " if kind.__name__[0] in "aeiou" else "a ") + kind.__name__
    if optional:
        text += " or None" + (f" ({meta['none']})" if meta["none"] else "")
    if meta["note"]:
        text += f" ({meta['note']})"
    return text


def _check_field(f: dataclasses.Field, value: Any) -> None:
    """Type, finiteness, choices and range of one field, as its declaration states them."""
    kind, optional = field_types()[f.name]
    meta, name = f.metadata, f.name
    if value is None and optional:
        return
    if not _has_type(value, kind):
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        expected = f"{article} {kind.__name__}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {expected}; got {value!r} (a {type(value).__name__}) (--{flag(name)})")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{name} must be finite ({describe_values(f)}); got {value!r} (--{flag(name)})")
    if name == "log_to":  # the one field that takes several choices at once
        loggers = [item for item in value.split(",") if item]
        if any(item not in meta["choices"] for item in loggers) or len(set(loggers)) != len(loggers):
            raise ValueError(f"log_to must be empty or a comma-separated choice of {', '.join(meta['choices'])}; "
                             f"got {value!r} (--log-to {','.join(meta['choices'])})")
        return
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"{name} must be {describe_values(f)}; got {value!r} (--{flag(name)})")
    if meta["range"] is not None and value not in meta["range"]:
        raise ValueError(f"{name} must be {describe_values(f)}; got {value!r} (--{flag(name)})")


def kept_epochs(text: str) -> list[int]:
    """The epochs `keep_checkpoints` names ("5,10,50" -> [5, 10, 50]), each a finished-epoch count >= 1, once."""
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    if not all(item.isdigit() and int(item) >= 1 for item in items) or len(set(map(int, items))) != len(items):
        raise ValueError(f"keep_checkpoints must be distinct epochs >= 1, comma-separated, e.g. 5,10,50; got {text!r} "
                         "(--keep-checkpoints)")
    return sorted(int(item) for item in items)


def _check_model_kwargs(kwargs: dict[str, Any]) -> None:
    dim, heads = kwargs.get("embed_dim"), kwargs.get("num_heads")
    if isinstance(dim, int) and isinstance(heads, int) and heads > 0 and dim % heads:
        lower, upper = dim // heads * heads, (dim // heads + 1) * heads
        raise ValueError(
            f"model_kwargs embed_dim={dim} is not divisible by num_heads={heads}; use a multiple of "
            f"num_heads such as {lower or upper} or {upper} (--model-kwargs '{{\"embed_dim\": {upper}, ...}}')"
        )


@functools.lru_cache(maxsize=256)
def _unbuildable(model: str, kwargs_json: str, img_size: int, no_skip: bool) -> str | None:
    """Why the run's model cannot be built, or None: it is built here on the meta device (shapes only, no
    memory, about as long as a config takes to read), so a bad --model-kwargs (patch_size 0, depth "two",
    an argument the model does not take) fails with the other fields, not after the run directory exists.
    Cached: planning a study validates the same few models many times."""
    kwargs = json.loads(kwargs_json)
    try:
        with torch.device("meta"):
            if model in CNN_MODELS:
                create_cnn(model, num_classes=10, **kwargs)
            else:  # the head's size does not change what builds
                create_model(model, num_classes=10, img_size=img_size, no_skip=no_skip, **kwargs)
    except ValueError as err:  # the builders' own one-line messages, which name the fix
        return f"{' '.join(str(err).split())} (--model-kwargs, --img-size)"
    except Exception as err:  # noqa: BLE001 - timm and torch signal bad shapes with many exception types
        what = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        return (f"{model} cannot be built with model_kwargs {kwargs} at img_size {img_size}: {what} "
                "(--model-kwargs, --img-size)")
    return None


def _check_optimizer(name: str) -> None:
    # timm's names, optionally behind its "lookahead_" wrapper, as timm.optim.create_optimizer_v2 reads them
    known = timm.optim.list_optimizers()
    if name.lower().removeprefix("lookahead_") not in known:
        close = difflib.get_close_matches(name.lower(), known, n=3)
        raise ValueError(f"opt must be a timm optimizer name{f' such as {_or(close)}' if close else ' (adamw, sgd, ...)'}"
                         f"; got {name!r} (--opt)")


def _check_rand_augment(spec: str) -> None:
    # timm's own parser, run once here rather than at the first training batch (it builds no images)
    try:
        rand_augment_transform(spec, {})
    except Exception as err:  # noqa: BLE001 - its parser signals a bad spec with asserts and KeyErrors
        detail = f": {err}" if str(err) else ""
        raise ValueError(f"rand_augment must be a timm RandAugment spec such as 'rand-m9-mstd0.5-inc1'; got "
                         f"{spec!r}{detail} (--rand-augment)") from None


def _check_datasets(dataset: str) -> None:
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


def _dataset_family(name: str, dataset: str) -> tuple[str | None, dict[str, Any]]:
    """(the key of profile `name`'s DATASET_CONFIG that covers `dataset`, its fields); (None, {}) if none."""
    families = getattr(importlib.import_module(f"sarlib.profiles.{name}"), "DATASET_CONFIG", {})
    keys = [k for k in families if dataset == k or dataset.startswith(k + "-")]
    if not keys:
        return None, {}
    key = max(keys, key=len)
    return key, dict(families[key])


def dataset_config(name: str, dataset: str) -> dict[str, Any]:
    """The fields profile `name` sets for `dataset`'s family (its `DATASET_CONFIG`), e.g. the cpu profile's
    recipe for every `fashion-mnist*` set: a key matches the dataset itself or the names it prefixes."""
    return _dataset_family(name, dataset)[1]


def _defaults() -> dict[str, Any]:
    return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            for f in dataclasses.fields(TrainConfig)}


def resolve_config(profile: str, layers: Sequence[tuple[str, dict[str, Any]]] = ()
                   ) -> tuple[TrainConfig, dict[str, str]]:
    """The config of profile `profile` with `layers` on top, and for each field the layer that set it.

    The order, later winning: the field's default ("default"), the profile's CONFIG ("profile cpu"), the
    profile's DATASET_CONFIG for the dataset the final layers choose ("profile cpu, dataset
    fashion-mnist"), then each `(name, fields)` of `layers` in order (e.g. ("config run.json", ...),
    ("command line", ...); the study's ("study base", ...), ("arm sar", ...), ("run", ...)). Fields of
    an earlier version (RENAMED_FIELDS) are read under today's names; an unknown field is refused in one
    line naming its layer.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} (--profile)")
    base = importlib.import_module(f"sarlib.profiles.{profile}").CONFIG
    layers = [(name, upgrade_config(fields)) for name, fields in layers]
    for name, fields in layers:
        _refuse_unknown(fields, f" in {name}")
    dataset = next((fields["dataset"] for _, fields in reversed(layers) if "dataset" in fields),
                   base.get("dataset", TrainConfig.dataset))
    family, family_fields = _dataset_family(profile, dataset)
    steps = [("default", _defaults()), (f"profile {profile}", {**base, "profile": profile})]
    if family_fields:
        steps.append((f"profile {profile}, dataset {family}", family_fields))
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, fields in [*steps, *layers]:
        for key, value in fields.items():
            # a copy: a profile's dicts (model_kwargs) are module-level and must not be shared by configs
            values[key], source[key] = copy.deepcopy(value), name
    return TrainConfig.from_dict(values), source


def load_profile(name: str, **overrides: Any) -> TrainConfig:
    """The profile's config, then the profile's fields for the chosen dataset (`dataset_config`), then
    `overrides` on top (`resolve_config` with one layer)."""
    return resolve_config(name, [("overrides", overrides)])[0]
