from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sarlib.report import summaries as reports
from sarlib.study import paired_delta


def _rows(effect: float, noise: float = 0.5, seeds: int = 6):
    rng = np.random.default_rng(1)
    out = []
    for seed in range(seeds):
        base = 80 + rng.normal()
        out.append(dict(dataset="synthetic-colour-1k", arm="baseline", seed=seed, top1_best=base, top1_final=base,
                        train_top1=95.0, entropy=0.3, regions=2.0, jaccard=0.2, lambda0=0.0, epochs=60))
        final = base + effect + noise * rng.normal()
        # the best epoch sits 3 points above the final one: a reading that used it would show +8 for +5
        out.append(dict(dataset="synthetic-colour-1k", arm="sar+no-skip", seed=seed,
                        top1_best=final + 3.0, top1_final=final, train_top1=95.0,
                        entropy=0.3 - 0.1 + 0.01 * rng.normal(), regions=2.0, jaccard=0.2, lambda0=0.01, epochs=60))
    return pd.DataFrame(out)


def test_summary_half_width_is_the_t_interval():
    rows = _rows(0.0)
    s = reports.summarize(rows).set_index("arm")
    x = rows[rows.arm == "baseline"]["top1_best"]
    assert s.loc["baseline", "top1_best_ci95"] == pytest.approx(stats.t.ppf(0.975, 5) * x.std(ddof=1) / np.sqrt(6))
    assert s.loc["baseline", "top1_best_n"] == 6


def test_report_writes_csvs_and_verdicts_follow_the_claimed_direction(tmp_path):
    study = SimpleNamespace(target="table2", results_dir=tmp_path)
    rep = reports.report(_rows(effect=5.0), study, treated="sar+no-skip")
    for name in ("table2.csv", "table2_summary.csv", "table2_delta.csv"):
        assert (tmp_path / name).is_file()
    d = rep.delta.set_index("metric")
    assert d.loc["top1_final", "verdict"] == "supports"  # +5 points, tight interval
    assert d.loc["entropy", "verdict"] == "supports"  # lower entropy is the claimed direction
    assert d.loc["regions", "verdict"].startswith("cannot resolve")  # identical values: no interval
    worse = reports.report(_rows(effect=-5.0), study, treated="sar+no-skip")
    assert worse.delta.set_index("metric").loc["top1_final", "verdict"] == "contradicts"
    text = reports.how_to_read(rep)
    assert "**supports**" in text and "chance is 10%" in text and "Resolution" in text
    assert f"{d.loc['top1_final', 'delta']:+.1f} points" in text  # numbers come from the delta table
    # the verdicts read the final epoch, never the test-selected best one
    assert f"{d.loc['top1_best', 'delta']:+.1f} points" not in text and "final test top-1" in text


def test_check_lines_are_rounded_per_arm():
    rep = reports.report(_rows(1.0), SimpleNamespace(target="t", results_dir="/tmp/sar-test-reports"),
                         treated="sar+no-skip")
    lines = reports.check_lines(rep).splitlines()
    assert len(lines) == 2 and lines[0].startswith("synthetic-colour-1k baseline: top1_final=")


def test_sweep_compares_every_lambda_with_zero(tmp_path):
    rows = _rows(0.0)
    rows["lambda0"] = [0.0 if a == "baseline" else 0.1 for a in rows["arm"]]
    rep = reports.sweep_report(rows, SimpleNamespace(target="lambda-sweep", results_dir=tmp_path))
    assert set(rep.delta["comparison"]) == {"lambda0=0.1 - lambda0=0"}


def test_calibration_picks_the_widest_gap_among_passing_candidates(tmp_path):
    rows = pd.DataFrame([
        dict(dataset="shapes", epochs=60, seed=0, train_top1=35.0, top1_best=30.0, top1_final=30.0),
        dict(dataset="colour-1k", epochs=60, seed=0, train_top1=95.0, top1_best=85.0, top1_final=85.0),
        dict(dataset="colour-2k", epochs=30, seed=0, train_top1=92.0, top1_best=88.0, top1_final=88.0),
    ])
    table = reports.calibration_table(rows, SimpleNamespace(results_dir=tmp_path))
    assert table["passes"].tolist() == [False, True, True]
    assert table["chosen"].tolist() == [False, True, False]
    assert "colour-1k, 60 epochs, seed 0" in reports.calibration_text(table)


def test_calibration_requires_convergence_where_a_doubled_candidate_is_listed(tmp_path):
    def row(dataset, epochs, train, final):
        return dict(dataset=dataset, epochs=epochs, seed=0, train_top1=train, top1_best=final, top1_final=final)

    rows = pd.DataFrame([
        row("fashion-mnist-1k", 25, 91.0, 66.0), row("fashion-mnist-1k", 50, 97.0, 69.5),
        row("fashion-mnist-1k", 100, 99.9, 70.2), row("fashion-mnist-2k", 25, 93.0, 71.0),
        row("fashion-mnist-2k", 50, 99.0, 74.0), row("synthetic-colour-1k", 40, 92.0, 85.0),
    ])
    table = reports.calibration_table(rows, SimpleNamespace(results_dir=tmp_path)).set_index(["dataset", "epochs"])
    # 25 -> 50 epochs gains 3.5 points (not converged); 50 -> 100 gains 0.7 (converged)
    assert table.loc[("fashion-mnist-1k", 25), "converged"] is False
    assert table.loc[("fashion-mnist-1k", 50), "converged"] is True
    assert table.loc[("fashion-mnist-1k", 100), "check_only"] and not table.loc[("fashion-mnist-1k", 100), "passes"]
    assert not table.loc[("fashion-mnist-2k", 25), "passes"]  # +3.0 points when doubled
    # one choice per family: the converged Fashion-MNIST candidate, and the embedded one (not checked)
    assert table.index[table["chosen"]].tolist() == [("fashion-mnist-1k", 50), ("synthetic-colour-1k", 40)]
    text = reports.calibration_text(table.reset_index())
    assert "+0.7 points, converged) -- chosen" in text and "convergence not checked" in text


def test_sample_efficiency_is_read_per_budget_with_the_baselines_fit():
    from sarlib.report.readme import _fraction_lines

    rows = []
    for budget, gain in (("equal-epochs", 3.0), ("equal-steps", 0.0)):
        for seed in range(4):
            for arm, shift in (("baseline", 0.0), ("sar+no-skip", gain)):
                rows.append(dict(dataset="fashion-mnist-2k", budget=budget, train_fraction=0.2, arm=arm, seed=seed,
                                 top1_final=70 + shift + 0.1 * seed * (arm == "baseline"), train_top1=95.0 + seed))
    rows = pd.DataFrame(rows)
    delta = paired_delta(rows, "top1_final", "sar+no-skip", by=("dataset", "budget", "train_fraction"))
    delta["verdict"] = ["supports" if low > 0 else "cannot resolve" for low in delta["ci95_low"]]
    lines = _fraction_lines(delta, reports.summarize(rows, by=("dataset", "budget", "train_fraction", "arm")))
    assert len(lines) == 2 and "at equal-epochs" in lines[0] and "at equal-steps" in lines[1]
    assert "(supports, n=4, baseline train 96%)" in lines[0] and "(cannot resolve, n=4" in lines[1]


def test_arm_table_is_the_papers_layout_mean_plus_minus_half_width(tmp_path):
    rows = _rows(effect=5.0)
    rows.loc[rows.arm == "baseline", "jaccard"] = np.nan  # a metric one arm has not (the CNN's attention)
    rep = reports.report(rows, SimpleNamespace(target="table2", results_dir=tmp_path), treated="sar+no-skip")
    table = reports.arm_table(rep.summary).set_index("arm")
    s = rep.summary.set_index("arm")
    top1 = table.loc["sar+no-skip", "test top-1 (final epoch) (%)"]
    assert top1 == f"{s.loc['sar+no-skip', 'top1_final_mean']:.1f} ± {s.loc['sar+no-skip', 'top1_final_ci95']:.1f}"
    assert table.loc["baseline", "regions per [CLS] map"] == "2.000 ± 0.000"
    assert table.loc["baseline", "attention Jaccard vs object masks"] == "-"
    assert list(table["seeds"]) == [6, 6] and list(table.columns[:1]) == ["dataset"]
    assert not [c for c in table.columns if c.endswith(("_mean", "_std", "_n", "_ci95"))]  # compact: no raw stats
    one = reports.arm_table(rep.summary[rep.summary.arm == "baseline"].assign(top1_final_ci95=np.nan), ["top1_final"])
    assert one.iloc[0]["test top-1 (final epoch) (%)"] == f"{s.loc['baseline', 'top1_final_mean']:.1f}"  # no interval


def test_delta_table_keeps_the_keys_the_interval_the_verdict_and_trailing_columns(tmp_path):
    rep = reports.report(_rows(effect=5.0), SimpleNamespace(target="table2", results_dir=tmp_path), treated="sar+no-skip")
    table = reports.delta_table(rep.delta.assign(margin=1.0), ["top1_final", "entropy"])
    assert list(table.columns) == ["dataset", "comparison", "metric", "seeds", "delta [95% CI]", "verdict", "margin"]
    r = rep.delta.set_index("metric").loc["top1_final"]
    row = table.set_index("metric").loc["top1_final"]
    assert row["delta [95% CI]"] == f"{r.delta:+.1f} [{r.ci95_low:+.1f}, {r.ci95_high:+.1f}]"
    assert row["verdict"] == r.verdict and row["seeds"] == 6
    assert table.set_index("metric").loc["entropy", "delta [95% CI]"].count(".") == 3  # 3 decimals, 3 numbers
    lines = reports.markdown_table(table)
    assert lines[0].startswith("| dataset | comparison |") and lines[1] == "|---|---|---|---|---|---|---|"
    assert len(lines) == 2 + len(table)
