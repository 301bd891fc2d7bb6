"""Batched, exact 8-connected component labelling of boolean grids, on any torch device.

The spatial-entropy loss needs the connected regions of B*heads tiny masks (14x14 for DeiT) at every
training step. Labelling them one at a time on the host (as the reference does with OpenCV) costs a
device-to-host copy per map; here every map is labelled at once with tensor ops only.

Algorithm (a data-parallel union-find, in the spirit of Shiloach-Vishkin):
every foreground cell starts pointing at itself (its flat index); a round then
  1. takes, for each cell, the smallest label among its 8 neighbours (and itself),
  2. *hooks*: lowers the label of the cell's current root to that value (scatter_reduce amin), so one
     neighbour contact relabels a whole tree instead of one cell, and
  3. *jumps*: replaces every label by the label of the cell it points to, halving path lengths.
Labels only ever decrease and always point at a cell of the same component, so the fixed point is
exactly "every cell carries the smallest flat index of its component". Pointer jumping makes the
number of rounds grow with log(path length) rather than with the length, so a 14x14 spiral needs a
handful of rounds instead of ~100 plain 3x3 sweeps.

Correctness never depends on an iteration budget: rounds run until nothing changes. The only host
syncs are the convergence checks, one every `rounds_per_check` rounds; their number is bounded by
the (logarithmic) round count, not by the number of maps or components.

On the CPU a compiled sequential labeller beats the many small tensor ops of the union-find (4x with
2 threads, 7x with 1, on 1536 maps of 14x14), so CPU tensors go to one `scipy.ndimage.label` call over
the whole (N, H, W) stack. Its 3-D structure has ones only in the middle plane: 8-connectivity within a map, nothing
across maps. SciPy numbers components 1..K over the whole stack; a vectorized relabelling turns that
into the union-find's convention, so both paths return identical tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["label_components", "LABEL_METHODS"]

# "auto" picks the fastest exact path for the mask's device: SciPy on the CPU, union-find elsewhere.
LABEL_METHODS = ("auto", "scipy", "union-find")

# 8-connectivity inside each (H, W) plane of an (N, H, W) stack and no link between planes: the
# middle plane of a 3x3x3 structure is all ones, the planes before and after are empty.
_PLANEWISE_EIGHT = np.zeros((3, 3, 3), dtype=bool)
_PLANEWISE_EIGHT[1] = True

# Rounds between two convergence checks. Each check is one device-to-host sync; typical 14x14 masks
# converge in 2-4 rounds, so checking every 2 keeps syncs to 1-3 per call without much wasted work.
_ROUNDS_PER_CHECK = 2


def _neighbour_min(labels: torch.Tensor, sentinel: int) -> torch.Tensor:
    """Smallest label in each cell's 3x3 neighbourhood; (N, H, W) -> (N, H, W).

    Background cells hold `sentinel` (larger than any label), so they never win the minimum and the
    padding needs no special case.
    """
    n, h, w = labels.shape
    padded = F.pad(labels, (1, 1, 1, 1), value=sentinel)
    out = labels.clone()
    for dy in range(3):
        for dx in range(3):
            if dy == 1 and dx == 1:
                continue
            torch.minimum(out, padded[:, dy : dy + h, dx : dx + w], out=out)
    return out


def label_components(
    mask: torch.Tensor, *, method: str = "auto", rounds_per_check: int = _ROUNDS_PER_CHECK
) -> torch.Tensor:
    """Label the 8-connected components of each boolean map in a batch.

    Args:
        mask: bool tensor (N, H, W), any device. Any N, H, W >= 0 (non-square grids included).
        method: "auto" (SciPy for CPU tensors, union-find on any other device), "scipy" (one
            `scipy.ndimage.label` call on the host; other devices pay a copy there and back) or
            "union-find" (tensor ops on the mask's device). All three return identical tensors.
        rounds_per_check: union-find rounds between convergence checks (host syncs). Only affects
            speed, never the result.

    Returns:
        int64 tensor (N, H, W): 0 on background; on foreground, 1 + the row-major index (within its
        own map) of the component's first cell. Two foreground cells share a label iff they are
        8-connected; labels are deterministic but not consecutive (use `torch.unique` if you need
        1..n).
    """
    if mask.dim() != 3:
        raise ValueError(f"label_components expects a bool tensor of shape (N, H, W); got shape {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"label_components expects a bool mask; got {mask.dtype} (use `mask > threshold`)")
    if method not in LABEL_METHODS:
        raise ValueError(f"label_components: method must be one of {LABEL_METHODS}, got {method!r}")
    n, h, w = mask.shape
    if mask.numel() == 0:
        return torch.zeros((n, h, w), dtype=torch.int64, device=mask.device)
    if method == "auto":
        method = "scipy" if mask.device.type == "cpu" else "union-find"
    if method == "scipy":
        return _label_scipy(mask)
    return _label_union_find(mask, rounds_per_check)


def _label_scipy(mask: torch.Tensor) -> torch.Tensor:
    """One `scipy.ndimage.label` call over the stack, relabelled to 1 + the first cell's index in its map."""
    _, h, w = mask.shape
    stack = mask.detach().cpu().numpy()
    labels, count = ndimage.label(stack, structure=_PLANEWISE_EIGHT)
    flat = labels.ravel()
    # first[k] = smallest flat index (over the whole stack) of a cell labelled k. Scatter-min over every
    # cell: no Python loop, and no reliance on the order in which SciPy happens to number components.
    first = np.full(count + 1, flat.size, dtype=np.int64)
    np.minimum.at(first, flat, np.arange(flat.size, dtype=np.int64))
    # A component lies in one map, so its first cell's index within that map is first mod (h * w).
    table = first % (h * w) + 1
    table[0] = 0  # SciPy's background label stays 0
    return torch.from_numpy(table[labels]).to(mask.device)


def _label_union_find(mask: torch.Tensor, rounds_per_check: int) -> torch.Tensor:
    """The data-parallel union-find of the module docstring, on the mask's device."""
    n, h, w = mask.shape
    cells = n * h * w
    sentinel = cells  # one past the last flat index: the "parent" slot of every background cell
    flat = torch.arange(cells, device=mask.device, dtype=torch.int64).view(n, h, w)
    # parent[cells] is an extra slot that background cells point at; it keeps the gather/scatter below
    # free of masking, and it always stays equal to the sentinel.
    parent = torch.full((cells + 1,), sentinel, dtype=torch.int64, device=mask.device)
    parent[:cells] = torch.where(mask, flat, sentinel).flatten()

    while True:
        before = parent.clone()
        for _ in range(rounds_per_check):
            labels = parent[:cells].view(n, h, w)
            low = torch.where(mask, _neighbour_min(labels, sentinel), sentinel).flatten()
            # hook: the root each cell currently points at adopts the smaller neighbour label
            roots = parent[:cells].clone()  # the index must not alias the tensor being written
            parent.scatter_reduce_(0, roots, low, reduce="amin")
            parent[:cells] = torch.minimum(parent[:cells], low)
            # jump twice: cheap gathers that shorten every pointer chain fourfold
            parent = parent[parent]
            parent = parent[parent]
        if torch.equal(parent, before):
            break

    labels = parent[:cells].view(n, h, w)
    # Per-map numbering: subtract each map's offset so labels do not depend on the batch position.
    offset = (torch.arange(n, device=mask.device, dtype=torch.int64) * (h * w)).view(n, 1, 1)
    return torch.where(mask, labels - offset + 1, torch.zeros((), dtype=torch.int64, device=mask.device))
