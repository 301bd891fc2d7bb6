"""Exported synthetic data read back through the real-format loaders (ImageFolder and VOC 2012)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sarlib.data import VOC_IMAGE_SIZE, build_dataset, build_segmentation_dataset
from sarlib.data.synthetic.export import (ExportConflictError, export, export_imagefolder, export_voc, main, void_band,
                           voc_palette)
from sarlib.data.synthetic.generate import SHAPE_NAMES, SyntheticConfig, generate

REPO = Path(__file__).resolve().parents[1]


def _index(path) -> int:
    return int(Path(path).stem.rsplit("_", 1)[1])


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory):
    return export_imagefolder(tmp_path_factory.mktemp("imagefolder"), size=32, num_train=20, num_val=10,
                              num_classes=5, seed=3)


@pytest.mark.parametrize("split, source, n", [("train", "train", 20), ("val", "test", 10)])
def test_imagefolder_export_reads_back_with_the_embedded_labels_and_pixels(folder_root, split, source, n):
    images, labels, _ = generate(SyntheticConfig(num_train=20, num_test=10, num_classes=5, seed=3), source)
    ds = build_dataset("imagenet", split=split, root=folder_root)
    assert len(ds) == n and ds.num_classes == 5
    assert ds.classes == [f"{i:02d}_{SHAPE_NAMES[i]}" for i in range(5)]
    assert sorted(_index(p) for p, _ in ds.samples) == list(range(n))
    for path, label in ds.samples:
        i = _index(path)
        assert label == int(labels[i])
        decoded = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        original = images[i].permute(1, 2, 0).numpy().astype(np.float64)
        assert decoded.shape == (32, 32, 3)
        assert np.abs(decoded - original).mean() < 4  # JPEG quality 95, 4:4:4, on grainy 32x32 images


def test_voc_export_reads_back_with_the_embedded_masks(tmp_path):
    base = export_voc(tmp_path, size=32, num_val=6, num_classes=4, seed=1)
    assert base == tmp_path / "VOCdevkit" / "VOC2012"
    images, labels, masks = generate(SyntheticConfig(num_train=0, num_test=6, num_classes=4, seed=1), "test")
    ids = (base / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert ids == [f"2012_{i:06d}" for i in range(6)]
    ds = build_segmentation_dataset("voc2012", root=tmp_path)
    scale = VOC_IMAGE_SIZE // 32  # the loader resizes to 480 with nearest neighbours: exact 15x blocks
    for i, image_id in enumerate(ids):
        image, objects = ds[i]
        assert image.size == (VOC_IMAGE_SIZE, VOC_IMAGE_SIZE)
        small = objects[::scale, ::scale]
        assert torch.equal(objects, small.repeat_interleave(scale, 0).repeat_interleave(scale, 1))
        mask = masks[i]
        void = small == 255
        assert void.any() and set(small.unique().tolist()) == {0, 1, 255}
        assert torch.equal(small[~void], mask[~void].long())  # outside the band: exactly the embedded mask
        # 32 px images get VOC's band scaled down to 1 px, just outside the object
        assert not (void & mask).any() and torch.equal(void, torch.from_numpy(void_band(mask.numpy(), 1)))
        with Image.open(base / "SegmentationClass" / f"{image_id}.png") as png:
            assert png.mode == "P" and png.getpalette() == voc_palette()
            classes = torch.from_numpy(np.array(png)).long()
        assert torch.equal(classes == 255, void)
        assert set(classes[~void].unique().tolist()) == {0, int(labels[i]) + 1}
        assert torch.equal(classes[~void] > 0, mask[~void])


def test_voc_palette_and_void_band_follow_voc():
    palette = voc_palette()
    assert palette[3:6] == [128, 0, 0] and palette[6:9] == [0, 128, 0] and palette[-3:] == [224, 224, 192]
    square = np.zeros((20, 20), dtype=bool)
    square[5:15, 5:15] = True
    one = void_band(square, 1)
    assert one.sum() == 12 * 12 - 10 * 10 and not (one & square).any()
    five = void_band(square, 5)  # 3 px outside, 2 px inside, as VOC's ~5 px band
    assert five.sum() == 16 * 16 - 6 * 6 and (five & square).sum() == 10 * 10 - 6 * 6
    line = np.zeros((9, 9), dtype=bool)
    line[4, 1:8] = True  # too thin to erode: the band stays outside and the object keeps its pixels
    assert not (void_band(line, 4) & line).any()
    assert not void_band(square, 0).any()


def test_export_is_idempotent_replaces_its_own_output_and_never_foreign_data(tmp_path):
    root = tmp_path / "data"
    export_imagefolder(root, size=16, num_train=4, num_val=4, num_classes=2)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    export_imagefolder(root, size=16, num_train=4, num_val=4, num_classes=2)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamp  # same arguments: nothing written
    export_imagefolder(root, size=16, num_train=6, num_val=4, num_classes=2)
    assert len(build_dataset("imagenet", split="train", root=root)) == 6
    assert not [p for p in root.iterdir() if p.name.startswith(".export-")]  # no temporary folder left

    foreign = tmp_path / "real"
    (foreign / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(ExportConflictError, match="not written by sarlib"):
        export_imagefolder(foreign, size=16, num_train=4, num_classes=2)
    assert (foreign / "train" / "n01440764").is_dir() and not (foreign / "val").exists()
    (foreign / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    with pytest.raises(ExportConflictError):
        export_voc(foreign, size=16, num_val=2)
    with pytest.raises(ValueError, match="one image per class"):
        export("imagefolder", tmp_path / "x", size=16, num_train=3, num_classes=4)
    with pytest.raises(ValueError, match="unknown layout"):
        export("coco", tmp_path / "x")


def test_command_line_writes_both_layouts_into_one_root(tmp_path, capsys):
    args = ["--size", "16", "--num-train", "4", "--num-val", "2", "--num-classes", "2", "--root", str(tmp_path)]
    # `python -m sarlib.data.synthetic` once as a real process (one torch import is the cost), then in-process
    done = subprocess.run([sys.executable, "-m", "sarlib.data.synthetic", "export", "--layout", "imagefolder", *args],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--dataset imagenet --data-root" in done.stdout
    assert main(["export", "--layout", "voc", *args]) == 0
    assert "--seg-dataset voc2012 --data-root" in capsys.readouterr().out
    assert len(build_dataset("imagenet", split="val", root=tmp_path)) == 2
    assert len(build_segmentation_dataset("voc2012", root=tmp_path)) == 2
    assert main(["export", "--layout", "imagefolder", "--num-train", "1", "--root", str(tmp_path / "y")]) == 2
    assert "num_classes" in capsys.readouterr().err
