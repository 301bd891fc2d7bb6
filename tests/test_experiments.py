
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sarlib import study


def test_plans_cover_every_target_and_profile():
    for target in [name for name, t in study.TARGETS.items() if t.trains]:
        for profile in study.STUDIES:
            runs = study.plan(target, profile=profile, runs_root="/tmp/r")
            assert runs, (target, profile)
            configs = {}
            for r in runs:  # a directory listed twice (sample efficiency's shared full set) is one run
                assert configs.setdefault(r.run_dir, r.config) == r.config, f"two runs share {r.run_dir}"
            assert all(r.config.profile == profile for r in runs)


def test_table2_runs_are_shared_with_segmentation_and_attention_maps():
    t2 = {r.run_dir for r in study.plan("table2", profile="cpu")}
    assert {r.run_dir for r in study.plan("segmentation", profile="cpu")} <= t2
    assert {r.run_dir for r in study.plan("attention-maps", profile="cpu")} <= t2


def test_arms_set_the_regularizer_and_block():
    runs = {r.arm: r.config for r in study.plan("ablation", profile="cpu", seeds=[0])}
    assert (runs["baseline"].regularizer, runs["baseline"].no_skip) == ("none", False)
    assert (runs["no-skip"].regularizer, runs["no-skip"].no_skip) == ("none", True)
    assert (runs["sar+no-skip"].regularizer, runs["sar+no-skip"].no_skip) == ("sar", True)
    assert runs["tv"].regularizer == "tv"


def test_equal_steps_scales_every_epoch_counted_schedule_and_shares_only_the_full_set_run(tmp_path):
    runs = study.plan("sample-efficiency", profile="cpu", runs_root=tmp_path)
    by = {(r.budget, r.config.train_fraction, r.arm, r.seed): r for r in runs}
    full = by[("equal-epochs", 1.0, "baseline", 0)].config
    for fraction in (0.1, 0.2, 0.5):
        epochs, steps = by[("equal-epochs", fraction, "baseline", 0)], by[("equal-steps", fraction, "baseline", 0)]
        assert epochs.config.epochs == full.epochs and epochs.config.warmup_epochs == full.warmup_epochs
        for name in ("epochs", "warmup_epochs", "lambda_warmup", "eval_every"):
            assert getattr(steps.config, name) == round(getattr(full, name) / fraction), name
        # as many images seen as the full set, in a directory of its own
        assert steps.config.epochs * fraction == full.epochs
        assert steps.run_dir != epochs.run_dir and "equal-steps" in steps.run_dir.parts
    # the full-set run is the reference of both budgets: one directory, listed under each
    assert by[("equal-steps", 1.0, "baseline", 0)].run_dir == by[("equal-epochs", 1.0, "baseline", 0)].run_dir
    # the cheap equal-epoch slices get the profile's extra seeds; the caller's seeds replace every count
    seeds = study.STUDIES["cpu"]["sample_seeds"]["equal-epochs"]
    for (budget, fraction), count in [(("equal-epochs", f), n) for f, n in seeds.items()] + [(("equal-steps", 0.1), 5)]:
        assert sorted({k[3] for k in by if k[:2] == (budget, fraction)}) == list(range(count))
    given = study.plan("sample-efficiency", profile="cpu", seeds=[3], runs_root=tmp_path)
    assert {r.seed for r in given} == {3}


def test_sample_efficiency_uses_fractions_and_finetune_starts_from_pretrained_baselines():
    fr = study.plan("sample-efficiency", profile="cpu", seeds=[0], fractions=[0.25, 1.0])
    assert sorted({r.config.train_fraction for r in fr}) == [0.25, 1.0]
    ft = study.plan("finetune", profile="cpu", seeds=[0, 1])
    pre = [r for r in ft if r.pretraining]
    tuned = [r for r in ft if not r.pretraining]
    assert [r.arm for r in pre] == ["baseline"] * 2
    assert {r.dataset for r in pre} == {study.STUDIES["cpu"]["finetune_pretrain"]}
    assert {r.config.epochs for r in pre} == {study.STUDIES["cpu"]["finetune_pretrain_epochs"]}
    assert {r.arm for r in tuned} == {"baseline", "sar", "scratch"}
    for r in tuned:
        source = next(p for p in pre if p.seed == r.seed)
        # "scratch" is the yardstick: the same data and budget from random weights
        assert r.config.init_checkpoint == (None if r.arm == "scratch" else str(source.run_dir / "checkpoint.pth"))
        assert r.dataset == study.STUDIES["cpu"]["finetune_dataset"] and r.config.epochs == study.STUDIES["cpu"]["finetune_epochs"]
    given = study.plan("finetune", profile="cpu", seeds=[0], init_checkpoint="/ckpt/deit_s.pth")
    assert all(r.config.init_checkpoint == ("/ckpt/deit_s.pth" if r.arm != "scratch" else None) for r in given)


def test_arms_and_recipes_are_chosen_per_dataset():
    runs = study.plan("table2", profile="cpu", seeds=[0])
    arms = {d: sorted(r.arm for r in runs if r.dataset == d) for d in study.STUDIES["cpu"]["datasets"]}
    assert arms == {"synthetic-colour-1k": ["baseline", "sar+no-skip"],
                    "fashion-mnist-2k": ["baseline", "cnn", "sar+no-skip"]}
    cfg = {r.dataset: r.config for r in runs if r.arm == "baseline"}
    # the real data's recipe (DATASET_CONFIG of the cpu profile), the embedded set keeps the profile's
    assert (cfg["fashion-mnist-2k"].img_size, cfg["fashion-mnist-2k"].augment, cfg["fashion-mnist-2k"].batch_size) == (28, "none", 32)
    assert (cfg["synthetic-colour-1k"].img_size, cfg["synthetic-colour-1k"].augment) == (32, "shift")
    assert study.plan("table2", profile="cpu", seeds=[0], epochs=3)[-1].config.epochs == 3  # a notebook's epochs win
    assert {r.arm for r in study.plan("table2", profile="cpu", seeds=[0], arms=["cnn"])} == {"cnn"}
    assert all(r.config.model == "cnn_micro" for r in runs if r.arm == "cnn")


def test_dataset_configs_reach_the_command_line_and_lose_to_its_flags():
    from sarlib.train import load_profile
    from sarlib.train.cli import config_from_args

    assert load_profile("cpu", dataset="fashion-mnist-0to4-5k").img_size == 28  # the family's prefix
    assert load_profile("cpu", dataset="synthetic-colour-1k").img_size == 32
    assert load_profile("cpu", dataset="fashion-mnist-1k", img_size=32).img_size == 32
    cfg, _ = config_from_args(["--dataset", "fashion-mnist-1k", "--epochs", "7"])
    assert (cfg.img_size, cfg.epochs, cfg.batch_size) == (28, 7, 32)


def test_lambda_sweep_plans_lambda0_values_and_shares_runs_with_other_targets():
    runs = study.plan("lambda-sweep", profile="cpu", lambdas=[0, 0.01, 0.3], seeds=[0, 1], datasets=["synthetic-colour-1k"])
    by_lambda = {}
    for r in runs:
        lam = r.config.lambda0 if r.config.regularizer == "sar" else 0.0
        by_lambda.setdefault(lam, []).append(r)
        assert r.config.no_skip and r.arm == ("no-skip" if lam == 0 else "sar+no-skip")
    assert sorted(by_lambda) == [0.0, 0.01, 0.3] and all(len(v) == 2 for v in by_lambda.values())
    # lambda0 = 0.01 is the paper's value, i.e. table2's SAR arm; 0 is the ablation's no-skip arm
    assert {r.run_dir for r in by_lambda[0.01]} <= {r.run_dir for r in study.plan("table2", profile="cpu")}
    ablation = {r.run_dir for r in study.plan("ablation", profile="cpu")}
    assert {r.run_dir for r in by_lambda[0.0] if r.dataset == "synthetic-colour-1k"} <= ablation
    assert len({r.run_dir for r in runs}) == len(runs)
    default = study.plan("lambda-sweep", profile="cpu")
    cpu = study.STUDIES["cpu"]
    assert len(default) == len(cpu["lambdas"]) * len(cpu["sweep_seeds"]) * len(cpu["target_datasets"]["lambda-sweep"])
    with pytest.raises(ValueError, match="lambdas must be >= 0"):
        study.plan("lambda-sweep", profile="cpu", lambdas=[-0.1])


def test_parallel_jobs_give_the_same_rows_as_one_after_the_other(tmp_path, monkeypatch):
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    kw = dict(profile="smoke", seeds=[0], overrides=dict(epochs=1, threads=1))
    serial = study.execute(study.plan("table2", runs_root=tmp_path / "a", **kw), target="table2", progress=False)
    parallel = study.execute(study.plan("table2", runs_root=tmp_path / "b", **kw), target="table2", jobs=2,
                          progress=False)
    metrics = ["top1_best", "top1_final", "train_top1", "entropy", "regions", "jaccard", "reg_term"]
    pd.testing.assert_frame_equal(serial[metrics], parallel[metrics])
    assert parallel["arm"].tolist() == serial["arm"].tolist()


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown target"):
        study.plan("table3")
    with pytest.raises(ValueError, match="unknown profile"):
        study.plan("table2", profile="gpu")
    with pytest.raises(ValueError, match="unknown arms"):
        study.plan("table2", arms=["sar-lite"])


def test_execute_skips_finished_runs_and_writes_documented_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    runs = study.plan("table2", profile="smoke", seeds=[0], runs_root=tmp_path / "runs")
    first = study.execute(runs, target="table2", progress=False)
    assert list(first.columns) == study.COLUMNS and len(first) == 2
    assert first["top1_best"].between(0, 100).all() and (first["top1_best"] >= first["top1_final"]).all()
    assert first["jaccard"].between(0, 1).all() and (first["images_per_s"] > 0).all()
    assert first[["train_top1", "entropy", "regions"]].notna().all().all()  # every arm, baseline included
    assert first.set_index("arm")["reg_term"].isna().tolist() == [True, False]
    assert set(first["lambda0"]) == {0.0, 0.01} and set(first["no_skip"]) == {False, True}
    stamps = {r.run_dir: (r.run_dir / "checkpoint.pth").stat().st_mtime_ns for r in runs}
    again = study.execute(runs, target="table2", progress=False)
    assert {r.run_dir: (r.run_dir / "checkpoint.pth").stat().st_mtime_ns for r in runs} == stamps
    pd.testing.assert_frame_equal(first.drop(columns="wall_seconds"), again.drop(columns="wall_seconds"))
    out = tmp_path / "table2.csv"
    study.write_csv(again, out)
    assert list(pd.read_csv(out).columns) == study.COLUMNS


def test_paired_delta_matches_a_t_interval():
    rows = pd.DataFrame({
        "dataset": ["d"] * 6, "seed": [0, 1, 2] * 2, "arm": ["baseline"] * 3 + ["sar"] * 3,
        "top1_best": [50.0, 52.0, 51.0, 53.0, 53.5, 54.0],
    })
    d = study.paired_delta(rows, "top1_best", "sar").iloc[0]
    diffs = np.array([3.0, 1.5, 3.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert d["delta"] == pytest.approx(diffs.mean())
    assert (d["ci95_low"], d["ci95_high"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert d["n_seeds"] == 3


def test_the_grid_target_pairs_two_grids_on_the_same_seeds_and_checks_the_new_grids_convergence(tmp_path):
    from sarlib.report.summaries import grid_of

    runs = study.plan("grid", profile="cpu", runs_root=tmp_path)
    prof = study.STUDIES["cpu"]
    table2 = {r.run_dir for r in study.plan("table2", profile="cpu", runs_root=tmp_path)}
    by_grid = {}
    for r in runs:
        by_grid.setdefault(grid_of(r.config), []).append(r)
    assert sorted(by_grid) == ["14x14", "7x7"]  # 28 px Fashion-MNIST on 2 and 4 px patches
    assert all(r.run_dir in table2 for r in by_grid["7x7"])  # the profile's grid is table2's runs
    for grid, group in by_grid.items():
        assert {(r.arm, r.seed) for r in group if r.config.epochs == 50} == \
            {(a, s) for a in ("baseline", "sar+no-skip") for s in prof["grid_seeds"]}
    longer = [r for r in runs if r.config.epochs != 50]
    assert [(r.arm, r.seed, r.config.epochs, r.config.model) for r in longer] == \
        [("baseline", prof["grid_seeds"][0], 100, prof["grid_model"])]
    with pytest.raises(ValueError, match="names no grid_model"):
        from sarlib.study.targets import TARGETS, PlanRequest
        from dataclasses import replace
        req = PlanRequest(target=TARGETS["grid"], profile="cpu", study={}, datasets=["fashion-mnist-2k"], seeds=[0],
                          default_seeds=[0], arms_of={"fashion-mnist-2k": ["baseline"]}, fractions=[1.0], base={},
                          root=tmp_path)
        TARGETS["grid"].planner(req)


def test_grid_contrast_is_each_grids_paired_effect_and_their_difference_by_seed(tmp_path):
    from types import SimpleNamespace

    from sarlib.report.summaries import grid_contrast

    rows = []
    for seed in range(4):
        for grid, gain in (("7x7", 1.0), ("14x14", 3.0)):
            for arm, shift in (("baseline", 0.0), ("sar+no-skip", gain + 0.1 * seed)):
                rows.append(dict(dataset="fashion-mnist-2k", grid=grid, epochs=50, arm=arm, seed=seed,
                                 top1_final=70.0 + seed + shift, entropy=0.3 - shift / 100))
    rows = pd.DataFrame(rows)
    table = grid_contrast(rows, SimpleNamespace(results_dir=tmp_path), metrics=("top1_final", "entropy"))
    top = table[table.metric == "top1_final"].set_index("comparison")
    assert top.loc["sar+no-skip - baseline, 14x14", "delta"] == pytest.approx(3.15)
    assert top.loc["sar+no-skip - baseline, 7x7", "delta"] == pytest.approx(1.15)
    # the per-seed differences are exactly 2, so the interval has no width and says "larger"
    diff = top.loc["finer - coarser"]
    assert diff["delta"] == pytest.approx(2.0) and diff["verdict"] == "larger on 14x14" and diff["grids"] == "14x14 - 7x7"
    assert top.loc["sar+no-skip - baseline, 14x14", "verdict"] == "supports"
    assert table[table.metric == "entropy"].set_index("comparison").loc["finer - coarser", "verdict"] == "smaller on 14x14"
    assert (tmp_path / "grid_contrast.csv").is_file()


def test_local_bias_trains_each_architecture_alone_and_with_sar_and_reuses_table2s_vit_runs(tmp_path):
    runs = study.plan("local-bias", profile="cpu", runs_root=tmp_path)
    models = study.STUDIES["cpu"]["local_models"]
    table2 = {r.run_dir for r in study.plan("table2", profile="cpu", runs_root=tmp_path)}
    for r in runs:
        arch = r.arm.removesuffix("+sar")
        if arch in models:
            assert r.config.model == models[arch]
            assert (r.config.regularizer, r.config.no_skip) == (("sar", True) if r.arm.endswith("+sar") else ("none", False))
        elif r.dataset.startswith("fashion") or r.arm != "cnn":
            assert r.run_dir in table2, r.run_dir  # the ViT, ViT + SAR and (on real data) the CNN are table2's
    assert {r.arm for r in runs} == {"baseline", "sar+no-skip", "cnn", *models, *(f"{m}+sar" for m in models)}
    assert {r.seed for r in runs} == set(study.STUDIES["cpu"]["seeds"])


@pytest.mark.parametrize("low, high, expected", [
    (0.1, 2.0, "better"), (-0.5, 0.8, "equivalent"), (-0.5, 1.5, "not worse"), (-1.5, -0.1, "worse"),
    (-1.5, 0.5, "cannot resolve"), (-0.9, -0.1, "equivalent"), (float("nan"), float("nan"), "cannot resolve (one seed: no interval)"),
])
def test_equivalence_verdicts_read_the_interval_against_the_margin(low, high, expected):
    from sarlib.report.summaries import equivalence_verdict

    assert equivalence_verdict(low, high, 1.0) == expected


def test_local_bias_report_pairs_each_architecture_with_itself_and_the_vit_sar_with_each(tmp_path):
    from types import SimpleNamespace

    from sarlib.report.summaries import local_bias_report

    rows = []
    for seed in range(5):
        for arm, top1 in (("baseline", 70), ("sar+no-skip", 71), ("convit", 71.2), ("convit+sar", 73), ("cnn", 80)):
            rows.append(dict(dataset="fashion-mnist-2k", arm=arm, seed=seed, top1_final=top1 + 0.1 * seed * (arm == "cnn"),
                             top1_best=top1, train_top1=95.0, entropy=0.3, regions=2.0))
    rep, eq = local_bias_report(pd.DataFrame(rows), SimpleNamespace(results_dir=tmp_path, target="local-bias"), margin=1.0)
    top = rep.delta[rep.delta.metric == "top1_final"].set_index("comparison")
    assert list(top.index) == ["sar+no-skip - baseline", "convit+sar - convit", "cnn - baseline"]
    assert top.loc["convit+sar - convit", "delta"] == pytest.approx(1.8) and top.loc["cnn - baseline", "verdict"] == "cnn higher"
    assert list(eq.comparison) == ["sar+no-skip - convit"] and eq.delta.iloc[0] == pytest.approx(-0.2)
    assert eq.verdict.iloc[0] == "equivalent" and eq.margin.iloc[0] == 1.0
    assert {p.name for p in tmp_path.iterdir()} >= {"local-bias.csv", "local-bias_delta.csv", "local-bias_equivalence.csv"}
