"""A run's data loaders: its config bound to the data layer (datasets, transforms, samplers, subsets)."""

from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision import transforms as T

import numpy as np
import torch

from ..data import DATASETS, build_dataset, build_segmentation_dataset, is_synthetic
from ..data.samplers import RepeatedAugSampler
from ..data.subsets import stratified_subset
from ..data.transforms import NamedCompose, build_transforms
from .config import TrainConfig
from .distributed import DistInfo

__all__ = ["build_loaders", "build_segmentation_loader", "start_epoch"]


def _train_eval_subset(cfg: TrainConfig, train_set, eval_tf):
    """A fixed, un-augmented slice of the training set: training accuracy shows whether the model fits.

    The slice is the same for every arm and seed of a dataset (a permutation seeded by a constant), so
    train top-1 compares like for like. Real datasets are re-opened with the eval transform.
    """
    if cfg.train_eval_images <= 0:
        return None
    if not is_synthetic(cfg.dataset):
        # same files, eval transform (no RandAugment / erasing); the subset indices below still apply
        plain = build_dataset(cfg.dataset, split="train", transform=eval_tf, root=cfg.data_root,
                              cache_dir=cfg.cache_dir)
        plain = stratified_subset(plain, cfg.train_fraction, cfg.seed)
    else:
        plain = train_set  # synthetic sets yield un-augmented tensors; the shift is applied per batch
    order = torch.randperm(len(plain), generator=torch.Generator().manual_seed(0))
    return Subset(plain, order[: cfg.train_eval_images].tolist())


def _own_generator(num_workers: int) -> torch.Generator | None:
    """A loader with workers seeds them from a generator of its own: drawing from the global RNG when
    persistent workers start (at the first evaluation, which comes at another epoch in a resumed run) would
    shift the training RNG. Without workers a loader draws one number from the global RNG per pass, at the
    same points in a resumed and an uninterrupted run; the committed single-process results depend on it."""
    return torch.Generator() if num_workers > 0 else None


def build_loaders(cfg: TrainConfig, info: DistInfo):
    """(train, val, train-eval or None, num_classes) loaders for one process."""
    train_tf, eval_tf = build_transforms(cfg)
    common = dict(root=cfg.data_root, cache_dir=cfg.cache_dir)
    train_set = build_dataset(cfg.dataset, split="train", transform=train_tf, download=cfg.download, **common)
    val_set = build_dataset(cfg.dataset, split="val", transform=eval_tf, download=cfg.download, **common)
    if is_synthetic(cfg.dataset):
        size = train_set.config.img_size if hasattr(train_set, "config") else None
        if size is not None and size != cfg.img_size:
            raise ValueError(f"{cfg.dataset} images are {size}x{size} but img_size={cfg.img_size}; set --img-size {size}")
        if cfg.augment == "deit":
            raise ValueError("synthetic sets yield tensors; use --augment shift or --augment none with them")
    num_classes = train_set.num_classes
    train_set = stratified_subset(train_set, cfg.train_fraction, cfg.seed)
    # One sampler for every world size: with one replica it is a seeded per-epoch shuffle, and with N
    # replicas each rank takes every N-th index of the same permutation, so the global batch is the same.
    # Repeated augmentation (DeiT) keeps those semantics and the (seed, epoch) determinism.
    if cfg.repeated_aug > 1:
        sampler = RepeatedAugSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                     num_repeats=cfg.repeated_aug, seed=cfg.seed)
    else:
        sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
    if len(train_set) < cfg.batch_size * info.world_size:
        raise ValueError(f"training set has {len(train_set)} images, fewer than one global batch "
                         f"({cfg.batch_size} x {info.world_size}); lower --batch-size")
    loader_kw = dict(num_workers=cfg.num_workers, pin_memory=info.device.type == "cuda")
    # Worker processes draw augmentations from their own RNGs, seeded once per iterator from the loader's
    # generator. Persistent workers would carry those RNGs from epoch to epoch, so a resumed run (fresh
    # workers) would draw other augmentations than an uninterrupted one; fresh workers each epoch, seeded
    # by start_epoch from (seed, epoch, rank) alone, make resume exact for a given num_workers.
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                              generator=_own_generator(cfg.num_workers), **loader_kw)
    # evaluation draws nothing at random, so its workers may persist
    val_loader = DataLoader(val_set, batch_size=2 * cfg.batch_size, shuffle=False,
                            persistent_workers=cfg.num_workers > 0, generator=_own_generator(cfg.num_workers),
                            **loader_kw)
    train_eval_set = _train_eval_subset(cfg, train_set, eval_tf)
    train_eval_loader = None if train_eval_set is None else DataLoader(
        train_eval_set, batch_size=2 * cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
        generator=_own_generator(cfg.num_workers))
    return train_loader, val_loader, train_eval_loader, num_classes


def start_epoch(loader: DataLoader, epoch: int, *, seed: int, rank: int) -> None:
    """Set the epoch's sample order and, with worker processes, seed their augmentation RNGs from
    (seed, epoch, rank) alone."""
    loader.sampler.set_epoch(epoch)
    if loader.generator is not None:
        state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint32)
        loader.generator.manual_seed(int(state[0]) << 32 | int(state[1]))


def build_segmentation_loader(cfg: TrainConfig, *, void_as_background: bool = False):
    """Loader of (image, mask) for the run's segmentation set under `cfg.seg_protocol`, or None when
    the run has no segmentation set. "dino": object masks, images at the model's input size; "authors":
    class masks, images at the mask size (480x480 for VOC: bilinear resize, ToTensor, ImageNet
    normalization, as the authors' evaluation)."""
    name = cfg.seg_dataset or (cfg.dataset if DATASETS[cfg.dataset].has_masks else None)
    if name is None:
        return None
    if is_synthetic(name):
        tf = None
    elif cfg.seg_protocol == "authors":
        tf = NamedCompose([T.ToTensor(), T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)])
    else:
        # real images are resized (not cropped) to the model's input so every ground-truth pixel is scored
        tf = NamedCompose(create_transform(cfg.img_size, is_training=False, interpolation="bicubic",
                                           crop_pct=1.0).transforms)
    seg_set = build_segmentation_dataset(name, root=cfg.data_root, transform=tf, cache_dir=cfg.cache_dir,
                                         void_as_background=void_as_background,
                                         masks="class" if cfg.seg_protocol == "authors" else "object",
                                         size=cfg.img_size)
    return DataLoader(seg_set, batch_size=64, shuffle=False, num_workers=min(cfg.num_workers, 4),
                      generator=_own_generator(cfg.num_workers))  # not the global RNG (see build_loaders)
