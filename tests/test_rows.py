"""The output schemas (sarlib/train/records.py, sarlib/study/rows.py): what the writers produce passes,
and each class of damage a reader can meet is refused with a line naming it."""

import math

import pandas as pd
import pytest

from sarlib.report import readme
from sarlib.study.rows import COLUMNS, ENVIRONMENT_COLUMNS, check_rows
from sarlib.train.records import EPOCH_RECORD, METRICS, check_record

ROW = dict(target="table2", dataset="fashion-mnist-2k", model="vit_micro_patch4", arm="baseline", seed=0, epochs=50,
           train_fraction=1.0, budget="equal-epochs", top1_best=75.0, top1_final=74.5, train_top1=97.0, entropy=0.3,
           regions=2.0,
           jaccard=0.4, jaccard_protocol="dino", reg_term=None, lambda0=0.0, regularizer="none", no_skip=False,
           profile="cpu", git_commit="4144590", device="cpu", wall_seconds=150.0, run_dir="results/runs/x",
           images_per_s=680.0)


def _rows(n=3, **change):
    frame = pd.DataFrame([{**ROW, "seed": s} for s in range(n)])
    for key, value in change.items():
        frame.loc[1, key] = value
    return frame


def test_good_rows_pass_and_every_column_is_declared():
    assert check_rows(_rows()) is None
    assert set(ROW) | set(ENVIRONMENT_COLUMNS) == set(COLUMNS)


@pytest.mark.parametrize("change, problem", [
    (dict(top1_final=250.0), "top1_final = 250.0 in row 3"),
    (dict(top1_best=math.nan), "no top1_best in row 3"),
    (dict(jaccard=1.5), "jaccard"),
    (dict(entropy=-0.1), "entropy"),
    (dict(images_per_s=math.inf), "images_per_s"),
    (dict(git_commit="4144590.0"), "not a commit"),
    (dict(seed=0), "lists one run twice"),
    (dict(arm=None), "no arm in row 3"),
])
def test_each_class_of_damage_is_named(change, problem):
    found = check_rows(_rows(**change))
    assert found is not None and problem in found


def test_a_run_scored_under_two_protocols_is_two_rows_not_a_duplicate():
    two = pd.concat([_rows(1), _rows(1).assign(jaccard_protocol="authors")], ignore_index=True)
    assert check_rows(two) is None


def test_metrics_and_epoch_records_are_checked_by_range_and_type():
    good = dict(top1_best=75.0, top1_final=74.0, epochs=50, device="cpu", complete=True)
    assert check_record(good, METRICS) is None
    assert "outside [0, 100]" in check_record({**good, "top1_final": 250.0}, METRICS)
    assert "not a finite number" in check_record({**good, "top1_best": math.nan}, METRICS)
    assert "lacks epochs" in check_record({**good, "epochs": None}, METRICS)
    assert "keys a run never writes" in check_record({**good, "x": 1}, METRICS)
    assert "not a number" in check_record({**good, "top1_final": "75"}, METRICS)
    record = dict(epoch=0, loss=2.3, ce=2.3, reg_term=None, reg_skips=0, epoch_seconds=1.0, images_per_s=9.0, lr=1e-3)
    assert "lacks lambda" in check_record(record, EPOCH_RECORD)
    assert check_record({**record, "lambda": 0.0}, EPOCH_RECORD) is None


def test_the_readme_names_a_mix_of_environments_and_rows_of_another_lock():
    rows = _rows(4)
    assert readme._environments({"table2": rows}) == []  # one environment (none recorded): no line
    rows = rows.assign(torch=["2.14.1"] * 2 + [None] * 2, lock_hash=["abc"] * 2 + [None] * 2)
    line = readme._environments({"table2": rows})[0]
    assert "2 environments" in line and "not recorded" in line and "lock_hash abc" in line
    assert readme.foreign_lock_rows({"table2": rows}, "abc") == []
    assert readme.foreign_lock_rows({"table2": rows}, "def") == ["table2.csv: 2 rows (lock abc)"]
