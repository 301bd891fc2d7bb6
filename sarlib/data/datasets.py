"""One registry of the datasets the suite trains and evaluates on, their loaders, and clear errors.

Classification (``build_dataset``, splits ``"train"`` and ``"val"``; ``"val"`` is the official
test/validation split): the embedded synthetic sets ``synthetic-colour-tiny``, ``synthetic-colour-1k``, ``synthetic-colour-2k``
(class = the main object's hue, the cpu profile's task), ``synthetic-tiny``, ``synthetic-1k``,
``synthetic-5k``, ``synthetic-20k`` (no data root), CIFAR-10/100, Oxford Flowers-102, Oxford-IIIT Pets,
ImageNet-1k and ImageNet-100, Fashion-MNIST and its class-balanced training subsets. Segmentation
(``build_segmentation_dataset``, yields per-object masks): the synthetic sets, Fashion-MNIST (garment
silhouettes) and PASCAL VOC 2012 (segmentation val).

Every classification dataset built here has ``.num_classes`` and ``.targets`` (int labels, item order).
Real datasets read the standard on-disk formats lazily (PIL open + RGB on ``__getitem__``), apply
``transform`` to the PIL image, and raise :class:`DatasetLayoutError` for a missing or malformed root,
naming the dataset, the path tried, what is missing and the expected layout.

Loader choices (why not always torchvision):

* ImageNet / ImageNet-100: torchvision ``ImageFolder`` (it reads the layout as is); ImageNet-100
  overrides its class discovery so labels follow the shipped class-list order.
* CIFAR: the official python pickles are read directly. torchvision's CIFAR classes md5-check every
  file on each construction, which rejects any re-packed or test copy with an opaque message; they are
  used only for ``download=True`` (download + integrity check), after which the same reader runs.
* Flowers-102: read directly. torchvision's class md5-checks the ``.mat`` files and its ``"train"``
  split is ``trnid`` only; the paper convention used here is train = ``trnid`` + ``valid`` (2,040
  images), val = ``tstid`` (6,149 images). ``download=True`` goes through torchvision.
* Pets: read directly, so that both ``root/`` and ``root/oxford-iiit-pet/`` work with the same checks
  (torchvision only accepts the latter). ``download=True`` goes through torchvision.
* Fashion-MNIST: read directly from the IDX files (``readers/fashion_mnist.py``). torchvision's class
  md5-checks its own ``.gz`` copies, which Debian's differ from, and opens only ``FashionMNIST/raw/``;
  ``download=True`` goes through it.
* VOC 2012: read directly, because torchvision's ``VOCSegmentation`` yields only the semantic
  ``SegmentationClass`` masks, while DINO's protocol needs the per-object ``SegmentationObject`` masks;
  ``masks="class"`` reads ``SegmentationClass`` instead (the authors' protocol, spec section 5).

Expected layouts under the data root (generated from ``DATASETS``, see ``describe_layouts()``):
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from .readers import fashion_mnist
from .readers.cifar import _build_cifar, _download_cifar
from .readers.flowers import _build_flowers, _download_flowers
from .readers.imagenet import _build_imagenet
from .readers.pets import _build_pets, _download_pets
from .readers.synthetic import SyntheticMasks, _build_synthetic, _synthetic_objects
from .readers.voc import _build_voc
from .registry import (CLASSIFICATION_DATASETS, FASHION_MNIST, SEGMENTATION_DATASETS, SPLITS, VOC_MASK_FOLDERS, Transform, _lookup,
                       _require_root, describe_layouts)
from .samples import GuardedSamples

__all__ = ["build_dataset", "build_segmentation_dataset"]


def build_dataset(
    name: str,
    *,
    split: str,
    root: str | os.PathLike[str] | None = None,
    transform: Transform = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Classification dataset yielding (image, label); ``split`` is "train" or "val".

    ``transform`` is applied to the PIL images of real datasets; the synthetic sets yield ready,
    normalized tensors and ignore it (and ``root``). ``download=True`` fetches CIFAR / Flowers / Pets
    through torchvision into ``root``.

    The result has ``.num_classes``, ``.classes`` and ``.targets`` (list of int; a 1-D int64 tensor for
    the synthetic sets). ``.num_classes`` is the registry value, except for "imagenet", where it is the
    number of class directories found (1000 on a full copy), so labels and head size always agree.
    """
    info = _lookup(name)
    if name not in CLASSIFICATION_DATASETS:
        raise ValueError(
            f"{name} is a segmentation-only dataset; use build_segmentation_dataset. "
            f"Classification datasets: {', '.join(CLASSIFICATION_DATASETS)}"
        )
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} ('val' = the official test/val split), got {split!r}")
    if not info.needs_root:
        return _build_synthetic(name, split, cache_dir)
    if download and name not in _DOWNLOADERS:
        raise ValueError(
            f"{name} cannot be downloaded automatically; place it under the data root as: {info.layout}"
        )
    path = _require_root(name, root, create=download)
    if download:
        _DOWNLOADERS[name](name, path, split)
    return GuardedSamples(_BUILDERS[name](name, path, split, transform), name=name, split=split)


def build_segmentation_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    transform: Transform = None,
    cache_dir: str | os.PathLike[str] | None = None,
    void_as_background: bool = False,
    masks: str = "object",
    size: int | None = None,
) -> Dataset:
    """Dataset yielding (image, masks): masks int64 (H, W) of object ids, 0 background, 1..K objects,
    255 void (excluded by the evaluator; ``void_as_background=True`` maps it to 0 instead).

    Synthetic sets use their "test" split (transform ignored). "voc2012" is the VOC 2012 segmentation
    val set resized to 480x480 (bilinear image, nearest mask); ``transform`` then runs on the PIL image.
    ``masks="class"`` yields VOC's ``SegmentationClass`` ids instead (1..20, every instance of a class
    merged into one region), as the authors' evaluation does; a synthetic image holds one object, so
    its class mask is its object mask.

    ``size`` (the model's input size): Fashion-MNIST pads each 28 px image and its silhouette to it, as
    its evaluation transform does (other datasets ignore it).
    """
    if masks not in VOC_MASK_FOLDERS:
        raise ValueError(f"masks must be one of {', '.join(VOC_MASK_FOLDERS)}; got {masks!r}")
    info = _lookup(name)
    if not info.has_masks:
        raise ValueError(
            f"{name} has no ground-truth masks; segmentation datasets: {', '.join(SEGMENTATION_DATASETS)}"
        )
    if not info.needs_root:
        return SyntheticMasks(_synthetic_objects(name, "test", cache_dir, with_masks=True))
    if name in FASHION_MNIST:  # one garment per image: its class mask is its object mask
        return GuardedSamples(fashion_mnist.build(name, _require_root(name, root), "val", transform, masks=True,
                                                  pad_to=size), name=name, split="val")
    return GuardedSamples(_build_voc(name, _require_root(name, root), transform, void_as_background, masks),
                          name=name, split="val")


_BUILDERS: dict[str, Callable[[str, Path, str, Transform], Dataset]] = {
    "cifar10": _build_cifar,
    "cifar100": _build_cifar,
    "flowers102": _build_flowers,
    "pets": _build_pets,
    "imagenet": _build_imagenet,
    "imagenet100": _build_imagenet,
    **{name: fashion_mnist.build for name in FASHION_MNIST},
}


_DOWNLOADERS: dict[str, Callable[[str, Path, str], None]] = {
    "cifar10": _download_cifar,
    "cifar100": _download_cifar,
    "flowers102": _download_flowers,
    "pets": _download_pets,
    **{name: fashion_mnist.download for name in FASHION_MNIST},
}


if __doc__ is not None:  # None under python -OO
    __doc__ += describe_layouts() + "\n"
