"""Independent reference implementations used by the tests: SciPy and OpenCV labelling, per-map loss."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage

EIGHT = np.ones((3, 3), dtype=int)


def scipy_labels(mask: np.ndarray) -> np.ndarray:
    labels, _ = ndimage.label(mask, structure=EIGHT)
    return labels


def opencv_labels(mask: np.ndarray) -> np.ndarray:
    _, labels = cv2.connectedComponents(np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8)
    return labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True iff two label maps have the same background and induce the same partition of the foreground."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if not np.array_equal(a == 0, b == 0):
        return False
    fg = a > 0
    pairs = set(zip(a[fg].tolist(), b[fg].tolist()))
    return len(pairs) == len(set(a[fg].tolist())) == len(set(b[fg].tolist()))


def per_map_entropy(logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The loss written the slow, obvious way: one map at a time, SciPy labels, one sum per component."""
    b, heads, _ = logits.shape
    total = logits.new_zeros((), dtype=torch.float64)
    for i in range(b):
        for j in range(heads):
            x = logits[i, j].double()
            m = x.mean()
            labels = scipy_labels((x > m).detach().cpu().numpy().reshape(grid)).ravel()
            a = torch.relu(x - m)
            masses = [a[torch.from_numpy(labels == c)].sum() for c in range(1, labels.max() + 1)]
            if not masses:
                continue
            s = torch.stack(masses)
            p = s / s.sum()
            total = total - sum(pk * torch.log(pk) for pk in p if pk > 0)
    return total / (b * heads)


def serpentine(h: int, w: int) -> np.ndarray:
    """One snake-shaped component: every other row full, joined at alternating ends."""
    a = np.zeros((h, w), dtype=bool)
    for r in range(0, h, 2):
        a[r] = True
        if r + 1 < h:
            a[r + 1, w - 1 if (r // 2) % 2 == 0 else 0] = True
    return a


def spiral(n: int) -> np.ndarray:
    """A single-cell-wide clockwise spiral path: one component whose ends are ~n*n/2 steps apart."""
    a = np.zeros((n, n), dtype=bool)
    r, c, dr, dc = 0, 0, 0, 1
    a[r, c] = True

    def free_ahead(dr: int, dc: int) -> bool:
        # keep a one-cell gap to the previous turn: the cell two steps ahead must be empty too
        r1, c1, r2, c2 = r + dr, c + dc, r + 2 * dr, c + 2 * dc
        inside = 0 <= r1 < n and 0 <= c1 < n
        return inside and not a[r1, c1] and not (0 <= r2 < n and 0 <= c2 < n and a[r2, c2])

    turns = 0
    while turns < 2:
        if free_ahead(dr, dc):
            r, c = r + dr, c + dc
            a[r, c] = True
            turns = 0
        else:
            dr, dc = dc, -dr  # turn clockwise
            turns += 1
    return a


def diagonal_chain(h: int, w: int) -> np.ndarray:
    """Cells touching only at corners: one component under 8-connectivity, many under 4."""
    a = np.zeros((h, w), dtype=bool)
    for i in range(min(h, w)):
        a[i, i] = True
    return a


def checkerboard(h: int, w: int) -> np.ndarray:
    return (np.add.outer(np.arange(h), np.arange(w)) % 2 == 0)
