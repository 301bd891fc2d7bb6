"""--log-to: every epoch's record of log.jsonl mirrored to TensorBoard (read back with its own event reader)
and to W&B (its API as this module calls it), both inside the run directory, off by default."""

import json
import sys
import types

import pytest

from sarlib.train import load_profile, train
from sarlib.train.loggers import scalars


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_tensorboard_holds_the_same_scalars_as_the_json_log(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run_dir = tmp_path / "run"
    train(load_profile("smoke", output_dir=str(run_dir), log_to="tensorboard", max_steps_per_epoch=2))
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    records = _records(run_dir)
    for key in ("train/loss", "train/reg_term", "train/lambda", "train/lr", "eval/top1", "eval/jaccard"):
        logged = {e.step: e.value for e in events.Scalars(key)}
        expected = {r["epoch"]: scalars(r)[key] for r in records if key in scalars(r)}
        assert expected and logged.keys() == expected.keys(), key
        assert all(abs(logged[s] - expected[s]) < 1e-5 * max(1, abs(expected[s])) for s in expected), key
    assert "eval/entropy" in events.Tags()["scalars"]  # the mechanism metrics of the last epoch


def test_wandb_gets_the_config_and_each_epoch_offline_by_default(tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        def log(self, values, step):
            calls.append(("log", step, values))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")  # W&B's API as the loggers use it; no package, account or network needed
    fake.init = lambda **kw: calls.append(("init", kw)) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "run"
    train(load_profile("smoke", output_dir=str(run_dir), log_to="wandb", max_steps_per_epoch=2))
    init = calls[0][1]
    assert init["mode"] == "offline" and init["dir"] == str(run_dir) and init["config"]["log_to"] == "wandb"
    logs = [c for c in calls if c[0] == "log"]
    assert [step for _, step, _ in logs] == [r["epoch"] for r in _records(run_dir)]
    assert logs[-1][2] == scalars(_records(run_dir)[-1]) and calls[-1] == ("finish",)


def test_an_unknown_or_missing_logger_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="log_to must be empty or a comma-separated choice of tensorboard, wandb"):
        load_profile("smoke", log_to="mlflow")
    monkeypatch.setattr("sarlib.train.config._installed", lambda package: False)
    with pytest.raises(ValueError, match=r'--log-to wandb needs the package: pip install "\.\[wandb\]"'):
        load_profile("smoke", output_dir=str(tmp_path / "run"), log_to="wandb")
    assert not (tmp_path / "run").exists()
    assert load_profile("smoke").log_to == ""  # off by default
