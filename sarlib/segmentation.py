"""Attention segmentation with DINO's protocol (SPEC section 5).

Per head, keep the smallest set of patches that holds `mass` (60%) of the post-softmax [CLS] attention,
upsample it to the ground-truth resolution, and for each ground-truth object take the best IoU over
heads; average over objects, then over images. Void pixels (255) are excluded from both intersection
and union unless the dataset was built with void_as_background.

One deviation, for models trained at 224 (or 32) pixels: images are evaluated at the model's own
resolution and the patch masks upsampled to the mask resolution, instead of feeding 480x480 inputs with
interpolated position embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import cls_attention

__all__ = ["top_mass_masks", "object_jaccard", "evaluate_jaccard"]

VOID = 255


def top_mass_masks(attn: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """(..., h, w) attention -> bool masks of the smallest patch sets holding `mass` of each map."""
    flat = attn.flatten(-2)
    flat = flat / flat.sum(-1, keepdim=True)
    values, order = flat.sort(dim=-1, descending=True)
    before = values.cumsum(-1) - values  # mass strictly before each patch in descending order
    keep_sorted = before < mass  # include patches until `mass` is reached (the crossing patch too)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.view_as(attn)


def object_jaccard(head_masks: torch.Tensor, objects: torch.Tensor) -> torch.Tensor | None:
    """Mean over objects of the best IoU over heads, for one image.

    head_masks: bool (heads, H, W) at the mask resolution; objects: int (H, W), 0 background, 1..K
    objects, 255 void. Returns None when the image has no object.
    """
    valid = objects != VOID
    ids = [int(i) for i in objects.unique() if 0 < int(i) != VOID]
    if not ids:
        return None
    pred = head_masks & valid
    best = []
    for i in ids:
        obj = (objects == i)
        inter = (pred & obj).flatten(1).sum(-1)
        union = ((pred | obj) & valid).flatten(1).sum(-1)
        best.append((inter.float() / union.clamp_min(1).float()).max())
    return torch.stack(best).mean()


@torch.no_grad()
def evaluate_jaccard(model: torch.nn.Module, loader, *, device: torch.device, mass: float = 0.6,
                     max_images: int | None = None) -> float:
    """Mean Jaccard over the (image, object-id mask) pairs of `loader`."""
    model.eval()
    scores: list[torch.Tensor] = []
    for images, masks in loader:
        attn = cls_attention(model, images.to(device, non_blocking=True))  # (B, heads, h, w)
        keep = top_mass_masks(attn, mass).float()
        masks = masks.to(device)
        keep = F.interpolate(keep, size=masks.shape[-2:], mode="nearest").bool()
        for head_masks, objects in zip(keep, masks):
            score = object_jaccard(head_masks, objects)
            if score is not None:
                scores.append(score)
        if max_images is not None and len(scores) >= max_images:
            break
    if not scores:
        raise ValueError("the segmentation set has no image with a ground-truth object")
    return float(torch.stack(scores[:max_images] if max_images else scores).mean())
