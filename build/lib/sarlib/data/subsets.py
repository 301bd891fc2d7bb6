"""The class-balanced training subsets every arm and seed of a study share."""

from __future__ import annotations

import torch
from torch.utils.data import Subset

__all__ = ["stratified_subset"]


def stratified_subset(dataset, fraction: float, seed: int):
    """The same class-balanced `fraction` of the training set for every arm that shares `seed`."""
    if fraction >= 1.0:
        return dataset
    targets = torch.as_tensor(list(dataset.targets) if not torch.is_tensor(dataset.targets) else dataset.targets)
    gen = torch.Generator().manual_seed(10_007 + seed)
    keep = []
    for c in targets.unique():
        idx = (targets == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        keep.append(idx[: max(1, round(fraction * len(idx)))])
    subset = Subset(dataset, torch.cat(keep).sort().values.tolist())
    subset.num_classes = dataset.num_classes
    return subset
