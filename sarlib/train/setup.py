"""Everything a run trains with, built once from its config: the model (with its fine-tuning source),
optimizer, lr schedule, gradient scaler, EMA, mixup, loss and regularizer (DeiT's main() set-up)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3

from ..models.checkpoint import load_init_weights
from ..models.cnn import CNN_MODELS, create_cnn, has_cls_attention
from ..models.vit import create_model, patch_grid
from ..sar.regularizers import REGULARIZERS
from ..utils.files import human_bytes
from ..utils.memory import physical_memory
from .config import TrainConfig
from .distributed import DistInfo
from .lr import EpochLRSchedule

__all__ = ["Parts", "build_model", "build_parts", "check_model_fits", "loss_fn"]


@dataclass
class Parts:
    """What one optimization step touches, built once per run (DeiT passes these one by one)."""

    model: torch.nn.Module  # the bare model: state dicts, EMA and evaluation use it
    net: torch.nn.Module  # what the step runs: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: EpochLRSchedule
    scaler: torch.amp.GradScaler
    ema: ModelEmaV3 | None
    mixup: Mixup | None
    criterion: torch.nn.Module
    regularize: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor] | None  # None: the arm has no SAR term
    grid: tuple[int, int] | None  # the patch grid; None for a model without [CLS] attention (a CNN)
    amp: Callable[[], Any]  # a fresh autocast context (or a null one) per forward
    device: torch.device
    clip_grad: float | None = None
    shift: int = 0  # max translation of --augment shift, applied per batch on the device (0: off)


def loss_fn(cfg: TrainConfig, mixup_on: bool) -> torch.nn.Module:
    if mixup_on:
        return SoftTargetCrossEntropy()
    return LabelSmoothingCrossEntropy(cfg.smoothing) if cfg.smoothing > 0 else torch.nn.CrossEntropyLoss()


def build_model(cfg: TrainConfig, num_classes: int, *, report: Callable[[str], None] | None = None) -> torch.nn.Module:
    """The run's model; with an init checkpoint, `report` gets the one-line summary of what was loaded."""
    if cfg.model in CNN_MODELS:  # the reference arm: no patches, no [CLS], no drop-path
        model = create_cnn(cfg.model, num_classes=num_classes, **cfg.model_kwargs)
    else:
        model = create_model(cfg.model, num_classes=num_classes, img_size=cfg.img_size, no_skip=cfg.no_skip,
                             drop_path_rate=cfg.drop_path, **cfg.model_kwargs)
    if cfg.init_checkpoint:
        summary = load_init_weights(model, cfg.init_checkpoint)
        if report is not None:
            report(summary)
    return model


# bytes per parameter a training step holds at least: float32 weights, gradients and AdamW's two moments
_BYTES_PER_PARAMETER = 16


def check_model_fits(cfg: TrainConfig, num_classes: int) -> None:
    """Refuse, in one line and before anything is written, a model whose weights, gradients and optimizer
    state alone exceed the memory of the device it would train on (counted on the meta device: no memory
    is allocated)."""
    shape_only = {k: v for k, v in cfg.model_kwargs.items() if k != "pretrained"}  # the size, not the download
    with torch.device("meta"):
        model = build_model(cfg.replace(init_checkpoint=None, model_kwargs=shape_only), num_classes)
    params = sum(p.numel() for p in model.parameters())
    need = params * _BYTES_PER_PARAMETER * (2 if cfg.model_ema else 1)
    gpu = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    have = torch.cuda.mem_get_info()[1] if gpu and torch.cuda.is_available() else physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"{cfg.model} with {cfg.model_kwargs or 'its defaults'} has {params:,} parameters: its weights, gradients "
            f"and optimizer state alone take {human_bytes(need)}, more than this {'GPU' if gpu else 'machine'}'s "
            f"{human_bytes(have)}; choose smaller --model-kwargs (embed_dim, depth) or another --model")


def build_parts(cfg: TrainConfig, info: DistInfo, num_classes: int, *, resuming: bool) -> Parts:
    """The run's parts on its device; a resumed run gets its weights from its own checkpoint, so the
    fine-tuning source is not read again."""
    report = (lambda line: print(line, file=sys.stderr, flush=True)) if info.is_main else None
    model = build_model(cfg.replace(init_checkpoint=None) if resuming else cfg, num_classes, report=report)
    model = model.to(info.device)
    lr = cfg.lr * (cfg.batch_size * info.world_size) / 512  # DeiT: linear in the global batch
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=lr, weight_decay=cfg.weight_decay)
    scheduler = EpochLRSchedule(optimizer, epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
                                warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, step=cfg.lr_step)
    use_amp = cfg.amp and info.device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    mixup_on = cfg.mixup > 0 or cfg.cutmix > 0
    return Parts(
        model=model, net=model, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
        ema=ModelEmaV3(model, decay=cfg.model_ema_decay) if cfg.model_ema else None,
        mixup=Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                    num_classes=num_classes) if mixup_on else None,
        criterion=loss_fn(cfg, mixup_on), regularize=REGULARIZERS.get(cfg.regularizer),
        grid=patch_grid(model) if has_cls_attention(model) else None,
        amp=(lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext, device=info.device,
        clip_grad=cfg.clip_grad,
        shift=max(1, cfg.img_size // 8) if cfg.augment == "shift" else 0,
    )
