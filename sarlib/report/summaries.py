"""What a notebook shows after its runs: CSVs, per-arm summaries, paired deltas, and their reading.

    target = study.prepare("table2", globals())      # in a notebook
    rep = report(target.execute(), target, treated="sar+no-skip")
    rep.summary        mean, std, n and 95% t half-width per (dataset, arm) for every metric
    rep.delta          paired treated - control per metric: mean and 95% t interval over seeds
    how_to_read(rep)   a paragraph computed from those numbers: what the profile supports, contradicts
                       or cannot resolve, and the smallest effect it could have detected

Every number the notebooks print or plot comes from the CSVs written here, so the README can quote them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data import DATASETS
from ..metrics.robustness import (ALEXNET_ERRORS, BENCHMARK_CORRUPTIONS, corruption_errors, mce,
                                  relative_corruption_errors, relative_mce, unnormalized_mean_error)
from ..models.cnn import CNN_MODELS
from ..models.vit import cls_attention, forward_with_attention, patch_grid
from ..study import CALIBRATION_CRITERION, HEADLINE, paired_delta, t_half_width, write_csv
from ..study.robustness import IMAGENET_A
from ..train import build_segmentation_loader, load_trained_model
from ..train.setup import build_model

__all__ = ["METRICS", "REFERENCE_ARMS", "Report", "report", "summarize", "verdict", "how_to_read", "check_lines", "chance",
           "sweep_arm", "sweep_report", "calibration_table", "pretraining_benefit", "pretraining_text", "grid_of",
           "with_grid", "grid_contrast", "grid_text", "equivalence_verdict", "local_bias_report", "equivalence_text",
           "model_costs", "delta_verdict", "robustness_scores", "robustness_report", "robustness_text", "plus_minus",
           "interval_text", "arm_table", "delta_table", "markdown_table"]

# metric -> (label, unit, the direction the paper's claim predicts for SAR: +1 higher, -1 lower).
# Accuracy is the outcome; entropy, regions and Jaccard are the mechanism.
METRICS: dict[str, tuple[str, str, int]] = {
    "top1_best": ("test top-1 (best epoch)", "%", +1),
    "top1_final": ("test top-1 (final epoch)", "%", +1),
    "train_top1": ("train top-1 (fixed slice)", "%", +1),
    "entropy": ("spatial entropy of [CLS] maps", "nats", -1),
    "regions": ("regions per [CLS] map", "", -1),
    "jaccard": ("attention Jaccard vs object masks", "", +1),
    # the robustness target (sarlib.study.robustness): every corrupted copy of the test slice
    "top1_corrupted": ("test top-1 under corruption (mean)", "%", +1),
    "mce": ("mCE (errors over the seed's ViT baseline's)", "", -1),
    "relative_mce": ("relative mCE (drop from clean over the ViT's)", "", -1),
    "jaccard_corrupted": ("attention Jaccard under corruption (clean masks)", "", +1),
    "entropy_corrupted": ("spatial entropy under corruption", "nats", -1),
    "top1_imagenet_a": ("ImageNet-A top-1 (its classes shared with the model's)", "%", +1),
    "mce_alexnet": ("mCE normalized by AlexNet (ImageNet-1k models)", "", -1),
}


@dataclass
class Report:
    target: str
    rows: pd.DataFrame
    summary: pd.DataFrame
    delta: pd.DataFrame
    treated: str
    control: str
    by: tuple[str, ...] = ("dataset",)  # the keys the deltas are paired within


def _digits(unit: str) -> int:
    return 1 if unit == "%" else 3  # points of accuracy; 3 decimals for entropy, regions, Jaccard and mCE


def plus_minus(mean: float, half: float, unit: str) -> str:
    """`mean ± half-width` at the unit's precision; `-` for a metric the model has not (the CNN's attention)."""
    digits = _digits(unit)
    if not np.isfinite(mean):
        return "-"
    if not np.isfinite(half):
        return f"{mean:.{digits}f}"  # one seed: no interval
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def interval_text(row: Any) -> str:
    """A delta row's `+d [low, high]` at its metric's precision."""
    d = _digits(METRICS.get(row.metric, ("", "", 1))[1])
    return f"{row.delta:+.{d}f} [{row.ci95_low:+.{d}f}, {row.ci95_high:+.{d}f}]"


def _header(metric: str) -> str:
    label, unit, _ = METRICS[metric]
    return label + (f" ({unit})" if unit else "")


def arm_table(summary: pd.DataFrame, metrics: Sequence[str] | None = None,
              keys: Sequence[str] | None = None) -> pd.DataFrame:
    """The paper's layout of a summary: one row per group, one column per metric as mean ± 95% half-width,
    and the number of seeds. `keys`: the group columns shown (default: every column that is not a statistic)."""
    stats = ("_mean", "_std", "_n", "_ci95")
    keys = list(keys) if keys is not None else [c for c in summary.columns if not c.endswith(stats)]
    shown = [m for m in (metrics or METRICS) if f"{m}_mean" in summary]
    table = summary[keys].copy()
    for m in shown:
        table[_header(m)] = [plus_minus(mean, half, METRICS[m][1])
                             for mean, half in zip(summary[f"{m}_mean"], summary[f"{m}_ci95"])]
    if shown:
        table["seeds"] = summary[[f"{m}_n" for m in shown]].max(axis=1).astype(int)
    return table


def delta_table(delta: pd.DataFrame, metrics: Sequence[str] | None = None,
                keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Paired deltas in one column each (`+d [low, high]`) with their verdict: the group keys (default: the
    columns before `comparison`), comparison, metric, seeds, the interval, the verdict and any column after it
    (an equivalence margin, the grids compared)."""
    if not len(delta):
        return delta
    sub = delta[delta["metric"].isin(metrics)] if metrics is not None else delta
    keys = list(keys) if keys is not None else list(delta.columns[:list(delta.columns).index("comparison")])
    after = list(delta.columns[list(delta.columns).index("verdict") + 1:])
    table = sub[keys + ["comparison", "metric"]].copy()
    table["seeds"] = sub["n_seeds"].astype(int)
    table["delta [95% CI]"] = [interval_text(r) for r in sub.itertuples()]
    table["verdict"] = sub["verdict"]
    for c in after:
        table[c] = sub[c]
    return table.reset_index(drop=True)


def markdown_table(table: pd.DataFrame) -> list[str]:
    """A table's lines in Markdown (the README's and results/README.md's tables)."""
    def cell(value: Any) -> str:
        return "" if isinstance(value, float) and not np.isfinite(value) else str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return lines


def summarize(rows: pd.DataFrame, *, by: Sequence[str] = ("dataset", "arm"),
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per group and metric: mean, std, n and the 95% t half-width of the mean (`<metric>_ci95`)."""
    present = [m for m in (metrics or METRICS) if m in rows and rows[m].notna().any()]
    out = []
    for key, sub in rows.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for m in present:
            row.update({f"{m}_mean": sub[m].mean(), f"{m}_std": sub[m].std(ddof=1), f"{m}_n": int(sub[m].notna().sum()),
                        f"{m}_ci95": t_half_width(sub[m])})
        out.append(row)
    return pd.DataFrame(out)


def report(rows: pd.DataFrame, study: Any, *, treated: str | Sequence[str], control: str = "baseline",
           by: Sequence[str] = ("dataset",)) -> Report:
    """Write `<target>.csv`, `<target>_summary.csv` and `<target>_delta.csv` into the study's results.

    `treated`: the arm (or arms, as in the ablation) compared with `control`, paired by seed.
    """
    results, target = Path(study.results_dir), study.target
    name = target
    treated_arms = [treated] if isinstance(treated, str) else list(treated)
    metrics = [m for m in METRICS if m in rows and rows[m].notna().any()]
    summary = summarize(rows, by=(*by, "arm"), metrics=metrics)
    delta = _deltas([paired_delta(rows, m, arm, control, by=by) for arm in treated_arms for m in metrics],
                    lambda r: delta_verdict(r.comparison, r.metric, r.ci95_low, r.ci95_high))
    write_csv(rows, results / f"{name}.csv")
    write_csv(summary, results / f"{name}_summary.csv")
    write_csv(delta, results / f"{name}_delta.csv")
    return Report(target=target, rows=rows, summary=summary, delta=delta, treated=", ".join(treated_arms),
                  control=control, by=tuple(by))


def _deltas(parts: Sequence[pd.DataFrame], read: Any) -> pd.DataFrame:
    """paired_delta tables in one, with each interval's half-width and `read(row)` as its verdict."""
    parts = [p for p in parts if len(p)]
    delta = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(delta):
        delta["half_width"] = (delta["ci95_high"] - delta["ci95_low"]) / 2
        delta["verdict"] = [read(r) for r in delta.itertuples()]
    return delta


def interval_verdict(low: float, high: float, above: str, below: str) -> str:
    """`above` when the 95% interval lies above 0, `below` when below, else 'cannot resolve'."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "cannot resolve (one seed: no interval)"
    return above if low > 0 else below if high < 0 else "cannot resolve"


# arms compared with the baseline as a yardstick, not as a claim of the paper: their deltas say which is
# higher, never "supports" or "contradicts"
REFERENCE_ARMS = ("cnn",)


def reference_verdict(low: float, high: float, arm: str) -> str:
    """'<arm> higher' / '<arm> lower' than the control when the 95% interval excludes 0, else 'cannot resolve'."""
    return interval_verdict(low, high, f"{arm} higher", f"{arm} lower")


def verdict(metric: str, low: float, high: float) -> str:
    """'supports' / 'contradicts' the claimed direction when the 95% interval excludes 0, else 'cannot resolve'."""
    higher = METRICS.get(metric, ("", "", +1))[2] > 0  # the direction the claim predicts
    return interval_verdict(low, high, *(("supports", "contradicts") if higher else ("contradicts", "supports")))


def delta_verdict(comparison: str, metric: str, low: float, high: float) -> str:
    """The reading of one paired delta `treated - control`: a reference arm's is which is higher
    (reference_verdict), any other the claim's (verdict)."""
    treated = comparison.split(" - ")[0]
    return reference_verdict(low, high, treated) if treated in REFERENCE_ARMS else verdict(metric, low, high)


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:+.1f} points"
    return f"{value:+.3f}{' ' + unit if unit else ''}"


# the deltas the reading spells out: the outcome and the three mechanism metrics (the CSVs hold all)
_READ_METRICS = (HEADLINE, "entropy", "regions", "jaccard")


def how_to_read(rep: Report) -> str:
    """A markdown paragraph built from the report's numbers (nothing in it is typed by hand)."""
    lines = []
    keys = [k for k in rep.by if k != "dataset" and k in rep.rows]  # e.g. budget and fraction, or grid
    for dataset in rep.rows["dataset"].unique():
        base = rep.rows[(rep.rows.dataset == dataset) & (rep.rows.arm == rep.control)]
        for key, part in base.groupby(keys, sort=False) if keys else [((), base)]:
            if not part["train_top1"].notna().any():
                continue
            key = key if isinstance(key, tuple) else (key,)
            where = "".join(f", {k} {v:g}" if isinstance(v, float) else f", {k} {v}" for k, v in zip(keys, key))
            lines.append(
                f"- **{dataset}**{where}, {rep.control}: final test top-1 {part.top1_final.mean():.1f}% "
                f"(train slice {part.train_top1.mean():.1f}%), {part.seed.nunique()} seeds; chance is "
                f"{100 / _num_classes(dataset):.0f}%.")
        sub = rep.rows[rep.rows.dataset == dataset]
        for arm in sub.loc[sub["entropy"].isna(), "arm"].unique():
            lines.append(f"  - {arm}: no [CLS] attention, so its entropy, regions and Jaccard are empty (a "
                         "convolutional network has no attention map to score).")
        deltas = rep.delta[(rep.delta["dataset"] == dataset) & rep.delta["metric"].isin(_READ_METRICS)] \
            if len(rep.delta) else rep.delta
        for r in deltas.itertuples():
            extra = f" at fraction {r.train_fraction:g}" if hasattr(r, "train_fraction") else ""
            extra += "".join(f" ({getattr(r, k)})" for k in ("budget", "grid") if hasattr(r, k))
            lines.append(_delta_line(r, extra, reference="a reference: the locality bias a ViT lacks"))
    claims = rep.delta[~rep.delta["comparison"].str.split(" - ").str[0].isin(REFERENCE_ARMS)] if len(rep.delta) else rep.delta
    top = claims[claims.metric == HEADLINE] if len(claims) else claims
    if len(top) and top["half_width"].notna().any():
        hw = top["half_width"].max()
        lines.append(f"- Resolution: the paired 95% interval of top-1 is +-{hw:.1f} points wide, so a true "
                     f"top-1 difference smaller than about {hw:.1f} points cannot be told from 0 here.")
    return "\n".join(lines) if lines else "No paired runs to compare."


def _delta_line(r: Any, extra: str = "", *, reference: str) -> str:
    """One paired delta (a row of a `_delta` table) as a bullet: value, interval, seeds, verdict and why."""
    label, unit, direction = METRICS.get(r.metric, (r.metric, "", +1))
    ci = (f"[95% CI {_fmt(r.ci95_low, unit)}, {_fmt(r.ci95_high, unit)}]" if np.isfinite(r.ci95_low)
          else "[no interval]")
    why = reference if r.comparison.split(" - ")[0] in REFERENCE_ARMS else \
        f"the claim: {'higher' if direction > 0 else 'lower'} with SAR"
    return f"  - {label}{extra}, {r.comparison}: {_fmt(r.delta, unit)} {ci}, {r.n_seeds} seeds: **{r.verdict}** ({why})."


def _num_classes(dataset: str) -> int:

    return DATASETS[dataset].num_classes if dataset in DATASETS else 10


def chance(rows: pd.DataFrame) -> float:
    """Top-1 (%) of guessing for the rows' dataset (the largest class count if they mix datasets)."""
    return 100.0 / max(_num_classes(d) for d in rows["dataset"].unique())


def check_lines(rep: Report, metrics: Sequence[str] = (HEADLINE, "train_top1", "entropy", "regions")) -> str:
    """Rounded per-arm means for nbval to compare at smoke scale (deterministic on CPU)."""
    present = [m for m in metrics if f"{m}_mean" in rep.summary]
    # the summary's own keys (dataset, the target's table keys, arm): every column that is not a statistic
    keys = [c for c in rep.summary.columns if not c.endswith(("_mean", "_std", "_n", "_ci95"))]
    out = []
    for r in rep.summary.itertuples():
        name = " ".join(str(getattr(r, k)) for k in keys)
        vals = " ".join(f"{m}={getattr(r, m + '_mean'):.2f}" for m in present)
        out.append(f"{name}: {vals}")
    return "\n".join(out)


def sweep_arm(lambda0: float) -> str:
    """The arm name of one lambda0 in the sweep's CSVs, e.g. `lambda0=0.1`."""
    return f"lambda0={lambda0:g}"


def sweep_report(rows: pd.DataFrame, study: Any) -> Report:
    """The lambda sweep: every lambda0 > 0 compared with lambda0 = 0 (the no-skip model without SAR)."""
    rows = rows.copy()
    rows["arm"] = [sweep_arm(w) for w in rows["lambda0"]]
    treated = [a for a in dict.fromkeys(rows.sort_values("lambda0")["arm"]) if a != sweep_arm(0)]
    return report(rows, study, treated=treated, control=sweep_arm(0))


def pretraining_benefit(rows: pd.DataFrame, study: Any, *, pretrained: str = "baseline",
                        scratch: str = "scratch") -> pd.DataFrame:
    """What the finetune target's pretraining gives: the fine-tuned baseline minus the same model trained from
    scratch on the same data and budget, paired by seed, per top-1 metric; `finetune_pretraining.csv`.

    Without it a fine-tuning target cannot tell a SAR effect from a task the pretrained model cannot learn.
    """
    table = _deltas([paired_delta(rows, m, pretrained, scratch) for m in ("top1_best", "top1_final")],
                    lambda r: interval_verdict(r.ci95_low, r.ci95_high, "pretraining helps", "pretraining hurts"))
    write_csv(table, Path(study.results_dir) / "finetune_pretraining.csv")
    return table


def pretraining_text(table: pd.DataFrame) -> str:
    """The pretraining benefit in words (the yardstick next to the SAR delta of fine-tuning)."""
    lines = [f"- Pretraining, {r.comparison} ({METRICS[r.metric][0]}), {r.dataset}: {r.delta:+.1f} points "
             f"[95% CI {r.ci95_low:+.1f}, {r.ci95_high:+.1f}], {r.n_seeds} seeds: **{r.verdict}**."
             for r in table.itertuples()]
    return "\n".join(lines) or "No from-scratch runs to compare the pretrained ones with."


def calibration_table(rows: pd.DataFrame, study: Any, *, name: str = "calibration") -> pd.DataFrame:
    """Baseline fit per candidate task against CALIBRATION_CRITERION; written as `<name>.csv`.

    `converged`: where the profile also lists a candidate with twice the epochs on the same dataset, whether
    that moved the final test top-1 by less than `max_doubling_gain` points (empty where it does not, and
    for the doubled run itself, `check_only`, which exists to test the shorter one). `passes`: fits its
    training set, generalizes, and is not shown unconverged. `chosen`, per dataset family (the name
    without its size): among the candidates that pass, the widest train/test gap. Only the baseline is
    looked at, so the choice cannot favour SAR.
    """
    crit = CALIBRATION_CRITERION
    table = rows.copy()
    table["gap"] = table["train_top1"] - table["top1_final"]
    final = table.groupby(["dataset", "epochs"])["top1_final"].mean()
    doubled = [final.get((d, 2 * e)) for d, e in zip(table["dataset"], table["epochs"])]
    table["doubling_gain"] = [np.nan if twin is None else twin - own for twin, own in zip(doubled, table["top1_final"])]
    table["converged"] = [None if twin is None else bool(abs(gain) < crit["max_doubling_gain"])
                          for twin, gain in zip(doubled, table["doubling_gain"])]
    table["check_only"] = [e % 2 == 0 and (d, e // 2) in final.index and twin is None
                           for d, e, twin in zip(table["dataset"], table["epochs"], doubled)]
    table["passes"] = ((table["train_top1"] >= crit["min_train_top1"]) & (table[HEADLINE] >= crit["min_test_top1"])
                       & (table["converged"] != False) & ~table["check_only"])  # noqa: E712 (None: not checked)
    table["family"] = [family(d) for d in table["dataset"]]
    means = table.groupby(["family", "dataset", "epochs"], sort=False).agg(gap=("gap", "mean"), passes=("passes", "all"))
    chosen = {means[means["passes"]].loc[fam]["gap"].idxmax() + (fam,)
              for fam in means[means["passes"]].index.get_level_values(0).unique()}
    table["chosen"] = [(d, e, f) in chosen for d, e, f in zip(table["dataset"], table["epochs"], table["family"])]
    write_csv(table, Path(study.results_dir) / f"{name}.csv")
    return table


def equivalence_verdict(low: float, high: float, margin: float) -> str:
    """(A) - (B) read against an equivalence margin: 'better' when the 95% interval lies above 0,
    'equivalent' when it lies within +-margin, 'not worse' when it lies above -margin (non-inferior),
    'worse' when it lies below 0 and reaches past -margin, else 'cannot resolve'. 'Equivalent or better'
    holds for the first three."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "cannot resolve (one seed: no interval)"
    if low > 0:
        return "better"
    if -margin < low and high < margin:
        return "equivalent"
    if low > -margin:
        return "not worse"
    if high < 0:
        return "worse"
    return "cannot resolve"


def local_bias_report(rows: pd.DataFrame, study: Any, *, margin: float) -> tuple[Report, pd.DataFrame]:
    """The local-bias target's tables: per-arm summary, each architecture's SAR delta ((X + SAR) - X, the ViT's
    being sar+no-skip - baseline; the CNN against the ViT as a reference) in `local-bias_delta.csv`, and
    (ViT + SAR) - X against +-margin points of top-1 in `local-bias_equivalence.csv`."""
    results, name = Path(study.results_dir), study.target
    metrics = [m for m in METRICS if m in rows and rows[m].notna().any()]
    arms = list(dict.fromkeys(rows["arm"]))
    archs = [a for a in arms if f"{a}+sar" in arms]
    pairs = [("sar+no-skip", "baseline")] + [(f"{a}+sar", a) for a in archs] + [("cnn", "baseline")]
    summary = summarize(rows, by=("dataset", "arm"), metrics=metrics)
    delta = _deltas([paired_delta(rows, m, treated, control) for treated, control in pairs for m in metrics],
                    lambda r: delta_verdict(r.comparison, r.metric, r.ci95_low, r.ci95_high))
    equivalence = _deltas([paired_delta(rows, HEADLINE, "sar+no-skip", a) for a in archs],
                          lambda r: equivalence_verdict(r.ci95_low, r.ci95_high, margin))
    if len(equivalence):
        equivalence["margin"] = margin
    write_csv(rows, results / f"{name}.csv")
    write_csv(summary, results / f"{name}_summary.csv")
    write_csv(delta, results / f"{name}_delta.csv")
    write_csv(equivalence, results / f"{name}_equivalence.csv")
    return Report(target=name, rows=rows, summary=summary, delta=delta, treated="each + SAR", control="each alone"), \
        equivalence


def equivalence_text(table: pd.DataFrame) -> str:
    """The equivalence verdicts in words, with the margin they were read against."""
    lines = [f"- {r.dataset}, top-1, {r.comparison}: {r.delta:+.1f} points [95% CI {r.ci95_low:+.1f}, "
             f"{r.ci95_high:+.1f}], {r.n_seeds} seeds, margin +-{r.margin:g}: **{r.verdict}**"
             f"{' (equivalent or better holds)' if r.verdict in ('better', 'equivalent', 'not worse') else ''}."
             for r in table.itertuples()]
    return "\n".join(lines) or "No architecture to compare ViT + SAR with."


def model_costs(rows: pd.DataFrame, study: Any) -> pd.DataFrame:
    """Per (dataset, arm): the model's parameter count (built on the meta device) and its median training
    images/s over the rows: what each kind of locality costs."""
    configs = {str(r.run_dir): r.config for r in study.runs}
    out = []
    for (dataset, arm), sub in rows.groupby(["dataset", "arm"], sort=False):
        cfg = configs[sub["run_dir"].iloc[0]]
        params = sum(p.numel() for p in _meta_model(cfg).parameters())
        out.append(dict(dataset=dataset, arm=arm, model=cfg.model, parameters=params,
                        images_per_s=float(sub["images_per_s"].median()), top1_final=float(sub[HEADLINE].mean())))
    return pd.DataFrame(out)


def _meta_model(cfg: Any) -> torch.nn.Module:
    """A run's model built on the meta device: its shape and parameter count, no weights allocated."""
    with torch.device("meta"):
        return build_model(cfg, _num_classes(cfg.dataset))


def grid_of(cfg: Any) -> str:
    """The patch grid a run's model sees, e.g. "14x14" ("-" for a CNN)."""
    if cfg.model in CNN_MODELS:
        return "-"
    h, w = patch_grid(_meta_model(cfg))
    return f"{h}x{w}"


def with_grid(rows: pd.DataFrame, study: Any) -> pd.DataFrame:
    """`rows` with a `grid` column (the grid target's key), read from the study's planned runs."""
    grids = {str(r.run_dir): grid_of(r.config) for r in study.runs}
    return rows.assign(grid=[grids[d] for d in rows["run_dir"]])


def grid_contrast(rows: pd.DataFrame, study: Any, *, treated: str = "sar+no-skip", control: str = "baseline",
                  metrics: Sequence[str] = _READ_METRICS) -> pd.DataFrame:
    """Per dataset and metric: the paired effect of `treated` on each grid (at the epochs both arms ran),
    and the finer grid's effect minus the coarser's, paired by seed (a difference of differences);
    `grid_contrast.csv`. The grids' baselines at twice the epochs (the convergence check) are left out."""
    out = []
    for dataset, sub in rows.groupby("dataset", sort=False):
        paired = sub[sub.groupby("grid")["epochs"].transform(lambda e: e == e.min()).astype(bool)]
        grids = sorted(paired["grid"].unique(), key=lambda g: -np.prod([int(v) for v in g.split("x")]))
        for metric in [m for m in metrics if m in sub and sub[m].notna().any()]:
            effects = {}
            for grid in grids:
                wide = paired[paired.grid == grid].pivot_table(index="seed", columns="arm", values=metric)
                if treated in wide and control in wide:
                    effects[grid] = (wide[treated] - wide[control]).dropna()
            for grid, diff in effects.items():
                out.append(_interval(dataset, f"{treated} - {control}, {grid}", metric, diff,
                                     lambda low, high: verdict(metric, low, high)))
            if len(effects) == 2:
                fine, coarse = effects
                both = (effects[fine] - effects[coarse]).dropna()  # seeds run on both grids
                out.append(_interval(dataset, "finer - coarser", metric, both,
                                     lambda low, high: interval_verdict(low, high, f"larger on {fine}",
                                                                        f"smaller on {fine}"),
                                     grids=f"{fine} - {coarse}"))
    table = pd.DataFrame(out)
    write_csv(table, Path(study.results_dir) / "grid_contrast.csv")
    return table


def _interval(dataset: str, comparison: str, metric: str, diff: pd.Series, read: Any, **extra: Any) -> dict[str, Any]:
    """One paired-delta row (the columns of <target>_delta.csv) from per-seed differences."""
    mean, half = float(diff.mean()), t_half_width(diff)
    return dict(dataset=dataset, comparison=comparison, **extra, metric=metric, n_seeds=len(diff), delta=mean,
                ci95_low=mean - half, ci95_high=mean + half, half_width=half, verdict=read(mean - half, mean + half))


def grid_text(contrast: pd.DataFrame, check: pd.DataFrame) -> str:
    """The grid comparison in words: each grid's effect, their difference, and the new grid's convergence."""
    lines = []
    for r in contrast[contrast.metric.isin((HEADLINE, "entropy"))].itertuples():
        label, unit, _ = METRICS[r.metric]
        what = f"{r.comparison} ({r.grids})" if r.comparison == "finer - coarser" else r.comparison
        lines.append(f"- {r.dataset}, {label}, {what}: {_fmt(r.delta, unit)} [95% CI {_fmt(r.ci95_low, unit)}, "
                     f"{_fmt(r.ci95_high, unit)}], {r.n_seeds} seeds: **{r.verdict}**.")
    for r in check[~check["check_only"]].itertuples():
        state = ("converged" if r.converged else "NOT converged") if r.converged is not None and not pd.isna(r.converged) \
            else "convergence not checked"
        lines.append(f"- The {r.grid} baseline (seed {r.seed}, {r.epochs} epochs): train {r.train_top1:.1f}%, test "
                     f"{r.top1_final:.1f}%; twice the epochs moved test top-1 by {r.doubling_gain:+.1f} points "
                     f"({state}); it {'passes' if r.passes else 'fails'} the calibration criterion.")
    return "\n".join(lines) or "No runs on two grids to compare."


def family(dataset: str) -> str:
    """A dataset's name without its size: `fashion-mnist-2k` -> `fashion-mnist`, `synthetic-colour-1k` ->
    `synthetic-colour`; the calibration chooses one candidate per family."""
    head, _, tail = dataset.rpartition("-")
    return head if head and tail[:-1].isdigit() and tail.endswith("k") else dataset


@torch.no_grad()
def maps_of_runs(run_dirs: dict[str, Any], n_images: int = 6) -> dict[str, Any]:
    """The first `n_images` test images of each run's segmentation set, with each model's maps.

    Returns images, object masks (bool), and per model name: `attention` (B, heads, h, w) post-softmax
    [CLS] maps and `logits` (B, heads, P) pre-softmax ones (for component views). Every model sees the
    same images: the runs must share a dataset.
    """
    out: dict[str, Any] = {"attention": {}, "logits": {}, "grid": None}
    for name, run_dir in run_dirs.items():
        model, cfg = load_trained_model(run_dir)
        loader = build_segmentation_loader(cfg)
        if loader is None:
            raise ValueError(f"{cfg.dataset} has no object masks to show attention against")
        images, masks = next(iter(loader))
        images, masks = images[:n_images], masks[:n_images]
        if "images" in out and not torch.equal(out["images"], images):
            raise ValueError("example_maps needs runs on the same dataset (their test images differ)")
        out["images"], out["masks"] = images, masks > 0
        out["attention"][name] = cls_attention(model, images)
        _, out["logits"][name] = forward_with_attention(model, images)
        out["grid"] = patch_grid(model)
    return out


def example_maps(rep: Report, n_images: int = 6, dataset: str | None = None) -> dict[str, Any]:
    """Attention of the control and the treated arm of the first seed on the same test images of `dataset`
    (default: the report's first)."""
    rows = rep.rows[rep.rows["dataset"] == (dataset or rep.rows["dataset"].iloc[0])]
    seed = rows["seed"].min()
    first = rows[rows["seed"] == seed].drop_duplicates("arm").set_index("arm")["run_dir"]
    arms = [a for a in (rep.control, *rep.treated.split(", ")) if a in first]
    return maps_of_runs({arm: first[arm] for arm in arms}, n_images)


def calibration_text(table: pd.DataFrame) -> str:
    """Which candidates pass the criterion, and which one the cpu profile should use."""
    crit = CALIBRATION_CRITERION

    lines = [f"Criterion (baseline only): train top-1 >= {crit['min_train_top1']:.0f}% and test top-1 >= "
             f"{crit['min_test_top1']:.0f}%, and, where the profile lists the same candidate with twice the "
             f"epochs, converged (doubling moves the final test top-1 by less than {crit['max_doubling_gain']:g} "
             "point); per dataset family, among those that pass, the widest train/test gap."]
    for r in table.itertuples():
        if r.check_only:
            state = "run only to check the convergence of the half-length candidate"
        else:
            state = "passes" if r.passes else "fails"
            state += (" (convergence not checked: no doubled candidate)" if r.converged is None or pd.isna(r.converged)
                      else f" (doubling the epochs: {r.doubling_gain:+.1f} points, "
                           f"{'converged' if r.converged else 'not converged'})")
        lines.append(f"- {r.dataset}, {r.epochs} epochs, seed {r.seed}: train {r.train_top1:.1f}%, test "
                     f"{r.top1_best:.1f}% best / {r.top1_final:.1f}% final (gap {r.gap:+.1f} points): {state}"
                     f"{' -- chosen' if r.chosen else ''}.")
    for fam, sub in table.groupby("family", sort=False):
        if not sub["chosen"].any():
            lines.append(f"No {fam} candidate passes: at these budgets the baseline does not both fit and "
                         "generalize (or is not shown converged) there.")
    return "\n".join(lines)


def speed_text(rows: pd.DataFrame) -> str:
    """The loss benchmark in words: our time and the reference's, per device, at the largest shape."""
    lines = []
    for device, sub in rows.groupby("device", sort=False):
        ref = sub[sub["impl"] == "reference"]
        if not len(ref):
            continue
        top = ref.sort_values(["B", "heads"]).iloc[-1]
        lines.append(f"- {device}: at B={top.B} x {top.heads} heads of {top.grid}, the reference takes "
                     f"{top.ratio_vs_ours:.1f}x our time (ratios over the grid: {ref.ratio_vs_ours.min():.1f}x to "
                     f"{ref.ratio_vs_ours.max():.1f}x). A ratio below 1 on tiny inputs is the fixed cost of one "
                     "batched call, not a per-map cost.")
    if "meaningful" in rows and not rows["meaningful"].all():
        lines.append("- These rows come from the quick grid (smoke profile): they prove the benchmark runs, "
                     "not how fast the loss is.")
    return "\n".join(lines) or "No reference rows to compare."


def _errors(part: pd.DataFrame) -> tuple[dict[str, list[float]], float]:
    """A run's detail rows -> ({corruption: 5 errors as fractions, severity 1 first}, its clean error)."""
    clean = 1 - float(part.loc[part.severity == 0, "top1"].iloc[0]) / 100
    corrupted = _corrupted(part).sort_values("severity")
    return {c: list(1 - g["top1"].to_numpy() / 100) for c, g in corrupted.groupby("corruption", sort=False)}, clean


def _corrupted(part: pd.DataFrame) -> pd.DataFrame:
    """The rows of corrupted copies (not the clean slice, not ImageNet-A's natural images)."""
    return part[(part.severity > 0) & (part.corruption != IMAGENET_A)]


def robustness_scores(detail: pd.DataFrame, *, reference: str = "baseline") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per run: clean and mean corrupted top-1, Jaccard and entropy, mCE and relative mCE against `reference`
    (the ViT baseline of the same dataset and seed; AlexNet's normalization only means something on
    ImageNet). Also per run and corruption: CE and relative CE.

    The mCE averages every corruption scored (not ImageNet-C's 15: the small-image set differs). A relative
    CE needs a reference that degrades: a corruption under which the seed's baseline loses nothing (summed
    over severities) is left out of that seed's relative mCE, for every arm alike (`relative_n` counts the
    ones kept)."""
    runs, per_corruption = [], []
    for (dataset, seed), group in detail.groupby(["dataset", "seed"], sort=False):
        ref_rows = group[group.arm == reference]
        if not ref_rows["run_dir"].nunique():
            raise ValueError(f"no {reference} run of {dataset} seed {seed} to normalize the CE by; score it too")
        ref, ref_clean = _errors(ref_rows)
        degrades = [c for c, e in ref.items() if sum(x - ref_clean for x in e) > 0]
        for run_dir, part in group.groupby("run_dir", sort=False):
            errors, clean = _errors(part)
            ce = corruption_errors(errors, ref)
            rel = relative_corruption_errors({c: errors[c] for c in degrades}, clean, {c: ref[c] for c in degrades},
                                             ref_clean) if degrades else {}
            corrupted, first = _corrupted(part), part.iloc[0]
            natural = part.loc[part.corruption == IMAGENET_A, "top1"]
            if dataset == "imagenet" and set(BENCHMARK_CORRUPTIONS) <= set(errors):
                # an ImageNet-1k model: the published normalization, and the plain mean error beside it
                published = dict(mce_alexnet=mce(corruption_errors({c: errors[c] for c in BENCHMARK_CORRUPTIONS},
                                                                    ALEXNET_ERRORS)),
                                 mean_error=unnormalized_mean_error(errors))
            else:
                published = {}
            runs.append(dict(**published, top1_imagenet_a=float(natural.iloc[0]) if len(natural) else np.nan,
                run_dir=run_dir, top1_clean=100 * (1 - clean), top1_corrupted=corrupted["top1"].mean(),
                mce=mce(ce, list(ce)), relative_mce=relative_mce(rel, list(rel)) if rel else np.nan,
                relative_n=len(rel), jaccard_clean=float(part.loc[part.severity == 0, "jaccard"].iloc[0]),
                jaccard_corrupted=corrupted["jaccard"].mean(), entropy_corrupted=corrupted["entropy"].mean(),
                n_images=int(first.n_images)))
            per_corruption += [dict(dataset=dataset, arm=first.arm, seed=seed, run_dir=run_dir, corruption=c,
                                    family=part.loc[part.corruption == c, "family"].iloc[0], ce=ce[c],
                                    relative_ce=rel.get(c, np.nan)) for c in ce]
    return pd.DataFrame(runs), pd.DataFrame(per_corruption)


def robustness_report(trained: pd.DataFrame, detail: pd.DataFrame, study: Any, *,
                      reference: str = "baseline") -> Report:
    """The robustness target's tables: each run's row with its robustness scores (`robustness.csv`),
    per-arm summary and paired deltas against `reference` (SAR's a claim, the CNN's a yardstick), the
    detail per corruption and severity (`robustness_corruptions.csv`) and CE per corruption
    (`robustness_ce.csv`)."""
    per_run, per_corruption = robustness_scores(detail, reference=reference)
    rows = trained.merge(per_run, on="run_dir", how="inner", validate="one_to_one")
    treated = [a for a in dict.fromkeys(rows["arm"]) if a != reference]
    rep = report(rows, study, treated=treated, control=reference)
    results = Path(study.results_dir)
    write_csv(detail, results / f"{study.target}_corruptions.csv")
    write_csv(per_corruption, results / f"{study.target}_ce.csv")
    return rep


def robustness_text(rep: Report) -> str:
    """The robustness deltas in words, computed from the report."""
    lines = []
    for dataset in rep.rows["dataset"].unique():
        base = rep.rows[(rep.rows.dataset == dataset) & (rep.rows.arm == rep.control)]
        lines.append(f"- **{dataset}**, {rep.control} on {int(base.n_images.iloc[0])} test images: clean top-1 "
                     f"{base.top1_clean.mean():.1f}%, under corruption {base.top1_corrupted.mean():.1f}% (mean over "
                     f"every corruption and severity), {base.seed.nunique()} seeds; its mCE is 1 by definition.")
        deltas = rep.delta[(rep.delta.dataset == dataset) & rep.delta.metric.isin(
            ["top1_corrupted", "mce", "relative_mce", "jaccard_corrupted", "entropy_corrupted"])]
        lines += [_delta_line(r, reference="a reference") for r in deltas.itertuples()]
    return "\n".join(lines) if lines else "No paired runs to compare."
