"""Samples of the real datasets: images decoded one by one, and a failing sample turned into one line
naming the dataset, split, index, file and step (also from inside a loader worker)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from .transforms import TransformError
from .registry import DatasetLayoutError, Transform

__all__ = ["CorruptImageError", "GuardedSamples", "ImageListDataset", "SampleError"]

class CorruptImageError(ValueError):
    """An image file of a dataset cannot be decoded; the message names the file and the fix."""


def _load_rgb(path: str | Path) -> Image.Image:
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")  # convert() reads the pixels before the file closes
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as err:  # PIL: unidentified format, truncated or broken data
        raise CorruptImageError(
            f"{path} cannot be decoded as an image ({' '.join(str(err).split())}); replace it with a good copy "
            "from the original archive"
        ) from None


class ImageListDataset(Dataset):
    """Images given by path with integer labels, opened lazily (Flowers-102, Pets)."""

    def __init__(
        self, paths: Sequence[Path], targets: Sequence[int], classes: Sequence[str], transform: Transform
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        self.paths = list(paths)
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = _load_rgb(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


class SampleError(ValueError):
    """One sample of a real dataset could not be read or transformed. The message names the dataset,
    split, index, file and step, and says how to go on; it survives a DataLoader worker as one line."""


def _sample_source(dataset: Dataset, index: int) -> str:
    """The file behind sample `index` (ImageFolder's samples, an image list, VOC ids), else its position."""
    if hasattr(dataset, "samples"):
        return str(dataset.samples[index][0])
    if hasattr(dataset, "paths"):
        return str(dataset.paths[index])
    if hasattr(dataset, "ids") and hasattr(dataset, "base"):
        return str(dataset.base / "JPEGImages" / f"{dataset.ids[index]}.jpg")
    return "held in memory"


# how a run goes on after a failed sample: every finished epoch is in its checkpoint
_RESUME = "then run the same command again: training resumes from the last finished epoch"


class GuardedSamples(Dataset):
    """A real dataset whose failing samples raise `SampleError` instead of a worker traceback.

    Attributes of the wrapped dataset (targets, classes, num_classes, samples, ...) read through.
    """

    def __init__(self, dataset: Dataset, *, name: str, split: str) -> None:
        self.dataset = dataset
        self.name = name
        self.split = split

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, attr: str) -> Any:
        if attr in ("dataset", "name", "split") or attr.startswith("__"):  # unpickling: not set yet
            raise AttributeError(attr)
        return getattr(self.dataset, attr)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except (SampleError, DatasetLayoutError):  # already one line naming the file and the fix
            raise
        except Exception as err:  # noqa: BLE001 - every failure becomes one line naming the sample
            raise SampleError(self._describe(index, err)) from None

    def _describe(self, index: int, err: BaseException) -> str:
        where = f"{self.name} {self.split} sample {index} ({_sample_source(self.dataset, index)})"
        if isinstance(err, FileNotFoundError):
            return (f"{where}: the file is gone ({err.strerror or err}); restore it or rebuild the data root, "
                    f"{_RESUME}")
        if isinstance(err, CorruptImageError):  # its message already names the file and the fix
            return f"{where}: {err}; {_RESUME}"
        if isinstance(err, OSError):
            return f"{where}: cannot be read ({' '.join(str(err).split())}); fix its permissions or file, {_RESUME}"
        what = str(err) if isinstance(err, TransformError) else f"{type(err).__name__}: {err}"
        return (f"{where}: {' '.join(what.split())}; the image cannot go through the pipeline: report this line, "
                f"or remove the image, {_RESUME}")
