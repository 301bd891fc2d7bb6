"""sarlib.data.datasets: the registry, every on-disk loader (on tiny fake copies built here) and its errors."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd
import torchvision.transforms as T
from PIL import Image

from sarlib.data import datasets as data
from sarlib.data import (
    DATASETS,
    IMAGENET100_SHA256,
    ClassListIntegrityError,
    DatasetLayoutError,
    build_dataset,
    build_segmentation_dataset,
    describe_layouts,
    imagenet100_classes,
)

ROOT_DATASETS = [n for n, info in DATASETS.items() if info.needs_root]
TO_TENSOR_16 = T.Compose([T.Resize((16, 16)), T.ToTensor()])


def _build(name: str, **kwargs):
    """The builder a dataset is used through (VOC is segmentation-only)."""
    if name in data.CLASSIFICATION_DATASETS:
        return build_dataset(name, split="train", **kwargs)
    return build_segmentation_dataset(name, **kwargs)


def _jpeg(path: Path, size=(12, 10), color=(200, 30, 60), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path, format="JPEG")


_JPEG_BYTES: bytes | None = None


def _tiny_jpeg(path: Path) -> None:
    """Same few bytes for every file: fast enough for hundreds of class directories."""
    global _JPEG_BYTES
    if _JPEG_BYTES is None:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="JPEG")
        _JPEG_BYTES = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_JPEG_BYTES)


def _expect_layout_error(excinfo: pytest.ExceptionInfo, name: str, *fragments: str) -> str:
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    assert msg.startswith(f"{name}:"), msg
    assert DATASETS[name].layout in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


# ------------------------------------------------------------------------------------------ registry


def test_registry_names_and_fields():
    assert set(DATASETS) == {
        "synthetic-tiny", "synthetic-1k", "synthetic-5k", "synthetic-20k", "synthetic-colour-tiny",
        "synthetic-colour-1k", "synthetic-colour-2k", "cifar10", "cifar100",
        "flowers102", "pets", "imagenet", "imagenet100", "voc2012", "fashion-mnist", "fashion-mnist-1k",
        "fashion-mnist-2k", "fashion-mnist-5k", "fashion-mnist-10k", "fashion-mnist-0to4-5k", "fashion-mnist-5to9-500",
    }
    for name, info in DATASETS.items():
        assert info.name == name
        assert info.needs_root == (not name.startswith("synthetic-"))
        assert info.layout and "\n" not in info.layout
    synthetic = {n for n in DATASETS if n.startswith("synthetic-")}
    fashion = {n for n in DATASETS if n.startswith("fashion-mnist")}
    assert {n for n, i in DATASETS.items() if i.has_masks} == synthetic | fashion | {"voc2012"}
    assert set(data.SEGMENTATION_DATASETS) == synthetic | fashion | {"voc2012"}
    assert {n for n, i in DATASETS.items() if i.root_optional} == fashion  # they have default places
    assert set(data.CLASSIFICATION_DATASETS) == set(DATASETS) - {"voc2012"}
    expected = {
        "cifar10": 10, "cifar100": 100, "flowers102": 102, "pets": 37, "imagenet": 1000, "imagenet100": 100,
    }
    assert {n: DATASETS[n].num_classes for n in expected} == expected


def test_describe_layouts_lists_every_dataset_and_is_in_module_doc():
    text = describe_layouts()
    for name, info in DATASETS.items():
        assert name in text and info.layout in text
    assert text in data.__doc__


def test_unknown_name_and_bad_split():
    with pytest.raises(ValueError, match="known datasets: .*cifar10.*voc2012"):
        build_dataset("cifar-10", split="train", root=".")
    with pytest.raises(ValueError, match="known datasets"):
        build_segmentation_dataset("nope")
    with pytest.raises(ValueError, match="split"):
        build_dataset("cifar10", split="test", root=".")
    with pytest.raises(ValueError, match="segmentation-only"):
        build_dataset("voc2012", split="val", root=".")
    with pytest.raises(ValueError, match="no ground-truth masks"):
        build_segmentation_dataset("cifar10", root=".")
    with pytest.raises(ValueError, match="cannot be downloaded"):
        build_dataset("imagenet", split="train", root=".", download=True)


@pytest.mark.parametrize("name", ROOT_DATASETS)
def test_nonexistent_root_raises_layout_error(name, tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(DatasetLayoutError) as excinfo:
        _build(name, root=missing)
    _expect_layout_error(excinfo, name, str(missing), "does not exist", "fix:")


@pytest.mark.parametrize("name", ROOT_DATASETS)
def test_empty_root_raises_layout_error(name, tmp_path):
    with pytest.raises(DatasetLayoutError) as excinfo:
        _build(name, root=tmp_path)
    _expect_layout_error(excinfo, name, "missing" if name not in ("imagenet", "imagenet100") else "no train/")


@pytest.mark.parametrize("name", [n for n in ROOT_DATASETS if not DATASETS[n].root_optional])
def test_no_root_tells_to_pass_data_root(name):
    with pytest.raises(DatasetLayoutError) as excinfo:
        _build(name, root=None)
    _expect_layout_error(excinfo, name, "no data root", "--data-root")


def test_root_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DatasetLayoutError, match="not a directory"):
        build_dataset("pets", split="train", root=f)


def test_layout_error_survives_pickling():
    err = DatasetLayoutError("cifar10", "/x", "missing test_batch")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is DatasetLayoutError and str(again) == str(err)
    assert "pass --data-root /path/containing/cifar-10-batches-py" in str(err)
    assert "--download" in str(err)


# ------------------------------------------------------------------------------------------ CIFAR

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_batch(n: int, labels: list[int], key: str, seed: int, bytes_keys: bool) -> dict:
    rng = np.random.default_rng(seed)
    entry = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), key: labels, "batch_label": "x"}
    return {k.encode(): v for k, v in entry.items()} if bytes_keys else entry


def _dump(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar10(root: Path) -> dict[str, dict]:
    """Python-3-style pickles (bytes keys, as the brief's b"data")."""
    base = root / "cifar-10-batches-py"
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _cifar_batch(2, [i - 1, i + 4], "labels", i, bytes_keys=True)
    batches["test_batch"] = _cifar_batch(3, [9, 0, 5], "labels", 9, bytes_keys=True)
    for fname, entry in batches.items():
        _dump(entry, base / fname)
    _dump({b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": 2}, base / "batches.meta")
    return batches


def make_cifar100(root: Path) -> None:
    """Python-2-style pickles (str keys, as the official files load with encoding='latin1')."""
    base = root / "cifar-100-python"
    for fname, labels in (("train", [0, 99, 42, 7]), ("test", [3, 98])):
        entry = _cifar_batch(len(labels), labels, "fine_labels", len(labels), bytes_keys=False)
        entry["coarse_labels"] = [0] * len(labels)
        _dump(entry, base / fname)
    _dump({"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": [f"s{i}" for i in range(20)]},
          base / "meta")


def test_cifar10_reads_pickles(tmp_path):
    batches = make_cifar10(tmp_path)
    train = build_dataset("cifar10", split="train", root=tmp_path)
    val = build_dataset("cifar10", split="val", root=tmp_path)
    assert len(train) == 10 and len(val) == 3
    assert train.targets == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]
    assert val.targets == [9, 0, 5]
    assert train.num_classes == val.num_classes == 10
    assert train.classes == CIFAR10_NAMES
    image, label = train[0]
    assert isinstance(image, Image.Image) and image.size == (32, 32) and image.mode == "RGB" and label == 0
    raw = batches["data_batch_1"][b"data"][0]
    # channel planes, row-major: pixel (row 1, col 2) is flat index 34 of each plane
    assert image.getpixel((2, 1)) == (raw[34], raw[1024 + 34], raw[2048 + 34])
    tensor_train = build_dataset("cifar10", split="train", root=tmp_path, transform=TO_TENSOR_16)
    x, y = tensor_train[3]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 6


def test_cifar_accepts_the_extracted_folder_as_root(tmp_path):
    make_cifar10(tmp_path)
    ds = build_dataset("cifar10", split="val", root=tmp_path / "cifar-10-batches-py")
    assert len(ds) == 3


def test_cifar100_reads_fine_labels(tmp_path):
    make_cifar100(tmp_path)
    train = build_dataset("cifar100", split="train", root=tmp_path, transform=T.ToTensor())
    val = build_dataset("cifar100", split="val", root=tmp_path)
    assert train.targets == [0, 99, 42, 7] and val.targets == [3, 98]
    assert train.num_classes == 100 and len(train.classes) == 100
    assert train[1][0].shape == (3, 32, 32) and train[1][1] == 99


def test_cifar_missing_batch(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("cifar10", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "cifar10", "missing data_batch_3", "cifar-10-batches-py", "--download")
    assert len(build_dataset("cifar10", split="val", root=tmp_path)) == 3  # the other split is intact


@pytest.mark.parametrize(
    "corrupt, fragment",
    [
        (lambda p: p.write_bytes(b"not a pickle"), "not a readable CIFAR pickle"),
        (lambda p: _dump({b"labels": [0, 1]}, p), "lacks the key(s) data"),
        (lambda p: _dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, p), "uint8 (N, 3072)"),
        (lambda p: _dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, p), "2 images but 1 labels"),
        (lambda p: _dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, p), "labels outside 0..9"),
        (lambda p: _dump([1, 2], p), "expected a dict"),
    ],
)
def test_cifar_malformed_files(tmp_path, corrupt, fragment):
    make_cifar10(tmp_path)
    corrupt(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("cifar10", split="val", root=tmp_path)
    _expect_layout_error(excinfo, "cifar10", fragment)


def test_cifar_download_goes_through_torchvision(tmp_path, monkeypatch):
    calls = []

    class FakeCIFAR10:
        url = "https://example.invalid/cifar-10-python.tar.gz"

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            make_cifar10(Path(root))

    monkeypatch.setattr(tvd, "CIFAR10", FakeCIFAR10)
    root = tmp_path / "new"  # created for the download
    ds = build_dataset("cifar10", split="val", root=root, download=True)
    assert calls == [(str(root), False, True)] and len(ds) == 3

    class OfflineCIFAR10(FakeCIFAR10):
        def __init__(self, root, train, download):
            raise urllib.error.URLError("no network")

    monkeypatch.setattr(tvd, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("cifar10", split="val", root=tmp_path / "other", download=True)
    _expect_layout_error(excinfo, "cifar10", "download failed", FakeCIFAR10.url)


def test_no_download_unless_asked(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("torchvision download called without download=True")

    monkeypatch.setattr(tvd, "CIFAR10", boom)
    with pytest.raises(DatasetLayoutError):
        build_dataset("cifar10", split="train", root=tmp_path)


# ------------------------------------------------------------------------------------------ ImageNet


def make_imagenet(root: Path, wnids: list[str], per_class: dict[str, int]) -> None:
    for split, n in per_class.items():
        for wnid in wnids:
            for k in range(n):
                _tiny_jpeg(root / split / wnid / f"{wnid}_{k}.JPEG")


def test_imagenet_imagefolder(tmp_path):
    in100 = imagenet100_classes()
    wnids = [in100[0], in100[1], "n00000042"]  # two ImageNet-100 classes and one outside it
    make_imagenet(tmp_path, wnids, {"train": 2, "val": 1})
    _jpeg(tmp_path / "train" / wnids[2] / "gray.JPEG", mode="L", color=(128,))  # grayscale -> RGB
    train = build_dataset("imagenet", split="train", root=tmp_path)
    val = build_dataset("imagenet", split="val", root=tmp_path, transform=TO_TENSOR_16)
    assert train.classes == sorted(wnids) and train.num_classes == val.num_classes == 3
    assert len(train) == 7 and len(val) == 3
    for path, target in train.samples:
        assert Path(path).parent.name == sorted(wnids)[target]
    assert train.targets == [t for _, t in train.samples]
    gray_index = [Path(p).name for p, _ in train.samples].index("gray.JPEG")
    image, label = train[gray_index]
    assert image.mode == "RGB" and label == sorted(wnids).index(wnids[2])
    x, _ = val[0]
    assert x.shape == (3, 16, 16)


def test_imagenet_flat_val_needs_valprep(tmp_path):
    make_imagenet(tmp_path, ["n00000001", "n00000002"], {"train": 1})
    for k in range(3):
        _tiny_jpeg(tmp_path / "val" / f"ILSVRC2012_val_{k:08d}.JPEG")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("imagenet", split="val", root=tmp_path)
    _expect_layout_error(excinfo, "imagenet", "no class directories", "3 files", "valprep")


def test_imagenet_split_class_mismatch(tmp_path):
    make_imagenet(tmp_path, ["n00000001", "n00000002", "n00000003"], {"train": 1, "val": 1})
    shutil.rmtree(tmp_path / "val" / "n00000002")
    for split in ("train", "val"):
        with pytest.raises(DatasetLayoutError) as excinfo:
            build_dataset("imagenet", split=split, root=tmp_path)
        _expect_layout_error(excinfo, "imagenet", "different class directories", "n00000002")


def test_imagenet_empty_class_dir(tmp_path):
    make_imagenet(tmp_path, ["n00000001"], {"train": 1})
    (tmp_path / "train" / "n00000002").mkdir()
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("imagenet", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "imagenet", "n00000002")


def test_imagenet_missing_split(tmp_path):
    make_imagenet(tmp_path, ["n00000001"], {"train": 1})
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("imagenet", split="val", root=tmp_path)
    _expect_layout_error(excinfo, "imagenet", "no val/ directory", str(tmp_path / "val"))


@pytest.mark.parametrize("extra_classes", [True, False], ids=["imagenet1k-root", "only-the-100"])
def test_imagenet100_class_order_and_subset(tmp_path, extra_classes):
    in100 = imagenet100_classes()
    wnids = in100 + (["n00000042", "n99999999"] if extra_classes else [])
    make_imagenet(tmp_path, wnids, {"train": 1, "val": 1})
    for split in ("train", "val"):
        ds = build_dataset("imagenet100", split=split, root=tmp_path)
        assert ds.classes == in100 and ds.num_classes == 100 and len(ds) == 100
        for path, target in ds.samples:
            assert Path(path).parent.name == in100[target]  # index = position in the shipped file
        assert sorted(ds.targets) == list(range(100))
    # The shipped order is not alphabetical, so this really tests the order, not ImageFolder's sort.
    assert in100 != sorted(in100)
    first = [t for p, t in ds.samples if Path(p).parent.name == in100[0]]
    assert first == [0]


def test_imagenet100_missing_classes(tmp_path):
    in100 = imagenet100_classes()
    for wnid in in100[3:]:
        (tmp_path / "train" / wnid).mkdir(parents=True)  # the check runs before any image is listed
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("imagenet100", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "imagenet100", "3 of the 100", *in100[:3])


def test_imagenet100_list_and_sha(tmp_path):
    shipped = Path(data.__file__).parent / "resources" / "imagenet100_classes.txt"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == IMAGENET100_SHA256
    classes = imagenet100_classes()
    assert len(classes) == 100 == len(set(classes))
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in classes)

    copy = tmp_path / "classes.txt"
    shutil.copyfile(shipped, copy)
    assert imagenet100_classes(copy) == classes
    lines = copy.read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]  # same set, different label order
    copy.write_text("\n".join(lines) + "\n")
    with pytest.raises(ClassListIntegrityError, match="SHA-256"):
        imagenet100_classes(copy)


# ------------------------------------------------------------------------------------------ Flowers


def make_flowers(base: Path) -> None:
    labels = [1, 2, 3, 102, 1, 2]
    for i, label in enumerate(labels, 1):
        _jpeg(base / "jpg" / f"image_{i:05d}.jpg", color=(label, 0, 0))
    # Shapes and dtypes as in the official files: (1, N) uint8 labels, (1, n) uint16 ids.
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    scipy.io.savemat(base / "setid.mat", {
        "trnid": np.array([[1, 2]], np.uint16), "valid": np.array([[3]], np.uint16),
        "tstid": np.array([[4, 5, 6]], np.uint16),
    })


@pytest.mark.parametrize("nested", [False, True], ids=["root", "root/flowers-102"])
def test_flowers102_trnid_plus_valid(tmp_path, nested):
    make_flowers(tmp_path / "flowers-102" if nested else tmp_path)
    train = build_dataset("flowers102", split="train", root=tmp_path, transform=TO_TENSOR_16)
    val = build_dataset("flowers102", split="val", root=tmp_path)
    assert train.targets == [0, 1, 2] and val.targets == [101, 0, 1]
    assert train.num_classes == val.num_classes == 102
    assert [p.name for p in val.paths] == ["image_00004.jpg", "image_00005.jpg", "image_00006.jpg"]
    x, y = train[2]
    assert x.shape == (3, 16, 16) and y == 2
    image, _ = val[0]
    assert isinstance(image, Image.Image) and image.size == (12, 10) and image.mode == "RGB"


def test_flowers102_missing_and_malformed(tmp_path):
    make_flowers(tmp_path)
    (tmp_path / "jpg" / "image_00005.jpg").unlink()
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("flowers102", split="val", root=tmp_path)
    _expect_layout_error(excinfo, "flowers102", "image_00005.jpg")
    assert len(build_dataset("flowers102", split="train", root=tmp_path)) == 3

    scipy.io.savemat(tmp_path / "setid.mat", {"trnid": np.array([[1]], np.uint16)})
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("flowers102", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "flowers102", "valid, tstid")

    (tmp_path / "setid.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("flowers102", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "flowers102", "not a readable .mat file")

    (tmp_path / "setid.mat").unlink()
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("flowers102", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "flowers102", "missing setid.mat")


def test_flowers102_ids_beyond_labels(tmp_path):
    make_flowers(tmp_path)
    scipy.io.savemat(tmp_path / "setid.mat", {
        "trnid": np.array([[1, 7]], np.uint16), "valid": np.array([[3]], np.uint16),
        "tstid": np.array([[4]], np.uint16),
    })
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("flowers102", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "flowers102", "outside 1..6", "7")


# ------------------------------------------------------------------------------------------ Pets

PETS_TRAINVAL = ["Abyssinian_1 1 1 1", "american_bulldog_10 2 2 1"]
PETS_TEST = ["yorkshire_terrier_5 37 2 25", "Abyssinian_2 1 1 1"]


def make_pets(base: Path, trainval=PETS_TRAINVAL, test=PETS_TEST) -> None:
    for line in trainval + test:
        _jpeg(base / "images" / f"{line.split()[0]}.jpg")
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (base / "annotations" / "test.txt").write_text("\n".join(test) + "\n")


@pytest.mark.parametrize("nested", [False, True], ids=["root", "root/oxford-iiit-pet"])
def test_pets_trainval_and_test(tmp_path, nested):
    make_pets(tmp_path / "oxford-iiit-pet" if nested else tmp_path)
    train = build_dataset("pets", split="train", root=tmp_path)
    val = build_dataset("pets", split="val", root=tmp_path, transform=TO_TENSOR_16)
    assert train.targets == [0, 1] and val.targets == [36, 0]
    assert train.num_classes == val.num_classes == 37
    assert train.classes[:2] == ["Abyssinian", "American Bulldog"]
    image, label = train[1]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 1
    x, y = val[0]
    assert x.shape == (3, 16, 16) and y == 36


def test_pets_missing_and_malformed(tmp_path):
    make_pets(tmp_path)
    (tmp_path / "annotations" / "test.txt").unlink()
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("pets", split="val", root=tmp_path)
    _expect_layout_error(excinfo, "pets", "missing annotations/test.txt")

    (tmp_path / "annotations" / "trainval.txt").write_text("Abyssinian_1\n")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("pets", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "pets", "line 1")

    (tmp_path / "annotations" / "trainval.txt").write_text("Abyssinian_1 38 1 1\n")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("pets", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "pets", "outside 1..37")

    (tmp_path / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\nmissing_cat_3 1 1 1\n")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("pets", split="train", root=tmp_path)
    _expect_layout_error(excinfo, "pets", "missing_cat_3.jpg")


# ------------------------------------------------------------------------------------------ VOC

VOC_IDS = ["2007_000032", "2007_000033"]


def _object_mask(h: int = 30, w: int = 40) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[4:16, 4:21] = 255  # void ring around object 1, as VOC draws object boundaries
    mask[5:15, 5:20] = 1
    mask[17:29, 21:39] = 255
    mask[18:28, 22:38] = 2
    return mask


def _palette_png(mask: np.ndarray, path: Path) -> None:
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]
    image.putpalette(palette)
    image.save(path)


def make_voc(root: Path) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    (base / "SegmentationObject").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    (base / "JPEGImages").mkdir()
    for image_id in VOC_IDS:
        pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)  # W=40, H=30: not square
        Image.fromarray(pixels).save(base / "JPEGImages" / f"{image_id}.jpg")
        _palette_png(_object_mask(), base / "SegmentationObject" / f"{image_id}.png")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(VOC_IDS) + "\n")
    return base


def test_voc_resizes_to_480_and_keeps_object_ids(tmp_path):
    base = make_voc(tmp_path)
    with Image.open(base / "SegmentationObject" / f"{VOC_IDS[0]}.png") as png:
        assert png.mode == "P"
    ds = build_segmentation_dataset("voc2012", root=tmp_path)
    assert len(ds) == 2
    image, masks = ds[0]
    assert isinstance(image, Image.Image) and image.size == (480, 480) and image.mode == "RGB"
    with Image.open(base / "JPEGImages" / f"{VOC_IDS[0]}.jpg") as jpg:
        original = jpg.convert("RGB")
    assert np.array_equal(np.array(image), np.array(original.resize((480, 480), Image.Resampling.BILINEAR)))
    assert masks.dtype == torch.int64 and masks.shape == (480, 480)
    assert set(masks.unique().tolist()) == {0, 1, 2, 255}  # nearest: no blended ids
    expected = np.array(Image.fromarray(_object_mask()).resize((480, 480), Image.Resampling.NEAREST))
    assert np.array_equal(masks.numpy(), expected.astype(np.int64))

    normalized = build_segmentation_dataset(
        "voc2012", root=tmp_path, transform=T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    )
    x, masks2 = normalized[1]
    assert x.shape == (3, 480, 480) and x.dtype == torch.float32 and torch.equal(masks2, masks)


def test_voc_void_as_background(tmp_path):
    make_voc(tmp_path)
    with_void = build_segmentation_dataset("voc2012", root=tmp_path)[0][1]
    without = build_segmentation_dataset("voc2012", root=tmp_path, void_as_background=True)[0][1]
    assert set(without.unique().tolist()) == {0, 1, 2}
    assert (without[with_void == 255] == 0).all()
    assert torch.equal(without[with_void != 255], with_void[with_void != 255])


@pytest.mark.parametrize("sub", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_root_variants(tmp_path, sub):
    make_voc(tmp_path)
    assert len(build_segmentation_dataset("voc2012", root=tmp_path / sub)) == 2


def test_voc_missing_and_malformed(tmp_path):
    base = make_voc(tmp_path)
    (base / "SegmentationObject" / f"{VOC_IDS[1]}.png").unlink()
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_segmentation_dataset("voc2012", root=tmp_path)
    _expect_layout_error(excinfo, "voc2012", f"{VOC_IDS[1]}.png")

    # A mask converted to RGB has lost its object ids: reported when read.
    Image.new("RGB", (40, 30)).save(base / "SegmentationObject" / f"{VOC_IDS[1]}.png")
    ds = build_segmentation_dataset("voc2012", root=tmp_path)
    with pytest.raises(DatasetLayoutError) as excinfo:
        ds[1]
    _expect_layout_error(excinfo, "voc2012", "mode RGB")

    shutil.rmtree(base / "SegmentationObject")
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_segmentation_dataset("voc2012", root=tmp_path)
    _expect_layout_error(excinfo, "voc2012", "missing SegmentationObject", str(base))


# ------------------------------------------------------------------------------------------ synthetic


def _synthetic():
    # Skip only when the sibling module is absent; any other import failure must surface.
    try:
        from sarlib.data.synthetic import generate as synthetic
    except ModuleNotFoundError as exc:
        if exc.name != "sarlib.data.synthetic.generate":
            raise
        pytest.skip("sarlib.data.synthetic.generate is not written yet")
    return synthetic


def test_registry_matches_synthetic_presets():
    synthetic = _synthetic()
    assert set(synthetic.SYNTHETIC_PRESETS) == {n for n in DATASETS if n.startswith("synthetic-")}
    for name, config in synthetic.SYNTHETIC_PRESETS.items():
        assert DATASETS[name].num_classes == config.num_classes, name


def test_synthetic_classification_and_segmentation(tmp_path):
    _synthetic()
    train = build_dataset("synthetic-tiny", split="train", cache_dir=tmp_path, transform=lambda _: 1 / 0)
    val = build_dataset("synthetic-tiny", split="val", cache_dir=tmp_path)
    assert train.num_classes == DATASETS["synthetic-tiny"].num_classes
    assert len(train.targets) == len(train) and len(val.targets) == len(val)
    assert val.split == "test"
    x, y = train[0]  # transform ignored: items are ready tensors
    assert x.dtype == torch.float32 and x.shape[0] == 3 and y == int(train.targets[0])

    seg = build_segmentation_dataset("synthetic-tiny", cache_dir=tmp_path)
    image, masks = seg[0]
    size = image.shape[-1]
    assert masks.dtype == torch.int64 and masks.shape == (size, size)
    assert set(masks.unique().tolist()) <= {0, 1} and masks.max() == 1


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_cifar_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    make_cifar10(tmp_path)
    marker = tmp_path / "code-ran"
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(batch, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["payload"] = _RunsShell(marker)
    with open(batch, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    with pytest.raises(DatasetLayoutError) as excinfo:
        build_dataset("cifar10", split="val", root=tmp_path)
    assert not marker.exists(), "reading the batch executed its code"
    _expect_layout_error(excinfo, "cifar10", "refused to load posix.system")
