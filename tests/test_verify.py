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
