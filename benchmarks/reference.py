"""The SAR loss computed the way the authors' code does it: one map at a time, labels from OpenCV.

This is the baseline that `loss_speed.py` and `step_overhead.py` time `sarlib.spatial_entropy` against.
It follows spec section 1 and its "Reference cost" paragraph (written from that description, not from
the authors' code):

    for each map (b, h), sequentially:
        x  = logits[b, h]                       (on the logits' device)
        m  = x.mean()                           (not detached)
        fg = (x > m) -> host, uint8 numpy, grid-shaped          # one device->host copy per map
        n, labels = cv2.connectedComponents(fg, connectivity=8)
        a  = relu(x - m) (+ eps)
        for each component c = 1..n-1:
            idx = flat indices of c -> device                   # one host->device copy per component
            mass_c = a[idx].sum()                               # gathered from the device tensor
        P = masses / sum(masses);  H = -sum P log P
    loss = mean of H over the B * heads maps

Differentiable w.r.t. `logits` (the masses are gathered from the device tensor, so gradients flow into
x and through m; the labels carry none). Computed in float32, like `sarlib.spatial_entropy`, so the two
can be compared to float32 precision. A map with no foreground contributes 0; shares that underflow to 0
contribute 0 with a finite gradient.

`eps`: the authors add 1e-9 to the mass; under their fp16 autocast that constant is 0, and docs/spec.md / sarlib
leave it out, so the default here is 0.0 (pass eps=1e-9 to mimic an fp32 run of their code).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["reference_spatial_entropy", "map_entropy"]


def map_entropy(x: torch.Tensor, grid: tuple[int, int], *, eps: float = 0.0) -> torch.Tensor:
    """Spatial entropy of one map `x` of shape (P,), P = grid[0] * grid[1], row-major patches."""
    x = x.float()
    m = x.mean()
    foreground = (x > m).detach().to("cpu").numpy().astype(np.uint8).reshape(grid)
    count, labels = cv2.connectedComponents(foreground, connectivity=8)
    if count <= 1:  # no foreground (constant map): contributes 0, gradient 0
        return x.sum() * 0.0
    a = torch.relu(x - m)
    if eps:
        a = a + eps
    flat = labels.reshape(-1)
    masses = []
    for c in range(1, count):
        idx = torch.from_numpy(np.flatnonzero(flat == c)).to(x.device)
        masses.append(a.index_select(0, idx).sum())
    masses = torch.stack(masses)
    total = masses.sum()
    share = masses / torch.where(total > 0, total, torch.ones_like(total))
    positive = share > 0
    plogp = torch.where(positive, share * torch.log(torch.where(positive, share, torch.ones_like(share))), 0.0)
    return -plogp.sum()


def reference_spatial_entropy(
    logits: torch.Tensor, grid: tuple[int, int], *, eps: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """Per-map reference of the SAR loss; same signature and result as `sarlib.spatial_entropy`.

    Args:
        logits: (B, heads, P) pre-softmax [CLS]->patch logits, any device and float dtype.
        grid: (h, w) patch grid, h * w == P.
        eps: constant added to the mass (see module docstring); 0.0 matches sarlib.
        reduction: "mean" (scalar over B * heads maps) or "none" ((B, heads)).
    """
    if logits.dim() != 3:
        raise ValueError(f"expected logits of shape (B, heads, P); got {tuple(logits.shape)}")
    h, w = int(grid[0]), int(grid[1])
    if h * w != logits.shape[-1]:
        raise ValueError(f"grid {h}x{w} does not match {logits.shape[-1]} patches")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    b, heads, _ = logits.shape
    with torch.autocast(device_type=logits.device.type, enabled=False):
        entropies = [map_entropy(logits[i, j], (h, w), eps=eps) for i in range(b) for j in range(heads)]
        if not entropies:
            out = logits.float().sum(dim=-1) * 0.0
            return out.mean() if reduction == "mean" else out
        out = torch.stack(entropies).view(b, heads)
    return out.mean() if reduction == "mean" else out
