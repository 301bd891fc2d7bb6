"""CIFAR-10 / -100 from the official python pickles (read directly; torchvision only downloads).

A batch file is a pickle: it is read through an unpickler that allows numpy's array types alone, so a
crafted file cannot run code."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torchvision.datasets as tvd
from PIL import Image
from torch.utils.data import Dataset

from ..registry import DATASETS, DatasetLayoutError, Transform, _check_label_range, _require_entries


@dataclass(frozen=True)
class _CifarFormat:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    torchvision_class: str


_CIFAR: dict[str, _CifarFormat] = {
    "cifar10": _CifarFormat(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
        "batches.meta", "labels", "label_names", "CIFAR10",
    ),
    "cifar100": _CifarFormat(
        "cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names", "CIFAR100",
    ),
}


class CifarDataset(Dataset):
    """CIFAR images held in memory as uint8 (N, 32, 32, 3); yields (PIL image or transform(image), label)."""

    def __init__(self, data: np.ndarray, targets: list[int], classes: list[str], transform: Transform) -> None:
        self.data = data
        self.targets = targets
        self.classes = classes
        self.num_classes = len(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.data[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def _decode(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """A CIFAR batch is a dict of numpy arrays, lists, str and bytes: a pickle that names any other
    callable (os.system, eval, ...) could run code when loaded, so it is refused before anything runs."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # how Python 3 pickles an array's bytes (protocol 2): str -> bytes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR batch holds only arrays and lists")
        return super().find_class(module, name)


def _read_pickle(name: str, path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            # latin1: the official files are Python 2 pickles holding numpy arrays.
            obj = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        raise DatasetLayoutError(name, path, f"not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetLayoutError(name, path, f"pickle holds a {type(obj).__name__}, expected a dict")
    # Files written by Python 3 code carry bytes keys (b"data"); the originals carry str keys.
    return {_decode(k): v for k, v in obj.items()}


def _read_cifar_batch(name: str, path: Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    entry = _read_pickle(name, path)
    missing = [k for k in ("data", label_key) if k not in entry]
    if missing:
        raise DatasetLayoutError(name, path, f"pickle lacks the key(s) {', '.join(missing)}")
    data = np.asarray(entry["data"])
    labels = [int(v) for v in entry[label_key]]
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetLayoutError(
            name, path, f"'data' is {data.dtype} {tuple(data.shape)}, expected uint8 (N, 3072)"
        )
    if len(labels) != data.shape[0]:
        raise DatasetLayoutError(name, path, f"{data.shape[0]} images but {len(labels)} labels")
    return data, labels


def _build_cifar(name: str, root: Path, split: str, transform: Transform) -> Dataset:
    fmt = _CIFAR[name]
    base = root / fmt.folder
    if not base.is_dir() and (root / fmt.meta_file).exists():
        base = root  # the root is the extracted folder itself
    files = fmt.train_files if split == "train" else fmt.test_files
    _require_entries(name, base, (*files, fmt.meta_file))

    arrays, targets = [], []
    for filename in files:
        data, labels = _read_cifar_batch(name, base / filename, fmt.label_key)
        arrays.append(data)
        targets.extend(labels)
    meta = _read_pickle(name, base / fmt.meta_file)
    if fmt.names_key not in meta:
        raise DatasetLayoutError(name, base / fmt.meta_file, f"meta pickle lacks the key {fmt.names_key}")
    classes = [str(_decode(n)) for n in meta[fmt.names_key]]
    num_classes = DATASETS[name].num_classes
    if len(classes) != num_classes:
        raise DatasetLayoutError(name, base / fmt.meta_file, f"{len(classes)} class names, expected {num_classes}")
    _check_label_range(name, base, targets, num_classes)
    # Rows are channel-major (R plane, G plane, B plane), each plane row-major 32x32.
    images = np.concatenate(arrays).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return CifarDataset(np.ascontiguousarray(images), targets, classes, transform)


def _download_cifar(name: str, root: Path, split: str) -> None:
    tv_class = getattr(tvd, _CIFAR[name].torchvision_class)
    try:
        # Skips the download when intact files are present; verifies the md5s either way.
        tv_class(str(root), train=split == "train", download=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetLayoutError(
            name, root, f"download failed ({type(exc).__name__}: {exc})",
            hint=f"download {tv_class.url} by hand and extract it under the data root",
        ) from exc
