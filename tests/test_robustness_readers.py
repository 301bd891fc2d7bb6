"""ImageNet-C / ImageNet-A readers on tiny folders written here, and the arithmetic of corruption errors."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from sarlib.data.readers.imagenet_c import (
    RobustnessLayoutError,
    imagenet_a_dataset,
    imagenet_c_available,
    imagenet_c_dataset,
)
from sarlib.data.registry import DatasetLayoutError
from sarlib.metrics.robustness import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    BENCHMARK_CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    corruption_errors,
    mce,
    relative_corruption_errors,
    relative_mce,
    unnormalized_mean_error,
)

MODEL = ["n01", "n02", "n03", "n04"]  # the model's class list: its order defines the labels


def _jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(path, format="JPEG")


def _class_folder(folder: Path, wnid: str, n: int = 2, ext: str = "JPEG") -> None:
    for i in range(n):
        _jpeg(folder / wnid / f"img{i}.{ext}", 40 * i)


@pytest.fixture
def imagenet_c(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet-c"
    for severity in (1, 2):
        for wnid in ["n04", "n02", "n01", "n03", "n99"]:  # n99: a class the model does not know
            _class_folder(root / "fog" / str(severity), wnid)
    _class_folder(root / "snow" / "3", "n01")
    (root / "notes").mkdir()  # no severity folder: not a corruption
    return root


@pytest.fixture
def imagenet_a(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet-a"
    for wnid in ["n02", "n04", "n50", "n60"]:  # two of the model's classes, two it does not know
        _class_folder(root, wnid, ext="jpg")
    return root


# ---------------------------------------------------------------------------------------------------- ImageNet-C


def test_imagenet_c_labels_are_indices_in_the_model_list(imagenet_c: Path) -> None:
    ds = imagenet_c_dataset(imagenet_c, "fog", 2, MODEL)
    assert len(ds) == 8  # n99's images skipped
    assert ds.classes == MODEL and ds.num_classes == 4
    labels = sorted({label for _, label in ds.samples})
    assert labels == [0, 1, 2, 3]
    for path, label in ds.samples:
        assert Path(path).parent.name == MODEL[label]
    image, label = ds[0]
    assert image.mode == "RGB" and image.size == (8, 8) and label == 0


def test_imagenet_c_uses_the_model_order_not_the_folder_order(imagenet_c: Path) -> None:
    order = ["n03", "n01"]
    ds = imagenet_c_dataset(imagenet_c, "fog", 1, order, transform=lambda im: torch.zeros(1))
    assert {Path(p).parent.name: t for p, t in ds.samples} == {"n03": 0, "n01": 1}
    assert ds.intersection == 2 and ds.mask_indices.tolist() == [0, 1]
    assert isinstance(ds[0][0], torch.Tensor)


def test_imagenet_c_available_lists_corruptions_and_severities(imagenet_c: Path) -> None:
    assert imagenet_c_available(imagenet_c) == {"fog": (1, 2), "snow": (3,)}


def test_imagenet_c_missing_severity_names_the_folder(imagenet_c: Path) -> None:
    with pytest.raises(DatasetLayoutError) as err:
        imagenet_c_dataset(imagenet_c, "fog", 4, MODEL)
    message = str(err.value)
    assert str(imagenet_c / "fog" / "4") in message and "severities present: 1, 2" in message
    assert "\n" not in message and "<corruption>/<severity 1..5>" in message


def test_imagenet_c_missing_corruption_and_root(imagenet_c: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"no frost/ folder .*present: fog, snow"):
        imagenet_c_dataset(imagenet_c, "frost", 1, MODEL)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        imagenet_c_dataset(tmp_path / "nowhere", "fog", 1, MODEL)
    with pytest.raises(DatasetLayoutError, match="no <corruption>/<severity>/ folders"):
        imagenet_c_available(tmp_path / "imagenet-c" / "notes")


def test_imagenet_c_requires_every_model_class(imagenet_c: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"3 of the model's 4 classes have no folder here \(n02, n03, n04\)"):
        imagenet_c_dataset(imagenet_c, "snow", 3, MODEL)


def test_imagenet_c_argument_errors(imagenet_c: Path) -> None:
    for severity in (0, 6, "1", True):
        with pytest.raises(ValueError, match="severity must be an integer 1..5"):
            imagenet_c_dataset(imagenet_c, "fog", severity, MODEL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="folder name"):
        imagenet_c_dataset(imagenet_c, "../fog", 1, MODEL)
    with pytest.raises(ValueError, match="repeats n01"):
        imagenet_c_dataset(imagenet_c, "fog", 1, ["n01", "n02", "n01"])
    with pytest.raises(ValueError, match="empty"):
        imagenet_c_dataset(imagenet_c, "fog", 1, [])


def test_empty_folders_raise(tmp_path: Path) -> None:
    root = tmp_path / "c"
    (root / "fog" / "1").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="holds no class folders"):
        imagenet_c_dataset(root, "fog", 1, MODEL)
    for wnid in MODEL:
        (root / "fog" / "1" / wnid).mkdir()
    (root / "fog" / "1" / "n01" / "readme.txt").write_text("not an image")
    with pytest.raises(DatasetLayoutError, match="class folder n01/ holds no images"):
        imagenet_c_dataset(root, "fog", 1, MODEL)


def test_no_class_in_common_raises(imagenet_a: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="none of its 4 class folders .* is in the model's class list of 2"):
        imagenet_a_dataset(imagenet_a, ["n77", "n78"])


# ---------------------------------------------------------------------------------------------------- ImageNet-A


def test_imagenet_a_intersection_and_mask(imagenet_a: Path) -> None:
    ds = imagenet_a_dataset(imagenet_a, MODEL)
    assert len(ds) == 4 and ds.intersection == 2
    assert ds.present == ["n02", "n04"] and ds.mask_indices.tolist() == [1, 3]
    assert sorted({t for _, t in ds.samples}) == [1, 3]
    # the argmax runs over the masked classes only: class 0 is the largest logit but not in ImageNet-A
    logits = torch.tensor([[9.0, 1.0, 0.0, 2.0], [9.0, 5.0, 0.0, 2.0]])
    assert ds.predict(logits).tolist() == [3, 1]
    with pytest.raises(ValueError, match="logits have 3 classes"):
        ds.predict(torch.zeros(1, 3))
    again = pickle.loads(pickle.dumps(ds))  # crosses DataLoader workers
    assert again.mask_indices.tolist() == [1, 3] and len(again) == 4


def test_symlinked_class_folder_outside_root_is_refused(imagenet_a: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    _class_folder(outside, "n01", ext="jpg")
    os.symlink(outside / "n01", imagenet_a / "n01")
    with pytest.raises(DatasetLayoutError) as err:
        imagenet_a_dataset(imagenet_a, MODEL)
    message = str(err.value)
    assert "outside the data root" in message and "\n" not in message


def test_symlinked_image_outside_root_is_refused(imagenet_a: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    _jpeg(secret, 0)
    os.symlink(secret, imagenet_a / "n02" / "zz.jpg")
    with pytest.raises(DatasetLayoutError, match=r"n02/zz.jpg leads to .*secret.jpg, outside the data root"):
        imagenet_a_dataset(imagenet_a, MODEL)


def test_symlinks_inside_root_are_read(imagenet_a: Path) -> None:
    os.symlink(imagenet_a / "n02" / "img0.jpg", imagenet_a / "n04" / "linked.jpg")
    (imagenet_a / "n60").rename(imagenet_a / "real-n01")
    os.symlink(imagenet_a / "real-n01", imagenet_a / "n01")
    ds = imagenet_a_dataset(imagenet_a, MODEL)
    assert ds.intersection == 3 and len(ds) == 7


def test_layout_error_is_one_pickleable_line(tmp_path: Path) -> None:
    err = RobustnessLayoutError("imagenet-a", tmp_path, "no images")
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, DatasetLayoutError) and str(again) == str(err)
    assert "<wnid>/*.jpg" in str(err) and "\n" not in str(err)


# ------------------------------------------------------------------------------------------------------- metrics


def test_alexnet_table() -> None:
    assert tuple(ALEXNET_ERRORS) == BENCHMARK_CORRUPTIONS and len(BENCHMARK_CORRUPTIONS) == 15
    assert not set(EXTRA_CORRUPTIONS) & set(BENCHMARK_CORRUPTIONS)
    for values in ALEXNET_ERRORS.values():
        assert len(values) == 5 and all(0.0 < v < 1.0 for v in values)
        assert all(abs(v * 50_000 - round(v * 50_000)) < 1e-6 for v in values)  # counts of 50,000 images
    # spot checks against the sources: RobustCNN's per-severity list and easyrobust's per-corruption means
    assert ALEXNET_ERRORS["gaussian_noise"][0] == 0.69528
    assert ALEXNET_ERRORS["jpeg_compression"][4] == 0.74778
    assert sum(ALEXNET_ERRORS["gaussian_noise"]) / 5 == pytest.approx(0.886428, abs=1e-9)
    assert sum(ALEXNET_ERRORS["brightness"]) / 5 == pytest.approx(0.564592, abs=1e-9)
    assert ALEXNET_CLEAN_ERROR == 0.4345


def test_reference_scores_one_and_half_errors_score_half() -> None:
    ce = corruption_errors(ALEXNET_ERRORS, ALEXNET_ERRORS)
    assert ce == {c: pytest.approx(1.0) for c in BENCHMARK_CORRUPTIONS}
    assert mce(ce) == pytest.approx(1.0)
    half = {c: [v / 2 for v in values] for c, values in ALEXNET_ERRORS.items()}
    assert mce(corruption_errors(half, ALEXNET_ERRORS)) == pytest.approx(0.5)


def test_ce_is_a_ratio_of_sums_and_mce_their_mean() -> None:
    model = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "snow": [0.2] * 5, "speckle_noise": [0.3] * 5}
    ref = {"fog": [0.5] * 5, "snow": [0.4] * 5, "speckle_noise": [0.6] * 5, "frost": [0.9] * 5}
    ce = corruption_errors(model, ref)  # the reference may cover more corruptions
    assert ce == {"fog": pytest.approx(1.5 / 2.5), "snow": pytest.approx(0.5), "speckle_noise": pytest.approx(0.5)}
    assert mce(ce) == pytest.approx((0.6 + 0.5) / 2)  # the extra corruption is left out
    assert mce(ce, corruptions=["fog", "snow", "speckle_noise"]) == pytest.approx((0.6 + 0.5 + 0.5) / 3)


def test_relative_mce_by_hand() -> None:
    model = {"fog": [0.30, 0.35, 0.40, 0.45, 0.50], "snow": [0.20, 0.20, 0.25, 0.25, 0.30]}
    ref = {"fog": [0.60, 0.70, 0.80, 0.90, 1.00], "snow": [0.55, 0.55, 0.60, 0.60, 0.70]}
    rce = relative_corruption_errors(model, 0.20, ref, 0.50)
    # fog: (0.10+0.15+0.20+0.25+0.30) / (0.10+0.20+0.30+0.40+0.50) = 1.00 / 1.50
    # snow: (0+0+0.05+0.05+0.10) / (0.05+0.05+0.10+0.10+0.20) = 0.20 / 0.50
    assert rce == {"fog": pytest.approx(2 / 3), "snow": pytest.approx(0.4)}
    assert relative_mce(rce) == pytest.approx((2 / 3 + 0.4) / 2)
    better_than_clean = relative_corruption_errors({"fog": [0.1] * 5}, 0.2, ref, 0.5)
    assert better_than_clean["fog"] == pytest.approx(-0.5 / 1.5)
    reference_itself = relative_corruption_errors(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS,
                                                  ALEXNET_CLEAN_ERROR)
    assert relative_mce(reference_itself) == pytest.approx(1.0)


def test_unnormalized_mean_error() -> None:
    assert unnormalized_mean_error({"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "snow": [0.0] * 5}) == pytest.approx(0.15)
    assert unnormalized_mean_error(ALEXNET_ERRORS) == pytest.approx(
        sum(sum(v) for v in ALEXNET_ERRORS.values()) / 75)


@pytest.mark.parametrize(("model", "ref", "message"), [
    ({"fog": [0.1] * 5}, {"snow": [0.5] * 5}, "the reference has no errors for fog"),
    ({"fog": [0.1] * 4}, {"fog": [0.5] * 5}, "model errors of fog have 4 severities; expected 5"),
    ({"fog": [0.1] * 5}, {"fog": [0.5] * 6}, "reference errors of fog have 6 severities"),
    ({"fog": [0.1] * 5}, {"fog": [0.0] * 5}, "reference errors of fog sum to 0.0"),
    ({"fog": [0.1, math.nan, 0.1, 0.1, 0.1]}, {"fog": [0.5] * 5}, "severity 2 is nan; errors must be finite"),
    ({"fog": [0.1] * 5}, {"fog": [math.inf] * 5}, "is inf; errors must be finite"),
    ({"fog": [0.1] * 5}, {"fog": [-0.1] * 5}, r"fractions in \[0, 1\]"),
    ({"fog": [12.0] * 5}, {"fog": [50.0] * 5}, "not percentages"),
    ({}, {"fog": [0.5] * 5}, "no corruptions in the model errors"),
    ({"fog": "0.1"}, {"fog": [0.5] * 5}, "must be a sequence of 5 numbers"),
])
def test_corruption_error_messages(model: dict, ref: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        corruption_errors(model, ref)


def test_relative_and_mean_messages() -> None:
    ref = {"fog": [0.5] * 5}
    with pytest.raises(ValueError, match="needs a reference that degrades"):
        relative_corruption_errors({"fog": [0.4] * 5}, 0.3, ref, 0.5)
    with pytest.raises(ValueError, match="reference clean error is nan"):
        relative_corruption_errors({"fog": [0.4] * 5}, 0.3, ref, math.nan)
    with pytest.raises(ValueError, match="none of the 15 benchmark corruptions has a CE"):
        mce({"speckle_noise": 0.8})
    with pytest.raises(ValueError, match="no CE for snow"):
        mce({"fog": 0.8}, corruptions=["fog", "snow"])
    with pytest.raises(ValueError, match="the relative CE of fog is not finite"):
        relative_mce({"fog": math.inf})
