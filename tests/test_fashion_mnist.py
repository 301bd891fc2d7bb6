"""Fashion-MNIST: the IDX reader on tiny files written here in the real format (every layout, gzipped or
not, every damaged header), class-balanced subsets, silhouette masks, `make data`'s fetcher, and the
real files where they are installed (CI installs them through `make data`)."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sarlib.data import DatasetLayoutError, build_dataset, build_segmentation_dataset
from sarlib.data import fetch
from sarlib.data.readers import fashion_mnist as fm


def _idx(array: np.ndarray) -> bytes:
    magic = 0x0800 + array.ndim
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


def write_fashion_mnist(folder: Path, *, per_class=(12, 3), gz=False, seed=0) -> dict[str, np.ndarray]:
    """Four IDX files with `per_class` train/test images of each class: a bright garment-like blob on 0."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in zip(("train", "val"), per_class):
        labels = np.tile(np.arange(10, dtype=np.uint8), n)
        rng.shuffle(labels)
        images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
        for k, label in enumerate(labels):
            top = 4 + int(label) % 5
            images[k, top:top + 14, 6:22] = rng.integers(1, 256, (14, 16), dtype=np.uint8)
        for stem, array in zip(fm.FILES[split], (images, labels)):
            data = _idx(array)
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data)) if gz else (folder / stem).write_bytes(data)
        out[split] = (images, labels)
    return out


@pytest.fixture
def no_default_places(tmp_path, monkeypatch):
    """No installed copy and an empty cache: the reader sees only what a test writes."""
    monkeypatch.setattr(fm, "DEBIAN_ROOT", tmp_path / "not-installed")
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("layout", ["zalando", "torchvision", "zalando-gz"])
def test_reads_every_layout_as_rgb_with_labels_and_masks(tmp_path, no_default_places, layout):
    root = tmp_path / "data"
    folder = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    written = write_fashion_mnist(folder, gz=layout.endswith("gz"))
    train = build_dataset("fashion-mnist", split="train", root=root)
    val = build_dataset("fashion-mnist", split="val", root=root)
    assert (len(train), len(val), train.num_classes) == (120, 30, 10)
    assert train.targets == written["train"][1].tolist()
    image, label = train[7]
    assert image.mode == "RGB" and image.size == (28, 28) and label == written["train"][1][7]
    pixels = np.asarray(image)
    assert (pixels[..., 0] == written["train"][0][7]).all() and (pixels[..., 0] == pixels[..., 2]).all()
    masks = build_segmentation_dataset("fashion-mnist", root=root)
    _, mask = masks[3]
    assert mask.dtype == torch.int64 and torch.equal(mask, torch.from_numpy((written["val"][0][3] > 0).astype(np.int64)))


def test_subsets_are_class_balanced_first_images_the_same_for_every_call(tmp_path, no_default_places):
    write_fashion_mnist(tmp_path, per_class=(120, 3))
    a = build_dataset("fashion-mnist-1k", split="train", root=tmp_path)
    b = build_dataset("fashion-mnist-1k", split="train", root=tmp_path)
    assert len(a) == 1000 and np.bincount(a.targets).tolist() == [100] * 10
    assert np.array_equal(a.images, b.images)  # no seed involved: every arm and seed trains on these
    full = build_dataset("fashion-mnist", split="train", root=tmp_path)
    first = [next(i for i, t in enumerate(full.targets) if t == c) for c in range(10)]
    assert all(any(np.array_equal(full.images[i], x) for x in a.images) for i in first)
    assert len(build_dataset("fashion-mnist-1k", split="val", root=tmp_path)) == 30  # the full test set
    with pytest.raises(DatasetLayoutError, match="needs 200 training images of each class, but class"):
        build_dataset("fashion-mnist-2k", split="train", root=tmp_path)


def test_class_halves_for_transfer_share_no_class_and_no_image(tmp_path, no_default_places):
    written = write_fashion_mnist(tmp_path, per_class=(1000, 3))
    pre = build_dataset("fashion-mnist-0to4-5k", split="train", root=tmp_path)
    tune = build_dataset("fashion-mnist-5to9-500", split="train", root=tmp_path)
    assert (len(pre), pre.num_classes, np.bincount(pre.targets).tolist()) == (5000, 5, [1000] * 5)
    assert (len(tune), tune.num_classes, np.bincount(tune.targets).tolist()) == (500, 5, [100] * 5)
    assert pre.classes[0] == "T-shirt/top" and tune.classes == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    # relabelled from 0: a tuned image's label + 5 is its Fashion-MNIST class, and it is the first of them
    images, labels = written["train"]
    sandals = np.flatnonzero(labels == 5)[:100]
    assert all(any(np.array_equal(images[i], x) for x in tune.images[np.array(tune.targets) == 0]) for i in sandals[:5])
    pre_bytes = {x.tobytes() for x in pre.images}
    assert not any(x.tobytes() in pre_bytes for x in tune.images)
    val = build_dataset("fashion-mnist-5to9-500", split="val", root=tmp_path)
    assert len(val) == 15 and set(val.targets) == set(range(5))  # the test images of classes 5..9 only
    masks = build_segmentation_dataset("fashion-mnist-5to9-500", root=tmp_path)
    assert len(masks) == 15


@pytest.mark.parametrize("name, classes, size", [("fashion-mnist", range(10), None), ("fashion-mnist-2k", range(10), 2000),
                                                 ("fashion-mnist-0to4-5k", range(0, 5), 5000),
                                                 ("fashion-mnist-5to9-500", range(5, 10), 500)])
def test_names_say_classes_and_size(name, classes, size):
    assert fm.parse_name(name) == (classes, size)


def _bad_magic(folder):
    path = folder / fm.FILES["train"][0]
    path.write_bytes(b"\x00\x00\x09\x03" + path.read_bytes()[4:])
    return path, "bad magic number"


def _truncated(folder):
    path = folder / fm.FILES["train"][0]
    path.write_bytes(path.read_bytes()[:-100])
    return path, "bytes follow"


def _label_out_of_range(folder):
    path = folder / fm.FILES["train"][1]
    raw = bytearray(path.read_bytes())
    raw[-1] = 12
    path.write_bytes(bytes(raw))
    return path, "labels up to 12, expected 0..9"


def _count_mismatch(folder):
    path = folder / fm.FILES["train"][1]
    labels = np.zeros(7, dtype=np.uint8)
    path.write_bytes(_idx(labels))
    return path, "7 labels for 120 images"


def _garbage_gz(folder):
    path = folder / (fm.FILES["train"][0] + ".gz")
    (folder / fm.FILES["train"][0]).unlink()
    path.write_bytes(b"\x1f\x8b not really gzip")
    return path, "cannot be read"


def _padded(folder):
    path = folder / fm.FILES["train"][0]
    path.write_bytes(path.read_bytes() + b"\x00" * 5)
    return path, "a padded file"


def _no_items(folder):
    path = folder / fm.FILES["train"][0]
    path.write_bytes(_idx(np.zeros((0, 28, 28), dtype=np.uint8)))
    return path, "0 < n <= 1,000,000"


def _inflates_past_any_real_file(folder):
    # a header claiming 2**31 images, then a body of zeros that gzip compresses to almost nothing: refused
    # from the header, before anything is inflated
    path = folder / (fm.FILES["train"][0] + ".gz")
    (folder / fm.FILES["train"][0]).unlink()
    head = (0x0803).to_bytes(4, "big") + (2**31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path.write_bytes(gzip.compress(head + bytes(1 << 20)))
    return path, "0 < n <= 1,000,000"


def _corrupt_deflate(folder):
    path = folder / (fm.FILES["train"][0] + ".gz")
    data = gzip.compress((folder / fm.FILES["train"][0]).read_bytes())
    (folder / fm.FILES["train"][0]).unlink()
    path.write_bytes(data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:])
    return path, "cannot be read"


@pytest.mark.parametrize("damage", [_bad_magic, _truncated, _label_out_of_range, _count_mismatch, _garbage_gz,
                                    _padded, _no_items, _inflates_past_any_real_file, _corrupt_deflate])
def test_damaged_files_are_one_line_naming_the_file_and_how_to_get_the_data(tmp_path, no_default_places, damage):
    write_fashion_mnist(tmp_path)
    path, needle = damage(tmp_path)
    with pytest.raises(DatasetLayoutError) as info:
        build_dataset("fashion-mnist", split="train", root=tmp_path)
    line = str(info.value)
    assert "\n" not in line and needle in line and str(path) in line
    assert "make data" in line and "apt-get install dataset-fashion-mnist" in line and "--download" in line


def test_missing_files_and_no_root_name_the_three_ways(tmp_path, no_default_places):
    with pytest.raises(DatasetLayoutError, match="no Fashion-MNIST files.*make data.*apt-get install.*--download"):
        build_dataset("fashion-mnist", split="train")  # no root: the default places are empty
    with pytest.raises(DatasetLayoutError, match="the data root does not exist"):
        build_dataset("fashion-mnist", split="train", root=tmp_path / "absent")


def test_no_root_reads_the_default_places_installed_or_unpacked_into_the_cache(tmp_path, no_default_places):
    unpacked = fm.cache_root() / "usr" / "share" / "datasets" / "fashion-mnist"  # `dpkg -x` into the cache
    write_fashion_mnist(unpacked, gz=True)
    assert len(build_dataset("fashion-mnist", split="val")) == 30
    assert fetch.fetch_fashion_mnist() == unpacked  # found: nothing is fetched


def test_fetch_never_writes_into_a_given_root_and_says_what_to_do(tmp_path, no_default_places, capsys):
    root = tmp_path / "mine"
    root.mkdir()
    assert fetch.main(["fashion-mnist", "--root", str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: fashion-mnist: the files are not in this data root")
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("damage", [_bad_magic, _truncated, _label_out_of_range, _count_mismatch])
def test_fetch_names_damaged_files_instead_of_reporting_them_found(tmp_path, no_default_places, capsys, damage):
    # training would refuse them and send the user back to `make data`: fetch must not say "found"
    write_fashion_mnist(tmp_path)
    path, needle = damage(tmp_path)
    assert fetch.main(["fashion-mnist", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and str(path) in err and "delete or replace" in err


def test_fetch_tries_the_package_then_unpacking_then_torchvision(tmp_path, no_default_places, monkeypatch):
    tried = []
    monkeypatch.setattr(fetch, "_apt_install", lambda: tried.append("apt") or False)
    monkeypatch.setattr(fetch, "_unpack_without_root", lambda cache: tried.append("dpkg") or False)

    def torchvision_download(cache):
        tried.append("torchvision")
        write_fashion_mnist(cache / "FashionMNIST" / "raw")
        return True

    monkeypatch.setattr(fetch, "_torchvision_download", torchvision_download)
    assert fetch.fetch_fashion_mnist() == fm.cache_root() / "FashionMNIST" / "raw"
    assert tried == ["apt", "dpkg", "torchvision"]


INSTALLED = fm.DEBIAN_ROOT


@pytest.mark.skipif(not INSTALLED.is_dir() and os.environ.get("CI") != "true",
                    reason="Fashion-MNIST is not installed here (`make data` installs it; CI always does)")
def test_the_real_installed_files_read_in_full_and_train_at_smoke_scale(tmp_path):
    from sarlib.train import load_profile, train

    train_set = build_dataset("fashion-mnist", split="train")
    test_set = build_dataset("fashion-mnist", split="val")
    assert (len(train_set), len(test_set)) == (60_000, 10_000)
    assert np.bincount(train_set.targets).tolist() == [6000] * 10 and np.bincount(test_set.targets).tolist() == [1000] * 10
    small = build_dataset("fashion-mnist-1k", split="train")
    assert len(small) == 1000 and np.bincount(small.targets).tolist() == [100] * 10
    masks = build_segmentation_dataset("fashion-mnist")
    cover = np.mean([float(masks[i][1].float().mean()) for i in range(0, 10_000, 500)])
    assert 0.2 < cover < 0.8  # silhouettes cover part of the image, never all or none of it
    metrics = train(load_profile("smoke", dataset="fashion-mnist-1k", img_size=32, epochs=1, threads=1,
                                max_steps_per_epoch=5, output_dir=str(tmp_path / "run")))
    assert metrics["complete"] and 0.0 <= metrics["jaccard"] <= 1.0 and metrics["entropy"] is not None


def test_small_images_are_padded_with_black_and_their_masks_stay_aligned(tmp_path, no_default_places):
    from sarlib.data.transforms import eval_transform

    written = write_fashion_mnist(tmp_path)
    tf = eval_transform("fashion-mnist-1k", 32)
    image, _ = build_dataset("fashion-mnist", split="val", root=tmp_path, transform=tf)[0]
    black = (0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert image.shape == (3, 32, 32)
    assert torch.allclose(image[:, :2, :], black.view(3, 1, 1).expand(3, 2, 32))  # padded, not resized
    assert torch.allclose(image[0, 2:30, 2:30], (torch.from_numpy(written["val"][0][0]) / 255 - 0.485) / 0.229,
                          atol=1e-6)
    masks = build_segmentation_dataset("fashion-mnist", root=tmp_path, transform=tf, size=32)
    padded, mask = masks[0]
    assert torch.equal(padded, image) and mask.shape == (32, 32)
    assert torch.equal(mask[2:30, 2:30], torch.from_numpy((written["val"][0][0] > 0).astype(np.int64)))
    assert mask[:2].sum() == 0 and mask[:, 30:].sum() == 0
    # other datasets keep DeiT's resize + center crop
    assert type(eval_transform("cifar10", 32).transforms[0]).__name__ != "CenterCrop"


def test_a_subset_pads_its_masks_to_the_input_size_not_to_its_image_count(tmp_path, no_default_places):
    write_fashion_mnist(tmp_path, per_class=(100, 3))
    _, mask = build_segmentation_dataset("fashion-mnist-1k", root=tmp_path, size=32)[0]
    assert mask.shape == (32, 32)
