"""The config that explains itself: each field's declared help, group and valid values, the layers of
`resolve_config`, `python -m sarlib.train --help / --config / --print-config --explain`, and what a run
prints."""

import dataclasses
import json
import os
import re

import pytest

from sarlib.metrics.jaccard import PROTOCOLS
from sarlib.sar.regularizers import REGULARIZERS
from sarlib.train.cli import build_parser, config_from_args, main
from sarlib.train.config import GROUPS, LOGGERS, TrainConfig, field_types, load_profile, resolve_config
from sarlib.train.lr import LR_STEPS

# metrics.json keys that measure the machine, not the training
_TIMINGS = {"images_per_s", "train_seconds", "wall_seconds", "wall_seconds_this_process", "device", "world_size"}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_every_field_declares_help_and_a_known_group_and_choices_come_from_their_registries():
    fields = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}
    for name, meta in fields.items():
        assert meta["help"] and meta["group"] in GROUPS, name
    assert set(fields["regularizer"]["choices"]) == {"none", *REGULARIZERS}
    assert fields["lr_step"]["choices"] == LR_STEPS and fields["seg_protocol"]["choices"] == PROTOCOLS
    assert fields["log_to"]["choices"] == LOGGERS


@pytest.mark.parametrize("field,value,needle", [
    ("lambda0", float("nan"), "lambda0 must be finite (in [0, 1000]); got nan (--lambda0)"),
    ("lr", float("inf"), "lr must be finite (in (0, 10]); got inf (--lr)"),
    ("drop_path", 1.0, "drop_path must be in [0, 1); got 1.0 (--drop-path)"),
    ("reprob", 1.5, "reprob must be in [0, 1]; got 1.5 (--reprob)"),
    ("train_fraction", 0.0, "train_fraction must be in (0, 1]"),
    ("seg_mass", 1.01, "seg_mass must be in (0, 1]"),
    ("seed", -1, "seed must be in [0, 2147483647]"),
    ("seg_protocol", "voc", "seg_protocol must be 'dino' or 'authors'"),
    ("threads", 0, "threads must be in [1, 4096] or None (torch's default); got 0 (--threads)"),
    ("epochs", 2.5, "epochs must be an int; got 2.5"),
])
def test_bad_values_are_refused_in_one_line_naming_the_flag(field, value, needle):
    with pytest.raises(ValueError) as err:
        load_profile("smoke", **{field: value})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_resolve_config_layers_and_names_who_set_each_field():
    cfg, source = resolve_config("cpu", [("config a.json", {"dataset": "fashion-mnist-2k", "epochs": 9, "seed": 4}),
                                         ("command line", {"seed": 5})])
    assert (cfg.dataset, cfg.epochs, cfg.seed, cfg.img_size, cfg.model, cfg.opt) == (
        "fashion-mnist-2k", 9, 5, 28, "vit_micro_patch4", "adamw")
    assert source["dataset"] == "config a.json" and source["epochs"] == "config a.json"
    assert source["seed"] == "command line"
    assert source["img_size"] == "profile cpu, dataset fashion-mnist"  # the family the final dataset picks
    assert source["model"] == source["profile"] == "profile cpu" and source["opt"] == "default"
    assert set(source) == {f.name for f in dataclasses.fields(TrainConfig)}
    # renamed fields of older config files are read under today's names, and say where they came from
    cfg, source = resolve_config("smoke", [("config old.json", {"reg_weight": 0.3})])
    assert cfg.lambda0 == 0.3 and source["lambda0"] == "config old.json"
    with pytest.raises(ValueError, match=r"unknown config fields \['epochz'\] in arm sar; see `python -m sarlib.train --help`"):
        resolve_config("smoke", [("study base", {}), ("arm sar", {"epochz": 3})])


def test_load_profile_is_resolve_config_with_one_layer():
    for overrides in ({}, {"dataset": "fashion-mnist-1k", "img_size": 32}, {"reg_weight": 0.1, "seed": 2}):
        assert load_profile("cpu", **overrides) == resolve_config("cpu", [("x", overrides)])[0]
    layer = {"model_kwargs": {"depth": 2}}
    cfg = resolve_config("smoke", [("x", layer)])[0]
    cfg.model_kwargs["depth"] = 1  # a config never shares a dict with a layer (a profile module's, a study's)
    assert layer == {"model_kwargs": {"depth": 2}}


def test_help_shows_the_chosen_profiles_values_grouped_with_a_description_for_every_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per flag, whatever the terminal
    with pytest.raises(SystemExit):
        main(["--help"])
    cpu = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--profile", "smoke", "--help"])
    smoke = capsys.readouterr().out
    assert "(default: 40; profile cpu)" in cpu and "(default: 300" not in cpu  # --epochs under cpu, not bare
    assert "(default: 2; profile smoke)" in smoke and "(default: vit_nano_patch4; profile smoke)" in smoke
    for group in GROUPS:
        assert f"\n{group}:\n" in cpu, group
    for action in build_parser()._actions:
        assert action.help, action.option_strings  # every flag has a description (--no-X are suppressed)


def test_config_file_layers_under_flags_and_old_names_still_load(tmp_path, capsys):
    file = tmp_path / "old.json"
    file.write_text(json.dumps({"profile": "smoke", "reg_weight": 0.2, "epochs": 5, "seed": 3}))
    cfg, args = config_from_args(["--config", str(file), "--seed", "4"])
    assert (cfg.profile, cfg.lambda0, cfg.epochs, cfg.seed, cfg.img_size) == ("smoke", 0.2, 5, 4, 32)
    assert args.source["lambda0"] == f"config {file}" and args.source["seed"] == "command line"
    assert main(["--config", str(file), "--print-config", "--explain"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["lambda0"].split() == ["lambda0", "0.2", "config", str(file)]
    assert lines["model"].endswith("profile smoke") and lines["opt"].endswith("default")


@pytest.mark.parametrize("content,suffix,needle", [
    ({"epochz": 3}, ".json", "unknown config fields ['epochz'] in config"),
    ([1, 2], ".json", "holds a list, not a mapping of config fields"),
    ({"epochs": 3}, ".toml", "expected a .json, .yaml or .yml file"),
    ({"lr": "fast"}, ".json", "lr must be a float"),
])
def test_a_bad_config_file_is_one_line_and_writes_nothing(tmp_path, capsys, content, suffix, needle):
    file, run = tmp_path / f"c{suffix}", tmp_path / "run"
    file.write_text(json.dumps(content))
    assert main(["--config", str(file), "--output-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err
    assert not run.exists()


# edge values fed to every field (JSON can carry NaN and Infinity, as Python's json writes them)
_EDGES = {"zero": 0, "negative": -1, "nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"),
          "huge int": 10**12, "huge float": 1e12, "text": "text", "list": [1], "mapping": {"a": 1}, "bool": True}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_every_field_refuses_its_edge_values_in_one_line_and_writes_nothing(tmp_path, capsys, name):
    """The class guard: every field has a type, every number a finite range with an upper bound, every
    name a registry; a value outside is one line naming the flag, from a config file, before the run
    directory exists. Values a field accepts (0 where it means "off", a path) are not run."""
    kind, optional = field_types()[name]
    must_refuse = {"list", "mapping"} | ({"nan", "inf", "-inf", "huge int", "huge float", "text"}
                                         if kind in (int, float) else set()) | ({"text"} if kind is bool else set())
    flag = "--" + name.replace("_", "-")
    for label, value in _EDGES.items():
        try:
            load_profile("smoke", **{name: value})
        except ValueError:
            pass
        else:
            assert label not in must_refuse, f"{name} accepts {label} ({value!r})"
            continue
        file, run = tmp_path / f"{label}.json", tmp_path / f"run-{label}"
        file.write_text(json.dumps({"profile": "smoke", name: value}))
        assert main(["--config", str(file), "--output-dir", str(run)]) == 2, (name, label)
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1 and not run.exists(), (name, label, err)
        assert name in err or flag in err, (name, label, err)


@pytest.mark.parametrize("name,value,needle", [
    ("opt", "nonsense", "opt must be a timm optimizer name"), ("rand_augment", "nonsense", "RandAugment spec"),
    ("model", "vit_tiny_patch99", "unknown timm model"), ("threads", 100000, "threads must be in [1, 4096]"),
])
def test_names_and_resources_are_checked_with_the_other_fields(name, value, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        load_profile("smoke", **{name: value})


def test_yaml_config_and_a_one_line_error_without_pyyaml(tmp_path, capsys, monkeypatch):
    file = tmp_path / "c.yaml"
    file.write_text("profile: smoke\nepochs: 3\nmodel_kwargs: {depth: 1}\n")
    pytest.importorskip("yaml")
    cfg, _ = config_from_args(["--config", str(file)])
    assert (cfg.profile, cfg.epochs, cfg.model_kwargs) == ("smoke", 3, {"depth": 1})
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)  # as if pyyaml were not installed
    assert main(["--config", str(file), "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs pyyaml: pip install pyyaml" in err


@pytest.mark.parametrize("argv,needle", [
    (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["--lambda0", "nan"], "lambda0 must be finite"),
    (["--explain"], "add --print-config"),
])
def test_bad_flags_are_one_line_before_anything_is_written(tmp_path, capsys, argv, needle):
    run = tmp_path / "run"
    try:
        rc = main(["--profile", "smoke", "--output-dir", str(run), *argv])
    except SystemExit as stop:  # argparse's own errors exit
        rc = stop.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and needle in err and len(err.splitlines()) == 1, err
    assert not run.exists()


def test_a_runs_config_json_reproduces_its_metrics_and_the_run_says_what_it_does(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # printed paths are relative to where the command runs
    assert main(["--profile", "smoke", "--epochs", "1", "--threads", "1", "--output-dir", "a"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("train vit_nano_patch4 (") and "on synthetic-colour-tiny (200 train, 100 test images)" in out[0]
    assert "1 epochs, regularizer sar (lambda0 0.01)" in out[0] and out[0].endswith("-> a")
    assert out[1].startswith("epoch 1/1  loss ") and " top-1 " in out[1] and " img/s" in out[1]
    metrics_a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert out[2].startswith(f"result: top-1 {metrics_a['top1_final']:.2f} final")
    assert out[-4:] == ["  a/config.json", "  a/log.jsonl", "  a/checkpoint.pth", "  a/metrics.json"]

    assert main(["--config", "a/config.json", "--output-dir", str(tmp_path / "b"), "--print-config", "--explain"]) == 0
    explained = capsys.readouterr().out
    assert "profile smoke" in explained and "config a/config.json" in explained and "command line" in explained
    assert main(["--config", "a/config.json", "--output-dir", str(tmp_path / "b")]) == 0
    metrics_b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert set(metrics_a) == set(metrics_b)
    for key in set(metrics_a) - _TIMINGS:
        assert metrics_a[key] == metrics_b[key], key
    config_b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config_b == {**json.loads((tmp_path / "a" / "config.json").read_text()), "output_dir": str(tmp_path / "b")}
    assert capsys.readouterr().out.splitlines()[-1] == "  b/metrics.json"  # inside the working directory
    # outside it a path is absolute, never relative to some other folder
    os.chdir(tmp_path / "a")
    assert main(["--config", "config.json", "--output-dir", "../b"]) == 0  # finished: its result again
    again = capsys.readouterr().out.splitlines()
    assert again[0].startswith(f"{tmp_path / 'b'} holds this run, finished") and again[-1] == f"  {tmp_path / 'b' / 'metrics.json'}"


def test_no_progress_prints_nothing_but_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--profile", "smoke", "--epochs", "1", "--threads", "1", "--max-steps-per-epoch", "1",
                 "--no-progress", "--output-dir", str(run)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and (run / "metrics.json").is_file()
