"""Attention segmentation: Jaccard of [CLS] attention masks against ground-truth masks (spec section 5).

Per head, keep the smallest set of patches that holds `mass` (60%) of the post-softmax [CLS] attention,
upsample it to the ground-truth resolution, and for each ground-truth region take the best IoU over
heads; average over regions, then over images. Two protocols:

"dino" (default, DINO's protocol as intended): regions are VOC's objects (``SegmentationObject``);
  void pixels (255) are excluded from intersection and union; images are evaluated at the model's own
  resolution (224, or 32 for the synthetic sets) and the patch masks upsampled to the mask resolution.
"authors" (the authors' evaluation script, for like-for-like comparison with the paper's numbers):
  regions are VOC's classes (``SegmentationClass``, every instance of a class merged); void pixels
  that a head covers count in the union (their void test compares a boolean mask with 255 and never
  fires); images are fed at the mask resolution (480x480 for VOC, a 30x30 grid for patch 16) with the
  position embedding resampled the way their evaluation does (DINO's `interpolate_pos_encoding`), and
  the kept set is computed with their ascending cumulative-sum formulation. On the synthetic sets
  (one object per image, no void, masks at the model's resolution) both protocols score the same
  regions at the same resolution.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..data import VOID_ID as VOID
from ..models.pos_embed import model_at_input_size
from ..models.vit import cls_attention

__all__ = ["PROTOCOLS", "top_mass_masks", "object_jaccard", "evaluate_jaccard"]

PROTOCOLS = ("dino", "authors")


def top_mass_masks(attn: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """(..., h, w) attention -> bool masks of the smallest patch sets holding `mass` of each map."""
    flat = attn.flatten(-2)
    flat = flat / flat.sum(-1, keepdim=True)
    values, order = flat.sort(dim=-1, descending=True)
    before = values.cumsum(-1) - values  # mass strictly before each patch in descending order
    keep_sorted = before < mass  # include patches until `mass` is reached (the crossing patch too)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.view_as(attn)


def _ascending_top_mass_masks(attn: torch.Tensor, mass: float) -> torch.Tensor:
    """The same set as `top_mass_masks`, computed as the authors' (and DINO's released) code does: sort
    ascending, keep the patches whose running sum exceeds 1 - mass. Equal in exact arithmetic; the float
    rounding at the boundary patch follows theirs."""
    flat = attn.flatten(-2)
    values, order = flat.sort(dim=-1)
    values = values / values.sum(-1, keepdim=True)
    keep_sorted = values.cumsum(-1) > 1 - mass
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.view_as(attn)


def object_jaccard(head_masks: torch.Tensor, objects: torch.Tensor, *, void_in_union: bool = False) -> torch.Tensor | None:
    """Mean over objects of the best IoU over heads, for one image.

    head_masks: bool (heads, H, W) at the mask resolution; objects: int (H, W), 0 background, 1..K
    objects (or classes), 255 void. Void pixels are excluded, unless `void_in_union`: then void pixels
    a head covers enlarge its union (the authors' evaluation). Returns None when the image has no object.
    """
    valid = objects != VOID if not void_in_union else torch.ones_like(objects, dtype=torch.bool)
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
                     max_images: int | None = None, protocol: str = "dino") -> float:
    """Mean Jaccard over the (image, mask) pairs of `loader` under `protocol` ("dino" or "authors").

    For "authors" the loader must yield images at the mask resolution (`build_segmentation_loader` with
    `seg_protocol="authors"` does) and, for VOC, class masks.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    model.eval()
    authors = protocol == "authors"
    at_size: dict[tuple[int, int], nn.Module] = {}
    scores: list[torch.Tensor] = []
    for images, masks in loader:
        images = images.to(device, non_blocking=True)
        if authors:
            size = tuple(images.shape[-2:])
            if size != tuple(masks.shape[-2:]):
                raise ValueError(f"protocol 'authors' feeds images at the mask resolution {tuple(masks.shape[-2:])}, "
                                 f"got images of {size}; build the loader with seg_protocol='authors'")
            if size not in at_size:
                at_size[size] = model_at_input_size(model, size)
            keep = _ascending_top_mass_masks(cls_attention(at_size[size], images), mass).float()
        else:
            keep = top_mass_masks(cls_attention(model, images), mass).float()  # (B, heads, h, w)
        masks = masks.to(device)
        keep = F.interpolate(keep, size=masks.shape[-2:], mode="nearest").bool()
        for head_masks, objects in zip(keep, masks):
            score = object_jaccard(head_masks, objects, void_in_union=authors)
            if score is not None:
                scores.append(score)
        if max_images is not None and len(scores) >= max_images:
            break
    if not scores:
        raise ValueError("the segmentation set has no image with a ground-truth object")
    return float(torch.stack(scores[:max_images] if max_images else scores).mean())
