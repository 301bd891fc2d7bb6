"""The released robustness test sets, read against a model's own class list.

ImageNet-C (Hendrycks & Dietterich 2019): ``<root>/<corruption>/<severity 1..5>/<wnid>/*.JPEG``, the 50,000
ImageNet validation images under each corruption and severity. ImageNet-A (Hendrycks et al. 2021):
``<root>/<wnid>/*.jpg``, 7,500 natural adversarial images of 200 ImageNet classes.

Labels are indices into the model's class list ``classes`` (ImageNet-1k's sorted 1000 wnids, the shipped
ImageNet-100 list, or any list of wnids), so they match the model's logits whatever classes the benchmark
holds. Only the images directly inside each class folder are read (the releases are flat), and only regular
files whose real path lies under the benchmark root: a symlink leading elsewhere is refused, not followed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from ..registry import DatasetLayoutError, Transform, _preview
from .imagenet import ClassListImageFolder, _class_dirs

__all__ = ["BenchmarkImages", "IMAGENET_C_SEVERITIES", "RobustnessLayoutError", "imagenet_a_dataset",
           "imagenet_c_available", "imagenet_c_dataset"]


IMAGENET_C_SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


# The benchmarks are test sets, not training datasets of the registry: their layouts and fixes live here.
_LAYOUTS: dict[str, str] = {
    "imagenet-c": "<corruption>/<severity 1..5>/<wnid>/*.JPEG (the released ImageNet-C tarballs, extracted "
                  "into one folder)",
    "imagenet-a": "<wnid>/*.jpg (the released imagenet-a.tar, extracted: 200 class folders)",
}
_HINTS: dict[str, str] = {
    "imagenet-c": "point the ImageNet-C root at the folder holding the corruption folders "
                  "(gaussian_noise/, fog/, ...) and extract the missing tarballs there",
    "imagenet-a": "point the ImageNet-A root at the extracted imagenet-a/ folder (the one holding n01498041/, ...)",
}


class RobustnessLayoutError(DatasetLayoutError):
    """A `DatasetLayoutError` for a robustness benchmark: the one-line message names its own layout."""

    def __init__(
        self, dataset: str, path: str | os.PathLike[str] | None, problem: str, hint: str | None = None
    ) -> None:
        super().__init__(dataset, path, problem, hint or _HINTS.get(dataset))
        self.layout = _LAYOUTS.get(dataset, self.layout)
        self.message = (
            f"{dataset}: {problem} ({self.path if self.path is not None else 'no data root given'}); "
            f"expected under the data root: {self.layout}; fix: {self.hint}"
        )
        self.args = (self.message,)


class BenchmarkImages(ClassListImageFolder):
    """The images of a benchmark folder whose wnid is in the model's class list, labelled by that list.

    ``classes``/``num_classes`` are the model's; ``present`` the wnids of that list found here (sorted),
    ``mask_indices`` their indices into ``classes`` (ascending) and ``intersection`` their number.
    """

    def __init__(self, name: str, root: Path, folder: Path, classes: Sequence[str], present: Sequence[str],
                 transform: Transform) -> None:
        # read by make_dataset() during ImageFolder.__init__
        self._name = name
        self._root = os.path.realpath(root)
        self.present = sorted(present)
        super().__init__(folder, classes, transform)
        index = {c: i for i, c in enumerate(self.classes)}
        self.mask_indices = torch.tensor(sorted(index[w] for w in self.present), dtype=torch.long)
        self.intersection = len(self.present)

    def make_dataset(self, directory: str | os.PathLike[str], class_to_idx: dict[str, int],  # type: ignore[override]
                     extensions: tuple[str, ...] | None = None, is_valid_file: object = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        # Only the present wnids: the benchmark holds a subset (ImageNet-A) or a superset (ImageNet-C) of the
        # model's classes, where ImageFolder would call every missing class an error.
        samples: list[tuple[str, int]] = []
        for wnid in self.present:
            samples += [(path, class_to_idx[wnid]) for path in self._images(Path(directory) / wnid)]
        return samples

    def _inside(self, path: str) -> bool:
        return os.path.commonpath([self._root, path]) == self._root

    def _images(self, folder: Path) -> list[str]:
        real_folder = os.path.realpath(folder)
        if not self._inside(real_folder):
            raise RobustnessLayoutError(
                self._name, folder, f"the class folder {folder.name}/ leads to {real_folder}, outside the data root "
                f"{self._root}; it is not read",
                hint="copy or move the images under the data root instead of linking them",
            )
        paths = []
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith(".") or not has_file_allowed_extension(entry.name, IMG_EXTENSIONS):
                    continue
                if entry.is_symlink():  # the only way out of a folder that is itself under the root
                    target = os.path.realpath(entry.path)
                    if not self._inside(target):
                        raise RobustnessLayoutError(
                            self._name, entry.path, f"{folder.name}/{entry.name} leads to {target}, outside the "
                            f"data root {self._root}; it is not read",
                            hint="copy or move the images under the data root instead of linking them",
                        )
                    regular = os.path.isfile(target)
                else:
                    regular = entry.is_file(follow_symlinks=False)
                if not regular:
                    raise RobustnessLayoutError(
                        self._name, entry.path, f"{folder.name}/{entry.name} is not a regular file",
                        hint="remove it or replace it with the image from the released archive",
                    )
                paths.append(entry.path)
        if not paths:
            raise RobustnessLayoutError(self._name, folder, f"the class folder {folder.name}/ holds no images")
        return paths

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted labels (indices into ``classes``) from (..., num_classes) logits, the argmax taken over the
        benchmark's classes only (``mask_indices``): the ImageNet-A protocol."""
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[-1]} classes, the model's class list has {self.num_classes}")
        mask = self.mask_indices.to(logits.device)
        return mask[logits.index_select(-1, mask).argmax(-1)]


def _check_classes(classes: Sequence[str]) -> list[str]:
    wnids = list(classes)
    if not wnids:
        raise ValueError("the model's class list is empty")
    if len(set(wnids)) < len(wnids):
        repeated = sorted({w for w in wnids if wnids.count(w) > 1})
        raise ValueError(f"the model's class list repeats {_preview(repeated)}: its order defines the labels")
    return wnids


def _require_dir(name: str, folder: Path, missing: str) -> None:
    if not folder.exists():
        raise RobustnessLayoutError(name, folder, missing)
    if not folder.is_dir():
        raise RobustnessLayoutError(name, folder, f"{folder.name} is not a directory")


def _benchmark_images(name: str, root: Path, folder: Path, classes: list[str], transform: Transform,
                      *, require_all: bool) -> BenchmarkImages:
    here = _class_dirs(folder)
    if not here:
        raise RobustnessLayoutError(name, folder, "the folder holds no class folders")
    wanted = set(classes)
    present = [w for w in here if w in wanted]
    if not present:
        raise RobustnessLayoutError(
            name, folder, f"none of its {len(here)} class folders ({_preview(here)}) is in the model's class list "
            f"of {len(classes)} ({_preview(classes)})",
            hint="pass the model's own class list (wnids), the one its labels were trained with",
        )
    if require_all and len(present) < len(classes):
        missing = [w for w in classes if w not in set(present)]
        raise RobustnessLayoutError(
            name, folder, f"{len(missing)} of the model's {len(classes)} classes have no folder here "
            f"({_preview(missing)}); ImageNet-C holds every ImageNet-1k class, so this extraction is incomplete",
        )
    return BenchmarkImages(name, root, folder, classes, present, transform)


def _root_dir(name: str, root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    _require_dir(name, path, "the data root does not exist")
    return path


def _corruptions(base: Path) -> dict[str, tuple[int, ...]]:
    found = {}
    for corruption in _class_dirs(base):
        severities = tuple(s for s in IMAGENET_C_SEVERITIES if (base / corruption / str(s)).is_dir())
        if severities:
            found[corruption] = severities
    return found


def imagenet_c_available(root: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """The corruptions under an ImageNet-C root (folder names, sorted) and the severities present for each.

    Folders without any severity folder 1..5 are left out; a root with none raises `RobustnessLayoutError`.
    """
    name = "imagenet-c"
    base = _root_dir(name, root)
    found = _corruptions(base)
    if not found:
        raise RobustnessLayoutError(name, base, "no <corruption>/<severity>/ folders under the data root")
    return found


def imagenet_c_dataset(root: str | os.PathLike[str], corruption: str, severity: int, classes: Sequence[str],
                       transform: Transform = None) -> BenchmarkImages:
    """ImageNet-C's images of one corruption at one severity, as (transform(RGB image), label) pairs.

    ``label`` is the wnid's index in ``classes``, the model's class list. Class folders outside it are skipped:
    ImageNet-C holds all 1000 ImageNet classes, and an ImageNet-100 model is scored on its 100. Every class of
    the list must have its folder (a missing one means an incomplete extraction, whose scores would not
    compare). Problems with the folders raise `RobustnessLayoutError` (a `DatasetLayoutError`).
    """
    name = "imagenet-c"
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in IMAGENET_C_SEVERITIES:
        raise ValueError(f"ImageNet-C severity must be an integer 1..5; got {severity!r}")
    wnids = _check_classes(classes)
    base = _root_dir(name, root)
    if not corruption or Path(corruption).name != corruption or corruption.startswith("."):
        raise ValueError(f"corruption must be a folder name such as 'gaussian_noise'; got {corruption!r}")
    corruption_dir = base / corruption
    if not corruption_dir.is_dir():
        known = ", ".join(_corruptions(base)) or "none"
        _require_dir(name, corruption_dir, f"no {corruption}/ folder under the ImageNet-C root (present: {known})")
    folder = corruption_dir / str(severity)
    if not folder.is_dir():
        present = [str(s) for s in IMAGENET_C_SEVERITIES if (corruption_dir / str(s)).is_dir()]
        _require_dir(name, folder, f"no severity folder {corruption}/{severity}/ "
                                   f"(severities present: {', '.join(present) or 'none'})")
    return _benchmark_images(name, base, folder, wnids, transform, require_all=True)


def imagenet_a_dataset(root: str | os.PathLike[str], classes: Sequence[str],
                       transform: Transform = None) -> BenchmarkImages:
    """ImageNet-A's images whose wnid is in ``classes`` (the model's class list), labelled by their index there.

    The standard protocol restricts the logits to ImageNet-A's 200 classes before the argmax: use
    ``dataset.predict(logits)``, or ``dataset.mask_indices`` (the indices into ``classes`` of the wnids in both
    ImageNet-A and ``classes``; ``dataset.intersection`` of them). A model trained on ImageNet-100 is scored on
    the intersection of its classes with ImageNet-A's 200, over those classes' images only: its accuracy is
    not comparable to ImageNet-1k models' ImageNet-A numbers. Problems with the folders raise
    `RobustnessLayoutError` (a `DatasetLayoutError`).
    """
    name = "imagenet-a"
    wnids = _check_classes(classes)
    base = _root_dir(name, root)
    return _benchmark_images(name, base, base, wnids, transform, require_all=False)
