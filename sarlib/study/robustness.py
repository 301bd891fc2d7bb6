"""Trained runs scored on corrupted copies of their test images (the robustness target; spec section 5).

    detail = measure_robustness(study.runs, per_class=100)   # one row per run x corruption x severity

Every run of a dataset sees the same images: the profile's class-balanced test slice
(`sarlib.data.corrupted.clean_test_set`), corrupted once per (corruption, severity) with one seed and
cached under `$SARLIB_CACHE/corrupted/`, so a rerun costs only the forward passes. Severity 0 is the
clean slice itself (corruption "none"), the reference of the relative scores. Each model is loaded once
and scored on every copy in one forward pass per batch (`sarlib.metrics.scores.score_images`): top-1,
the spatial entropy and regions of its [CLS] maps, and the Jaccard of its attention against the
*clean* object masks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import build_dataset
from ..data.corrupted import clean_test_set
from ..data.corruptions import CORRUPTIONS, SEVERITIES, corrupted_set
from ..data.readers.imagenet_c import imagenet_a_dataset, imagenet_c_available, imagenet_c_dataset
from ..data.transforms import build_transforms
from ..metrics.scores import score_images
from ..train import TrainConfig, load_trained_model
from ..utils.files import sarlib_cache
from .params import ParameterError, Study, _distinct, _positive_int
from .runs import Run
from .targets import STUDIES

__all__ = ["CLEAN", "DETAIL_COLUMNS", "IMAGENET_A", "check_corruptions", "measure_robustness", "robustness_of"]

CLEAN = "none"  # the corruption name of the clean slice (severity 0)
# the seed every corrupted copy is drawn with: the same images for every model, run and rerun
CORRUPTION_SEED = 0
IMAGENET_A = "imagenet-a"
# the models scored on the released benchmarks rather than on corrupted copies made here
BENCHMARK_DATASETS = ("imagenet", "imagenet100")
# ImageNet-C's 15 benchmark corruptions by family (its paper's grouping); the 4 extras are "extra"
IMAGENET_C_FAMILIES = {name: family for family, names in (
    ("noise", ("gaussian_noise", "shot_noise", "impulse_noise")),
    ("blur", ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur")),
    ("weather", ("snow", "frost", "fog", "brightness")),
    ("digital", ("contrast", "elastic_transform", "pixelate", "jpeg_compression"))) for name in names}
DETAIL_COLUMNS = ["dataset", "model", "arm", "seed", "run_dir", "corruption", "family", "severity", "n_images",
                  "top1", "entropy", "regions", "jaccard"]


def check_corruptions(value: Any) -> list[str]:
    """The corruption names a notebook asked for (None: every one), or one ParameterError line."""
    if value is None:
        return list(CORRUPTIONS)
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value \
            or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"corruptions must be a non-empty list of names, e.g. -p corruptions "
                             f"'[\"gaussian_noise\", \"fog\"]'; got {value!r}")
    unknown = [v for v in value if v not in CORRUPTIONS]
    if unknown:
        raise ParameterError(f"unknown corruptions {unknown}; choose from {', '.join(CORRUPTIONS)}")
    return _distinct("corruptions", list(value))


def _severities(value: Any) -> list[int]:
    if value is None:
        return list(SEVERITIES)
    if not isinstance(value, (list, tuple)) or not value or any(v not in SEVERITIES or isinstance(v, bool) for v in value):
        raise ParameterError(f"severities must be a non-empty list drawn from {list(SEVERITIES)}; got {value!r}")
    return sorted(set(value))


def measure_robustness(runs: Iterable[Run], *, per_class: int | None, corruptions: Sequence[str] | None = None,
                       severities: Sequence[int] | None = None, batch_size: int = 500,
                       progress: bool = True) -> pd.DataFrame:
    """One row (DETAIL_COLUMNS) per finished run x (clean, and each corruption x severity; ImageNet-A as
    corruption "imagenet-a", severity 1, where the paper profile's data root holds it).

    Datasets whose pixels are stored as arrays (Fashion-MNIST, the embedded sets) are corrupted here
    (`corruptions`: names of `sarlib.data.corruptions`); ImageNet and ImageNet-100 models read the released
    benchmarks under their data root, `imagenet-c/` and `imagenet-a/` (`corruptions`: ImageNet-C's folder
    names, every one present by default)."""
    levels = _severities(severities)
    per_class = _positive_int("per_class", per_class, optional=True)  # test images per class; None: all
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    by_set: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if not run.pretraining:
            by_set.setdefault((run.dataset, run.config.img_size), []).append(run)
    rows = []
    for (dataset, _), group in by_set.items():
        models = [(run, load_trained_model(run.run_dir, device=device)[0]) for run in group]
        score = _benchmark_copies if dataset in BENCHMARK_DATASETS else _corrupted_copies
        for name, severity, family, scores in score(dataset, group[0].config, models, corruptions=corruptions,
                                                     levels=levels, per_class=per_class, batch_size=batch_size,
                                                     device=device, progress=progress):
            rows += [dict(dataset=dataset, model=run.config.model, arm=run.arm, seed=run.seed, run_dir=str(run.run_dir),
                          corruption=name, family=family, severity=severity, **s) for (run, _), s in zip(models, scores)]
    return pd.DataFrame(rows, columns=DETAIL_COLUMNS)


def _corrupted_copies(dataset: str, cfg: TrainConfig, models: list, *, corruptions: Any, levels: list[int],
                      per_class: int | None, batch_size: int, device: torch.device, progress: bool):
    """(corruption, severity, family, [scores per model]) for the clean slice and each corrupted copy."""
    names = check_corruptions(corruptions)
    clean = clean_test_set(dataset, per_class=per_class, img_size=cfg.img_size, root=cfg.data_root,
                           cache_dir=cfg.cache_dir)
    labels, masks = torch.from_numpy(clean.labels), torch.from_numpy(clean.masks)
    copies = [(CLEAN, 0)] + [(name, s) for name in names for s in levels]
    for name, severity in tqdm(copies, desc=f"robustness {dataset}", disable=not progress, leave=False):
        pixels = clean.images if name == CLEAN else corrupted_set(
            clean.images, name, severity, seed=CORRUPTION_SEED, cache_dir=sarlib_cache() / "corrupted", key=clean.key)
        images = clean.to_tensor(pixels)  # once per copy, shared by every model
        scores = [dict(n_images=len(labels), **score_images(model, images, labels, masks, batch_size=batch_size,
                                                            device=device)) for _, model in models]
        yield name, severity, CORRUPTIONS[name].family if name != CLEAN else CLEAN, scores


def _benchmark_copies(dataset: str, cfg: TrainConfig, models: list, *, corruptions: Any, levels: list[int],
                      per_class: int | None, batch_size: int, device: torch.device, progress: bool):
    """The same tuples from the released ImageNet-C and ImageNet-A folders under the data root (no object
    masks there: Jaccard stays empty). `per_class` does not apply: every image is scored."""
    root = Path(cfg.data_root) if cfg.data_root else None
    folders = {name: root / name for name in ("imagenet-c", IMAGENET_A)} if root else {}
    if not any(f.is_dir() for f in folders.values()):
        raise ValueError(f"{dataset} models are scored on the released benchmarks: put ImageNet-C under "
                         f"<data_root>/imagenet-c/<corruption>/<severity>/<wnid>/ and ImageNet-A under "
                         f"<data_root>/imagenet-a/<wnid>/ (data root now: {cfg.data_root})")
    transform = build_transforms(cfg)[1]
    clean = build_dataset(dataset, split="val", root=cfg.data_root, transform=transform)
    classes = list(clean.classes)
    copies = [(CLEAN, 0, CLEAN, clean, None)]
    if folders["imagenet-c"].is_dir():
        available = imagenet_c_available(folders["imagenet-c"])
        names = list(available) if corruptions is None else list(corruptions)
        missing = [n for n in names if n not in available]
        if missing:
            raise ParameterError(f"no ImageNet-C folder for {missing} under {folders['imagenet-c']}; present: "
                                 f"{', '.join(available)}")
        copies += [(n, s, IMAGENET_C_FAMILIES.get(n, "extra"), None, None) for n in names for s in levels
                   if s in available[n]]
    if folders[IMAGENET_A].is_dir():
        a = imagenet_a_dataset(folders[IMAGENET_A], classes, transform)
        copies.append((IMAGENET_A, 1, "natural adversarial", a, a.predict))
        if progress:
            print(f"ImageNet-A: {len(a)} images of the {a.intersection} classes it shares with {dataset}'s "
                  f"{len(classes)}", flush=True)
    for name, severity, family, images, predict in tqdm(copies, desc=f"robustness {dataset}", disable=not progress,
                                                        leave=False):
        if images is None:
            images = imagenet_c_dataset(folders["imagenet-c"], name, severity, classes, transform)
        yield name, severity, family, _score_loader([m for _, m in models], images, batch_size, device, predict)


def _score_loader(models: list, images, batch_size: int, device: torch.device, predict=None) -> list[dict[str, Any]]:
    """Each model's scores over a dataset too large to hold: per batch, weighted by its size."""
    loader = DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=min(8, os.cpu_count() or 1))
    sums = [dict(top1=0.0, entropy=0.0, regions=0.0) for _ in models]
    seen = 0
    for x, y in loader:
        seen += len(y)
        for total, model in zip(sums, models):
            got = score_images(model, x, y, None, batch_size=batch_size, device=device, predict=predict)
            for k in total:
                total[k] += got[k] * len(y)
    return [dict(n_images=seen, jaccard=float("nan"), **{k: v / seen for k, v in total.items()}) for total in sums]


def robustness_of(study: Study, *, per_class: Any = None, corruptions: Any = None, severities: Any = None,
                  progress: bool = True) -> pd.DataFrame:
    """`measure_robustness` over a study's runs, `per_class` defaulting to the profile's
    (STUDY `robustness_per_class`; None there: every test image)."""
    default = STUDIES[study.profile].get("robustness_per_class")
    return measure_robustness(study.runs, per_class=default if per_class is None else per_class,
                              corruptions=corruptions, severities=severities, progress=progress)
