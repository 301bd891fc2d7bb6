"""Mechanism metrics: what SAR is meant to change in the attention, measured for every model.

Accuracy is the outcome; these are the mechanism (spec section 7). On the last block's [CLS] maps of a
labelled test set, per (image, head) map:
    entropy   the spatial entropy itself (the SAR loss evaluated without gradient), 0 = one region
    regions   the number of 8-connected above-mean regions (the components the loss counts)
Both are averaged over images and heads. Jaccard against object masks lives in `segmentation.py`.
A baseline is measured exactly like a SAR model, so the two can be compared.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch

from ..sar.components import label_components
from ..sar.entropy import spatial_entropy
from ..models.vit import forward_with_attention, patch_grid

__all__ = ["region_counts", "attention_stats"]


def region_counts(logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, heads, P) pre-softmax logits -> (B, heads) number of above-mean 8-connected regions.

    A cell is the root of its component iff it carries its own label (1 + its row-major index), so
    counting roots counts components without a loop over maps.
    """
    b, heads, p = logits.shape
    x = logits.detach().float().reshape(b * heads, p)
    foreground = x > x.mean(dim=1, keepdim=True)
    labels = label_components(foreground.view(b * heads, *grid)).view(b * heads, p)
    own = torch.arange(1, p + 1, device=labels.device)
    return (labels == own).sum(dim=1).view(b, heads)


@torch.no_grad()
def attention_stats(model: torch.nn.Module, loader, *, device: torch.device,
                    amp: Callable[[], Any] = nullcontext, max_images: int | None = None) -> dict[str, float]:
    """Mean spatial entropy and mean regions per map over the (image, label) batches of `loader`."""
    model.eval()
    grid = patch_grid(model)
    entropy_sum = regions_sum = 0.0
    maps = images_seen = 0
    for images, _ in loader:
        if max_images is not None and images_seen >= max_images:
            break
        if max_images is not None:
            images = images[: max_images - images_seen]
        with amp():
            _, cls_logits = forward_with_attention(model, images.to(device, non_blocking=True))
        entropy_sum += float(spatial_entropy(cls_logits, grid, reduction="none").sum())
        regions_sum += float(region_counts(cls_logits, grid).sum())
        maps += cls_logits.shape[0] * cls_logits.shape[1]
        images_seen += images.shape[0]
    if maps == 0:
        raise ValueError("attention_stats got an empty loader: no test images to measure")
    return {"entropy": entropy_sum / maps, "regions": regions_sum / maps}
