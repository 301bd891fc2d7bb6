"""PASCAL VOC 2012 segmentation val with per-object (or per-class) masks, for the attention Jaccard."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..registry import DatasetLayoutError, Transform, VOC_IMAGE_SIZE, VOC_MASK_FOLDERS, VOID_ID, _require_entries, _require_files
from ..samples import _load_rgb


class VOCObjectMasks(Dataset):
    """VOC 2012 segmentation val at ``size`` x ``size`` with per-object masks (DINO protocol), or with
    per-class masks when ``mask_folder="SegmentationClass"`` (the authors' protocol)."""

    def __init__(
        self, base: Path, ids: Sequence[str], transform: Transform, *, void_as_background: bool = False,
        size: int = VOC_IMAGE_SIZE, mask_folder: str = "SegmentationObject",
    ) -> None:
        self.base = base
        self.ids = list(ids)
        self.transform = transform
        self.void_as_background = void_as_background
        self.size = size
        self.mask_folder = mask_folder

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        image_id = self.ids[index]
        image = _load_rgb(self.base / "JPEGImages" / f"{image_id}.jpg")
        image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        ids = self._read_mask(self.base / self.mask_folder / f"{image_id}.png", self.size)
        if self.void_as_background:
            ids[ids == VOID_ID] = 0
        if self.transform is not None:
            image = self.transform(image)
        return image, ids

    @staticmethod
    def _read_mask(path: Path, size: int) -> torch.Tensor:
        with Image.open(path) as mask:
            # The official masks are palette PNGs whose indices are the object ids; converting them
            # to RGB (as some tools do) destroys the ids, so such a file is a layout error, not data.
            if mask.mode not in ("P", "L"):
                raise DatasetLayoutError(
                    "voc2012", path, f"mask has mode {mask.mode}, expected the official palette (P) PNG of ids"
                )
            resized = mask.resize((size, size), Image.Resampling.NEAREST)  # never blend ids
        return torch.from_numpy(np.array(resized, dtype=np.int64))


def _build_voc(name: str, root: Path, transform: Transform, void_as_background: bool, masks: str = "object") -> Dataset:
    folder = VOC_MASK_FOLDERS[masks]
    required = ("JPEGImages", folder, "ImageSets/Segmentation/val.txt")
    # Accept the root holding VOCdevkit/, VOCdevkit/ itself, or VOC2012/ itself.
    candidates = (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root)
    base = next((c for c in candidates if any((c / r).exists() for r in required)), candidates[0])
    _require_entries(name, base, required)
    ids = (base / required[2]).read_text(encoding="utf-8").split()
    if not ids:
        raise DatasetLayoutError(name, base / required[2], "val.txt lists no images")
    _require_files(name, base / "JPEGImages", [f"{i}.jpg" for i in ids])
    _require_files(name, base / folder, [f"{i}.png" for i in ids])
    return VOCObjectMasks(base, ids, transform, void_as_background=void_as_background, mask_folder=folder)
