"""What happens when things go wrong: locked, corrupt or mismatched run directories, a full disk, bad
inputs. Each case of the failure list ends in one clear error line or in the correct behaviour."""

import collections
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from sarlib import study
from sarlib.utils import files
from sarlib.train.config import load_profile
from sarlib.models.checkpoint import load_init_weights
from sarlib.train import CheckpointError, RunDirectoryError, RunLockedError, load_trained_model, lock_run_dir, train
from sarlib.train.loop import _median_or_none
from sarlib.utils.files import CorruptFileError, DiskFullError, atomic_write, atomic_write_text
from sarlib.models.vit import create_model
from sarlib.train.cli import main
from sarlib.utils.text import one_line

REPO = Path(__file__).resolve().parents[1]
SMOKE_MODEL = dict(patch_size=4, embed_dim=48, depth=2, num_heads=3)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _smoke(run_dir, **overrides):
    return load_profile("smoke", output_dir=str(run_dir), **{"epochs": 1, "threads": 1, **overrides})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished 1-epoch smoke run; tests work on copies of it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    os.environ.setdefault("SARLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    train(_smoke(run))
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _error_line(capsys, argv):
    """rc and the single stderr line of the CLI run in this process."""
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return rc, err


# ----------------------------------------------------------------------------- 1. the run-directory lock

_HOLDER = textwrap.dedent("""
    import sys, time
    from sarlib.train import lock_run_dir
    with lock_run_dir(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def _start_holder(run_dir):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env=_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_with_the_holders_pid_and_a_killed_holder_never_blocks(tmp_path, capsys):
    run = tmp_path / "run"
    holder = _start_holder(run)
    try:
        rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "1", "--output-dir", str(run)])
        assert rc == 1 and f"PID {holder.pid}" in err and "another --output-dir" in err
        assert not (run / "config.json").exists() and not (run / "log.jsonl").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the dead holder's lock file is still there, with its PID in it, and does not block
    assert f"PID {holder.pid}" in (run / ".lock").read_text()
    metrics = train(_smoke(run))
    assert metrics["complete"]


_TRAIN_UNDER_LOCK = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from sarlib.train.config import TrainConfig
    from sarlib.train.distributed import init_distributed
    from sarlib.train import lock_run_dir
    from sarlib.train.loop import _run
    cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
    with lock_run_dir(cfg.output_dir):
        print("locked", flush=True)
        time.sleep(1.0)  # the other process is surely waiting by now
        _run(cfg, init_distributed("cpu"), Path(cfg.output_dir))
""")


def test_execute_waits_for_the_process_holding_the_run_and_reuses_its_result(tmp_path, capsys):
    runs = study.plan("table2", profile="smoke", seeds=[0], arms=["baseline"], runs_root=tmp_path / "runs",
                   overrides=dict(threads=1), epochs=1)
    run = runs[0]
    holder = subprocess.Popen([sys.executable, "-c", _TRAIN_UNDER_LOCK, json.dumps(run.config.to_dict())],
                              stdout=subprocess.PIPE, text=True, env=_env())
    assert holder.stdout.readline().strip() == "locked"
    rows = study.execute(runs, target="table2")
    assert holder.wait(timeout=120) == 0
    assert "waiting for it to finish" in capsys.readouterr().out
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert rows["top1_best"].iloc[0] == metrics["top1_best"]
    epochs = [json.loads(line)["epoch"] for line in (run.run_dir / "log.jsonl").read_text().splitlines()]
    assert epochs == [0], "the run was trained twice"


def test_lock_is_exclusive_between_two_holders_in_one_process(tmp_path):
    with lock_run_dir(tmp_path / "run"):
        with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
            with lock_run_dir(tmp_path / "run"):
                pass
    with lock_run_dir(tmp_path / "run"):  # released
        pass


# ----------------------------------------------------------------------------- 2. --init-checkpoint


def _tiny(num_classes=10, **kw):
    torch.manual_seed(0)
    return create_model("deit_tiny_patch16_224", num_classes=num_classes, img_size=kw.pop("img_size", 32),
                        **{**SMOKE_MODEL, **kw})


def test_init_checkpoint_strips_wrapper_prefixes_and_reports_what_it_adapted(tmp_path):
    source = _tiny(num_classes=10)
    path = tmp_path / "ddp.pth"
    torch.save({"model": {"module._orig_mod." + k: v for k, v in source.state_dict().items()}}, path)
    torch.manual_seed(1)
    target = _tiny(num_classes=5, img_size=48)
    report = load_init_weights(target, str(path))
    assert "stripped '_orig_mod.' and 'module.'" in report
    assert "classifier re-initialized (10 -> 5 classes)" in report and "pos_embed resampled" in report
    assert "\n" not in report
    for key, value in source.state_dict().items():
        if key.startswith("blocks"):
            assert torch.equal(target.state_dict()[key], value), key


def test_init_checkpoint_with_lightning_prefix_loads_every_weight(tmp_path):
    source = _tiny()
    torch.save({"state_dict": {"model." + k: v for k, v in source.state_dict().items()}}, tmp_path / "pl.ckpt")
    target = _tiny(depth=2)
    torch.nn.init.zeros_(target.blocks[0].attn.qkv.weight)
    report = load_init_weights(target, str(tmp_path / "pl.ckpt"))
    n = len(source.state_dict())
    assert f"loaded {n} of {n} weights" in report
    assert torch.equal(target.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


@pytest.mark.parametrize("change,needle", [
    (lambda sd: {"backbone." + k: v for k, v in sd.items()}, "weights are missing"),
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith("blocks.1.")}, "weights are missing"),
    (lambda sd: {**sd, "patch_embed.proj.weight": torch.zeros(48, 3, 8, 8)}, "other shapes"),
])
def test_init_checkpoint_that_does_not_fit_fails_clearly(tmp_path, change, needle):
    torch.save(change(_tiny().state_dict()), tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=needle) as info:
        load_init_weights(_tiny(), str(tmp_path / "bad.pth"))
    assert str(tmp_path / "bad.pth") in str(info.value) and "--model-kwargs" in str(info.value)


def test_fine_tuning_prints_the_init_report(run_copy, tmp_path, capsys):
    train(_smoke(tmp_path / "ft", init_checkpoint=str(run_copy / "checkpoint.pth")))
    err = capsys.readouterr().err
    assert f"init checkpoint {run_copy / 'checkpoint.pth'}: loaded" in err


class _RunsShell:
    """Unpickling this calls os.system: what a crafted .pth found online can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipfile", [True, False], ids=["torch.save", "legacy-pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, capsys, zipfile):
    marker = tmp_path / "code-ran"
    weights = {"model": _tiny().state_dict(), "extra": _RunsShell(marker)}
    path = tmp_path / "downloaded.pth"
    torch.save(weights, path, _use_new_zipfile_serialization=zipfile)
    rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "1", "--threads", "1",
                                   "--output-dir", str(tmp_path / "ft"), "--init-checkpoint", str(path)])
    assert not marker.exists(), "loading the checkpoint executed its code"
    assert rc == 1 and str(path) in err and "system" in err and "could run code, so it is refused" in err
    assert not (tmp_path / "ft" / "checkpoint.pth").exists()
    # the same file planted as a run's own checkpoint is refused too, before anything is resumed
    run = tmp_path / "planted"
    run.mkdir()
    shutil.copy(path, run / "checkpoint.pth")
    rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "1", "--threads", "1", "--output-dir", str(run)])
    assert rc == 1 and not marker.exists() and "could run code" in err


def test_our_checkpoints_hold_only_tensors_and_plain_values(run_copy):
    assert torch.serialization.get_unsafe_globals_in_checkpoint(run_copy / "checkpoint.pth") == []
    ckpt = torch.load(run_copy / "checkpoint.pth", weights_only=True)
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}


def test_a_checkpoint_of_the_earlier_format_still_resumes_exactly(tmp_path):
    """Checkpoints written before this version stored numpy's RNG state as an ndarray and Python's as a
    tuple; resuming one must work, with exactly those numpy types allowed and nothing else."""
    import random

    import numpy as np

    from sarlib.train import checkpoint  # where the checkpoint is written

    class Stop(Exception):
        pass

    real_save = checkpoint.atomic_torch_save

    def save_old_format_then_stop(obj, path):
        # what the earlier _rng_state() wrote: the live numpy and Python states themselves
        obj["rng"] = {**obj["rng"], "numpy": np.random.get_state(), "python": random.getstate()}
        real_save(obj, path)
        raise Stop

    ref = train(_smoke(tmp_path / "ref", epochs=2))
    checkpoint.atomic_torch_save = save_old_format_then_stop
    try:
        with pytest.raises(Stop):
            train(_smoke(tmp_path / "old", epochs=2))
    finally:
        checkpoint.atomic_torch_save = real_save
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "old" / "checkpoint.pth")
    resumed = train(_smoke(tmp_path / "old", epochs=2))
    for key in ("top1_best", "top1_final", "top5_final", "entropy", "regions", "reg_term", "best_epoch"):
        assert resumed[key] == ref[key], key


# ----------------------------------------------------------------------------- 3. config.json vs checkpoint


def test_missing_config_json_is_recovered_from_the_checkpoint_and_other_flags_are_refused(run_copy):
    (run_copy / "config.json").unlink()
    (run_copy / "metrics.json").unlink()
    with pytest.raises(RunDirectoryError, match=r"lr, regularizer differ, per checkpoint\.pth"):
        train(_smoke(run_copy, lr=0.05, regularizer="tv"))
    assert not (run_copy / "config.json").exists(), "a config that does not describe the checkpoint was written"
    metrics = train(_smoke(run_copy))  # the same flags: finishes from the checkpoint
    assert metrics["complete"] and json.loads((run_copy / "config.json").read_text())["regularizer"] == "sar"


def test_checkpoint_without_any_config_is_refused(run_copy):
    ckpt = torch.load(run_copy / "checkpoint.pth", weights_only=True)
    del ckpt["config"]
    torch.save(ckpt, run_copy / "checkpoint.pth")
    (run_copy / "config.json").unlink()
    (run_copy / "metrics.json").unlink()
    with pytest.raises(RunDirectoryError, match="stores no config"):
        train(_smoke(run_copy))


# ----------------------------------------------------------------------------- 4. validation before writing


@pytest.mark.parametrize("args,needle", [
    (["--eval-every", "0"], "eval_every must be in [1, 100000]"),
    (["--lambda-decay", "nonsense"], "lambda_decay must be 'cosine' or 'constant'"),
    (["--model-kwargs", '{"embed_dim": 50, "num_heads": 3, "depth": 1}'], "not divisible by num_heads=3"),
    (["--max-steps-per-epoch", "0"], "max_steps_per_epoch must be in [1, 1000000000]"),
    (["--dataset", "voc2012"], "--seg-dataset voc2012"),
    (["--profile", "paper", "--batch-size", "63"], "mixup/CutMix need an even batch_size per process; got 63"),
])
def test_invalid_config_fails_in_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    run = tmp_path / "run"
    rc, err = _error_line(capsys, ["--profile", "smoke", "--output-dir", str(run), *args])
    assert rc == 2 and needle in err
    assert not run.exists()


def test_failed_set_up_writes_no_config_so_the_corrected_command_runs(tmp_path, capsys):
    run, empty = tmp_path / "run", tmp_path / "no-data"
    empty.mkdir()
    # a valid config whose set-up fails (its data root holds no Fashion-MNIST)
    rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "1", "--output-dir", str(run),
                                   "--dataset", "fashion-mnist", "--img-size", "28", "--data-root", str(empty)])
    assert rc == 2 and "no Fashion-MNIST files" in err
    assert not (run / "config.json").exists()
    assert train(_smoke(run))["complete"]


def test_config_of_a_run_that_finished_no_epoch_is_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _smoke(run, regularizer="none").save(run / "config.json")  # set-up passed, then the first epoch failed
    assert train(_smoke(run))["complete"]
    assert json.loads((run / "config.json").read_text())["regularizer"] == "sar"


def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    rc, err = _error_line(capsys, ["--profile", "smoke", "--device", "cuda", "--output-dir", str(tmp_path / "r")])
    assert rc == 1 and "--device cpu" in err and not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- 5. corrupt files, full disk


def _truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def _garbage(path):
    path.write_bytes(b"\x00garbage" * 50)


def _empty(path):
    path.write_bytes(b"")


def _wrong_dict(path):
    torch.save({"weights": torch.zeros(3)}, path)


@pytest.mark.parametrize("damage,needle", [
    (_truncate, "truncated or not a torch checkpoint"), (_garbage, "truncated or not a torch checkpoint"),
    (_empty, "is empty (0 bytes)"), (_wrong_dict, "not a sarlib training checkpoint"),
])
def test_damaged_checkpoint_is_one_line_naming_the_file_and_the_fix(run_copy, capsys, damage, needle):
    (run_copy / "metrics.json").unlink()
    damage(run_copy / "checkpoint.pth")
    rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "1", "--threads", "1",
                                   "--output-dir", str(run_copy)])
    assert rc == 1 and needle in err and str(run_copy / "checkpoint.pth") in err and "delete it" in err


@pytest.mark.parametrize("name,fix", [("config.json", "delete it"), ("metrics.json", "recomputed")])
def test_malformed_json_of_a_run_is_one_line_naming_the_file(run_copy, capsys, name, fix):
    (run_copy / name).write_text('{"epochs": 1,')
    rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "1", "--threads", "1",
                                   "--output-dir", str(run_copy)])
    assert rc == 1 and f"{run_copy / name} is not valid JSON" in err and fix in err


def test_loading_a_trained_model_names_the_damaged_file(run_copy):
    (run_copy / "config.json").write_text("not json")
    with pytest.raises(CorruptFileError, match=r"config\.json is not valid JSON"):
        load_trained_model(run_copy)
    (run_copy / "config.json").unlink()  # recovered from the checkpoint
    model, cfg = load_trained_model(run_copy)
    assert cfg.regularizer == "sar"
    cfg.save(run_copy / "config.json")
    (run_copy / "checkpoint.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"is empty .*; delete {run_copy} and train it again"):
        load_trained_model(run_copy)


def test_deleting_malformed_metrics_recomputes_them_from_the_checkpoint(run_copy):
    before = json.loads((run_copy / "metrics.json").read_text())
    (run_copy / "metrics.json").unlink()
    after = train(_smoke(run_copy))
    assert after["top1_final"] == before["top1_final"] and after["images_per_s"] == before["images_per_s"]


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_is_one_line(tmp_path, capsys, monkeypatch):
    run, real_save, saved = tmp_path / "run", torch.save, []

    def save_once_then_fill_the_disk(obj, path):
        if saved:
            Path(path).write_bytes(b"x" * 1000)  # part of it made it to disk
            _no_space()
        real_save(obj, path)
        saved.append(Path(path).stat().st_size)

    monkeypatch.setattr(torch, "save", save_once_then_fill_the_disk)
    rc, err = _error_line(capsys, ["--profile", "smoke", "--epochs", "2", "--threads", "1", "--output-dir", str(run)])
    assert rc == 1 and f"no space left in {run} while writing checkpoint.pth" in err
    assert "previous checkpoint.pth is kept" in err and f"about {files.human_bytes(saved[0])} needed" in err
    assert torch.load(run / "checkpoint.pth", weights_only=True)["state"]["epoch"] == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_reports_a_full_disk_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old,rows\n" * 100)

    def fill_then_fail(tmp):
        Path(tmp).write_text("new")
        _no_space()

    with pytest.raises(DiskFullError) as info:
        atomic_write(path, fill_then_fail)
    message = str(info.value)
    assert f"no space left in {tmp_path}" in message and "about 900 B needed" in message
    assert "free some space" in message and "\n" not in message
    assert path.read_text() == "old,rows\n" * 100 and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_torch_style_error_on_an_almost_full_disk_is_reported_as_disk_full(tmp_path, monkeypatch):
    # torch's zip writer reports ENOSPC as "unexpected pos ..."; the free space tells it apart
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _p: usage(10 << 30, 10 << 30, 1024))

    def torch_like(_tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 453696 vs 453584")

    with pytest.raises(DiskFullError, match="1.0 KiB free, more needed"):
        atomic_write(tmp_path / "checkpoint.pth", torch_like)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _p: usage(10 << 30, 0, 10 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # plenty of space: not a full disk
        atomic_write(tmp_path / "checkpoint.pth", torch_like)


def test_corrupt_jpeg_is_one_line_naming_the_file_even_from_a_loader_worker(tmp_path):
    from sarlib.data import CorruptImageError, ImageListDataset

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    Image.new("RGB", (8, 8), "red").save(good)
    bad.write_bytes(good.read_bytes()[:40])
    dataset = ImageListDataset([good, bad], [0, 1], ["a", "b"], transform=None)
    dataset[0]
    with pytest.raises(CorruptImageError, match="bad.jpg cannot be decoded"):
        dataset[1]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=1, collate_fn=lambda x: x)
    with pytest.raises(CorruptImageError) as info:
        list(loader)
    line = one_line(info.value)
    assert line.startswith(f"{bad} cannot be decoded as an image") and "replace it" in line


# ----------------------------------------------------------------------------- 5. notebook parameters


def test_notebook_parameters_are_checked_in_one_line():
    study.check_parameters("table2", profile="smoke", seeds=[0, 1], datasets=None, epochs=None, nproc=1,
                        results_dir="../results", data_root=None, overrides=None, launcher="local", arms=None)
    cases = {
        "profile": ("nonsense", "profile must be one of smoke, cpu, paper"),
        "seeds": ("[0", "does not parse as a JSON/YAML list"),
        "datasets": (["cifar11"], "unknown datasets ['cifar11']"),
        "epochs": (0, "epochs must be a positive int"),
        "nproc": ("two", "nproc must be a positive int"),
        "data_root": ("/no/such/folder", "data_root must be an existing folder"),
        "overrides": ({"eval_every": 0}, "eval_every must be in [1, 100000]"),
        "lambdas": ("[0.1, -1]", "lambdas must be a non-empty list of numbers >= 0"),
        "fractions": ("half", "does not parse as a JSON/YAML list"),
        "seed": (3, "unknown parameter 'seed'"),
    }
    for name, (value, needle) in cases.items():
        with pytest.raises(study.ParameterError) as info:
            study.check_parameters("table2", **{"profile": "smoke", name: value})
        assert needle in str(info.value), (name, str(info.value))
    # a value listed twice would count one run as several (SEEDS='[0, 0, 0]' reported n=3 from one run)
    for name, value in (("seeds", "[0, 0, 0]"), ("fractions", [0.5, 0.5]), ("lambdas", "[0.1, 0.1]")):
        with pytest.raises(study.ParameterError, match="more than once"):
            study.check_parameters("sample-efficiency", **{"profile": "smoke", name: value})
    for name, value in (("seeds", [1, 1]), ("arms", ["baseline", "baseline"]), ("datasets", ["a", "a"])):
        with pytest.raises(ValueError, match=f"{name} lists .* more than once"):
            study.plan("table2", profile="smoke", **{name: value})


def test_papermill_string_parameters_are_parsed_and_errors_render_as_one_line():
    params = study.normalize_parameters("table2", profile="smoke", seeds="[0, 1]", datasets='["synthetic-tiny"]',
                                     overrides='{"epochs": 1}')
    assert params["seeds"] == [0, 1] and params["datasets"] == ["synthetic-tiny"] and params["overrides"] == {"epochs": 1}
    assert study.normalize_parameters("lambda-sweep", lambdas="[0, 0.1]")["lambdas"] == [0.0, 0.1]
    with pytest.raises(study.ParameterError) as info:
        study.check_parameters("table2", seeds=["0"])
    rendered = info.value._render_traceback_()
    assert rendered == ['parameter error: seeds must be a non-empty list of ints, e.g. -p seeds "[0, 1, 2]"; '
                        "got ['0'] (a list)"]
    assert isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------- 6. smaller cases


def test_images_per_s_is_never_nan():
    assert _median_or_none([None, float("nan")]) is None
    assert _median_or_none([None, 2.0, 4.0]) == 3.0
    json.dumps({"images_per_s": _median_or_none([])}, allow_nan=False)


def test_spatial_entropy_input_checks():
    from sarlib import spatial_entropy

    for dtype in (torch.int64, torch.bool, torch.complex64):
        with pytest.raises(TypeError, match="floating-point"):
            spatial_entropy(torch.zeros(2, 3, 16, dtype=dtype), (4, 4))
    with pytest.raises(TypeError, match=r"pair of positive ints .*got 16"):
        spatial_entropy(torch.zeros(2, 3, 16), 16)
    empty = torch.zeros(0, 3, 16, requires_grad=True)
    loss = spatial_entropy(empty, (4, 4))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert spatial_entropy(empty, (4, 4), reduction="none").shape == (0, 3)


def test_model_names_get_close_suggestions_and_unsupported_families_are_refused_before_building(monkeypatch):
    import timm

    with pytest.raises(ValueError, match="close supported names: deit_tiny_patch16_224"):
        create_model("deit_tinny_patch16_224", num_classes=2)
    assert "reg4_gap" not in create_model.__doc__
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: pytest.fail("EVA-02 was built before being refused"))
    with pytest.raises(ValueError, match="EVA-02 .*rotary"):
        create_model("eva02_tiny_patch14_224", num_classes=2)


def test_pretrained_weights_missing_offline_fail_at_once_without_the_network(tmp_path, monkeypatch):
    import huggingface_hub
    import socket

    def no_network(*_a, **_k):
        raise AssertionError("the network was contacted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="not in the local cache"):
        create_model("deit_tiny_patch16_224", num_classes=2, pretrained=True)
    assert time.perf_counter() - start < 5
    # with the file in the cache, it loads from there
    weights = _tiny(num_classes=1000, img_size=224, patch_size=16, embed_dim=192, depth=1)
    torch.save(weights.state_dict(), tmp_path / "cached.pth")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, name, **k: str(tmp_path / "cached.pth") if name == "pytorch_model.bin" else None)
    model = create_model("deit_tiny_patch16_224", num_classes=2, pretrained=True, depth=1)
    assert torch.equal(model.blocks[0].attn.qkv.weight, weights.blocks[0].attn.qkv.weight)


# ----------------------------------------------------------------------------- orphan temporary files

# loads sarlib/files.py alone (no torch import), so the writer starts in a fraction of a second
_KILLED_WRITER = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("files", sys.argv[2])
    files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(files)
    atomic_write = files.atomic_write
    def slow(tmp):
        open(tmp, "w").write("half")
        print("writing", flush=True)
        time.sleep(120)
    atomic_write(sys.argv[1], slow)
""")


def test_temp_file_of_a_killed_write_is_removed_by_the_next_write_but_live_ones_stay(tmp_path):
    target = tmp_path / "metrics.json"
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), files.__file__],
                              stdout=subprocess.PIPE, text=True, env=_env())
    assert writer.stdout.readline().strip() == "writing"
    live = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "table.csv"), files.__file__],
                            stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert live.stdout.readline().strip() == "writing"
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        orphans = [p.name for p in tmp_path.iterdir() if p.name.startswith(".metrics.json.")]
        assert len(orphans) == 1 and f"-{writer.pid}." in orphans[0]
        atomic_write_text(tmp_path / "other.json", "{}")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert not any(n.startswith(".metrics.json.") for n in names), names
        assert any(n.startswith(".table.csv.") and f"-{live.pid}." in n for n in names), "a live temp was deleted"
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()


def test_a_killed_exports_temporary_folder_is_removed_by_the_next_export(tmp_path):
    """A synthetic export builds its files in a temporary folder beside the destination; the one a killed
    export left is removed by the next export there, while a live export's folder is kept."""
    from sarlib.data.synthetic.export import export_imagefolder

    killed = subprocess.Popen([sys.executable, "-c", "import sys; from sarlib.data.synthetic.export import "
                               "export_imagefolder as e; e(sys.argv[1], size=32, num_train=8000, num_classes=2)",
                               str(tmp_path)], env=_env())
    deadline = time.time() + 120
    while not any(p.name.startswith(".export") and any(p.rglob("*.JPEG")) for p in tmp_path.iterdir()):
        assert time.time() < deadline and killed.poll() is None, "the export never started writing"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    live = tmp_path / f".export.{files._HOST}-{os.getpid()}.xyz_34.tmp"  # as if another export were running
    live.mkdir()
    export_imagefolder(tmp_path, size=16, num_train=4, num_classes=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([".sarlib-export-imagefolder.json", live.name, "train", "val"]), names


def test_another_runs_checkpoint_is_never_resumed_as_this_runs(tmp_path):
    """A checkpoint.pth copied from another run (here: another seed; its tensors fit exactly) into a run whose
    metrics.json was removed must be refused in one line, not resumed and reported as this run's result."""
    other = _smoke(tmp_path / "other", seed=1, epochs=2)
    mine = _smoke(tmp_path / "mine", seed=0, epochs=2)
    train(other)
    train(mine)
    (tmp_path / "mine" / "metrics.json").unlink()
    shutil.copy(tmp_path / "other" / "checkpoint.pth", tmp_path / "mine" / "checkpoint.pth")
    before = {p.name: p.read_bytes() for p in (tmp_path / "mine").iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=r"belongs to another run \(its seed differ") as err:
        train(mine)
    assert "\n" not in str(err.value) and "delete it to restart" in str(err.value)
    after = {p.name: p.read_bytes() for p in (tmp_path / "mine").iterdir() if p.is_file() and p.name in before}
    assert after == before and not (tmp_path / "mine" / "metrics.json").exists()
    # its own checkpoint still resumes: the guard compares configs, not files
    (tmp_path / "other" / "metrics.json").unlink()
    assert train(other)["top1_final"] >= 0
