"""The target registry (sarlib/study/targets/) is the one place a target is declared: every list that
names targets is generated from it or checked against it here, and each target is tested through it."""

import re
import subprocess
from pathlib import Path

import pytest

from sarlib import study
from sarlib.report import readme
from sarlib.study.targets import TARGETS, Target

REPO = Path(__file__).resolve().parents[1]
TRAINING = [name for name, t in TARGETS.items() if t.trains]


# notebooks that are tools, not targets: they train and write nothing
TOOLS = {"explore"}


def test_every_target_has_its_notebook_and_every_notebook_a_target():
    notebooks = {p.stem for p in (REPO / "notebooks").glob("*.ipynb")} - TOOLS
    assert set(TARGETS) == notebooks, f"registry only: {set(TARGETS) - notebooks}; notebook only: {notebooks - set(TARGETS)}"


def test_the_makefile_offers_exactly_the_registry():
    out = subprocess.run(["make", "-s", "-C", str(REPO), "help"], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if "make reproduce-<target>" in line)
    listed = set(line.split("one of:")[1].split("[")[0].split())
    assert listed == set(TARGETS)


def test_generated_target_tables_are_current_and_list_every_target():
    for name, columns in readme.TARGET_TABLES.items():
        text = (REPO / name).read_text()
        start, end = readme.MARKERS["targets"]
        body = text.split(start)[1].split(end)[0]
        assert body.strip() == readme.targets_table(columns).strip(), f"{name}: run python -m sarlib.report.readme"
        assert {m for m in re.findall(r"`([a-z0-9-]+)(?:\.ipynb)?`", body) if m in TARGETS} == set(TARGETS), name


def test_names_outside_the_registry_are_registered_targets():
    # profiles may give a target its own datasets; the README generator's claims come from the targets
    for name, settings in study.STUDIES.items():
        assert set(settings.get("target_datasets", {})) <= set(TARGETS), name
    assert {target for sources in readme._CLAIMS.values() for target, _ in sources} <= set(TARGETS)
    for stem in set(readme.SCHEMAS) - {"benchmarks", "machine_spread"}:  # written by make bench / make verify
        assert any(stem == t or stem.startswith(t + "_") for t in TARGETS), stem


def test_a_module_must_register_the_target_it_is_named_after():
    with pytest.raises(ValueError, match="unknown arms"):
        Target(name="x", order=99, claim="c", compares="r", outputs="o", arms=["baseline", "nonsense"])


@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("profile", list(study.STUDIES))
def test_each_target_plans_its_declared_arms(name, profile):
    target = TARGETS[name]
    runs = study.plan(name, profile=profile, runs_root="/tmp/r")
    compared = [r for r in runs if not r.pretraining]
    # one directory is one run: a run listed twice (sample efficiency's full set, the reference of both
    # budgets) has the same config each time
    configs = {}
    for r in runs:
        assert configs.setdefault(r.run_dir, r.config) == r.config, r.run_dir
    assert compared and len(configs) == len(runs) - sum(r.budget == "equal-steps" and r.config.train_fraction == 1
                                                        for r in runs)
    if name != "lambda-sweep":  # the sweep's arms depend on lambda0 (0: no-skip)
        for r in compared:
            assert r.arm in target.arms_for(profile, r.dataset), (name, profile, r.arm, r.dataset)


@pytest.mark.parametrize("name", [n for n, t in TARGETS.items() if not t.trains])
def test_a_benchmark_target_plans_no_runs(name):
    with pytest.raises(ValueError, match="trains no models"):
        study.plan(name, profile="smoke")


def test_a_planned_run_says_which_layer_set_each_field():
    run = next(r for r in study.plan("table2", profile="cpu", datasets=["fashion-mnist-2k"], seeds=[3],
                                     overrides={"lr": 0.004}) if r.arm == "sar+no-skip")
    src = run.sources
    assert src["model"] == "profile cpu" and src["epochs"] == "profile cpu, dataset fashion-mnist"
    assert src["regularizer"] == src["no_skip"] == "arm sar+no-skip" and src["lr"] == "study base"
    assert src["seed"] == src["dataset"] == "run" and src["weight_decay"] == "default"
    assert set(src) >= {f for f in run.config.to_dict()}


# --- redrawing a target from its committed rows (the `from_rows` parameter, make's FROM_ROWS)

# what a notebook calls when it reads run folders, not rows: a target that calls one cannot be redrawn from rows
_READS_RUNS = ("maps_of_runs", "example_maps", "save_run_weights", "with_jaccard", "robustness_of", "calibration_table(first")


@pytest.mark.parametrize("name", TRAINING)
def test_a_target_redraws_from_rows_only_if_its_notebook_reads_nothing_else(name):
    source = Path(REPO / TARGETS[name].notebook).read_text()
    reads = [call for call in _READS_RUNS if call in source]
    assert TARGETS[name].redraws_from_rows == (not reads), (name, reads)
    assert "from_rows: bool = False" in source  # every target notebook offers it (refused in one line where unfit)


def _rows_for(study_, shuffle: bool = True):
    """A valid rows CSV for the study's planned runs, as another results folder wrote it (other prefix)."""
    import pandas as pd

    own = [r for r in study_.runs if not r.pretraining]
    frame = pd.DataFrame([dict(target=study_.target, dataset=r.dataset, model=r.config.model, arm=r.arm, seed=r.seed,
                               epochs=r.config.epochs, train_fraction=r.config.train_fraction, budget=r.budget,
                               top1_best=50.0 + i / 10, top1_final=40.0 + i / 10, device="cpu", git_commit="abc1234",
                               run_dir=f"../elsewhere/{Path(r.run_dir).relative_to(study_.results_dir)}",
                               cpu_model="AMD EPYC")
                          for i, r in enumerate(own)])
    return frame.sample(frac=1, random_state=0) if shuffle else frame


@pytest.mark.parametrize("name", ["ablation", "sample-efficiency"])
def test_from_rows_reads_the_planned_runs_rows_in_plan_order_and_trains_nothing(name, tmp_path, monkeypatch, capsys):
    from sarlib.study import params

    monkeypatch.setattr(params, "execute", lambda *a, **k: pytest.fail("from_rows must not train"))
    target = study.prepare(name, dict(profile="smoke", results_dir=str(tmp_path / "res"), from_rows=True))
    frame = _rows_for(target)
    frame.to_csv(tmp_path / "res" / f"{name}.csv", index=False)
    rows = target.execute()
    own = [r for r in target.runs if not r.pretraining]
    assert list(rows["run_dir"]) == [str(r.run_dir) for r in own]  # this folder's runs, in the plan's order
    assert list(zip(rows.arm, rows.seed, rows.budget)) == [(r.arm, r.seed, r.budget) for r in own]
    assert sorted(rows["top1_final"]) == sorted(frame["top1_final"])
    assert "nothing trained" in capsys.readouterr().out


def test_from_rows_refuses_missing_or_damaged_rows_in_one_line(tmp_path):
    from sarlib.study.params import ParameterError

    target = study.prepare("ablation", dict(profile="smoke", results_dir=str(tmp_path), from_rows=True))
    with pytest.raises(ParameterError, match=r"ablation.csv does not exist; restore it"):
        target.execute()
    frame = _rows_for(target, shuffle=False)
    frame.iloc[1:].to_csv(tmp_path / "ablation.csv", index=False)
    with pytest.raises(ParameterError, match=r"has no row for 1 of the \d+ planned runs .*run without from_rows"):
        target.execute()
    frame.assign(top1_final=[float("nan")] + [40.0] * (len(frame) - 1)).to_csv(tmp_path / "ablation.csv", index=False)
    with pytest.raises(ParameterError, match=r"has no top1_final in row 2; restore it"):
        target.execute()
    frame.assign(top1_final=250.0).to_csv(tmp_path / "ablation.csv", index=False)
    with pytest.raises(ParameterError, match=r"top1_final = 250.0 in row 2, not a number in \[0, 100\]"):
        target.execute()


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_from_rows_is_a_bool_and_refused_where_the_notebook_reads_runs(value, tmp_path):
    from sarlib.study.params import ParameterError

    with pytest.raises(ParameterError, match="from_rows must be True or False"):
        study.prepare("ablation", dict(profile="smoke", results_dir=str(tmp_path), from_rows=value))
    with pytest.raises(ParameterError, match="table2's notebook also reads its run folders"):
        study.prepare("table2", dict(profile="smoke", results_dir=str(tmp_path), from_rows=True))
    assert not any(tmp_path.iterdir())  # refused before the folder was claimed


def test_a_notebook_redrawn_from_its_rows_shows_no_duration_and_is_not_summed(tmp_path):
    import json

    (tmp_path / "notebooks").mkdir()
    for name, duration, params in [("table2", 120.0, {"profile": "cpu"}), ("ablation", 9.0, {"from_rows": True})]:
        meta = {"metadata": {"papermill": {"duration": duration, "parameters": params}}, "cells": []}
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text(json.dumps(meta))
    lines = readme._runtimes(tmp_path, {})
    assert any(line.startswith("| `table2` | 2.0 min |") for line in lines)
    assert any(line.startswith("| `ablation` | redrawn from its rows |") for line in lines)
    assert "Sum of the durations: 2.0 min." in lines[-1]


def test_from_rows_reads_a_relative_results_folder_as_make_runs_it(tmp_path, monkeypatch):
    """make runs the notebook in notebooks/ with results_dir ../results and messages relative to the user's
    folder: the rows are read from the kernel's folder, the messages name the user's path."""
    from sarlib.study.params import ParameterError

    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.setenv("SARLIB_USER_CWD", str(tmp_path))
    target = study.prepare("ablation", dict(profile="smoke", results_dir="../res", from_rows=True))
    with pytest.raises(ParameterError, match=r"from_rows: res/ablation.csv does not exist; restore it \(git checkout "
                                             r"-- res/ablation.csv\)"):
        target.execute()
    _rows_for(target).to_csv(tmp_path / "res" / "ablation.csv", index=False)
    assert len(target.execute()) == len([r for r in target.runs if not r.pretraining])


def test_the_runtime_table_counts_a_run_shared_by_targets_once(tmp_path):
    import pandas as pd

    (tmp_path / "notebooks").mkdir()
    for name in ("table2", "segmentation"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text('{"metadata": {"papermill": {"duration": 60}}, "cells": []}')
    shared = pd.DataFrame(dict(run_dir=["a", "b"], wall_seconds=[1800.0, 1800.0], images_per_s=[400.0, 400.0]))
    lines = readme._runtimes(tmp_path, {"table2": shared, "segmentation": shared})
    assert "Training every run above once took 1.0 run-hours (about 0.5 h two at a time" in lines[-1]
