"""`make verify`: a rerun compared with the committed rows, value by value and verdict by verdict."""

import numpy as np
import pandas as pd
import pytest

from sarlib.report import verify


def _rows(top1=(70.0, 72.0), machine="AMD EPYC", isa="AVX512"):
    return pd.DataFrame([dict(target="table2", dataset="d", model="m", arm=arm, seed=0, epochs=5, train_fraction=1.0,
                              budget="equal-epochs", lambda0=0.0, top1_best=t, top1_final=t, train_top1=90.0,
                              entropy=np.nan if arm == "cnn" else 0.25, regions=np.nan if arm == "cnn" else 2.0,
                              jaccard=np.nan, device="cpu", git_commit="abcdef1", run_dir=f"runs/{arm}",
                              cpu_model=machine, cpu_capability=isa, torch_threads=1, torch="2.14.1")
                         for arm, t in zip(["baseline", "cnn"], top1)])


def _delta(verdict="supports", n=5):
    return pd.DataFrame([dict(dataset="d", comparison="sar+no-skip - baseline", metric="top1_final", n_seeds=n,
                              delta=1.0, ci95_low=0.2, ci95_high=1.8, verdict=verdict)])


def test_an_identical_rerun_matches_even_where_both_are_empty():
    rows = verify.compare_rows(_rows(), _rows())
    assert rows["within"].all() and (rows["difference"] == 0).all()
    # the CNN has no attention: empty on both sides is a match, not a NaN difference
    assert rows[(rows.arm == "cnn") & (rows.metric == "entropy")]["within"].item()


def test_a_value_that_moved_past_the_written_digits_is_named():
    rows = verify.compare_rows(_rows(), _rows(top1=(70.0, 72.0003)))
    moved = rows[~rows["within"]]
    assert set(moved["metric"]) == {"top1_final", "top1_best"} and set(moved["arm"]) == {"cnn"}
    assert moved["difference"].iloc[0] == pytest.approx(0.0003)
    # the rerun's value is rounded as the CSV rounds it: 4 decimals are not a difference
    assert verify.compare_rows(_rows(), _rows(top1=(70.00004, 72.0)))["within"].all()


def test_a_rerun_row_without_a_committed_one_fails_the_comparison():
    rerun = _rows()
    rerun.loc[1, "seed"] = 7
    rows = verify.compare_rows(_rows(), rerun)
    assert (~rows[rows.seed == 7]["within"]).all() and (rows[rows.seed == 7]["note"] != "").all()


def test_verdicts_are_compared_only_on_the_same_seeds():
    same = verify.compare_verdicts(_delta("supports"), _delta("supports"))
    changed = verify.compare_verdicts(_delta("supports"), _delta("cannot resolve"))
    subset = verify.compare_verdicts(_delta("supports", n=5), _delta("cannot resolve", n=1))
    assert same["held"].tolist() == [True] and changed["held"].tolist() == [False] and subset["held"].tolist() == [None]


def test_the_machine_records_that_differ_are_named():
    assert verify.machine_differences(_rows(), _rows()) == []
    lines = verify.machine_differences(_rows(), _rows(machine="Intel Xeon", isa="AVX2"))
    assert lines == ["cpu_model: AMD EPYC -> Intel Xeon", "cpu_capability: AVX512 -> AVX2"]


def _paired_rows(shift=0.0, seeds=(0, 1, 2), isa="AVX512"):
    """Baseline and SAR rows over `seeds`; SAR's top-1 is baseline + 1 + seed/10, its seed 0 moved by `shift`."""
    rows = []
    for seed in seeds:
        for arm in ("baseline", "sar+no-skip"):
            top = 70.0 + seed + (1.0 + seed / 10 + (shift if seed == 0 else 0.0) if arm != "baseline" else 0.0)
            rows.append(dict(target="table2", dataset="d", model="m", arm=arm, seed=seed, epochs=5, train_fraction=1.0,
                             budget="equal-epochs", lambda0=0.0, top1_best=top, top1_final=top, train_top1=90.0,
                             entropy=0.25, regions=2.0, jaccard=np.nan, device="cpu", git_commit="abcdef1",
                             run_dir=f"runs/{arm}/{seed}", cpu_model="AMD EPYC", cpu_capability=isa,
                             torch_threads=1, torch="2.14.1"))
    return pd.DataFrame(rows)


def test_the_spread_is_the_largest_interval_end_shift_on_the_rerun_seeds_and_the_largest_run_difference():
    from sarlib.study import paired_delta

    committed = _paired_rows(seeds=(0, 1, 2, 3, 4))
    rerun = _paired_rows(shift=0.3, seeds=(0, 1, 2), isa="AVX2")  # a rerun of three seeds elsewhere
    spread = verify.machine_spread(committed, rerun)
    top = spread.set_index("metric").loc["top1_final"]
    old = paired_delta(committed[committed.seed < 3], "top1_final", "sar+no-skip").iloc[0]
    new = paired_delta(rerun, "top1_final", "sar+no-skip").iloc[0]
    expected = max(abs(new.ci95_low - old.ci95_low), abs(new.ci95_high - old.ci95_high))
    assert top.interval_shift == pytest.approx(expected) and top.interval_shift > 0
    assert (top.comparisons, top.seeds, top.runs) == (1, 3, 6) and top.run_difference == pytest.approx(0.3)
    assert (top.committed_machine, top.rerun_machine) == ("AVX512, 1 threads", "AVX2, 1 threads")
    assert spread.set_index("metric").loc["entropy"].interval_shift == 0  # nothing else moved
    with pytest.raises(ValueError, match="share no paired comparison"):
        verify.machine_spread(committed, rerun[rerun.arm == "baseline"])


def test_the_status_is_0_only_when_every_value_and_verdict_held(capsys):
    ok = verify.report(verify.compare_rows(_rows(), _rows()), verify.compare_verdicts(_delta(), _delta()), [], "t")
    moved = verify.report(verify.compare_rows(_rows(), _rows(top1=(71.0, 72.0))),
                          verify.compare_verdicts(_delta(), _delta()), ["cpu_capability: AVX512 -> AVX2"], "t")
    flipped = verify.report(verify.compare_rows(_rows(), _rows()),
                            verify.compare_verdicts(_delta(), _delta("cannot resolve")), [], "t")
    out = capsys.readouterr().out
    assert (ok, moved, flipped) == (0, 1, 1)
    assert "t: 12 of 12 values within" in out and "1 of 1 verdicts held" in out
    assert "the rerun ran elsewhere than the committed rows (cpu_capability: AVX512 -> AVX2)" in out


def test_missing_committed_results_and_bad_lists_are_one_line(tmp_path, capsys):
    assert verify.main(["table2", "--results", str(tmp_path), "--no-rerun"]) == 2
    assert verify.main(["table2", "--results", str(tmp_path), "--seeds", "[0", "--no-rerun"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "table2.csv does not exist" in err[0] and "--seeds must be a JSON list" in err[1]


def test_a_smoke_rerun_reproduces_its_committed_rows_to_the_last_digit(tmp_path, capsys):
    """The tolerance's measurement: the same target at smoke scale, trained twice from scratch on this
    machine, gives the same CSV values and verdicts."""
    committed = tmp_path / "committed"
    assert verify.main(["table2", "--profile", "smoke", "--results", str(tmp_path), "--scratch", str(committed),
                        "--no-rerun"]) == 2  # nothing committed yet
    assert verify._rerun("table2", committed, "smoke", '[0, 1]', None) == 0
    status = verify.main(["table2", "--profile", "smoke", "--results", str(committed), "--seeds", "[0, 1]",
                          "--scratch", str(tmp_path / "again")])
    out = capsys.readouterr().out
    assert status == 0, out[-3000:]
    assert "verdicts held" in out and "the rerun ran elsewhere" not in out


def test_seeds_for_margin_is_the_fewest_whose_interval_clears_the_margin():
    from scipy import stats

    from sarlib.study import seeds_for_margin

    delta, half, n, margin = 1.0, 0.9, 5, 0.3
    m = seeds_for_margin(delta, half, n, margin)
    sd = half * np.sqrt(n) / stats.t.ppf(0.975, n - 1)
    end = lambda k: delta - stats.t.ppf(0.975, k - 1) * sd / np.sqrt(k)  # noqa: E731
    assert m is not None and m > n and end(m) > margin >= end(m - 1)
    assert seeds_for_margin(0.2, 0.1, 5, 0.3) is None  # the delta itself is within the spread


def test_the_readme_marks_verdicts_whose_interval_end_is_within_the_machine_spread(tmp_path):
    """A spread file saying a rerun elsewhere moved fashion-mnist-2k's entropy intervals by 0.05 and its
    Jaccard intervals by 0.3: the table2-based verdicts near 0 are marked fragile, with the seeds that would
    keep a resolved one resolved (none where the delta itself is smaller than the spread)."""
    import shutil
    from pathlib import Path

    from sarlib.report import readme
    from sarlib.study import seeds_for_margin

    repo = Path(__file__).resolve().parents[1]
    results = tmp_path / "results"
    shutil.copytree(repo / "results", results, ignore=shutil.ignore_patterns("runs", "figures", "verify", "bench",
                                                                             "weights", "machine_spread.csv"))
    plain = readme.verdicts_section(results)
    spread = pd.DataFrame([dict(dataset="fashion-mnist-2k", metric=m, interval_shift=s, comparisons=1, run_difference=s,
                                runs=10, committed_machine="AVX512, 1 threads", rerun_machine="AVX2, 1 threads",
                                rerun_commit="abcdef1") for m, s in (("entropy", 0.05), ("jaccard", 0.3))])
    spread.to_csv(results / "machine_spread.csv", index=False)
    marked = readme.verdicts_section(results)
    assert "(fragile)" not in plain and "(fragile)" in marked
    delta = pd.read_csv(results / "table2_delta.csv")
    ent = delta[(delta.dataset == "fashion-mnist-2k") & (delta.metric == "entropy")
                & (delta.comparison == "sar+no-skip - baseline")].iloc[0]
    if min(abs(ent.ci95_low), abs(ent.ci95_high)) < 0.05 and ent.verdict != "cannot resolve":
        need = seeds_for_margin(ent.delta, (ent.ci95_high - ent.ci95_low) / 2, int(ent.n_seeds), 0.05)
        assert f"about {need} seeds" in marked or "no number of seeds" in marked
    assert "no number of seeds" in marked  # every Jaccard delta on it is below 0.3
    assert "(AVX512 -> AVX2)" in marked
    (results / "machine_spread.csv").write_text("dataset,metric,interval_shift,comparisons,committed_machine,"
                                                "rerun_machine\nfashion-mnist-2k,entropy,nan,1,a,b\n")
    with pytest.raises(readme.DamagedResultError, match="machine_spread.csv holds no rows or an interval_shift"):
        readme.verdicts_section(results)
