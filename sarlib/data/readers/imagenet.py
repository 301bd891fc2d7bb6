"""ImageNet-1k and ImageNet-100 as ImageFolder layouts (ImageNet-100: the shipped class list's order)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

from ..registry import DatasetLayoutError, Transform, _preview, imagenet100_classes
from ..samples import _load_rgb


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _imagenet_split_dir(name: str, root: Path, split: str) -> Path:
    folder = root / split
    if not folder.is_dir():
        raise DatasetLayoutError(name, folder, f"no {split}/ directory under the data root")
    if not _class_dirs(folder):
        n_files = sum(1 for e in os.scandir(folder) if e.is_file())
        problem = f"{split}/ holds no class directories"
        if n_files:
            problem += (
                f" but {n_files} files directly; sort them into {split}/<wnid>/ "
                "(the ILSVRC2012 val images need the usual valprep.sh step)"
            )
        raise DatasetLayoutError(name, folder, problem)
    return folder


class ClassListImageFolder(ImageFolder):
    """torchvision ImageFolder over a given class list, whose order defines the label indices."""

    def __init__(self, root: Path, classes: Sequence[str], transform: Transform) -> None:
        self._class_list = list(classes)  # read by find_classes() during ImageFolder.__init__
        super().__init__(str(root), transform=transform, loader=_load_rgb)  # one clear error per bad file
        self.num_classes = len(self.classes)

    def find_classes(self, directory: Any) -> tuple[list[str], dict[str, int]]:
        return list(self._class_list), {c: i for i, c in enumerate(self._class_list)}


def _build_imagenet(name: str, root: Path, split: str, transform: Transform) -> Dataset:
    folder = _imagenet_split_dir(name, root, split)
    if name == "imagenet100":
        classes = imagenet100_classes()
        missing = [w for w in classes if not (folder / w).is_dir()]
        if missing:
            raise DatasetLayoutError(
                name, folder,
                f"{len(missing)} of the 100 ImageNet-100 class directories are missing: {_preview(missing, 10)}",
            )
    else:
        classes = _class_dirs(folder)
        _check_same_classes(name, root, split, classes)
    try:
        return ClassListImageFolder(folder, classes, transform)
    except FileNotFoundError as exc:  # ImageFolder: a class directory holds no image files
        raise DatasetLayoutError(name, folder, str(exc)) from exc


def _check_same_classes(name: str, root: Path, split: str, classes: list[str]) -> None:
    # Labels are indices into the sorted class dirs: a class missing from one split would shift every
    # later label there, silently. Compare with the other split whenever it exists.
    other = root / ("val" if split == "train" else "train")
    if not other.is_dir():
        return
    other_classes = _class_dirs(other)
    if other_classes and other_classes != classes:
        only_here = sorted(set(classes) - set(other_classes))
        only_other = sorted(set(other_classes) - set(classes))
        raise DatasetLayoutError(
            name, root,
            f"train/ and val/ hold different class directories ({split}/ only: {_preview(only_here) or '-'}; "
            f"{other.name}/ only: {_preview(only_other) or '-'}), so their labels would not match",
        )
