from collections import Counter

import pytest
import torch
from torch.utils.data import DistributedSampler

from sarlib.data.samplers import RepeatedAugSampler


def _epoch(size, replicas, epoch=0, seed=0, repeats=3):
    """The index list of every rank for one epoch."""
    shards = []
    for rank in range(replicas):
        sampler = RepeatedAugSampler(range(size), num_replicas=replicas, rank=rank, num_repeats=repeats, seed=seed)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    return shards


@pytest.mark.parametrize("replicas", [1, 3, 4])
def test_each_image_is_drawn_k_times_across_ranks_in_equal_shards(replicas):
    # 24 images, 3 repeats: each rank keeps 24 // replicas entries; together they are the first 24 entries
    # of the repeated permutation, i.e. 8 distinct images, each exactly 3 times
    shards = _epoch(24, replicas)
    assert [len(s) for s in shards] == [24 // replicas] * replicas
    counts = Counter(i for shard in shards for i in shard)
    assert len(counts) == 8 and set(counts.values()) == {3}
    if replicas >= 3:  # the copies of one image go to three different processes (three augmentations)
        for image in counts:
            assert sum(image in shard for shard in shards) == 3
    else:  # one process: the three copies are consecutive, so they share a batch
        flat = shards[0]
        assert all(flat[i] == flat[i + 1] == flat[i + 2] for i in range(0, 24, 3))


def test_uneven_sizes_still_give_equal_shards_and_at_most_k_copies():
    shards = _epoch(25, 4)
    assert [len(s) for s in shards] == [6, 6, 6, 6]
    counts = Counter(i for shard in shards for i in shard)
    assert max(counts.values()) <= 3 and sum(c != 3 for c in counts.values()) <= 1


def test_order_depends_only_on_seed_and_epoch():
    first = _epoch(30, 2, epoch=5, seed=1)
    assert _epoch(30, 2, epoch=5, seed=1) == first  # a fresh sampler (a resumed run) replays the epoch
    assert _epoch(30, 2, epoch=6, seed=1) != first
    assert _epoch(30, 2, epoch=5, seed=2) != first


def test_one_repeat_is_the_distributed_sampler():
    for rank in range(3):
        ours = RepeatedAugSampler(range(20), num_replicas=3, rank=rank, num_repeats=1, seed=7)
        torchs = DistributedSampler(range(20), num_replicas=3, rank=rank, shuffle=True, seed=7, drop_last=True)
        ours.set_epoch(4)
        torchs.set_epoch(4)
        assert list(ours) == list(torchs) and len(ours) == len(torchs)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="num_repeats"):
        RepeatedAugSampler(range(8), num_repeats=0)
    with pytest.raises(ValueError, match="rank"):
        RepeatedAugSampler(range(8), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="fewer processes"):
        RepeatedAugSampler(range(2), num_replicas=4, rank=0)


def test_engine_uses_it_when_repeated_aug_is_set(tmp_path):
    from sarlib.train.config import load_profile
    from sarlib.train.distributed import DistInfo
    from sarlib.train import build_loaders

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = load_profile("smoke", cache_dir=str(tmp_path / "cache"), repeated_aug=3)
    loader, *_ = build_loaders(cfg, info)
    assert isinstance(loader.sampler, RepeatedAugSampler) and loader.sampler.num_repeats == 3
    plain, *_ = build_loaders(cfg.replace(repeated_aug=1), info)
    assert isinstance(plain.sampler, DistributedSampler)
