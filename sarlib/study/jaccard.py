"""The attention Jaccard of trained runs, scored after training under either protocol (spec section 5)."""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd
import torch

from ..metrics.jaccard import evaluate_jaccard
from ..train import build_segmentation_loader, load_trained_model
from .params import Study
from .plan import Run
from .rows import COLUMNS

__all__ = ["measure_jaccard", "with_jaccard"]


def with_jaccard(trained: pd.DataFrame, study: Study, *, seg_dataset: str | None = None,
                 protocols: Sequence[str] | None = None) -> pd.DataFrame:
    """The trained rows, one copy per Jaccard protocol, scored on `seg_dataset` (default: each run's own
    masks). Protocols default to DINO's, plus the authors' for the paper profile (spec section 5)."""
    protocols = list(protocols or (["dino", "authors"] if study.profile == "paper" else ["dino"]))
    data_root = study.runs[0].config.data_root if study.runs else None
    parts = []
    for protocol in protocols:
        scores = measure_jaccard(study.runs, seg_dataset=seg_dataset, data_root=data_root, protocol=protocol)
        scored = trained.drop(columns=["jaccard", "jaccard_protocol"]).merge(
            scores.rename(columns={"protocol": "jaccard_protocol"}), on="run_dir")
        parts.append(scored)
    rows = pd.concat(parts, ignore_index=True)
    return rows[[c for c in COLUMNS if c in rows] + ["seg_dataset"]]


def measure_jaccard(runs: Iterable[Run], *, seg_dataset: str | None = None, data_root: str | None = None,
                    void_as_background: bool = False, max_images: int | None = None,
                    protocol: str = "dino") -> pd.DataFrame:
    """Jaccard of each finished run's model on `seg_dataset` (default: its own masks) under `protocol`:
    "dino" (the corrected default) or "authors" (their evaluation script; spec section 5). One row per
    run: run_dir, seg_dataset, protocol, jaccard."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for run in runs:
        model, cfg = load_trained_model(run.run_dir, device=device)
        cfg = cfg.replace(seg_dataset=seg_dataset or cfg.seg_dataset, data_root=data_root or cfg.data_root,
                          seg_protocol=protocol)
        loader = build_segmentation_loader(cfg, void_as_background=void_as_background)
        if loader is None:
            raise ValueError(f"{cfg.dataset} has no object masks: pass seg_dataset='voc2012' (and its data_root)")
        score = evaluate_jaccard(model, loader, device=device, mass=cfg.seg_mass, max_images=max_images,
                                 protocol=protocol)
        rows.append(dict(run_dir=str(run.run_dir), seg_dataset=cfg.seg_dataset or cfg.dataset, protocol=protocol,
                         jaccard=score))
    return pd.DataFrame(rows)
