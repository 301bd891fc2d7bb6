"""Tests for the small-image ImageNet-C corruptions (sarlib.data.corruptions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sarlib.data.corruptions as corruptions
from sarlib.data.corruptions import (CORRUPTIONS, FAMILIES, IMAGENET_C_NAMES, LEFT_OUT, SEVERITIES, VERSION, corrupt,
                                     corrupted_set)

NAMES = list(CORRUPTIONS)
# the corruptions that draw random numbers; the others must ignore the seed
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur", "fog",
          "elastic_transform"}
IMAGENET_C_15_AND_4 = ("gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur snow "
                       "frost fog brightness contrast elastic_transform pixelate jpeg_compression speckle_noise "
                       "gaussian_blur spatter saturate").split()


def _garments(n: int, seed: int) -> np.ndarray:
    """28x28 grayscale garment-like images: a textured ellipse or rectangle on a black background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28))
    for i in range(n):
        cy, cx = rng.uniform(11, 17, 2)
        ry, rx = rng.uniform(7, 12), rng.uniform(5, 11)
        if i % 2:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            mask = (abs(yy - cy) < ry) & (abs(xx - cx) < rx)
        stripes = 0.12 * np.sin(xx * rng.uniform(0.5, 2) + yy * rng.uniform(0, 1))
        out[i] = mask * (rng.uniform(0.45, 0.9) + stripes + rng.normal(0, 0.04, (28, 28)))
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _photos(n: int, seed: int) -> np.ndarray:
    """32x32 RGB images: a coloured, striped disc on a shaded coloured background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    out = np.zeros((n, 32, 32, 3))
    for i in range(n):
        background = rng.uniform(0.1, 0.5, 3) * (0.7 + 0.3 * yy[..., None] / 31)
        cy, cx = rng.uniform(12, 20, 2)
        disc = (((yy - cy) ** 2 + (xx - cx) ** 2) <= rng.uniform(6, 11) ** 2)[..., None]
        foreground = rng.uniform(0.3, 1.0, 3) * (0.85 + 0.15 * np.sin(xx / 2.0))[..., None]
        out[i] = np.where(disc, foreground, background) + rng.normal(0, 0.02, (32, 32, 3))
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


GRAY = _garments(16, seed=1)
RGB = _photos(16, seed=2)
SETS = {"gray": GRAY, "rgb": RGB}


def _psnr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Mean PSNR (dB) over the batch; identical images count as 100 dB."""
    err = (clean.astype(np.float64) - noisy.astype(np.float64)) ** 2
    mse = err.reshape(len(clean), -1).mean(axis=1)
    return float(np.mean(np.where(mse > 0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), 100.0)))


def _same_draws(images: np.ndarray, name: str, param) -> np.ndarray:
    """`images` corrupted with `param`, image i drawing from the same stream at every severity.

    `corrupt` seeds each severity separately (so severities never share noise); comparing severities with
    common random numbers removes the sampling noise from the comparison (with 16 images and a random
    angle per image, motion blur's nearly equal severities 3 and 4 would otherwise order by chance)."""
    c = CORRUPTIONS[name]
    planes = images[..., None] if images.ndim == 3 else images
    out = np.stack([corruptions._to_uint8(c.apply(im / 255.0, param, np.random.default_rng([7, i])))
                    for i, im in enumerate(planes)])
    return out[..., 0] if images.ndim == 3 else out


# ------------------------------------------------------------------------------------------- registry

def test_every_imagenet_c_corruption_is_implemented_or_left_out_exactly_once() -> None:
    assert sorted(IMAGENET_C_NAMES) == sorted(IMAGENET_C_15_AND_4)
    for name in IMAGENET_C_15_AND_4:
        assert (name in CORRUPTIONS) + (name in LEFT_OUT) == 1, name
    assert len(CORRUPTIONS) + len(LEFT_OUT) == 19
    assert set(LEFT_OUT) == {"snow", "frost", "spatter", "saturate"}
    assert all(reason and "\n" not in reason for reason in LEFT_OUT.values())


def test_registry_is_in_imagenet_c_order_with_five_parameters_each() -> None:
    assert NAMES == [n for n in IMAGENET_C_NAMES if n in CORRUPTIONS]
    assert SEVERITIES == (1, 2, 3, 4, 5)
    assert set(FAMILIES) == {"noise", "blur", "weather", "digital"}
    for name, c in CORRUPTIONS.items():
        assert c.name == name and c.family in FAMILIES and len(c.params) == 5 and callable(c.apply)
    assert set(CORRUPTIONS) - RANDOM == {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate",
                                          "jpeg_compression", "gaussian_blur"}


def test_parameters_are_cifar_10_c_s() -> None:
    params = {name: c.params for name, c in CORRUPTIONS.items()}
    assert params["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert params["shot_noise"] == (500, 250, 100, 75, 50)
    assert params["defocus_blur"][0] == (0.3, 0.4) and params["defocus_blur"][4] == (1.5, 0.1)
    assert params["glass_blur"][3] == (0.25, 1, 2)
    assert params["motion_blur"][4] == (9, 2.5)
    assert params["fog"][4] == (1.5, 1.75)
    assert params["jpeg_compression"] == (80, 65, 58, 50, 40)
    # CIFAR-10-C's np.arange(1, stop, 0.01), floating point included
    assert [len(corruptions._zoom_factors(s)) for s in params["zoom_blur"]] == [7, 12, 16, 21, 26]


# --------------------------------------------------------------------------------------- shape, seed

@pytest.mark.parametrize("kind", ["gray", "rgb"])
@pytest.mark.parametrize("name", NAMES)
def test_shape_and_dtype_are_kept_and_the_image_changes(name: str, kind: str) -> None:
    images = SETS[kind][:4]
    out = corrupt(images, name, 5)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    assert images is not out and np.array_equal(images, SETS[kind][:4])   # the input is left alone


def test_grayscale_stays_one_channel_and_a_one_channel_axis_is_kept() -> None:
    assert corrupt(GRAY[:2], "fog", 3).shape == (2, 28, 28)
    with_axis = corrupt(GRAY[:2, ..., None], "fog", 3)
    assert with_axis.shape == (2, 28, 28, 1)
    assert np.array_equal(with_axis[..., 0], corrupt(GRAY[:2], "fog", 3))


def test_brightness_on_grayscale_adds_to_the_grey_value() -> None:
    expected = np.rint(np.clip(GRAY / 255.0 + 0.15, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(corrupt(GRAY, "brightness", 3), expected)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_images_and_another_seed_differs_for_random_ones(name: str) -> None:
    a = corrupt(RGB[:3], name, 3, seed=11)
    assert np.array_equal(a, corrupt(RGB[:3], name, 3, seed=11))
    other = corrupt(RGB[:3], name, 3, seed=12)
    assert np.array_equal(a, other) == (name not in RANDOM)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_chunks_equal_the_whole_set_and_each_image_gets_its_own_noise(name: str) -> None:
    whole = corrupt(GRAY[:8], name, 4, seed=3)
    assert np.array_equal(corrupt(GRAY[:4], name, 4, seed=3), whole[:4])
    assert np.array_equal(corrupt(GRAY[4:8], name, 4, seed=3, start=4), whole[4:])
    twins = corrupt(np.stack([GRAY[0], GRAY[0]]), name, 4, seed=3)
    assert not np.array_equal(twins[0], twins[1])
    # another severity draws from another stream
    assert not np.array_equal(corrupt(GRAY[:1], name, 4), corrupt(GRAY[:1], name, 5))


# ----------------------------------------------------------------------------------------- severity

# Not monotonic in PSNR under CIFAR-10-C's parameters, each tested below on what its severity does raise:
# glass_blur (more smoothing hides the pixel jitter), elastic_transform (the affine part shrinks as the
# elastic part grows) and pixelate (at 32 px, downsampling to 28 aliases worse than to 27).
NOT_PSNR_MONOTONIC = {"glass_blur", "elastic_transform", "pixelate"}


@pytest.mark.parametrize("kind", ["gray", "rgb"])
@pytest.mark.parametrize("name", [n for n in NAMES if n not in NOT_PSNR_MONOTONIC])
def test_psnr_does_not_rise_with_severity(name: str, kind: str) -> None:
    images = SETS[kind]
    psnr = [_psnr(images, _same_draws(images, name, p)) for p in CORRUPTIONS[name].params]
    # not strictly: motion blur's severities 3 and 4 (sigma 2 with radius 6 or 8) give the same images
    assert all(b <= a for a, b in zip(psnr, psnr[1:])), psnr
    assert psnr[-1] < psnr[0] - 1.0, psnr


@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_glass_blur_jitters_more_with_passes_and_smooths_more_with_sigma(kind: str) -> None:
    # CIFAR-10-C's glass-blur severities are (sigma, passes) = (.05, 1) (.25, 1) (.4, 1) (.25, 2) (.4, 2):
    # a second pass of pixel jitter is what makes 4 and 5 severe, while a larger sigma smooths the
    # jitter away and so *raises* PSNR (3 above 1). Each factor is checked on what it changes: at equal
    # sigma a second pass lowers PSNR; at equal passes a larger sigma lowers the total variation.
    images = SETS[kind]
    outs = [_same_draws(images, "glass_blur", p).astype(np.float64) for p in CORRUPTIONS["glass_blur"].params]
    psnr = [_psnr(images, o) for o in outs]
    assert psnr[3] < psnr[1] - 1.0 and psnr[4] < psnr[2] - 1.0, psnr

    def variation(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean())
    tv = [variation(o) for o in outs]
    assert tv[0] >= tv[1] > tv[2] and tv[3] > tv[4], tv


@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_elastic_distortion_grows_with_severity(kind: str) -> None:
    # CIFAR-10-C's elastic severities shrink the random affine warp (spread 8% to 3% of the side) while
    # growing the local displacement field (alpha up, sigma down), so PSNR against the clean image rises.
    # The elastic part alone is measured: the same draws with alpha = 0 give the affine-only image, and
    # the PSNR between the two falls with severity (severity 1 has no elastic part at all).
    images = SETS[kind]
    psnr = []
    for alpha, sigma, spread in CORRUPTIONS["elastic_transform"].params:
        full = _same_draws(images, "elastic_transform", (alpha, sigma, spread))
        affine_only = _same_draws(images, "elastic_transform", (0, sigma, spread))
        psnr.append(_psnr(affine_only, full))
    assert psnr[0] == 100.0
    assert all(b < a for a, b in zip(psnr, psnr[1:])), psnr


@pytest.mark.parametrize("side,channels", [(28, 1), (32, 3)])
def test_pixelate_keeps_fewer_degrees_of_freedom_with_severity(side: int, channels: int) -> None:
    # Box down- and up-sampling is linear and separable: each output plane is A X B^T with A, B of rank
    # int(side * factor), so on a full-rank (noise) image the output's rank is exactly that and falls
    # with every severity. PSNR need not: at 32 px, 28 px aliases worse than 27 px.
    image = np.random.default_rng(0).random((side, side, channels))
    ranks = []
    for factor in CORRUPTIONS["pixelate"].params:
        out = CORRUPTIONS["pixelate"].apply(image, factor, np.random.default_rng(0))
        rank = {int(np.linalg.matrix_rank(out[..., k], tol=1e-4)) for k in range(channels)}
        assert rank == {int(side * factor)}
        ranks.append(rank.pop())
    assert all(b < a for a, b in zip(ranks, ranks[1:])), ranks


# --------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("args,message", [
    ((GRAY, "snowy", 1), "unknown corruption 'snowy'; choose one of: gaussian_noise, shot_noise"),
    ((GRAY, ["fog"], 1), "unknown corruption ['fog']; choose one of:"),
    ((GRAY, "frost", 1), "corruption 'frost' is not implemented (it overlays"),
    ((GRAY, "fog", 0), "severity must be an int from 1 to 5, got 0"),
    ((GRAY, "fog", 6), "severity must be an int from 1 to 5, got 6"),
    ((GRAY, "fog", 2.0), "severity must be an int from 1 to 5, got 2.0"),
    ((GRAY, "fog", True), "severity must be an int from 1 to 5, got True"),
    ((GRAY, "fog", "3"), "severity must be an int from 1 to 5, got '3'"),
    ((GRAY.astype(np.float32), "fog", 1), "images must be uint8 in 0..255, got dtype float32; convert with"),
    ((np.full((2, 28, 28), np.nan), "fog", 1), "images contain NaN or inf"),
    ((GRAY.tolist(), "fog", 1), "images must be a numpy uint8 array, got list"),
    ((GRAY[0], "fog", 1), "images must be shaped (N, H, W) for grayscale or (N, H, W, 3) for RGB, got (28, 28)"),
    ((np.zeros((2, 28, 28, 4), np.uint8), "fog", 1), "got (2, 28, 28, 4)"),
    ((np.zeros((2, 4, 4), np.uint8), "fog", 1), "images must be at least 8x8 pixels, got 4x4"),
])
def test_bad_input_raises_one_clear_line(args: tuple, message: str) -> None:
    with pytest.raises(ValueError) as err:
        corrupt(*args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_seed_and_start_raise() -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        corrupt(GRAY, "fog", 1, seed=-1)
    with pytest.raises(ValueError, match="start must be a non-negative int"):
        corrupt(GRAY, "fog", 1, start=-2)


def test_an_empty_batch_is_returned_empty() -> None:
    out = corrupt(GRAY[:0], "glass_blur", 2)
    assert out.shape == (0, 28, 28) and out.dtype == np.uint8


# -------------------------------------------------------------------------------------------- cache

def _cached(tmp_path: Path, images: np.ndarray = GRAY[:4]) -> np.ndarray:
    return corrupted_set(images, "shot_noise", 2, seed=5, cache_dir=tmp_path / "cache", key="fmnist-test")


def _fail(*args, **kwargs):
    raise AssertionError("recomputed although a valid cache file exists")


def test_the_cache_is_written_once_then_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _cached(tmp_path)
    assert np.array_equal(first, corrupt(GRAY[:4], "shot_noise", 2, seed=5))
    (path,) = (tmp_path / "cache").iterdir()     # one file, no temporary files left over
    assert path.name.startswith("fmnist-test-shot_noise-2-seed5-") and path.name.endswith(f"-v{VERSION}.npy")
    monkeypatch.setattr(corruptions, "corrupt", _fail)
    assert np.array_equal(_cached(tmp_path), first)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong_shape", "wrong_dtype"])
def test_a_damaged_cache_file_is_recomputed_and_rewritten(tmp_path: Path, damage: str) -> None:
    expected = _cached(tmp_path)
    (path,) = (tmp_path / "cache").iterdir()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file")
    elif damage == "wrong_shape":
        np.save(path, expected[:2])
    else:
        np.save(path, expected.astype(np.int16))
    assert np.array_equal(_cached(tmp_path), expected)
    reloaded = np.load(path, allow_pickle=False)
    assert reloaded.dtype == np.uint8 and np.array_equal(reloaded, expected)


def test_a_changed_input_never_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cached(tmp_path)
    changed = GRAY[:4].copy()
    changed[0, 0, 0] ^= 1
    calls = []
    real = corruptions.corrupt

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(corruptions, "corrupt", counted)
    assert np.array_equal(_cached(tmp_path, changed), real(changed, "shot_noise", 2, seed=5))
    assert calls == [1] and len(list((tmp_path / "cache").iterdir())) == 2


def test_the_cache_checks_its_input_first(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="severity must be an int"):
        corrupted_set(GRAY, "fog", 9, seed=0, cache_dir=tmp_path, key="k")
    with pytest.raises(ValueError, match="key must be a non-empty file-name-safe string"):
        corrupted_set(GRAY, "fog", 1, seed=0, cache_dir=tmp_path, key="a/b")
    assert not any(tmp_path.iterdir())
