"""Oxford Flowers-102 from its .mat files (train = trnid + valid, val = tstid: the paper convention)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from torch.utils.data import Dataset

from ..registry import DATASETS, DatasetLayoutError, Transform, _check_label_range, _download_with_torchvision, _locate, _preview, _require_entries, _require_files
from ..samples import ImageListDataset


def _read_mat_keys(name: str, path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:

    try:
        mat = loadmat(path, squeeze_me=True)
    except Exception as exc:  # scipy raises assorted errors for non-MAT content
        raise DatasetLayoutError(name, path, f"not a readable .mat file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in keys if k not in mat]
    if missing:
        raise DatasetLayoutError(name, path, f".mat file lacks the variable(s) {', '.join(missing)}")
    try:
        return {k: np.atleast_1d(np.asarray(mat[k])).astype(np.int64).ravel() for k in keys}
    except (TypeError, ValueError) as exc:
        raise DatasetLayoutError(name, path, f"variables {', '.join(keys)} are not integer arrays") from exc


def _build_flowers(name: str, root: Path, split: str, transform: Transform) -> Dataset:
    required = ("jpg", "imagelabels.mat", "setid.mat")
    base = _locate(root, "flowers-102", required)
    _require_entries(name, base, required)
    labels = _read_mat_keys(name, base / "imagelabels.mat", ["labels"])["labels"]
    setid = _read_mat_keys(name, base / "setid.mat", ["trnid", "valid", "tstid"])
    # Paper convention (as in most ViT-from-scratch work): train on trnid + valid, report on tstid.
    ids = np.concatenate([setid["trnid"], setid["valid"]]) if split == "train" else setid["tstid"]
    bad_ids = sorted({int(i) for i in ids if not 1 <= i <= len(labels)})
    if bad_ids:
        raise DatasetLayoutError(
            name, base / "setid.mat", f"image ids outside 1..{len(labels)} (imagelabels.mat): {_preview(bad_ids)}"
        )
    targets = [int(labels[i - 1]) for i in ids]
    num_classes = DATASETS[name].num_classes
    _check_label_range(name, base / "imagelabels.mat", targets, num_classes, base=1)
    paths = _require_files(name, base / "jpg", [f"image_{int(i):05d}.jpg" for i in ids])
    classes = [str(k) for k in range(1, num_classes + 1)]  # the official files carry no names
    return ImageListDataset(paths, [t - 1 for t in targets], classes, transform)


def _download_flowers(name: str, root: Path, split: str) -> None:
    _download_with_torchvision(name, "Flowers102", root, split="test")
