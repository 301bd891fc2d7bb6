"""Figures for the notebooks: accuracy bars with seed dots, accuracy vs data, attention components."""

from __future__ import annotations

import os
from pathlib import Path
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .components import label_components
from .files import atomic_write

__all__ = ["bars_with_seeds", "metric_vs_fraction", "component_maps", "attention_components_figure", "mean_regions", "save"]


def save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save a PNG atomically (a killed notebook leaves the previous figure intact)."""
    # the temporary file's name ends in .tmp, so the format is given explicitly
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return Path(path)


def bars_with_seeds(frame: pd.DataFrame, metric: str = "top1_best", *, x: str = "dataset", hue: str = "arm",
                    ax: plt.Axes | None = None, title: str | None = None) -> plt.Axes:
    """Mean over seeds as bars (95% CI whiskers), each seed as a dot."""
    ax = ax or plt.subplots(figsize=(max(4, 1.6 * frame[x].nunique() * frame[hue].nunique()), 3.2))[1]
    sns.barplot(frame, x=x, y=metric, hue=hue, errorbar=("ci", 95), alpha=0.75, ax=ax)
    sns.stripplot(frame, x=x, y=metric, hue=hue, dodge=True, palette="dark:black", size=4, legend=False, ax=ax)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{metric} by {hue}")
    ax.legend(title=hue, fontsize=8, loc="lower right")
    return ax


def metric_vs_fraction(frame: pd.DataFrame, metric: str = "top1_best", *, ax: plt.Axes | None = None) -> plt.Axes:
    """Accuracy against the fraction of training data, one line per arm (mean and 95% band over seeds)."""
    ax = ax or plt.subplots(figsize=(4.5, 3.2))[1]
    sns.lineplot(frame, x="train_fraction", y=metric, hue="arm", marker="o", errorbar=("ci", 95), ax=ax)
    sns.scatterplot(frame, x="train_fraction", y=metric, hue="arm", legend=False, s=12, palette="dark:black", ax=ax)
    ax.set_xscale("log")
    ax.set_xticks(sorted(frame["train_fraction"].unique()))
    ax.set_xticklabels([f"{f:g}" for f in sorted(frame["train_fraction"].unique())])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # the log axis would label 0.3, 0.4, ... too
    ax.set_xlabel("fraction of the training set")
    ax.set_ylabel(metric.replace("_", " "))
    return ax


def component_maps(cls_logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, heads, P) pre-softmax logits -> (B, heads, h, w) component ids (0 = below the mean).

    Components are renumbered 1..n per map by decreasing mass, so colour 1 is always the main region.
    """
    b, heads, _ = cls_logits.shape
    x = cls_logits.float().reshape(b * heads, -1)
    centred = x - x.mean(-1, keepdim=True)
    labels = label_components((centred > 0).view(b * heads, *grid)).view(b * heads, -1)
    out = torch.zeros_like(labels)
    for i in range(b * heads):  # plotting a handful of maps: clarity over speed
        ids = labels[i].unique()
        ids = ids[ids > 0]
        mass = torch.stack([centred[i][labels[i] == c].sum() for c in ids]) if len(ids) else torch.zeros(0)
        for rank, c in enumerate(ids[mass.argsort(descending=True)], 1):
            out[i][labels[i] == c] = rank
    return out.view(b, heads, *grid)


def _show_image(ax: plt.Axes, image: torch.Tensor) -> None:
    img = image.float().cpu()
    img = (img - img.min()) / (img.max() - img.min() + 1e-8)
    ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")


def attention_components_figure(images: torch.Tensor, maps: dict[str, torch.Tensor],
                                masks: torch.Tensor | None = None, *, max_components: int = 8) -> plt.Figure:
    """One row per image: the image (object outlined), then for each model its heads' components.

    maps: model name -> (B, heads, h, w) component ids from :func:`component_maps`; the number of regions
    per head (what SAR lowers) is printed above each panel.
    """
    names = list(maps)
    heads = [maps[n].shape[1] for n in names]
    cols = 1 + sum(heads)
    rows = images.shape[0]
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.3 * rows + 0.4), squeeze=False)
    cmap = matplotlib.colormaps["tab10"].resampled(max_components)
    colours = np.vstack([[0.92, 0.92, 0.92, 1.0], cmap(np.arange(max_components))])
    for r in range(rows):
        _show_image(axes[r, 0], images[r])
        if masks is not None:
            axes[r, 0].contour(masks[r].float().cpu().numpy(), levels=[0.5], colors="white", linewidths=0.8)
        c = 1
        for name in names:
            for h in range(maps[name].shape[1]):
                ids = maps[name][r, h].clamp(max=max_components).cpu().numpy()
                axes[r, c].imshow(colours[ids], interpolation="nearest")
                n = int(maps[name][r, h].max())
                axes[r, c].set_title(f"{n} region{'s' if n != 1 else ''}", fontsize=7, pad=2)
                if r == 0:
                    axes[r, c].text(0.5, 1.32, f"{name} h{h}", transform=axes[r, c].transAxes, ha="center",
                                    fontsize=8, weight="bold")
                c += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def mean_regions(maps: torch.Tensor) -> float:
    """Average number of connected regions per (image, head) map."""
    return float(maps.flatten(2).max(-1).values.float().mean())

