"""Attention regularizers on the last block's pre-softmax [CLS]->patch logits, selected by name.

"sar" is the spatial entropy (the paper's loss); "tv" is the ablation's alternative: a total-variation
smoothness penalty on the same map, which asks for smooth attention without asking for few regions.
"""

from __future__ import annotations

from typing import Callable

import torch

from .entropy import spatial_entropy

__all__ = ["total_variation", "REGULARIZERS"]


def total_variation(logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean absolute difference between 4-neighbouring patch logits, in float32.

    Each map is standardized first (zero mean, unit std) so the penalty cannot be lowered by merely
    shrinking the logits, which would change the attention temperature instead of its shape.
    """
    b, heads, p = logits.shape
    h, w = grid
    if h * w != p:
        raise ValueError(f"grid {h}x{w} does not match {p} patches")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.float()
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6)
        x = x.view(b, heads, h, w)
        dy = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(-1, -2)) if h > 1 else x.new_zeros(b, heads)
        dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(-1, -2)) if w > 1 else x.new_zeros(b, heads)
    return (dy + dx).mean()


REGULARIZERS: dict[str, Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]] = {
    "sar": spatial_entropy,
    "tv": total_variation,
}
