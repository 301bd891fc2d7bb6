"""Write the embedded synthetic data in the on-disk formats of the real datasets.

    python -m sarlib.data.synthetic export --layout imagefolder --size 32 --num-train 200 --root /tmp/fake
    python -m sarlib.data.synthetic export --layout voc --size 32 --num-val 50 --root /tmp/fake

`imagefolder` writes ImageNet's layout, `train/<class>/*.JPEG` and `val/<class>/*.JPEG`, read by the
`imagenet` dataset (`--dataset imagenet --data-root DIR`). Class folders are named `<label>_<shape>`
(e.g. `00_disc`) so that their sorted order, which ImageFolder turns into label indices, is the
embedded label order. `voc` writes PASCAL VOC 2012's segmentation layout under
`DIR/VOCdevkit/VOC2012/`: `JPEGImages/<id>.jpg`, `SegmentationObject/<id>.png` (palette PNG of object
ids: 0 background, 1 the object), `SegmentationClass/<id>.png` (palette PNG of class ids: label + 1),
both with VOC's colour palette and VOC's void label 255 on a thin band along each object's outline,
and `ImageSets/Segmentation/val.txt`; it is read by the `voc2012` dataset. Both layouts can share one
root, so one `DATA_ROOT` serves training and segmentation.

Training images come from the generator's "train" split and val/VOC images from its "test" split, so
the exported files hold exactly the tensors `sarlib.data.synthetic.generate.generate` returns (JPEG-compressed).
Every file name carries the image's index in its split. Writes are atomic and idempotent: the layout
is built in a temporary folder beside its destination and renamed into place (a killed export's folder is
removed by the next export into the same place); an export with the same
arguments finds its manifest and writes nothing. The manifest lists every file and folder written, with
the SHA-256 of each file: before replacing a folder, every file and folder in it is checked against that
list, and one that is not there or has changed (a user's own class folder, an edited label file) stops
the export with one line; a folder this module did not write is never replaced or deleted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from ...utils.files import atomic_write_text, temp_folder
from ..registry import VOID_ID
from .generate import GENERATOR_VERSION, SHAPE_NAMES, SyntheticConfig, check_fits, generate

__all__ = ["LAYOUTS", "export", "export_imagefolder", "export_voc", "main", "voc_palette",
           "void_band"]

LAYOUTS = ("imagefolder", "voc")
_FORMAT_VERSION = 1  # bump when the written files change for the same arguments
_IMAGEFOLDER_MANIFEST = ".sarlib-export-imagefolder.json"  # beside train/ and val/
_VOC_MANIFEST = ".sarlib-export.json"  # inside VOC2012/
JPEG_QUALITY = 95


class ExportConflictError(FileExistsError):
    """The destination holds data that this module did not write; it is left untouched."""


def voc_palette() -> list[int]:
    """VOC's 256-colour palette (flat RGB list): bit k of each of the index's 3-bit groups goes to
    bit 7-k of red, green and blue. Index 1 is (128, 0, 0), 255 (void) is (224, 224, 192)."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        value = index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette.extend(rgb)
    return palette


def void_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Bool band `width` pixels wide along the object's outline, as VOC marks boundaries void: the
    larger half outside the object, the rest inside (a 1-pixel band lies just outside it).

    Where the object is too thin to survive the erosion, the band stays outside it, so every object
    keeps pixels with its own id."""
    if width <= 0:
        return np.zeros_like(mask, dtype=bool)
    square = np.ones((3, 3), dtype=bool)
    inside = width // 2
    # (scipy reads iterations=0 as "until nothing changes", so both counts are kept >= 1 or skipped)
    outer = ndimage.binary_dilation(mask, square, iterations=width - inside)
    inner = ndimage.binary_erosion(mask, square, iterations=inside) if inside else mask
    return outer & ~(inner if inner.any() else mask)


def _default_void_width(size: int) -> int:
    # VOC's band is about 5 px wide on images of about 500 px.
    return max(1, round(5 * size / 500))


def _class_dirs(num_classes: int) -> list[str]:
    return [f"{label:02d}_{SHAPE_NAMES[label]}" for label in range(num_classes)]


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inventory(base: Path, targets: Sequence[Path], skip: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """({file relative to base: sha256}, [folders relative to base]) of everything under `targets`."""
    files, dirs = {}, []
    for target in targets:
        if not target.exists():
            continue
        for path in sorted([target, *target.rglob("*")]):
            rel = path.relative_to(base).as_posix()
            if path == skip:
                continue
            if path.is_dir() and not path.is_symlink():
                dirs.append(rel)
            else:
                files[rel] = _sha256(path) if path.is_file() else "not a regular file"
    return files, dirs


def _claim(base: Path, targets: Sequence[Path], manifest: Path,
           wanted: dict[str, Any]) -> tuple[dict[str, str], list[str], bool]:
    """(files, folders) an earlier export wrote under `targets` (relative to `base`), once each file and
    folder there is checked against its manifest, and whether they are already the export `wanted`
    describes. Anything else (added, changed, or no manifest at all) means the folders hold data this
    module did not write, and the export refuses to replace them."""
    present, dirs = _inventory(base, targets, skip=manifest)
    if not present and not dirs:
        return {}, [], False
    recorded = _read_manifest(manifest) or {}
    files = recorded.get("files") if isinstance(recorded.get("files"), dict) else {}
    listed_dirs = set(recorded.get("dirs") or []) if isinstance(recorded.get("dirs"), list) else set()
    foreign = [rel for rel, digest in present.items() if files.get(rel) != digest]
    foreign += [rel for rel in dirs if rel not in listed_dirs]
    if foreign:
        shown = ", ".join(str(base / rel) for rel in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ExportConflictError(
            f"{shown} {'was' if len(foreign) == 1 else 'were'} not written by sarlib's export (or changed since), so "
            f"{', '.join(str(t) for t in targets if t.exists())} cannot be replaced; pass another --root or move "
            "them away (an export never deletes data it did not write)")
    same = {k: v for k, v in recorded.items() if k not in ("files", "dirs")} == wanted
    return present, dirs, same


def _swap_in(built: Path, destination: Path, trash: Path) -> None:
    # Two renames on one filesystem: the destination is either the old folder or the new one.
    if destination.exists():
        os.replace(destination, trash)
    os.replace(built, destination)


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    # 4:4:4 (no chroma subsampling): tiny images keep their colours, so the files match the tensors
    Image.fromarray(image, "RGB").save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)


def _save_palette_png(ids: np.ndarray, path: Path, palette: list[int]) -> None:
    png = Image.fromarray(ids.astype(np.uint8), "L").convert("P")
    png.putpalette(palette)
    png.save(path, format="PNG")


def _hwc(images: Any) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def export_imagefolder(root: str | os.PathLike[str], *, size: int = 32, num_train: int = 100,
                       num_val: int | None = None, num_classes: int = 10, seed: int = 0) -> Path:
    """Write `root/train/<class>/*.JPEG` and `root/val/<class>/*.JPEG`; returns `root`.

    `num_val` defaults to `num_train`. Every class must appear in both splits (ImageFolder labels are
    indices into the class folders found), so each split needs at least `num_classes` images."""
    num_val = num_train if num_val is None else num_val
    if min(num_train, num_val) < num_classes:
        raise ValueError(f"need at least one image per class in each split: num_train={num_train} and "
                         f"num_val={num_val} must be >= num_classes={num_classes}")
    cfg = SyntheticConfig(num_train=num_train, num_test=num_val, img_size=size, num_classes=num_classes, seed=seed)
    check_fits(cfg, max(num_train, num_val))  # before anything is created
    root = Path(root)
    manifest_path = root / _IMAGEFOLDER_MANIFEST
    manifest = _manifest("imagefolder", cfg)
    targets = [root / "train", root / "val"]
    old, old_dirs, same = _claim(root, targets, manifest_path, manifest)
    if same:
        return root  # the same export, every file as written
    root.mkdir(parents=True, exist_ok=True)
    classes = _class_dirs(num_classes)
    with temp_folder(root, "export") as tmp:
        for split, source in (("train", "train"), ("val", "test")):
            images, labels, _masks = generate(cfg, source)
            for name in classes:
                (Path(tmp) / split / name).mkdir(parents=True)
            for index, (image, label) in enumerate(zip(_hwc(images), labels.tolist())):
                _save_jpeg(image, Path(tmp) / split / classes[label] / f"{split}_{index:06d}.JPEG")
        new, new_dirs = _inventory(Path(tmp), [Path(tmp) / t.name for t in targets])
        # The manifest claims the old and the new files before train/ and val/ are touched, so an export
        # killed between the two renames can still replace them on the next call.
        atomic_write_text(manifest_path, json.dumps({**manifest, "complete": False, "files": {**old, **new},
                                                     "dirs": sorted({*old_dirs, *new_dirs})}, indent=2) + "\n")
        for target in targets:
            _swap_in(Path(tmp) / target.name, target, Path(tmp) / f"old-{target.name}")
        atomic_write_text(manifest_path, json.dumps({**manifest, "files": new, "dirs": new_dirs}, indent=2) + "\n")
    return root


def export_voc(root: str | os.PathLike[str], *, size: int = 32, num_val: int = 50, num_classes: int = 10,
               seed: int = 0, void_width: int | None = None) -> Path:
    """Write the VOC 2012 segmentation layout under `root/VOCdevkit/VOC2012`; returns that folder.

    Image ids are `2012_<index>`; `void_width` is the void band's width across an outline (default
    5 px per 500 px of image as in VOC, at least 1; 0 writes no void)."""
    if num_val < 1:
        raise ValueError(f"num_val must be >= 1, got {num_val}")
    width = _default_void_width(size) if void_width is None else void_width
    if width < 0:
        raise ValueError(f"void_width must be >= 0, got {width}")
    cfg = SyntheticConfig(num_train=0, num_test=num_val, img_size=size, num_classes=num_classes, seed=seed)
    check_fits(cfg, num_val)  # before anything is created
    devkit = Path(root) / "VOCdevkit"
    target = devkit / "VOC2012"
    manifest = {**_manifest("voc", cfg), "void_width": width}
    if _claim(target, [target], target / _VOC_MANIFEST, manifest)[2]:
        return target  # the same export, every file as written
    devkit.mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    images, labels, masks = generate(cfg, "test")
    with temp_folder(devkit, "export") as tmp:
        base = Path(tmp) / "VOC2012"
        for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
            (base / sub).mkdir(parents=True)
        ids = [f"2012_{index:06d}" for index in range(num_val)]
        for image_id, image, label, mask in zip(ids, _hwc(images), labels.tolist(), masks.numpy()):
            void = void_band(mask, width)
            objects = np.where(void, VOID_ID, mask.astype(np.uint8))  # one object per image: id 1
            classes = np.where(void, VOID_ID, np.where(mask, label + 1, 0))  # VOC class ids start at 1
            _save_jpeg(image, base / "JPEGImages" / f"{image_id}.jpg")
            _save_palette_png(objects, base / "SegmentationObject" / f"{image_id}.png", palette)
            _save_palette_png(classes, base / "SegmentationClass" / f"{image_id}.png", palette)
        (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
        files, dirs = _inventory(base, [base])
        (base / _VOC_MANIFEST).write_text(json.dumps({**manifest, "files": files, "dirs": dirs}, indent=2) + "\n")
        _swap_in(base, target, Path(tmp) / "old-VOC2012")
    return target


def _manifest(layout: str, cfg: SyntheticConfig) -> dict[str, Any]:
    return {"layout": layout, "format_version": _FORMAT_VERSION, "generator_version": GENERATOR_VERSION,
            "size": cfg.img_size, "num_train": cfg.num_train, "num_val": cfg.num_test,
            "num_classes": cfg.num_classes, "seed": cfg.seed, "classes": _class_dirs(cfg.num_classes),
            "complete": True}


def export(layout: str, root: str | os.PathLike[str], **options: Any) -> Path:
    """`export_imagefolder` or `export_voc` by name."""
    if layout == "imagefolder":
        return export_imagefolder(root, **options)
    if layout == "voc":
        options.pop("num_train", None)  # VOC's segmentation layout has only the val split
        return export_voc(root, **options)
    raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sarlib.data.synthetic",
                                     description="Tools for the embedded synthetic dataset.")
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("export", help="write the data as ImageNet (ImageFolder) or VOC 2012 files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("--layout", choices=LAYOUTS, required=True)
    sub.add_argument("--root", required=True, help="destination folder (the DATA_ROOT of later runs)")
    sub.add_argument("--size", type=int, default=32, help="image side in pixels (default 32, >= 16)")
    sub.add_argument("--num-train", type=int, default=100, help="training images (imagefolder; default 100)")
    sub.add_argument("--num-val", type=int, default=None,
                     help="val images (imagefolder: default --num-train; voc: default 50)")
    sub.add_argument("--num-classes", type=int, default=10, help=f"2..{len(SHAPE_NAMES)} (default 10)")
    sub.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options: dict[str, Any] = dict(size=args.size, num_classes=args.num_classes, seed=args.seed)
    if args.layout == "imagefolder":
        options.update(num_train=args.num_train, num_val=args.num_val)
    elif args.num_val is not None:
        options["num_val"] = args.num_val
    try:
        path = export(args.layout, args.root, **options)
    except (ValueError, ExportConflictError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    use = "--dataset imagenet" if args.layout == "imagefolder" else "--seg-dataset voc2012"
    print(f"{args.layout} layout in {path}; train on it with {use} --data-root {args.root}")
    return 0
