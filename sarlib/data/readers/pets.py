"""Oxford-IIIT Pets from its annotation lists (root/ or root/oxford-iiit-pet/)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..registry import DATASETS, DatasetLayoutError, Transform, _check_label_range, _download_with_torchvision, _locate, _require_entries, _require_files
from ..samples import ImageListDataset


def _read_pets_annotations(name: str, path: Path) -> list[tuple[str, int]]:
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):  # list.txt-style comments, blank lines
            continue
        if len(parts) < 2 or not parts[1].isdigit():
            raise DatasetLayoutError(
                name, path, f"line {lineno} is {line!r}, expected '<image> <class id 1..37> <species> <breed id>'"
            )
        entries.append((parts[0], int(parts[1])))
    if not entries:
        raise DatasetLayoutError(name, path, "the annotation file lists no images")
    return entries


def _build_pets(name: str, root: Path, split: str, transform: Transform) -> Dataset:
    ann_file = f"annotations/{'trainval' if split == 'train' else 'test'}.txt"
    required = ("images", ann_file)
    base = _locate(root, "oxford-iiit-pet", required)
    _require_entries(name, base, required)
    entries = _read_pets_annotations(name, base / ann_file)
    num_classes = DATASETS[name].num_classes
    _check_label_range(name, base / ann_file, [c for _, c in entries], num_classes, base=1)
    paths = _require_files(name, base / "images", [f"{image}.jpg" for image, _ in entries])
    # Breed names come from the image names (e.g. "american_bulldog_12"), as torchvision does.
    classes = [f"class {k}" for k in range(1, num_classes + 1)]
    for image, class_id in entries:
        classes[class_id - 1] = " ".join(p.title() for p in image.rsplit("_", 1)[0].split("_"))
    return ImageListDataset(paths, [c - 1 for _, c in entries], classes, transform)


def _download_pets(name: str, root: Path, split: str) -> None:
    _download_with_torchvision(name, "OxfordIIITPet", root, split="test")
