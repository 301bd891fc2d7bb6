"""The spatial entropy of [CLS] attention maps (SAR loss), spec section 1.

Per map (image b, head h) of pre-softmax [CLS]->patch logits x on the patch grid:
threshold at the mean m (not detached), label the 8-connected components of {x > m}, give each
component its share of the mass relu(x - m), and take the entropy of the shares. The loss is the mean
over all B * heads maps; 0 means every map is a single region.

Deliberate deviation from the reference implementation: the reference evaluates this under fp16
autocast; we always compute in float32 (labels and shares of 196 small numbers lose little time in
fp32, while fp16 shares underflow and turn the log into NaN).
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from .components import label_components

__all__ = ["spatial_entropy", "SpatialEntropyLoss"]


def _positive_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _check(logits: torch.Tensor, grid: tuple[int, int]) -> tuple[int, int]:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"spatial_entropy expects a torch.Tensor of attention logits; got {type(logits).__name__}")
    if not logits.is_floating_point():
        # int/bool maps are masks or labels, complex ones are not scores: thresholding them at their
        # mean is meaningless and the loss would have no gradient
        raise TypeError(
            f"spatial_entropy expects floating-point pre-softmax attention logits; got dtype {logits.dtype}: "
            "pass the model's [CLS] logits (forward_with_attention), or convert with logits.float()"
        )
    if logits.dim() != 3:
        raise ValueError(
            "spatial_entropy expects pre-softmax [CLS]->patch logits of shape (batch, heads, patches); "
            f"got shape {tuple(logits.shape)}"
        )
    if isinstance(grid, torch.Size):
        grid = tuple(grid)
    if not isinstance(grid, (tuple, list)) or len(grid) != 2 or not all(_positive_int(v) for v in grid):
        raise TypeError(
            f"grid must be the patch grid as a pair of positive ints (h, w), e.g. (14, 14) or "
            f"sarlib.patch_grid(model); got {grid!r}"
        )
    h, w = (int(v) for v in grid)
    if h * w != logits.shape[-1]:
        raise ValueError(
            f"grid {h}x{w} has {h * w} cells but the logits have {logits.shape[-1]} patches; pass the model's "
            "patch grid (e.g. model.patch_embed.grid_size) and drop prefix tokens ([CLS], distillation, registers)"
        )
    return h, w


def spatial_entropy(
    logits: torch.Tensor,
    grid: tuple[int, int],
    *,
    reduction: str = "mean",
    check_finite: bool = False,
    label_method: str = "auto",
) -> torch.Tensor:
    """Spatial entropy of each [CLS] attention map.

    Args:
        logits: (B, heads, P) pre-softmax [CLS]->patch attention logits, P = grid[0] * grid[1], patches
            in row-major order. Any float dtype and device; computed in float32.
        grid: (h, w) patch grid.
        reduction: "mean" -> scalar mean over B * heads maps (the SAR loss); "none" -> (B, heads).
        check_finite: raise ValueError on NaN/Inf logits (costs one host sync). Without it a map with
            non-finite logits yields NaN, so the caller can detect and skip the term.
        label_method: how the components are labelled, see `label_components` ("auto": SciPy on the
            CPU, union-find on GPUs). Every method gives the same labels, so only the speed changes.

    Returns:
        The loss, differentiable w.r.t. `logits` (component labels carry no gradient). Constant maps and
        components whose share underflows to 0 contribute exactly 0, never NaN. An empty batch (no
        images or no heads) gives 0 for "mean" (no map adds entropy, so the term vanishes instead of
        turning the total loss into NaN) and an empty (B, heads) tensor for "none".

    Raises:
        TypeError: non-tensor or non-floating logits (int, bool, complex), or a grid that is not a pair.
        ValueError: wrong shape, a grid that does not match the patches, an unknown reduction.
    """
    h, w = _check(logits, grid)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        empty = logits.float().sum(dim=-1)  # (B, heads) with no elements, still attached to the graph
        return empty.sum() if reduction == "mean" else empty
    if check_finite and not bool(torch.isfinite(logits).all()):
        raise ValueError(
            "spatial_entropy got NaN or Inf attention logits: the model diverged; lower the learning rate, "
            "check the inputs for NaN, or train without AMP"
        )
    with torch.autocast(device_type=logits.device.type, enabled=False):
        entropy = _map_entropies(logits, h, w, label_method)
    return entropy.mean() if reduction == "mean" else entropy


def _map_entropies(logits: torch.Tensor, h: int, w: int, label_method: str) -> torch.Tensor:
    """(B, heads) entropies of checked, non-empty logits, in float32 (the caller disables autocast)."""
    b, heads, p = logits.shape
    x = logits.float().reshape(b * heads, p)
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    foreground = centred > 0
    mass = torch.relu(centred)
    with torch.no_grad():
        labels = label_components(foreground.view(b * heads, h, w), method=label_method).view(b * heads, p)
    # bin 0 collects the background, whose mass is 0; bins 1..P are the components
    component_mass = torch.zeros(b * heads, p + 1, device=x.device, dtype=x.dtype)
    component_mass = component_mass.scatter_add(1, labels, mass)[:, 1:]
    total = component_mass.sum(dim=1, keepdim=True)
    # A constant map has no foreground: total = 0. Dividing by 1 instead keeps its shares (all 0)
    # and their gradients finite.
    share = component_mass / torch.where(total > 0, total, torch.ones_like(total))
    positive = share > 0
    # log of 1 where share == 0: those terms are masked to 0 and must not leak -inf*0 = NaN into
    # the backward pass.
    plogp = torch.where(positive, share * torch.log(torch.where(positive, share, torch.ones_like(share))), 0.0)
    entropy = -plogp.sum(dim=1)
    # Non-finite logits must not pass as a 0 loss: the threshold comparison is False for NaN, so
    # without this the map would look constant.
    entropy = torch.where(torch.isfinite(x).all(dim=1), entropy, torch.full_like(entropy, float("nan")))
    return entropy.view(b, heads)


class SpatialEntropyLoss(nn.Module):
    """Module form of :func:`spatial_entropy` with a fixed patch grid.

    >>> loss_fn = SpatialEntropyLoss(grid=(14, 14))
    >>> loss = loss_fn(cls_logits)  # (B, heads, 196) -> scalar
    """

    def __init__(
        self, grid: tuple[int, int], *, reduction: str = "mean", check_finite: bool = False, label_method: str = "auto"
    ) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.reduction = reduction
        self.check_finite = check_finite
        self.label_method = label_method

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return spatial_entropy(
            logits, self.grid, reduction=self.reduction, check_finite=self.check_finite, label_method=self.label_method
        )

    def extra_repr(self) -> str:
        return f"grid={self.grid}, reduction={self.reduction!r}"
