"""Repeated augmentation (DeiT's `RASampler` idea) with `DistributedSampler`'s interface and determinism.

    sampler = RepeatedAugSampler(train_set, num_replicas=world_size, rank=rank, num_repeats=3, seed=seed)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        ...

Each epoch takes a permutation of the dataset seeded by (seed + epoch), exactly as `DistributedSampler`
does, repeats every index `num_repeats` times in a row, pads the list (wrap-around) to a multiple of the
number of replicas, and gives rank r every `num_replicas`-th entry starting at r. The copies of an image
therefore land on consecutive ranks (on different processes when there are at least `num_repeats`),
each drawing its own augmentation; on a single process they land in the same batch.

An epoch keeps the length of an epoch without repetition: each rank yields the first
len(dataset) // num_replicas entries of its share, so an epoch sees about 1/num_repeats of the images,
each num_repeats times. DeiT's sampler additionally rounds the dataset size down to a multiple of 256
before dividing; that rounding is not reproduced. With num_repeats=1 the order is identical to
`DistributedSampler(shuffle=True, drop_last=True)` with the same seed.

The order depends only on (seed, epoch, num_replicas, rank), so a resumed run replays the same epochs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler

__all__ = ["RepeatedAugSampler"]


class RepeatedAugSampler(Sampler[int]):
    def __init__(self, dataset: Sized, *, num_replicas: int = 1, rank: int = 0, num_repeats: int = 3,
                 shuffle: bool = True, seed: int = 0) -> None:
        if num_repeats < 1:
            raise ValueError(f"num_repeats must be >= 1; got {num_repeats}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}) for num_replicas={num_replicas}; got {rank}")
        size = len(dataset)
        if size < num_replicas:
            raise ValueError(f"the dataset has {size} items, fewer than the {num_replicas} replicas; use fewer processes")
        self.size = size
        self.num_replicas = num_replicas
        self.rank = rank
        self.num_repeats = num_repeats
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.num_samples = size // num_replicas  # per rank and epoch: the length of an unrepeated epoch
        self.total_size = math.ceil(size * num_repeats / num_replicas) * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=gen)
        else:
            order = torch.arange(self.size)
        repeated = order.repeat_interleave(self.num_repeats)
        padding = self.total_size - len(repeated)  # < num_replicas <= size * num_repeats
        if padding:
            repeated = torch.cat([repeated, repeated[:padding]])
        return iter(repeated[self.rank :: self.num_replicas][: self.num_samples].tolist())
