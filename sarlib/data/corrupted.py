"""A test set as arrays, for scoring models on corrupted copies of it (the robustness target).

    clean = clean_test_set("fashion-mnist-2k", per_class=100, img_size=28)
    noisy = corrupted_set(clean.images, "gaussian_noise", 3, seed=0, cache_dir=..., key=clean.key)
    batch = clean.to_tensor(noisy[:64])     # exactly what the run's evaluation transform gives

The corruptions (`sarlib.data.corruptions`) work on the uint8 pixels a reader stores, before the
evaluation transform, as ImageNet-C's and CIFAR-10-C's released images are corrupted before any model sees
them. `to_tensor` then applies the run's own evaluation path (Fashion-MNIST: padding and normalization
through its evaluation transform; the embedded sets: their fixed normalization), so severity 0 gives the
tensors the run's test loader gives, checked by tests. Object masks stay those of the clean image: the
question is whether attention stays on the object when the pixels around and on it are damaged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .datasets import build_segmentation_dataset
from .registry import DATASETS, is_synthetic
from .synthetic.generate import normalize_uint8
from .transforms import eval_transform

__all__ = ["CleanTestSet", "clean_test_set"]


@dataclass(frozen=True)
class CleanTestSet:
    """A class-balanced slice of a test set: uint8 pixels ((N, H, W) grayscale or (N, H, W, 3)), labels,
    object masks (N, H, W) of ids (0 background, 1 the object) at the model's input size, and
    `to_tensor` turning uint8 pixels of that shape into the model's input batch."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    to_tensor: Callable[[np.ndarray], torch.Tensor]

    @property
    def key(self) -> str:
        """Names the slice in cache file names: the dataset and a hash of its pixels and labels."""
        digest = hashlib.sha256(self.images.tobytes() + self.labels.astype(np.int64).tobytes()).hexdigest()[:12]
        return f"{self.name}-{len(self.labels)}-{digest}"


def _first_per_class(labels: np.ndarray, per_class: int | None) -> np.ndarray:
    """Indices of the first `per_class` images of each class in file order (all with None), in file order:
    the same images for every run and model."""
    if per_class is None:
        return np.arange(len(labels))
    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer or None (every test image); got {per_class!r}")
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    return np.sort(keep)


def clean_test_set(name: str, *, per_class: int | None, img_size: int, root=None, cache_dir=None) -> CleanTestSet:
    """The first `per_class` test images of each class of `name` as arrays (see `CleanTestSet`).

    Datasets with stored object masks whose pixels the reader keeps as arrays: the embedded synthetic sets
    and Fashion-MNIST. Others raise a ValueError naming the ones that work."""
    info = DATASETS.get(name)
    if info is None or not info.has_masks or not (is_synthetic(name) or info.image_size is not None):
        usable = [n for n, i in DATASETS.items() if i.has_masks and (is_synthetic(n) or i.image_size is not None)]
        raise ValueError(f"{name!r} cannot be corrupted in memory (its pixels or object masks are not stored as "
                         f"arrays); choose one of {', '.join(usable)}")
    seg = build_segmentation_dataset(name, root=root, cache_dir=cache_dir, size=img_size)
    base = getattr(seg, "dataset", seg)  # GuardedSamples wraps the reader
    if is_synthetic(name):
        objects = base.base
        labels = objects.labels.numpy().astype(np.int64)
        keep = _first_per_class(labels, per_class)
        images = objects.images[keep].permute(0, 2, 3, 1).contiguous().numpy()  # (N, S, S, 3)
        masks = objects.masks[keep].numpy().astype(np.int64)
        if images.shape[1] != img_size:
            raise ValueError(f"{name} images are {images.shape[1]} px but the model takes {img_size}")
        return CleanTestSet(name, images, labels[keep], masks, _synthetic_tensor)
    labels = np.asarray(base.targets, dtype=np.int64)
    keep = _first_per_class(labels, per_class)
    images = np.ascontiguousarray(base.images[keep])  # (N, 28, 28) gray
    masks = np.stack([seg[int(i)][1].numpy() for i in keep])  # silhouettes, padded as the images will be
    transform = eval_transform(name, img_size)

    def to_tensor(pixels: np.ndarray) -> torch.Tensor:
        return torch.stack([transform(Image.fromarray(p).convert("RGB")) for p in pixels])

    return CleanTestSet(name, images, labels[keep], masks, to_tensor)


def _synthetic_tensor(pixels: np.ndarray) -> torch.Tensor:
    return normalize_uint8(torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2))
