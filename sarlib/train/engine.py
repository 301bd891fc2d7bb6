"""One epoch of training and one evaluation, as small functions (DeiT's engine.py): `train_step` is the
step every epoch and the step-overhead benchmark run, `train_one_epoch` the loop over a loader, and
`evaluate` / `evaluate_all` the accuracy and mechanism metrics of an evaluation epoch."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm  # plain bars: a notebook kernel needs no widgets for them

from ..data.transforms import random_shift
from ..metrics.attention import attention_stats
from ..metrics.jaccard import evaluate_jaccard
from ..models.cnn import has_cls_attention
from ..models.vit import forward_with_attention
from .config import TrainConfig
from .distributed import DistInfo
from .setup import Parts

__all__ = ["NonFiniteLossError", "evaluate", "evaluate_all", "train_one_epoch", "train_step"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message says what to change and what is kept."""


def train_step(parts: Parts, images: torch.Tensor, targets: torch.Tensor, lam: float):
    """One optimization step: forward with the [CLS] logits, CE (+ lam * the regularizer), backward, step.

    Returns (loss, ce, reg, finite) as detached tensors, reg and finite None without a regularizer.
    """
    images, targets = images.to(parts.device, non_blocking=True), targets.to(parts.device, non_blocking=True)
    if parts.shift:
        images = random_shift(images, parts.shift)
    if parts.mixup is not None:
        images, targets = parts.mixup(images, targets)
    with parts.amp():
        if parts.grid is None:  # a model without [CLS] attention (the CNN arm) has no regularizer either
            logits, cls_logits = parts.net(images), None
        else:
            logits, cls_logits = forward_with_attention(parts.net, images)
        ce = parts.criterion(logits, targets)
    loss = ce.float()
    reg = finite = None
    if parts.regularize is not None:
        reg = parts.regularize(cls_logits, parts.grid)
        finite = torch.isfinite(reg)
        # as the reference: a non-finite regularizer skips the term for this step (and is counted)
        reg = torch.where(finite, reg, torch.zeros_like(reg))
        loss = loss + lam * reg
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    if parts.clip_grad:
        parts.scaler.unscale_(parts.optimizer)
        torch.nn.utils.clip_grad_norm_(parts.model.parameters(), parts.clip_grad)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    if parts.ema is not None:
        parts.ema.update(parts.model)
    return loss.detach(), ce.detach().float(), None if reg is None else reg.detach(), finite


def train_one_epoch(parts: Parts, loader, *, epoch: int, lam: float, info: DistInfo, run_dir: Path,
                    max_steps: int | None = None, show: bool = False, epochs: int | None = None) -> dict[str, Any]:
    """Train one epoch; returns its mean loss, CE and SAR term (averaged over processes), the steps the
    regularizer was skipped, and its training time and images/s.

    `show` draws a per-step bar on rank 0 that disappears when the epoch ends (the run's per-epoch line
    stays instead); it is numbered like that line, from 1, out of `epochs` when given."""
    parts.net.train()
    sums = torch.zeros(4, device=parts.device, dtype=torch.float64)  # loss, ce, reg, reg skips
    steps = images_seen = 0
    start = time.perf_counter()
    total_steps = len(loader) if max_steps is None else min(len(loader), max_steps)
    desc = f"epoch {epoch + 1}" + (f"/{epochs}" if epochs else "")
    bar = tqdm(total=total_steps, desc=desc, disable=not (show and info.is_main), leave=False)
    for images, targets in loader:
        if steps == total_steps:
            break
        loss, ce, reg, finite = train_step(parts, images, targets, lam)
        if reg is not None:
            sums[2] += reg
            sums[3] += (~finite).double()
        sums[0] += loss
        sums[1] += ce
        steps += 1
        images_seen += images.shape[0] * info.world_size
        if steps % 50 == 0:
            raise_if_not_finite(sums[0], epoch, steps, run_dir)
            bar.set_postfix(loss=f"{float(sums[0]) / steps:.3f}")
        bar.update()
    bar.close()
    if info.enabled:
        dist.all_reduce(sums)
        sums /= info.world_size
        sums[3] *= info.world_size  # skips are counted, not averaged
    raise_if_not_finite(sums[0], epoch, steps, run_dir)
    seconds = time.perf_counter() - start
    return {
        "loss": float(sums[0]) / max(steps, 1),
        "ce": float(sums[1]) / max(steps, 1),
        "reg_term": float(sums[2]) / max(steps, 1) if parts.regularize else None,
        "reg_skips": int(sums[3]),
        "epoch_seconds": seconds,
        "images_per_s": images_seen / seconds if seconds > 0 else None,
    }


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


def evaluate_all(model, ema, loaders: dict[str, Any], cfg: TrainConfig, info: DistInfo, amp, *,
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
        attention = has_cls_attention(model)  # a CNN has no [CLS] maps: its mechanism columns stay empty
        if last and attention:
            result.update(attention_stats(model, loaders["val"], device=info.device, amp=amp))
        if loaders["seg"] is not None and attention:
            result["jaccard"] = evaluate_jaccard(model, loaders["seg"], device=info.device, mass=cfg.seg_mass,
                                                 max_images=cfg.seg_max_images, protocol=cfg.seg_protocol)
    if info.enabled:
        box = [result]
        dist.broadcast_object_list(box, src=0)
        result = box[0]
    return result


def raise_if_not_finite(loss_sum: torch.Tensor, epoch: int, step: int, run_dir: Path) -> None:
    value = float(loss_sum)
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"training loss became {value} in epoch {epoch} (step {step}): lower --lr, set --clip-grad 1.0, or "
            f"try --amp-dtype bfloat16 / --no-amp; epochs before {epoch} are safe in {run_dir / 'checkpoint.pth'}"
        )
