"""Figures for the notebooks. Intervals are the 95% t intervals of the summary CSVs (never a bootstrap),
so a figure shows exactly the numbers the tables and the README quote."""

from __future__ import annotations

import os
from pathlib import Path
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from ..sar.components import label_components
from ..study import CALIBRATION_CRITERION, HEADLINE, t_half_width
from ..study.runs import LOCAL_ARCHITECTURES
from ..utils.files import atomic_write
from .summaries import METRICS, summarize

__all__ = ["bars", "outcome_and_mechanism", "fraction_curves", "robustness_curves", "lambda_curves", "attention_heatmaps", "speedups", "calibration",
           "component_maps", "attention_components_figure", "save"]


def save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save a PNG atomically (a killed notebook leaves the previous figure intact)."""
    # the temporary file's name ends in .tmp, so the format is given explicitly
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return Path(path)


_ARM_ORDER = ["baseline", "no-skip", "sar", "sar+no-skip", "tv", *[a for x in LOCAL_ARCHITECTURES for a in (x, f"{x}+sar")],
              "cnn", "scratch"]


def _arms(frame: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(frame["arm"]))
    return sorted(present, key=lambda a: _ARM_ORDER.index(a) if a in _ARM_ORDER else len(_ARM_ORDER))


def _label(metric: str) -> str:

    label, unit, _ = METRICS.get(metric, (metric.replace("_", " "), "", 1))
    return f"{label} ({unit})" if unit else label


def bars(rows: pd.DataFrame, summary: pd.DataFrame, metric: str = HEADLINE, *, ax: plt.Axes | None = None,
         chance: float | None = None, title: str | None = None) -> plt.Axes:
    """Mean per (dataset, arm) from the summary CSV with its 95% t interval, each seed as a dot."""
    ax = ax or plt.subplots(figsize=(4.2, 3.2))[1]
    datasets = list(dict.fromkeys(rows["dataset"]))
    arms = _arms(rows)
    width = 0.8 / len(arms)
    colours = sns.color_palette("deep", len(arms))
    for i, arm in enumerate(arms):
        for j, dataset in enumerate(datasets):
            x = j - 0.4 + width * (i + 0.5)
            row = summary[(summary["dataset"] == dataset) & (summary["arm"] == arm)]
            if not len(row) or f"{metric}_mean" not in row:
                continue
            mean, half = float(row[f"{metric}_mean"].iloc[0]), float(row[f"{metric}_ci95"].iloc[0])
            ax.bar(x, mean, width * 0.9, color=colours[i], alpha=0.8, label=arm if j == 0 else None)
            if np.isfinite(half):
                ax.errorbar(x, mean, yerr=half, color="black", capsize=3, lw=1)
            seeds = rows[(rows["dataset"] == dataset) & (rows["arm"] == arm)][metric].dropna()
            ax.scatter(np.full(len(seeds), x), seeds, s=9, color="black", zorder=3)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=0.8)
        ax.text(ax.get_xlim()[1], chance, " chance", va="center", ha="left", fontsize=7, color="grey")
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(_label(metric))
    ax.set_title(title or _label(metric), fontsize=9)
    return ax


def outcome_and_mechanism(rows: pd.DataFrame, summary: pd.DataFrame, *, chance: float | None = None,
                          metrics: tuple[str, ...] = (HEADLINE, "train_top1", "entropy", "regions", "jaccard"),
                          title: str = "") -> plt.Figure:
    """One bar panel per metric present: the outcome (accuracy) next to the mechanism (attention)."""
    present = [m for m in metrics if m in rows and rows[m].notna().any()]
    fig, axes = plt.subplots(1, len(present), figsize=(2.9 * len(present), 3.1), squeeze=False)
    for ax, metric in zip(axes[0], present):
        bars(rows, summary, metric, ax=ax, chance=chance if metric.startswith(("top1", "train_top1")) else None)
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}  (bars: mean, whiskers: 95% t interval over seeds, dots: seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def fraction_curves(rows: pd.DataFrame, summary: pd.DataFrame, delta: pd.DataFrame, *,
                    metric: str = HEADLINE, chance: float | None = None) -> plt.Figure:
    """One row of panels per dataset and budget. Left: test top-1 (solid) and train top-1 on the fixed
    slice (dashed) against the training fraction per arm (mean, 95% t band on the test curve); right: the
    paired delta per fraction."""
    budgets = list(dict.fromkeys(rows["budget"])) if "budget" in rows else [None]
    panels = [(d, b) for d in dict.fromkeys(rows["dataset"]) for b in budgets
              if b is None or ((rows["dataset"] == d) & (rows["budget"] == b)).any()]
    fig, axes = plt.subplots(len(panels), 2, figsize=(8.5, 3.2 * len(panels)), squeeze=False)

    def part(frame: pd.DataFrame, dataset: str, budget: str | None) -> pd.DataFrame:
        keep = frame["dataset"] == dataset
        return frame[keep & (frame["budget"] == budget)] if budget is not None else frame[keep]

    for (left, right), (dataset, budget) in zip(axes, panels):
        sub_rows, sub_summary = part(rows, dataset, budget), part(summary, dataset, budget)
        for arm, colour in zip(_arms(sub_rows), sns.color_palette("deep")):
            sub = sub_summary[sub_summary["arm"] == arm].sort_values("train_fraction")
            x, mean, half = sub["train_fraction"], sub[f"{metric}_mean"], sub[f"{metric}_ci95"].fillna(0)
            left.plot(x, mean, marker="o", color=colour, label=arm)
            left.fill_between(x, mean - half, mean + half, color=colour, alpha=0.2)
            if "train_top1_mean" in sub and sub["train_top1_mean"].notna().any():
                left.plot(x, sub["train_top1_mean"], ls="--", marker=".", color=colour, lw=1)
        if chance is not None:
            left.axhline(chance, color="grey", ls=":", lw=0.8)
        d = part(delta[delta["metric"] == metric], dataset, budget).sort_values("train_fraction") \
            if len(delta) else delta
        if len(d):
            right.errorbar(d["train_fraction"], d["delta"], yerr=[d["delta"] - d["ci95_low"], d["ci95_high"] - d["delta"]],
                           marker="o", capsize=3, color="black")
        right.axhline(0, color="grey", lw=0.8)
        right.set_ylabel(f"paired delta, {d['comparison'].iloc[0] if len(d) else ''} (points)", fontsize=8)
        left.set_ylabel(f"{_label(metric)}\n(dashed: train slice)", fontsize=8)
        left.set_title(dataset + (f", {budget}" if budget else ""), fontsize=9)
        left.legend(fontsize=7)
        for ax in (left, right):
            fractions = sorted(sub_rows["train_fraction"].unique())
            ax.set_xscale("log")
            ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())  # a log axis would label 0.3, 0.4, ... too
            ax.set_xlabel("fraction of the training set")
    fig.tight_layout()
    return fig


def robustness_curves(detail: pd.DataFrame) -> plt.Figure:
    """Against severity (0: clean), per arm, mean over seeds with a 95% t band: top-1 in each corruption
    family (the mean over its corruptions, per seed), then the attention Jaccard against the clean masks
    and the spatial entropy over every corruption. One row of panels per dataset."""
    datasets = list(dict.fromkeys(detail["dataset"]))
    families = [f for f in dict.fromkeys(detail["family"]) if f != "none"]
    panels = [("top1", f) for f in families] + [("jaccard", None), ("entropy", None)]
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(2.6 * len(panels), 2.6 * len(datasets)),
                             squeeze=False, sharex=True)
    for row, dataset in zip(axes, datasets):
        sub = detail[detail["dataset"] == dataset]
        for ax, (metric, fam) in zip(row, panels):
            part = sub[(sub["family"] == fam) | (sub["severity"] == 0)] if fam else sub
            for arm, colour in zip(_arms(sub), sns.color_palette("deep")):
                # per seed, the mean over the corruptions of the panel; then the mean and band over seeds
                per_seed = part[part["arm"] == arm].groupby(["severity", "seed"])[metric].mean().dropna()
                if per_seed.empty:
                    continue  # the CNN has no attention to score
                grouped = per_seed.groupby(level="severity")
                mean, half = grouped.mean(), grouped.agg(t_half_width).fillna(0)
                ax.plot(mean.index, mean, marker="o", ms=3, color=colour, label=arm)
                ax.fill_between(mean.index, mean - half, mean + half, color=colour, alpha=0.2)
            ax.set_title(f"{dataset}: {fam}" if fam else f"{dataset}: all corruptions", fontsize=8)
            ax.set_ylabel(_label(HEADLINE if metric == "top1" else metric).replace("(final epoch)", ""), fontsize=7)
            ax.set_xlabel("severity (0 = clean)", fontsize=7)
            ax.tick_params(labelsize=7)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def cost_scatter(costs: pd.DataFrame) -> plt.Figure:
    """Final test top-1 against parameters (left) and training images/s (right), one point per arm and
    dataset: what each kind of locality costs (`summaries.model_costs`)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    markers = dict(zip(dict.fromkeys(costs["dataset"]), "os^D"))
    for ax, column, label in zip(axes, ("parameters", "images_per_s"), ("parameters", "training images/s (median)")):
        for arm, colour in zip(_arms(costs), sns.color_palette("tab10", len(_arms(costs)))):
            for r in costs[costs["arm"] == arm].itertuples():
                ax.scatter(getattr(r, column), r.top1_final, color=colour, marker=markers[r.dataset],
                           label=f"{arm} ({r.dataset})")
        ax.set_xlabel(label)
        ax.set_ylabel(_label(HEADLINE))
    axes[0].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
    axes[1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def lambda_curves(rows: pd.DataFrame, *, metrics: tuple[str, ...] = (HEADLINE, "entropy", "regions", "jaccard"),
                  chance: float | None = None) -> plt.Figure:
    """Each metric against lambda0 (symmetric-log axis so lambda0 = 0 is shown): mean and 95% t interval,
    one line per dataset."""

    present = [m for m in metrics if m in rows and rows[m].notna().any()]
    summary = summarize(rows, by=("dataset", "lambda0"), metrics=present).sort_values("lambda0")
    datasets = list(dict.fromkeys(rows["dataset"]))
    fig, axes = plt.subplots(1, len(present), figsize=(3.0 * len(present), 3.0), squeeze=False)
    for ax, metric in zip(axes[0], present):
        for dataset, colour in zip(datasets, sns.color_palette("deep")):
            sub, dots = summary[summary["dataset"] == dataset], rows[rows["dataset"] == dataset]
            ax.errorbar(sub["lambda0"], sub[f"{metric}_mean"], yerr=sub[f"{metric}_ci95"].fillna(0), marker="o",
                        capsize=3, color=colour, label=dataset)
            ax.scatter(dots["lambda0"], dots[metric], s=8, color=colour, alpha=0.5, zorder=3)
        x = sorted(rows["lambda0"].unique())
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xticks(list(x), [f"{v:g}" for v in x], fontsize=7)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("lambda0 (0 = no-skip, no SAR)")
        ax.set_ylabel(_label(metric))
        if chance is not None and metric.startswith("top1"):
            ax.axhline(chance, color="grey", ls="--", lw=0.8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("dose-response: mean and 95% t interval over seeds, dots: seeds", fontsize=9)
    fig.tight_layout()
    return fig


def attention_heatmaps(images: torch.Tensor, attention: dict[str, torch.Tensor],
                       masks: torch.Tensor | None = None) -> plt.Figure:
    """DINO-style maps: per image, each model's post-softmax [CLS] attention per head over the image.

    attention: model name -> (B, heads, h, w) post-softmax maps (`sarlib.cls_attention`). Each map is
    upsampled to the image and scaled to its own maximum; the object outline is drawn in white.
    """
    names = list(attention)
    heads = [attention[n].shape[1] for n in names]
    rows, cols = images.shape[0], 1 + sum(heads)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.25 * rows + 0.4), squeeze=False)
    size = images.shape[-2:]
    for r in range(rows):
        _show_image(axes[r, 0], images[r])
        c = 1
        for name in names:
            up = torch.nn.functional.interpolate(attention[name][r : r + 1].float(), size=size, mode="nearest")[0]
            for h in range(up.shape[0]):
                _show_image(axes[r, c], images[r], alpha=0.35)
                axes[r, c].imshow((up[h] / up[h].max()).cpu().numpy(), cmap="inferno", alpha=0.75,
                                  interpolation="nearest")
                if r == 0:
                    axes[r, c].set_title(f"{name} h{h}" if up.shape[0] > 1 else name, fontsize=7)
                c += 1
        if masks is not None:
            for ax in axes[r]:
                ax.contour(masks[r].float().cpu().numpy(), levels=[0.5], colors="white", linewidths=0.7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def speedups(rows: pd.DataFrame) -> plt.Axes:
    """Loss benchmark: reference time / our time per configuration (log axis; 1 = equal)."""
    ref = rows[rows["impl"] == "reference"].copy()
    ref["shape"] = (ref["device"] + " B=" + ref["B"].astype(str) + " h=" + ref["heads"].astype(str) + " "
                    + ref["grid"].astype(str))
    ax = plt.subplots(figsize=(5, 0.3 * len(ref) + 1))[1]
    ax.barh(ref["shape"], ref["ratio_vs_ours"], color="tab:blue")
    ax.set_xlabel("speed-up: reference time / our time (forward + backward)")
    ax.set_xscale("log")
    ax.axvline(1, color="black", lw=0.8)
    return ax


def calibration(table: pd.DataFrame) -> plt.Figure:
    """Train vs test top-1 of the baseline per candidate task, with the criterion's thresholds."""
    crit = CALIBRATION_CRITERION

    fig, ax = plt.subplots(figsize=(1.6 * len(table) + 2, 3.2))
    labels = [f"{d}\n{e} epochs" for d, e in zip(table["dataset"], table["epochs"])]
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["train_top1"], 0.4, label="train slice", color="tab:grey")
    ax.bar(x + 0.2, table[HEADLINE], 0.4, label="test (final epoch)", color="tab:blue")
    ax.axhline(crit["min_train_top1"], color="tab:grey", ls="--", lw=0.8)
    ax.axhline(crit["min_test_top1"], color="tab:blue", ls="--", lw=0.8)
    for i, chosen in enumerate(table["chosen"]):
        if chosen:
            ax.annotate("chosen", (i, 101), ha="center", fontsize=8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 108)
    ax.set_ylabel("baseline top-1 (%)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


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


def _show_image(ax: plt.Axes, image: torch.Tensor, alpha: float = 1.0) -> None:
    img = image.float().cpu()
    img = (img - img.min()) / (img.max() - img.min() + 1e-8)
    ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest", alpha=alpha)


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
