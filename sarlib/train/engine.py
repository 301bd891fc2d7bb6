"""Training and evaluation of one run: the DeiT recipe through timm's own pieces, plus the SAR term.

`train(cfg)` is the whole protocol; it writes into `cfg.output_dir`:
    .lock            held (flock) by the process training the run: a second one is refused or waits
    config.json      the resolved config, written once set-up succeeded
    log.jsonl        one JSON line per epoch (losses, SAR term, lambda, lr, accuracy, Jaccard, speed)
    checkpoint.pth   after every epoch, written atomically; a new call on the same directory resumes
    metrics.json     the final summary; its presence marks the run complete (a rerun returns it)

Resuming restores model, optimizer, scheduler, scaler, EMA and every RNG, and data order depends only
on (seed, epoch), so on CPU a run killed mid-epoch and restarted ends with the same metrics as one that
was never interrupted. A run directory is never resumed under a different config: the saved
config.json, or the config stored in the checkpoint when config.json is missing, must match.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, Mixup, create_transform
from timm.layers import resample_abs_pos_embed
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision import transforms as T
from tqdm import tqdm  # plain bars: a notebook kernel needs no widgets for them

from .config import TrainConfig
from ..data.datasets import DATASETS, build_dataset, build_segmentation_dataset
from .distributed import DistInfo, cleanup_distributed, init_distributed
from ..utils.files import LockHeldError, append_text, atomic_torch_save, atomic_write_text, hold_lock, read_json
from ..metrics.attention import attention_stats
from ..models.vit import create_model, forward_with_attention, patch_grid, unwrap
from ..sar.regularizers import REGULARIZERS
from ..data.samplers import RepeatedAugSampler
from ..sar.schedule import EpochLRSchedule, sar_weight
from ..metrics.jaccard import evaluate_jaccard
from ..data.transforms import NamedCompose, build_transforms

__all__ = ["train", "evaluate", "load_trained_model", "lock_run_dir", "wait_for_run", "NonFiniteLossError",
           "RunDirectoryError", "RunLockedError", "CheckpointError"]

CHECKPOINT = "checkpoint.pth"
METRICS = "metrics.json"
LOG = "log.jsonl"
CONFIG = "config.json"
LOCK = ".lock"
# fields that may differ between the saved config of a run and the one resuming it
_RESUME_MUTABLE = {"num_workers", "progress", "device", "threads", "output_dir", "data_root", "cache_dir", "download"}


class NonFiniteLossError(RuntimeError):
    pass


class RunDirectoryError(RuntimeError):
    pass


class RunLockedError(RunDirectoryError):
    """Another live process trains in the run directory; `holder` names it ("PID 123 on host x")."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        super().__init__(message)
        self.holder = holder


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file, what is wrong and the fix."""


# ----------------------------------------------------------------------------- data


def _is_synthetic(name: str) -> bool:
    return not DATASETS[name].needs_root if name in DATASETS else False


def _stratified_subset(dataset, fraction: float, seed: int):
    """The same class-balanced `fraction` of the training set for every arm that shares `seed`."""
    if fraction >= 1.0:
        return dataset
    targets = torch.as_tensor(list(dataset.targets) if not torch.is_tensor(dataset.targets) else dataset.targets)
    gen = torch.Generator().manual_seed(10_007 + seed)
    keep = []
    for c in targets.unique():
        idx = (targets == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        keep.append(idx[: max(1, round(fraction * len(idx)))])
    subset = Subset(dataset, torch.cat(keep).sort().values.tolist())
    subset.num_classes = dataset.num_classes
    return subset


def _train_eval_subset(cfg: TrainConfig, train_set, eval_tf):
    """A fixed, un-augmented slice of the training set: training accuracy shows whether the model fits.

    The slice is the same for every arm and seed of a dataset (a permutation seeded by a constant), so
    train top-1 compares like for like. Real datasets are re-opened with the eval transform.
    """
    if cfg.train_eval_images <= 0:
        return None
    if not _is_synthetic(cfg.dataset):
        # same files, eval transform (no RandAugment / erasing); the subset indices below still apply
        plain = build_dataset(cfg.dataset, split="train", transform=eval_tf, root=cfg.data_root,
                              cache_dir=cfg.cache_dir)
        plain = _stratified_subset(plain, cfg.train_fraction, cfg.seed)
    else:
        plain = train_set  # synthetic sets yield un-augmented tensors; the shift is applied per batch
    order = torch.randperm(len(plain), generator=torch.Generator().manual_seed(0))
    return Subset(plain, order[: cfg.train_eval_images].tolist())


def build_loaders(cfg: TrainConfig, info: DistInfo):
    """(train, val, train-eval or None, num_classes) loaders for one process."""
    train_tf, eval_tf = build_transforms(cfg)
    common = dict(root=cfg.data_root, cache_dir=cfg.cache_dir)
    train_set = build_dataset(cfg.dataset, split="train", transform=train_tf, download=cfg.download, **common)
    val_set = build_dataset(cfg.dataset, split="val", transform=eval_tf, download=cfg.download, **common)
    if _is_synthetic(cfg.dataset):
        size = train_set.config.img_size if hasattr(train_set, "config") else None
        if size is not None and size != cfg.img_size:
            raise ValueError(f"{cfg.dataset} images are {size}x{size} but img_size={cfg.img_size}; set --img-size {size}")
        if cfg.augment == "deit":
            raise ValueError("synthetic sets yield tensors; use --augment shift or --augment none with them")
    num_classes = train_set.num_classes
    train_set = _stratified_subset(train_set, cfg.train_fraction, cfg.seed)
    # One sampler for every world size: with one replica it is a seeded per-epoch shuffle, and with N
    # replicas each rank takes every N-th index of the same permutation, so the global batch is the same.
    # Repeated augmentation (DeiT) keeps those semantics and the (seed, epoch) determinism.
    if cfg.repeated_aug > 1:
        sampler = RepeatedAugSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                     num_repeats=cfg.repeated_aug, seed=cfg.seed)
    else:
        sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
    if len(train_set) < cfg.batch_size * info.world_size:
        raise ValueError(f"training set has {len(train_set)} images, fewer than one global batch "
                         f"({cfg.batch_size} x {info.world_size}); lower --batch-size")
    loader_kw = dict(num_workers=cfg.num_workers, pin_memory=info.device.type == "cuda",
                     persistent_workers=cfg.num_workers > 0)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **loader_kw)
    val_loader = DataLoader(val_set, batch_size=2 * cfg.batch_size, shuffle=False, **loader_kw)
    train_eval_set = _train_eval_subset(cfg, train_set, eval_tf)
    train_eval_loader = None if train_eval_set is None else DataLoader(
        train_eval_set, batch_size=2 * cfg.batch_size, shuffle=False, num_workers=cfg.num_workers)
    return train_loader, val_loader, train_eval_loader, num_classes


def build_segmentation_loader(cfg: TrainConfig, *, void_as_background: bool = False):
    """Loader of (image, mask) for the run's segmentation set under `cfg.seg_protocol`, or None when
    the run has no segmentation set. "dino": object masks, images at the model's input size; "authors":
    class masks, images at the mask size (480x480 for VOC: bilinear resize, ToTensor, ImageNet
    normalization, as the authors' evaluation)."""
    name = cfg.seg_dataset or (cfg.dataset if DATASETS[cfg.dataset].has_masks else None)
    if name is None:
        return None
    if _is_synthetic(name):
        tf = None
    elif cfg.seg_protocol == "authors":
        tf = NamedCompose([T.ToTensor(), T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)])
    else:
        # real images are resized (not cropped) to the model's input so every ground-truth pixel is scored
        tf = NamedCompose(create_transform(cfg.img_size, is_training=False, interpolation="bicubic",
                                           crop_pct=1.0).transforms)
    seg_set = build_segmentation_dataset(name, root=cfg.data_root, transform=tf, cache_dir=cfg.cache_dir,
                                         void_as_background=void_as_background,
                                         masks="class" if cfg.seg_protocol == "authors" else "object")
    return DataLoader(seg_set, batch_size=64, shuffle=False, num_workers=min(cfg.num_workers, 4))


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (zero padding): cheap, label-preserving augmentation."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,))
    dx = torch.randint(0, 2 * max_shift + 1, (n,))
    rows = (dy.view(n, 1) + torch.arange(h)).to(images.device)  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w)).to(images.device)  # (n, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- model


def _first_sentence(err: BaseException, limit: int = 100) -> str:
    """The start of an error's message, for one-line errors that wrap it."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[:limit] + "..."


# Checkpoints written before the RNG state was stored as plain values hold numpy's MT19937 state as an
# ndarray. Exactly the globals that rebuild such an array are allowed, and only when resuming a run.
_LEGACY_RNG_GLOBALS = [np.ndarray, np.dtype, np.dtypes.UInt32DType,
                       getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct]


def _unsafe_globals(path: Path, err: BaseException) -> list[str]:
    """The callables a pickle would need beyond tensors and plain values (empty for a damaged file)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a legacy (non-zip) pickle or a damaged file: torch's message names the global
        return re.findall(r"GLOBAL ([\w.]+)", str(err))


def _load_checkpoint(path: Path, *, fix: str, needs: tuple[str, ...] = (), resume: bool = False) -> dict[str, Any]:
    """torch.load a checkpoint into a dict with weights_only=True, so no file can run code; any unreadable
    or refused file raises CheckpointError naming it and `fix`. `resume`: our own run checkpoint, which
    may hold a numpy RNG state (see _LEGACY_RNG_GLOBALS)."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); {fix}")
    try:
        with torch.serialization.safe_globals(_LEGACY_RNG_GLOBALS) if resume else nullcontext():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports truncation, garbage and refused globals through many types
        unsafe = _unsafe_globals(path, err)
        if unsafe:
            raise CheckpointError(
                f"{path} needs {', '.join(unsafe[:3])} to load, which could run code, so it is refused (only "
                f"tensors and plain values are read); {fix}") from None
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({_first_sentence(err)}); {fix}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict; {fix}")
    missing = [k for k in needs if k not in obj]
    if missing:
        raise CheckpointError(f"{path} is not a sarlib training checkpoint (no {', '.join(missing)} entries); {fix}")
    return obj


# wrappers whose prefixes are stripped from fine-tuning checkpoints: DDP, torch.compile, Lightning-style
_PREFIXES = ("module.", "_orig_mod.", "model.")
_HEADS = ("head.", "head_dist.")


def _state_dict_of(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def _strip_prefixes(state: dict[str, Any], own: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    out, stripped = {}, set()
    for key, value in state.items():
        while key not in own and key.startswith(_PREFIXES):
            prefix = next(p for p in _PREFIXES if key.startswith(p))
            stripped.add(prefix)
            key = key[len(prefix):]
        out[key] = value
    return out, stripped


def _load_init_weights(model: torch.nn.Module, path: str) -> str:
    """Fine-tuning start from a sarlib checkpoint or a state_dict; returns a one-line report.

    Wrapper prefixes are stripped; a classifier of another size is re-initialized and pos_embed is
    resampled to the model's grid. Every other weight of the model must be in the file with its shape,
    otherwise CheckpointError names the first mismatches.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"init checkpoint {path} does not exist; pass --init-checkpoint <file.pth>")
    fix = ("pass a checkpoint of the same architecture (a sarlib checkpoint.pth or a timm/DeiT state_dict); from a "
           "file you trust, load it yourself and save only its state_dict")
    own = model.state_dict()
    state, stripped = _strip_prefixes(_state_dict_of(_load_checkpoint(source, fix=fix)), own)
    notes = [f"stripped {' and '.join(repr(p) for p in sorted(stripped))}"] if stripped else []
    heads = [k for k in own if k.startswith(_HEADS)]
    if heads and not any(k in state for k in heads):
        notes.append("no classifier in the file: initialized")
    elif any(k in state and state[k].shape != own[k].shape for k in heads):
        old = next(state[k].shape[0] for k in heads if k in state)
        notes.append(f"classifier re-initialized ({old} -> {own['head.weight'].shape[0]} classes)")
        state = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    if "pos_embed" in state and "pos_embed" in own and state["pos_embed"].shape != own["pos_embed"].shape:
        before = tuple(state["pos_embed"].shape[1:2])
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], new_size=list(unwrap(model).patch_embed.grid_size),
            num_prefix_tokens=0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens)
        notes.append(f"pos_embed resampled ({before[0]} -> {own['pos_embed'].shape[1]} tokens)")
    missing = [k for k in own if k not in state and not k.startswith(_HEADS)]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        what = f"{len(missing)} of the model's {len(own)} weights are missing (e.g. {', '.join(missing[:3])})" if missing \
            else f"{len(wrong)} weights have other shapes (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} in the file, " \
                 f"{tuple(own[wrong[0]].shape)} in the model)"
        raise CheckpointError(f"{path} does not fit {type(unwrap(model)).__name__}: {what}; {fix}, with the same "
                              "--model and --model-kwargs")
    unused = sorted(set(state) - set(own))
    if unused:
        notes.append(f"{len(unused)} unused entries ignored (e.g. {', '.join(unused[:2])})")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    loaded = sum(1 for k in own if k in state)
    return f"init checkpoint {path}: loaded {loaded} of {len(own)} weights" + "".join(f"; {n}" for n in notes)


def build_model(cfg: TrainConfig, num_classes: int, *, report: Callable[[str], None] | None = None) -> torch.nn.Module:
    """The run's model; with an init checkpoint, `report` gets the one-line summary of what was loaded."""
    model = create_model(cfg.model, num_classes=num_classes, img_size=cfg.img_size, no_skip=cfg.no_skip,
                         drop_path_rate=cfg.drop_path, **cfg.model_kwargs)
    if cfg.init_checkpoint:
        summary = _load_init_weights(model, cfg.init_checkpoint)
        if report is not None:
            report(summary)
    return model


# ----------------------------------------------------------------------------- steps


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, amp: Any = nullcontext) -> dict[str, float]:
    """Top-1 / top-5 accuracy (%) over the whole loader."""
    model.eval()
    correct1 = correct5 = total = 0
    for images, targets in loader:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with amp():
            logits = model(images)
        top = logits.float().topk(min(5, logits.shape[-1]), dim=-1).indices
        hit = top == targets.view(-1, 1)
        correct1 += int(hit[:, 0].sum())
        correct5 += int(hit.any(dim=-1).sum())
        total += targets.numel()
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total}


def _rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values, so the checkpoint loads with weights_only=True."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]  # a tensor of keys, or an ndarray in checkpoints of older versions
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _saved_config(run_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """The config a run directory was started with: config.json, else the one stored in the checkpoint."""
    saved, ckpt = run_dir / CONFIG, run_dir / CHECKPOINT
    if saved.is_file():
        fix = (f"delete it and run again: the config is then read from {ckpt}" if ckpt.is_file()
               else "delete it (no epoch has finished in this run) and run again")
        return read_json(saved, fix=fix), saved
    if ckpt.is_file():
        stored = _load_checkpoint(ckpt, fix=f"delete {run_dir} to start the run over, or use another --output-dir",
                                  resume=True).get("config")
        if not isinstance(stored, dict):
            raise RunDirectoryError(f"{ckpt} has no {CONFIG} beside it and stores no config, so it cannot be "
                                    f"resumed safely; delete {run_dir} to start over, or use another --output-dir")
        return stored, ckpt
    return None


def _check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse a run directory that holds a run with another config (never resume under different flags)."""
    found = _saved_config(run_dir)
    if found is None:
        return
    old, source = found
    if source.name == CONFIG and not (run_dir / CHECKPOINT).is_file() and not (run_dir / METRICS).is_file():
        return  # set-up succeeded once but no epoch finished: nothing to resume, the new config replaces it
    # a field the saved config lacks was added later; the run used that field's default behaviour
    defaults = TrainConfig().to_dict()
    diff = {k for k, v in cfg.to_dict().items() if k not in _RESUME_MUTABLE and old.get(k, defaults[k]) != v}
    if diff:
        raise RunDirectoryError(
            f"{run_dir} holds a run with a different config ({', '.join(sorted(diff))} differ, per {source.name}); "
            "use another --output-dir, or delete that directory to start over"
        )


def _finished(cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    _check_run_dir(cfg, run_dir)
    return read_json(run_dir / METRICS, fix=f"delete it and run the same command again: the metrics are recomputed "
                                            f"from {run_dir / CHECKPOINT}")


@contextmanager
def lock_run_dir(run_dir: str | Path, *, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run directory's lock (creating the directory); RunLockedError if taken and not `wait`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(hold_lock(run_dir / LOCK, wait=wait, on_wait=on_wait))
        except LockHeldError as err:
            raise RunLockedError(
                f"{run_dir} is being trained by {err.holder}; wait for it to finish (the same command then "
                "reuses or resumes the run), stop that process, or use another --output-dir", holder=err.holder,
            ) from None
        yield


def wait_for_run(run_dir: str | Path, *, on_wait: Callable[[str], None] | None = None) -> None:
    """Return once no other process trains in `run_dir` (at once if none does); `on_wait(holder)` before waiting."""
    run_dir = Path(run_dir)
    if (run_dir / LOCK).is_file():
        with lock_run_dir(run_dir, wait=True, on_wait=on_wait):
            pass


@contextmanager
def _rank0_lock(run_dir: Path, info: DistInfo, wait: bool) -> Iterator[None]:
    """Rank 0 holds the run directory's lock for the whole run; every rank stops if it is taken."""
    with ExitStack() as stack:
        refusal = None
        if info.is_main:
            try:
                stack.enter_context(lock_run_dir(run_dir, wait=wait))
            except RunLockedError as err:
                refusal = err
        if info.enabled:
            box = [None if refusal is None else (str(refusal), refusal.holder)]
            dist.broadcast_object_list(box, src=0)
            if box[0] is not None and refusal is None:
                refusal = RunLockedError(*box[0])
        if refusal is not None:
            raise refusal
        yield


def _loss_fn(cfg: TrainConfig, mixup_on: bool) -> torch.nn.Module:
    if mixup_on:
        return SoftTargetCrossEntropy()
    return LabelSmoothingCrossEntropy(cfg.smoothing) if cfg.smoothing > 0 else torch.nn.CrossEntropyLoss()


# ----------------------------------------------------------------------------- the run


def train(cfg: TrainConfig, *, wait: bool = False) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one training run.

    Rank 0 holds the run directory's lock while it trains. If another process holds it, RunLockedError
    names that process, or with `wait=True` this call waits for it and then reuses (or resumes) the run.
    """
    run_dir = Path(cfg.output_dir)
    done = run_dir / METRICS
    if done.is_file():  # metrics.json is written last and atomically: no lock is needed to read it
        return _finished(cfg, run_dir)
    info = init_distributed(cfg.device)
    try:
        with _rank0_lock(run_dir, info, wait):
            if done.is_file():  # finished by the process this one waited for
                return _finished(cfg, run_dir)
            return _train(cfg, info, run_dir)
    finally:
        cleanup_distributed()


def _train(cfg: TrainConfig, info: DistInfo, run_dir: Path) -> dict[str, Any]:
    start_time = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _check_run_dir(cfg, run_dir)
    _seed_everything(cfg.seed + info.rank)
    device = info.device

    train_loader, val_loader, train_eval_loader, num_classes = build_loaders(cfg, info)
    seg_loader = build_segmentation_loader(cfg)
    # a resumed run gets its weights from its own checkpoint: the fine-tuning source is not read again
    resuming = (run_dir / CHECKPOINT).is_file()
    report = (lambda line: print(line, file=sys.stderr, flush=True)) if info.is_main else None
    model = build_model(cfg.replace(init_checkpoint=None) if resuming else cfg, num_classes, report=report).to(device)
    grid = patch_grid(model)
    global_batch = cfg.batch_size * info.world_size
    lr = cfg.lr * global_batch / 512
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay)
    scheduler = EpochLRSchedule(optimizer, epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
                                warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, step=cfg.lr_step)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def amp():
        return torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext()

    ema = ModelEmaV3(model, decay=cfg.model_ema_decay) if cfg.model_ema else None
    mixup_on = cfg.mixup > 0 or cfg.cutmix > 0
    mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                  num_classes=num_classes) if mixup_on else None
    criterion = _loss_fn(cfg, mixup_on)
    regularize = REGULARIZERS.get(cfg.regularizer)

    state = {"epoch": 0, "best_top1": -1.0, "best_epoch": -1, "history": []}
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.is_file():
        fix = "delete it to restart this run from epoch 0 (or use another --output-dir)"
        ckpt = _load_checkpoint(ckpt_path, fix=fix, needs=("model", "optimizer", "scheduler", "scaler", "state", "rng"),
                                resume=True)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            if ema is not None and ckpt.get("ema") is not None:
                ema.load_state_dict(ckpt["ema"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"{ckpt_path} does not fit this run's model or optimizer ({_first_sentence(err)}); {fix}") from None
        state = ckpt["state"]
        _set_rng_state(ckpt["rng"])
        if info.is_main:
            print(f"resuming {run_dir} after epoch {state['epoch']} of {cfg.epochs}", file=sys.stderr, flush=True)
    if info.is_main:
        cfg.save(run_dir / CONFIG)
        # the log is rewritten from the checkpoint's history: lines of an epoch that was killed vanish
        atomic_write_text(run_dir / LOG, "".join(json.dumps(r) + "\n" for r in state["history"]))

    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if info.enabled else model
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()

    for epoch in range(state["epoch"], cfg.epochs):
        train_loader.sampler.set_epoch(epoch)
        epoch_lr = scheduler.start_epoch(epoch)
        lam = sar_weight(epoch, cfg.epochs, cfg.reg_weight, cfg.reg_warmup, schedule=cfg.reg_schedule) if regularize else 0.0
        net.train()
        sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss, ce, reg, reg skips
        steps = images_seen = 0
        epoch_start = time.perf_counter()
        total_steps = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
        bar = tqdm(total=total_steps, desc=f"epoch {epoch}", disable=not (show and info.is_main), leave=False)
        for images, targets in train_loader:
            if steps == total_steps:
                break
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if cfg.augment == "shift":
                images = random_shift(images, max(1, cfg.img_size // 8))
            if mixup is not None:
                images, targets = mixup(images, targets)
            with amp():
                logits, cls_logits = forward_with_attention(net, images)
                ce = criterion(logits, targets)
            loss = ce.float()
            if regularize is not None:
                reg = regularize(cls_logits, grid)
                finite = torch.isfinite(reg)
                # as the reference: a non-finite regularizer skips the term for this step (and is counted)
                reg = torch.where(finite, reg, torch.zeros_like(reg))
                loss = loss + lam * reg
                sums[2] += reg.detach()
                sums[3] += (~finite).double()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            sums[0] += loss.detach()
            sums[1] += ce.detach().float()
            steps += 1
            images_seen += images.shape[0] * info.world_size
            if steps % 50 == 0:
                _raise_if_not_finite(sums[0], epoch, steps, run_dir)
                bar.set_postfix(loss=f"{float(sums[0]) / steps:.3f}")
            bar.update()
        bar.close()
        scheduler.end_epoch(epoch)  # "after_epoch" timing; before the checkpoint, so resume sees it
        if info.enabled:
            dist.all_reduce(sums)
            sums /= info.world_size
            sums[3] *= info.world_size  # skips are counted, not averaged
        _raise_if_not_finite(sums[0], epoch, steps, run_dir)
        seconds = time.perf_counter() - epoch_start
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": float(sums[0]) / max(steps, 1),
            "ce": float(sums[1]) / max(steps, 1),
            "reg": float(sums[2]) / max(steps, 1) if regularize else None,
            "reg_weight": lam,
            "reg_skips": int(sums[3]),
            "lr": epoch_lr,  # the lr this epoch trained at
            "epoch_seconds": seconds,
            "images_per_s": images_seen / seconds if seconds > 0 else None,
        }
        last = epoch == cfg.epochs - 1
        if last or (epoch + 1) % cfg.eval_every == 0:
            loaders = dict(val=val_loader, train_eval=train_eval_loader, seg=seg_loader if last else None)
            record.update(_evaluate_main(model, ema, loaders, cfg, info, amp, last=last))
            if record["top1"] > state["best_top1"]:
                state["best_top1"], state["best_epoch"] = record["top1"], epoch
        record["wall_seconds"] = time.perf_counter() - epoch_start  # training and evaluation
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if info.is_main:
            atomic_torch_save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "state": state, "rng": _rng_state(), "config": cfg.to_dict(),
            }, ckpt_path)
            append_text(run_dir / LOG, json.dumps(record) + "\n")
        if info.enabled:
            dist.barrier()

    final = state["history"][-1]
    metrics = {
        "top1_best": state["best_top1"], "best_epoch": state["best_epoch"], "top1_final": final["top1"],
        "top5_final": final["top5"], "jaccard": final.get("jaccard"), "top1_ema_final": final.get("top1_ema"),
        "train_top1_final": final.get("train_top1"), "entropy": final.get("entropy"),
        "regions": final.get("regions"), "reg_final": final.get("reg"),
        "jaccard_protocol": cfg.seg_protocol if final.get("jaccard") is not None else None,
        "epochs": cfg.epochs, "reg_skips": sum(r["reg_skips"] for r in state["history"]),
        "images_per_s": _median_or_none([r["images_per_s"] for r in state["history"]]),
        "train_seconds": sum(r["epoch_seconds"] for r in state["history"]),
        "wall_seconds": sum(r.get("wall_seconds", r["epoch_seconds"]) for r in state["history"]),
        "wall_seconds_this_process": time.time() - start_time,
        "world_size": info.world_size, "device": _device_name(device), "complete": True,
    }
    if info.is_main:
        atomic_write_text(run_dir / METRICS, json.dumps(metrics, indent=2) + "\n")
    return metrics


def _evaluate_main(model, ema, loaders: dict[str, Any], cfg: TrainConfig, info: DistInfo, amp, *,
                   last: bool) -> dict[str, Any]:
    """Computed on rank 0 over the full sets, then shared: test accuracy, training accuracy on the fixed
    slice, and on the last epoch the mechanism metrics (entropy, regions, Jaccard) on the test set."""
    result: dict[str, Any] = {}
    if info.is_main:
        result.update(evaluate(model, loaders["val"], info.device, amp))
        if loaders["train_eval"] is not None:
            result["train_top1"] = evaluate(model, loaders["train_eval"], info.device, amp)["top1"]
        if ema is not None:
            result["top1_ema"] = evaluate(ema.module, loaders["val"], info.device, amp)["top1"]
        if last:
            result.update(attention_stats(model, loaders["val"], device=info.device, amp=amp))
        if loaders["seg"] is not None:
            result["jaccard"] = evaluate_jaccard(model, loaders["seg"], device=info.device, mass=cfg.seg_mass,
                                                 max_images=cfg.seg_max_images, protocol=cfg.seg_protocol)
    if info.enabled:
        box = [result]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    return result


def _raise_if_not_finite(loss_sum: torch.Tensor, epoch: int, step: int, run_dir: Path) -> None:
    value = float(loss_sum)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"training loss became {value} in epoch {epoch} (step {step}): lower --lr, set --clip-grad 1.0, or "
            f"try --amp-dtype bfloat16 / --no-amp; epochs before {epoch} are safe in {run_dir / CHECKPOINT}"
        )


def _median_or_none(values: list[float | None]) -> float | None:
    """Median of the finite values; None (valid JSON, unlike NaN) when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def load_trained_model(run_dir: str | Path, *, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild a run's model from its config.json and checkpoint.pth, in eval mode, [CLS] capture on."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}: train it first (python -m sarlib.train --output-dir {run_dir})")
    fix = f"delete {run_dir} and train it again"
    found = _saved_config(run_dir)
    if found is None:
        raise RunDirectoryError(f"{run_dir} has no {CONFIG}; {fix}")
    cfg = TrainConfig.from_dict(found[0])
    ckpt = _load_checkpoint(run_dir / CHECKPOINT, fix=fix, needs=("model",), resume=True)
    num_classes = ckpt["model"]["head.weight"].shape[0]
    # the run's own weights replace any fine-tuning source, so that source is not read (it may be gone)
    model = build_model(cfg.replace(init_checkpoint=None), num_classes)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg
