"""Every per-image score of a model on one in-memory test set, in one forward pass per batch.

The robustness target scores each model on dozens of corrupted copies of the same images; the separate
evaluators (`evaluate`, `attention_stats`, `evaluate_jaccard`) would run the model three times per copy.
Here one pass gives top-1, the spatial entropy and regions of every [CLS] map, and the Jaccard of the
attention against the (clean) object masks, each computed exactly as those evaluators do: the entropy is
the SAR loss without gradient, the regions the same component count, and the Jaccard DINO's protocol
(per head the smallest patch set holding `mass` of the attention, the best head per object), vectorized
for masks that hold one object per image (tests compare it with `object_jaccard`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..models.cnn import has_cls_attention
from ..models.vit import forward_with_attention, patch_grid
from ..sar.entropy import spatial_entropy
from .attention import region_counts
from .jaccard import top_mass_masks

__all__ = ["single_object_jaccard", "score_images"]


def single_object_jaccard(keep: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """keep: bool (B, heads, H, W) attention masks at the mask resolution; objects: (B, H, W) ids, 0
    background, 1 the object. -> (B,) best IoU over heads, NaN for an image without object pixels."""
    obj = (objects > 0).unsqueeze(1)
    inter = (keep & obj).flatten(2).sum(-1).float()
    union = (keep | obj).flatten(2).sum(-1).clamp_min(1).float()
    best = (inter / union).amax(dim=1)
    return torch.where(obj.flatten(1).any(-1), best, torch.full_like(best, float("nan")))


@torch.no_grad()
def score_images(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None, *,
                 batch_size: int = 256, mass: float = 0.6, device: torch.device | str = "cpu",
                 predict: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """Mean top-1 (%), entropy, regions and Jaccard of `model` on `images` (N, 3, S, S) with `labels` (N,)
    and one-object `masks` (N, S, S) or None. A model without [CLS] attention (the CNN) gets NaN for the
    attention scores; so does the Jaccard without masks. `predict` turns logits into labels (default: the
    argmax; ImageNet-A's protocol takes it over its 200 classes)."""
    predict = predict or (lambda logits: logits.argmax(-1))
    if masks is not None and int(masks.max()) > 1:
        raise ValueError("score_images scores one object per image (mask ids 0 and 1); use evaluate_jaccard for "
                         "masks with several objects")
    model.eval()
    attention = has_cls_attention(model)
    grid = patch_grid(model) if attention else None
    sums = dict(top1=0.0, entropy=0.0, regions=0.0, jaccard=0.0)
    maps = scored = 0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device)
        if not attention:
            sums["top1"] += float((predict(model(x)) == y).sum())
            continue
        logits, cls_logits = forward_with_attention(model, x)
        sums["top1"] += float((predict(logits) == y).sum())
        sums["entropy"] += float(spatial_entropy(cls_logits, grid, reduction="none").sum())
        sums["regions"] += float(region_counts(cls_logits, grid).sum())
        maps += cls_logits.shape[0] * cls_logits.shape[1]
        if masks is not None:
            m = masks[start:start + batch_size].to(device)
            # softmax over the patches alone: top_mass_masks renormalizes, so this is the set DINO's maps give
            attn = cls_logits.float().softmax(-1).view(*cls_logits.shape[:2], *grid)
            keep = F.interpolate(top_mass_masks(attn, mass).float(), size=m.shape[-2:], mode="nearest").bool()
            iou = single_object_jaccard(keep, m)
            valid = ~iou.isnan()
            sums["jaccard"] += float(iou[valid].sum())
            scored += int(valid.sum())
    nan = float("nan")
    return dict(
        top1=100.0 * sums["top1"] / len(images),
        entropy=sums["entropy"] / maps if maps else nan,
        regions=sums["regions"] / maps if maps else nan,
        jaccard=sums["jaccard"] / scored if scored else nan,
    )
