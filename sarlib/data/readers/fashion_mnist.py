"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test 28x28 grayscale garments, 10 classes, read
from its four IDX files (gzipped or not).

Where the files are looked for, in order: the data root itself (Zalando's layout: the four files in one
folder), `<root>/FashionMNIST/raw/` (torchvision's download), `<root>/fashion-mnist/`; with no data root,
Debian's `/usr/share/datasets/fashion-mnist/` (package `dataset-fashion-mnist`), then the places `make
data` (`python -m sarlib.data.fetch`) fills without root rights under the sarlib cache
(`$SARLIB_CACHE`, default `~/.cache/sarlib`): `fashion-mnist/usr/share/datasets/fashion-mnist/` (the
Debian package unpacked) and `fashion-mnist/FashionMNIST/raw/` (torchvision's download).

Each file's magic number, shape and size are checked, images and labels must agree in count (60,000
and 10,000 in the real files), and every label must be in 0..9.

How grayscale meets the models: each image becomes an RGB PIL image with the gray value in all three
channels, so every model, profile and transform works unchanged. The object mask of an image is its
silhouette: the pixels above 0 (the background is exactly 0 in the IDX files, which are lossless),
padded with the image to the model's input size (`sarlib.data.transforms.eval_transform` pads 28 px
images with black rather than resizing them).

Training subsets by size (`fashion-mnist-1k`, `-2k`, `-5k`, `-10k`): the first n/10 images of each
class in file order, the same images for every seed and arm; the test set is always the full 10,000.

Class splits for transfer (`fashion-mnist-0to4-5k`: T-shirt/top, Trouser, Pullover, Dress, Coat;
`fashion-mnist-5to9-500`: Sandal, Shirt, Sneaker, Bag, Ankle boot): only those classes, relabelled from
0, training images balanced the same way, and the test images of those classes (5,000 each). The two
share no class and no image, so fine-tuning on one after pretraining on the other measures transfer.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torchvision.datasets as tvd
from PIL import Image
from torch.utils.data import Dataset

from ...utils.files import sarlib_cache
from ..registry import DatasetLayoutError, Transform

__all__ = ["CLASSES", "DEBIAN_ROOT", "FILES", "FashionMNIST", "FashionMNISTMasks", "locate", "parse_name", "read_idx"]

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_MAGIC = {3: 0x0803, 1: 0x0801}  # IDX: 0x08 = unsigned byte, then the number of dimensions


def parse_name(name: str) -> tuple[range, int | None]:
    """(classes, training images) of a registry name: `fashion-mnist-5k` -> (0..9, 5000),
    `fashion-mnist-5to9-500` -> (5..9, 500), `fashion-mnist` -> (0..9, None: all)."""
    parts = name.removeprefix("fashion-mnist").split("-")[1:]
    classes = range(len(CLASSES))
    if parts and "to" in parts[0]:
        low, high = (int(v) for v in parts.pop(0).split("to"))
        classes = range(low, high + 1)
    size = int(parts[0].removesuffix("k")) * (1000 if parts[0].endswith("k") else 1) if parts else None
    return classes, size


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def cache_root() -> Path:
    """Where `make data` puts the files when it cannot install the Debian package system-wide."""
    return sarlib_cache() / "fashion-mnist"


def default_folders() -> list[Path]:
    # the package unpacked with `dpkg -x` keeps its path under the cache
    return [DEBIAN_ROOT, cache_root() / "usr/share/datasets/fashion-mnist", cache_root() / "FashionMNIST" / "raw"]


def locate(name: str, root: Path | None) -> Path:
    """The folder holding all four files (see the module docstring for where it looks)."""
    folders = default_folders() if root is None else [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]
    for folder in folders:
        if all(_find(folder, stem) for pair in FILES.values() for stem in pair):
            return folder
    where = folders[0]
    missing = [stem for pair in FILES.values() for stem in pair if not _find(where, stem)]
    raise DatasetLayoutError(name, where, f"no Fashion-MNIST files ({', '.join(missing)}[.gz] missing)")


# Fashion-MNIST's files hold 60,000 and 10,000 items; a header claiming more than this is not one of them, and
# is refused before its body is read or inflated (a small gzip file may inflate to gigabytes)
MAX_ITEMS = 1_000_000


def read_idx(name: str, path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of one IDX file, after checking its magic number, shape and size. The header is
    checked first and the body read to exactly the size it states, so no input makes this read (or
    inflate) more than MAX_ITEMS items."""
    opener = gzip.open if path.suffix == ".gz" else open
    header = 4 + 4 * ndim
    try:
        with opener(path, "rb") as f:
            head = f.read(header)
            if len(head) < header or int.from_bytes(head[:4], "big") != _MAGIC[ndim]:
                raise DatasetLayoutError(name, path, f"not an IDX file of {ndim}-D unsigned bytes (bad magic number)")
            dims = [int.from_bytes(head[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
            if tuple(dims[1:]) != (28, 28)[: ndim - 1] or not 0 < dims[0] <= MAX_ITEMS:
                raise DatasetLayoutError(name, path, f"header says {tuple(dims)}, expected (n, 28, 28) images or (n,) "
                                                     f"labels with 0 < n <= {MAX_ITEMS:,}")
            size = int(np.prod(dims))
            body = f.read(size + 1)  # one byte more than stated: a longer file is refused, not cut
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; EOFError: truncated gzip
        raise DatasetLayoutError(name, path, f"cannot be read ({type(err).__name__}: {err})") from None
    if len(body) != size:
        follow = (f"more than the {size} bytes it needs follow (a padded file)" if len(body) > size
                  else f"{len(body)} bytes follow where it needs {size} (a cut file)")
        raise DatasetLayoutError(name, path, f"header says {tuple(dims)} but {follow}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_split(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_stem, labels_stem = FILES[split]
    images = read_idx(name, _find(folder, images_stem), 3)
    labels = read_idx(name, _find(folder, labels_stem), 1)
    if len(images) != len(labels):
        raise DatasetLayoutError(name, _find(folder, labels_stem),
                                 f"{len(labels)} labels for {len(images)} images in {images_stem}")
    if labels.max() >= len(CLASSES):
        raise DatasetLayoutError(name, _find(folder, labels_stem),
                                 f"labels up to {int(labels.max())}, expected 0..9")
    return images, labels


def _balanced_first(name: str, labels: np.ndarray, classes: range, size: int | None) -> np.ndarray:
    """Indices of the first size/len(classes) images of each of `classes` (all of them without a size),
    in file order."""
    per_class = size // len(classes) if size is not None else len(labels)
    counts = np.bincount(labels, minlength=len(CLASSES))[list(classes)]
    if size is not None and counts.min() < per_class:
        raise DatasetLayoutError(name, None, f"{name} needs {per_class} training images of each class, but class "
                                             f"{classes[int(counts.argmin())]} has {int(counts.min())}")
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])
    return np.sort(keep)


class FashionMNIST(Dataset):
    """(transform(RGB image), label) pairs; `.images` (N, 28, 28) uint8 and `.targets` list of int."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, transform: Transform,
                 classes: Sequence[str] = CLASSES) -> None:
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index]).convert("RGB")  # gray value in all three channels

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.image(index)
        return (self.transform(image) if self.transform is not None else image), self.targets[index]


class FashionMNISTMasks(FashionMNIST):
    """(transform(RGB image), silhouette ids: 0 background, 1 the garment) for the attention Jaccard.

    With `size` > 28 the image and its mask are padded with black / background to size x size, centred
    as the evaluation transform pads them (torchvision's CenterCrop), so the mask is at the model's input
    resolution and aligned with what the model sees."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, transform: Transform, size: int | None = None,
                 classes: Sequence[str] = CLASSES) -> None:
        super().__init__(images, targets, transform, classes)
        self.size = size

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        pixels = self.images[index]
        if self.size is not None and self.size > pixels.shape[0]:
            top = left = (self.size - pixels.shape[0]) // 2
            padded = np.zeros((self.size, self.size), dtype=np.uint8)
            padded[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
            pixels = padded
        image = Image.fromarray(pixels).convert("RGB")
        mask = torch.from_numpy((pixels > 0).astype(np.int64))
        return (self.transform(image) if self.transform is not None else image), mask


def build(name: str, root: Path | None, split: str, transform: Transform, *, masks: bool = False,
          pad_to: int | None = None) -> Dataset:
    images, labels = read_split(name, locate(name, root), split)
    classes, size = parse_name(name)
    if split == "train" and (size is not None or len(classes) < len(CLASSES)):
        keep = _balanced_first(name, labels, classes, size)
    else:  # the test images of the name's classes, all of them
        keep = np.flatnonzero((labels >= classes.start) & (labels < classes.stop))
    images, labels = images[keep], labels[keep] - classes.start
    names = [CLASSES[c] for c in classes]
    if masks:
        return FashionMNISTMasks(images, labels, transform, pad_to, names)
    return FashionMNIST(images, labels, transform, names)


def download(name: str, root: Path, split: str) -> None:
    """torchvision's download into <root>/FashionMNIST/raw/ (it md5-checks its own .gz copies)."""
    try:
        tvd.FashionMNIST(str(root), train=split == "train", download=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetLayoutError(name, root, f"download failed ({type(exc).__name__}: {exc})") from exc
