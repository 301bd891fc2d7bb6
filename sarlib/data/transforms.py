"""PIL -> tensor transforms of the real datasets: the DeiT recipe through timm, made safe for real data.

Two things are added to timm's `create_transform` output, both for runs on real images:

* **Posterize with 0 bits kept is a black image, with every Pillow.** timm's RandAugment
  (`rand-m9-mstd0.5-inc1`, the authors' policy) draws `PosterizeIncreasing` with 4 - int(4 m / 10)
  bits to keep; with the magnitude noise (std 0.5, clipped to 10) m reaches 10 and the op asks for 0
  bits, about once in 400-700 images. Pillow < 13 returned a black image for that (the authors' code ran
  with such a Pillow); Pillow 13 raises "bits must be between or equal to 1 and 8", which stopped any
  real-data run within its first epoch. The op is wrapped rather than Pillow bounded: a bound would pin
  every user to an old Pillow (and its unfixed security issues) and would fail outright where no old
  wheel exists for their Python, while the wrapper keeps the authors' semantics on any Pillow.
* **Every step is named when it fails.** `NamedCompose` runs the steps one by one and turns an error
  into a `TransformError` naming the step (for RandAugment, the op), so the dataset wrapper in
  `sarlib.data.datasets` can stop the run with one line naming the dataset, the sample, its file and the step.
"""

from __future__ import annotations

import traceback
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from timm.data import auto_augment as timm_aa
from torchvision import transforms as T

from .registry import DATASETS

__all__ = ["NamedCompose", "TransformError", "build_transforms", "eval_transform", "posterize_keep_zero",
           "random_shift"]


class TransformError(ValueError):
    """One step of a transform pipeline failed on one image; the message names the step and the error."""


def posterize_keep_zero(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize op with the Pillow < 13 result for 0 bits kept (every value masked to 0: black)."""
    if bits_to_keep <= 0:
        return img.point([0] * 256 * len(img.getbands()))
    return timm_aa.posterize(img, bits_to_keep)


def _augment_ops(transform: Any) -> list[Any]:
    ops = []
    for step in getattr(transform, "transforms", [transform]):
        ops.extend(op for op in getattr(step, "ops", []) if isinstance(op, timm_aa.AugmentOp))
    return ops


def _keep_zero_bit_posterize(transform: Any) -> Any:
    for op in _augment_ops(transform):
        if op.aug_fn is timm_aa.posterize:
            op.aug_fn = posterize_keep_zero
    return transform


def _step_name(step: Any, err: BaseException) -> str:
    """The step's name (a function's, else its class's); for a step made of ops (RandAugment), also the op
    that raised."""
    name = getattr(step, "__name__", type(step).__name__)
    ops = [frame.f_locals.get("self") for frame, _ in traceback.walk_tb(err.__traceback__)]
    op = next((o for o in reversed(ops) if isinstance(o, timm_aa.AugmentOp)), None)
    return f"{name} op {op.name}" if op is not None and op is not step else name


class NamedCompose(T.Compose):
    """`transforms.Compose` whose failures name the step that raised (`TransformError`)."""

    def __call__(self, img: Any) -> Any:
        for step in self.transforms:
            try:
                img = step(img)
            except Exception as err:  # any step may raise anything; the type is kept in the message
                message = " ".join(str(err).split()) or "no message"
                raise TransformError(f"transform {_step_name(step, err)} raised {type(err).__name__}: "
                                     f"{message}") from None
        return img


def eval_transform(dataset: str, img_size: int) -> NamedCompose:
    """DeiT's evaluation transform (resize to img_size / 0.875, center crop); a dataset of small images
    of one size (Fashion-MNIST's 28 px) is padded with black to `img_size` instead, never resized or
    cropped, so a garment keeps every pixel and its silhouette mask stays aligned."""
    native = DATASETS[dataset].image_size if dataset in DATASETS else None
    if native is not None and native <= img_size:
        # torchvision's CenterCrop pads with 0 when the image is smaller than the crop
        return NamedCompose([T.CenterCrop(img_size), T.ToTensor(), T.Normalize(IMAGENET_DEFAULT_MEAN,
                                                                                IMAGENET_DEFAULT_STD)])
    return NamedCompose(create_transform(img_size, is_training=False, interpolation="bicubic",
                                         crop_pct=224 / 256).transforms)


def build_transforms(cfg: Any) -> tuple[Any, Any]:
    """(train, eval) transforms for real datasets (synthetic sets yield ready tensors), from a run's config
    (a sarlib.train.TrainConfig: dataset, img_size, augment, rand_augment, reprob)."""
    eval_tf = eval_transform(cfg.dataset, cfg.img_size)
    if cfg.augment != "deit":
        return eval_tf, eval_tf  # "shift" is applied to whole batches in the training loop
    train_tf = create_transform(
        cfg.img_size, is_training=True, auto_augment=cfg.rand_augment, re_prob=cfg.reprob,
        re_mode="pixel", re_count=1, interpolation="bicubic", color_jitter=0.4,
    )
    return NamedCompose(_keep_zero_bit_posterize(train_tf).transforms), eval_tf


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (zero padding): cheap, label-preserving augmentation."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,))
    dx = torch.randint(0, 2 * max_shift + 1, (n,))
    rows = (dy.view(n, 1) + torch.arange(h)).to(images.device)  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w)).to(images.device)  # (n, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
