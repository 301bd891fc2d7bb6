"""The embedded synthetic sets as datasets: generated (and cached) tensors, with object masks."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from ..synthetic.generate import SyntheticObjects
from ..registry import DATASETS


def _synthetic_objects(name: str, split: str, cache_dir: Any, *, with_masks: bool = False) -> Any:
    return SyntheticObjects(name, split, cache_dir=cache_dir, with_masks=with_masks)


def _build_synthetic(name: str, split: str, cache_dir: Any) -> Dataset:
    dataset = _synthetic_objects(name, "train" if split == "train" else "test", cache_dir)
    if dataset.num_classes != DATASETS[name].num_classes:
        raise RuntimeError(
            f"DATASETS[{name!r}].num_classes = {DATASETS[name].num_classes} but sarlib.data.synthetic.generate builds "
            f"{dataset.num_classes} classes; update the registry in sarlib/data/registry.py"
        )
    if not hasattr(dataset, "targets"):
        dataset.targets = dataset.labels  # the common name for stratified subsets
    return dataset


class SyntheticMasks(Dataset):
    """(image, object-id mask) view of a ``SyntheticObjects(..., with_masks=True)`` set."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, _label, mask = self.base[index]
        # One object per synthetic image: the boolean mask becomes ids {0 background, 1 object}.
        return image, torch.as_tensor(mask).to(torch.int64)
