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
