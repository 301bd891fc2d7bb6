"""Tests for the embedded synthetic shapes dataset (sarlib.data.synthetic.generate)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sarlib.data.synthetic.generate as synthetic
from sarlib.data.synthetic.generate import (
    SHAPE_NAMES,
    SYNTHETIC_PRESETS,
    SyntheticConfig,
    SyntheticObjects,
    generate,
    make_preview,
)

SMALL = SyntheticConfig(num_train=60, num_test=30, seed=3)


@pytest.fixture(scope="module")
def small_train() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return generate(SMALL, "train")


@pytest.fixture(scope="module")
def tiny_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    cfg = SYNTHETIC_PRESETS["synthetic-tiny"]
    return {split: generate(cfg, split) for split in ("train", "test")}


def test_presets_exist_with_documented_sizes() -> None:
    sizes = {name: (c.num_train, c.num_test) for name, c in SYNTHETIC_PRESETS.items()}
    assert sizes["synthetic-tiny"] == (200, 100)
    assert sizes["synthetic-1k"] == (1000, 1000)
    assert sizes["synthetic-5k"] == (5000, 1000)
    assert sizes["synthetic-20k"] == (20000, 2000)
    assert len(SHAPE_NAMES) >= 10 and len(set(SHAPE_NAMES)) == len(SHAPE_NAMES)


def test_generate_shapes_and_dtypes(small_train) -> None:
    images, labels, masks = small_train
    s = SMALL.img_size
    assert images.shape == (60, 3, s, s) and images.dtype == torch.uint8
    assert labels.shape == (60,) and labels.dtype == torch.int64
    assert masks.shape == (60, s, s) and masks.dtype == torch.bool
    assert images.is_contiguous()
    assert 0 <= int(labels.min()) and int(labels.max()) < SMALL.num_classes
    # Not a degenerate constant image anywhere.
    assert (images.flatten(1).float().std(dim=1) > 5).all()
    test_images, test_labels, _ = generate(SMALL, "test")
    assert test_images.shape[0] == test_labels.shape[0] == 30


@pytest.mark.parametrize("with_masks", [False, True])
def test_dataset_items(tmp_path: Path, with_masks: bool) -> None:
    ds = SyntheticObjects(SMALL, "test", cache_dir=tmp_path, with_masks=with_masks)
    assert len(ds) == 30
    assert ds.num_classes == 10 and ds.classes == list(SHAPE_NAMES[:10])
    assert ds.config == SMALL
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.masks.dtype == torch.bool and ds.masks.shape == (30, 32, 32)
    item = ds[5]
    assert len(item) == (3 if with_masks else 2)
    image, label = item[0], item[1]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert -1.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert isinstance(label, int) and label == int(ds.labels[5])
    torch.testing.assert_close(image, (ds.images[5].float() / 255 - 0.5) / 0.5)
    if with_masks:
        mask = item[2]
        assert mask.dtype == torch.bool and mask.shape == (32, 32)
        assert torch.equal(mask, ds.masks[5])


def test_dataset_works_with_dataloader(tmp_path: Path) -> None:
    ds = SyntheticObjects(SMALL, "train", cache_dir=tmp_path, with_masks=True)
    x, y, m = next(iter(torch.utils.data.DataLoader(ds, batch_size=16)))
    assert x.shape == (16, 3, 32, 32) and y.shape == (16,) and m.shape == (16, 32, 32)


def test_deterministic(small_train) -> None:
    again = generate(SMALL, "train")
    for a, b in zip(small_train, again):
        assert torch.equal(a, b)
    other_seed = generate(dataclasses.replace(SMALL, seed=4), "train")
    assert not torch.equal(small_train[0], other_seed[0])


def test_train_and_test_are_disjoint(tiny_splits) -> None:
    train_keys = {img.numpy().tobytes() for img in tiny_splits["train"][0]}
    test_keys = {img.numpy().tobytes() for img in tiny_splits["test"][0]}
    assert len(train_keys) == 200 and len(test_keys) == 100  # no duplicates within a split
    assert train_keys.isdisjoint(test_keys)


@pytest.mark.parametrize("num_classes,n", [(10, 200), (12, 100), (3, 31)])
def test_classes_balanced_and_all_present(num_classes: int, n: int) -> None:
    cfg = SyntheticConfig(num_train=n, num_test=1, num_classes=num_classes)
    _, labels, _ = generate(cfg, "train")
    counts = torch.bincount(labels, minlength=num_classes)
    assert len(counts) == num_classes
    assert int(counts.min()) >= 1
    assert int(counts.max() - counts.min()) <= 1
    # Shuffled, not sorted or cycling in order.
    assert not torch.equal(labels, torch.arange(n) % num_classes)


def test_masks_nonempty_and_sized_by_scale(tiny_splits) -> None:
    cfg = SYNTHETIC_PRESETS["synthetic-tiny"]
    _, labels, masks = tiny_splits["train"]
    area = masks.flatten(1).sum(1).float()
    r_min, r_max = cfg.min_scale * cfg.img_size / 2, cfg.max_scale * cfg.img_size / 2
    assert (area > 0).all()
    # The object fits in its bounding circle (+1 px of rounding) and even the thinnest shape
    # covers a fifth of that circle at the smallest scale.
    assert float(area.max()) <= math.pi * (r_max + 1) ** 2
    assert float(area.min()) >= 0.2 * math.pi * r_min**2
    # Scale (and shape) really vary.
    assert float(area.float().std()) > 5


def test_object_stands_out_from_its_surroundings(tiny_splits) -> None:
    images, _, masks = tiny_splits["train"]
    m = masks.float().unsqueeze(1)
    ring = (F.max_pool2d(m, 5, stride=1, padding=2) - m).clamp(min=0)
    img = images.float()
    inside = (img * m).sum((2, 3)) / m.sum((2, 3))
    around = (img * ring).sum((2, 3)) / ring.sum((2, 3)).clamp(min=1)
    dist = (inside - around).norm(dim=1)
    assert float((dist > 60).float().mean()) >= 0.95


def test_labels_not_predictable_from_global_colour() -> None:
    """Nearest-class-mean on per-image mean RGB must stay near chance (< 2x chance)."""
    cfg = SYNTHETIC_PRESETS["synthetic-1k"]
    feats = {}
    for split in ("train", "test"):
        images, labels, _ = generate(cfg, split)
        feats[split] = (images.float().mean((2, 3)), labels)
    x_train, y_train = feats["train"]
    x_test, y_test = feats["test"]
    centroids = torch.stack([x_train[y_train == c].mean(0) for c in range(cfg.num_classes)])
    pred = torch.cdist(x_test, centroids).argmin(1)
    acc = float((pred == y_test).float().mean())
    assert acc < 2.0 / cfg.num_classes, f"colour leaks the label: accuracy {acc:.3f}"


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = SyntheticObjects(SMALL, "train", cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp file left behind

    def boom(*args, **kwargs):
        raise AssertionError("generate() called although a valid cache exists")

    monkeypatch.setattr(synthetic, "generate", boom)
    second = SyntheticObjects(SMALL, "train", cache_dir=tmp_path)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert torch.equal(first.masks, second.masks)


def test_cache_files_distinguish_config_and_split(tmp_path: Path) -> None:
    SyntheticObjects(SMALL, "train", cache_dir=tmp_path)
    SyntheticObjects(SMALL, "test", cache_dir=tmp_path)
    SyntheticObjects(dataclasses.replace(SMALL, clutter=0.2), "test", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 3


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_cache_is_regenerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      damage: str) -> None:
    good = SyntheticObjects(SMALL, "test", cache_dir=tmp_path)
    path = good.cache_path
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"\x00not a zip" * 50,
                      "empty": b""}[damage])

    calls = []
    real_generate = synthetic.generate

    def counting(*args, **kwargs):
        calls.append(args)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(synthetic, "generate", counting)
    again = SyntheticObjects(SMALL, "test", cache_dir=tmp_path)
    assert len(calls) == 1
    assert torch.equal(again.images, good.images) and torch.equal(again.masks, good.masks)
    assert path.read_bytes() == raw  # the repaired file is valid again
    SyntheticObjects(SMALL, "test", cache_dir=tmp_path)
    assert len(calls) == 1


def test_default_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path))
    ds = SyntheticObjects(SMALL, "test")
    assert ds.cache_path.parent == tmp_path / "synthetic"
    assert ds.cache_path.exists()


def test_unknown_preset_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synthetic-1k") as info:
        SyntheticObjects("synthetic-nope", cache_dir=tmp_path)
    assert "synthetic-nope" in str(info.value) and "synthetic-20k" in str(info.value)


def test_bad_split_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'train' or 'test'"):
        SyntheticObjects("synthetic-tiny", "val", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        generate(SMALL, "validation")


def test_too_many_classes_names_the_maximum() -> None:
    with pytest.raises(ValueError, match=str(len(SHAPE_NAMES))):
        SyntheticConfig(num_train=10, num_test=10, num_classes=len(SHAPE_NAMES) + 1)
    SyntheticConfig(num_train=10, num_test=10, num_classes=len(SHAPE_NAMES))  # the max is legal


@pytest.mark.parametrize("bad", [dict(img_size=15), dict(min_scale=0.7, max_scale=0.6),
                                 dict(clutter=1.5), dict(num_classes=1)])
def test_other_invalid_configs(bad: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticConfig(num_train=10, num_test=10, **bad)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img_size=st.integers(16, 48), min_scale=st.floats(0.2, 0.6),
       extra=st.floats(0.0, 0.4), clutter=st.floats(0.0, 1.0),
       num_distractors=st.integers(0, 8), num_classes=st.integers(2, len(SHAPE_NAMES)),
       seed=st.integers(0, 2**32))
def test_any_valid_config_gives_sane_samples(img_size: int, min_scale: float, extra: float,
                                             clutter: float, num_distractors: int,
                                             num_classes: int, seed: int) -> None:
    cfg = SyntheticConfig(num_train=2 * num_classes, num_test=1, img_size=img_size,
                          num_classes=num_classes, min_scale=min_scale,
                          max_scale=min(1.0, min_scale + extra), clutter=clutter,
                          num_distractors=num_distractors, seed=seed)
    images, labels, masks = generate(cfg, "train")
    assert images.shape == (2 * num_classes, 3, img_size, img_size)
    assert masks.flatten(1).any(1).all()
    assert torch.equal(torch.bincount(labels, minlength=num_classes),
                       torch.full((num_classes,), 2))
    # Objects are placed inside the frame: the mask's bounding circle never leaves it.
    assert float(masks.flatten(1).sum(1).max()) <= math.pi * (cfg.max_scale * img_size / 2 + 1) ** 2


def test_preview_grid(tmp_path: Path) -> None:
    img = make_preview("synthetic-tiny", rows=2, cols=3, cell=40)
    assert img.size == (3 * 40, 2 * (40 + 12))
    img.save(tmp_path / "preview.png")
    assert np.asarray(img).std() > 0


def test_colour_labels_follow_the_main_object_hue_and_confusers_use_other_hues() -> None:
    import colorsys

    cfg = SyntheticConfig(num_train=60, num_test=10, label_by="colour", num_confusers=2, clutter=0.0,
                          num_distractors=0)
    images, labels, masks = generate(cfg, "train")
    assert cfg.classes[0] == "hue000" and len(cfg.classes) == 10
    for image, label, mask in zip(images, labels, masks):
        pixels = image.permute(1, 2, 0)[mask].float().mean(0) / 255
        hue = colorsys.rgb_to_hsv(*pixels.tolist())[0]
        band = round(hue * cfg.num_classes) % cfg.num_classes  # jitter is +-0.2 of a band
        assert band == int(label)
    # on a plain background every other colour outside the object belongs to a confuser
    outside = [len(torch.unique(im.permute(1, 2, 0)[~m], dim=0)) for im, m in zip(images, masks)]
    assert sum(n > 1 for n in outside) > len(outside) // 2
    with pytest.raises(ValueError, match="num_confusers"):
        SyntheticConfig(num_train=1, num_test=1, num_confusers=2)  # shape labels draw no confusers
    with pytest.raises(ValueError, match="label_by"):
        SyntheticConfig(num_train=1, num_test=1, label_by="texture")
