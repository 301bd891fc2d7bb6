"""The attention explorer: weights without pickle, the runs it finds, the maps it draws, its widgets."""

import os
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from sarlib.metrics.scores import single_object_jaccard
from sarlib.report import explore
from sarlib.study import plan
from sarlib.train import train
from sarlib.train.rundir import LOCK
from sarlib.train import TrainConfig
from sarlib.train.weights import WEIGHTS_FILE, WeightsError, kept_snapshots, load_weights, save_weights

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """table2 at smoke scale (baseline and SAR + no-skip, two seeds, 2 epochs), trained keeping a snapshot after
    epoch 1, with its weights saved."""
    os.environ.setdefault("SARLIB_CACHE", str(tmp_path_factory.mktemp("cache")))
    root = tmp_path_factory.mktemp("explore") / "results"
    runs = plan("table2", profile="smoke", runs_root=root / "runs")
    for run in runs:
        train(run.config.replace(max_steps_per_epoch=2, keep_checkpoints="1"))
    explore.save_run_weights(runs, root)
    return root


def test_weights_load_without_pickle_and_predict_as_the_run(results, tmp_path):
    run = next((results / "runs").rglob("sar+no-skip/e2/seed0"))
    from sarlib.train.rundir import load_trained_model

    full, cfg = load_trained_model(run)
    half, cfg_again = load_weights(results / explore.WEIGHTS_DIR / run.relative_to(results / "runs"))
    assert cfg_again == cfg and cfg.no_skip
    x = torch.randn(4, 3, cfg.img_size, cfg.img_size)
    assert torch.allclose(full(x), half(x), atol=0.05)  # float16 weights: rounding only
    copy = save_weights(run, tmp_path / "copy")
    assert (copy / WEIGHTS_FILE).stat().st_size < 600_000  # the nano model in float16
    (copy / WEIGHTS_FILE).write_bytes(b"\x80\x04 a pickle is not a weights file")
    with pytest.raises(WeightsError, match="cannot be read") as err:
        load_weights(copy)
    assert "\n" not in str(err.value)


def test_runs_are_found_in_run_folders_and_weights_with_their_state(results, tmp_path):
    entries = explore.find_runs(results)
    assert len(entries) == 4 and {e.source for e in entries} == {"trained"}  # finished runs win over weights
    assert {(e.arm, e.seed) for e in entries} == {(a, s) for a in ("baseline", "sar+no-skip") for s in (0, 1)}
    left, right = explore.default_pair(entries)
    assert (left.arm, right.arm, left.seed, right.seed) == ("baseline", "sar+no-skip", 0, 0)
    # a run being trained (its lock names a live process) and one that stopped are listed as such
    copy = tmp_path / "results"
    shutil.copytree(results / "weights", copy / "weights")
    for seed, holder in ((0, f"PID {os.getpid()} on host {os.uname().nodename}\n"), (1, "")):
        run = copy / "runs" / "smoke" / "synthetic-colour-tiny" / "vit_nano_patch4" / "baseline" / "e2" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "config.json").write_text((results / "runs" / run.relative_to(copy / "runs") / "config.json").read_text())
        (run / LOCK).write_text(holder)
    states = {(e.seed, e.source): e.status for e in explore.find_runs(copy) if e.arm == "baseline"}
    assert states == {(0, "weights"): "finished", (0, "trained"): "training", (1, "weights"): "finished",
                      (1, "trained"): "stopped"}


def test_the_maps_per_head_agree_with_the_suites_jaccard(results):
    model, cfg = load_weights(next((results / "weights").rglob("sar+no-skip/e2/seed1")))
    images, labels, masks, pixels = explore._images(cfg.dataset, cfg.img_size, None)
    maps = explore.image_maps(model, images, masks)
    n, heads = maps["entropy"].shape
    assert n == len(images) == len(labels) and maps["heat"].shape[:2] == (n, heads)
    assert torch.allclose(maps["heat"].flatten(2).sum(-1), torch.ones(n, heads), atol=1e-5)
    keep = torch.nn.functional.interpolate(maps["dino"].float(), size=masks.shape[-2:], mode="nearest").bool()
    best = single_object_jaccard(keep, masks)  # the robustness scores' best head
    assert torch.allclose(maps["jaccard"].amax(1), best, equal_nan=True)
    assert ((maps["regions"] >= 1) & (maps["entropy"] >= 0)).all()


def test_every_selection_redraws_and_two_runs_are_side_by_side(results):
    ex = explore.Explorer(results)
    assert (ex.left.value.arm, ex.right.value.arm) == ("baseline", "sar+no-skip")
    assert ex.head.options[0] == "mean" and len(ex.head.options) > 2 and ex.picture.value and ex.curve.value
    seen = {ex.picture.value}
    for change in (lambda: setattr(ex.head, "value", "0"), lambda: setattr(ex.head, "value", "1"),
                   lambda: setattr(ex.index, "value", 3), lambda: setattr(ex.right, "value", ex.left.value)):
        change()
        assert ex.picture.value not in seen, "a selection did not change the drawn image"
        seen.add(ex.picture.value)
    ex.klass.value = ex.klass.options[2]
    labels = ex._data(ex.left.value)[0]
    assert all(int(labels[i]) == 1 for i in ex._order) and ex.index.max == len(ex._order) - 1
    ex.klass.value = "all"
    ex.wrong.value = True
    wrong = ex._maps[(ex.left.value.path, None)]["probs"].argmax(-1) != labels
    assert ex._order == wrong.nonzero().flatten().tolist()
    fig = explore.draw([("a", ex._maps[(ex.left.value.path, None)]), ("b", ex._maps[(ex.left.value.path, None)])],
                       np.zeros((32, 32, 3)), None, 0, "mean", 0, ["x"] * 10)
    assert len(fig.axes) == 10  # two rows of five panels


def test_a_users_image_and_run_folder_are_drawn_and_bad_ones_are_one_line(results, tmp_path):
    import datetime
    import io

    from PIL import Image

    ex = explore.Explorer(results)
    test_view = ex.picture.value
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(buffer, "PNG")
    photo = buffer.getvalue()
    ex.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(photo), "content": memoryview(photo),
                        "last_modified": datetime.datetime(2026, 1, 1)},)
    assert ex.picture.value != test_view and "your image (mine.png)" in ex.status.value
    ex.upload.value = ({"name": "x.png", "type": "image/png", "size": 4, "content": memoryview(b"\x80abc"),
                        "last_modified": datetime.datetime(2026, 1, 1)},)
    assert ex.status.value.startswith("the upload is not an image") and "\n" not in ex.status.value
    ex.upload.value = ()
    assert ex.picture.value == test_view  # back to the test image it showed
    mine = next((results / "runs").rglob("baseline/e2/seed1"))
    ex.add_run(str(mine))
    assert ex.right.value.path == mine and ex.right.value.variant == "(added)"
    ex.add_run(str(tmp_path / "nowhere"))
    assert ex.status.value.startswith(f"cannot add {tmp_path / 'nowhere'}")


def test_the_committed_weights_are_table2s_cpu_runs_and_load():
    """A fresh clone explores table2's cpu-profile runs without training: their weights are committed."""
    expected = {r.run_dir.relative_to(Path("results/runs")) for r in plan("table2", profile="cpu",
                                                                          runs_root="results/runs")}
    base = REPO / "results" / explore.WEIGHTS_DIR
    found = {p.parent.relative_to(base) for p in base.rglob(WEIGHTS_FILE)}
    assert found == expected
    total = sum((base / p / WEIGHTS_FILE).stat().st_size for p in found)
    assert total < 12 << 20
    for rel in sorted(found)[:: max(1, len(found) // 4)]:
        model, cfg = load_weights(base / rel)
        assert cfg.profile == "cpu" and not model.training


def test_a_run_keeps_snapshots_after_the_epochs_asked_and_the_slider_shows_them(results, tmp_path, interrupt_at_epoch):
    from sarlib.train.checkpoint import read_checkpoint

    run = next((results / "runs").rglob("sar+no-skip/e2/seed0"))
    assert kept_snapshots(run) == [1] and kept_snapshots(results / explore.WEIGHTS_DIR / run.relative_to(results / "runs")) == [1]
    # the snapshot is the model as it was after epoch 1: the same run stopped there holds it in its checkpoint
    from sarlib.train.rundir import saved_config
    cfg = TrainConfig.from_dict(saved_config(run)[0]).replace(output_dir=str(tmp_path / "again"), keep_checkpoints="")
    with pytest.raises(interrupt_at_epoch(1)):
        train(cfg)
    after_one = read_checkpoint(tmp_path / "again" / "checkpoint.pth", fix="-", needs=("model",))["model"]
    snapshot, _ = load_weights(run, epoch=1)
    final, _ = load_weights(results / explore.WEIGHTS_DIR / run.relative_to(results / "runs"))
    for name, value in snapshot.state_dict().items():
        assert torch.allclose(value, after_one[name].float(), atol=2e-3), name  # float16 rounding only
    assert any(not torch.allclose(v, final.state_dict()[k]) for k, v in snapshot.state_dict().items())

    ex = explore.Explorer(results)
    assert list(ex.epoch.options) == [1, "final"] and ex.epoch.layout.display == ""
    final_view = ex.picture.value
    ex.epoch.value = 1
    assert ex.picture.value != final_view and (ex.left.value.path, 1) in ex._maps
    assert not torch.equal(ex._maps[(ex.right.value.path, 1)]["heat"], ex._maps[(ex.right.value.path, None)]["heat"])
    ex.epoch.value = "final"
    assert ex.picture.value == final_view
    (run.parent.parent.parent / "baseline" / "e2" / "seed0" / "epochs" / "1.safetensors").rename(tmp_path / "moved")
    try:  # the left run no longer kept epoch 1: nothing in common, the slider hides
        ex = explore.Explorer(results)
        assert list(ex.epoch.options) == ["final"] and ex.epoch.layout.display == "none"
    finally:
        (tmp_path / "moved").rename(run.parent.parent.parent / "baseline" / "e2" / "seed0" / "epochs" / "1.safetensors")


@pytest.mark.parametrize("text, epochs, problem", [
    ("5,10, 2", 10, None), ("", 3, None), ("0", 3, "distinct epochs >= 1"), ("2,2", 3, "distinct epochs >= 1"),
    ("x", 3, "distinct epochs >= 1"), ("1.5", 3, "distinct epochs >= 1"), ("4", 3, "after the run's last \\(3\\)")])
def test_keep_checkpoints_is_checked_in_one_line(text, epochs, problem):
    if problem is None:
        assert TrainConfig(epochs=epochs, keep_checkpoints=text).keep_checkpoints == text
        return
    with pytest.raises(ValueError, match=problem) as err:
        TrainConfig(epochs=epochs, keep_checkpoints=text)
    assert "--keep-checkpoints" in str(err.value) and "\n" not in str(err.value)


def test_a_forged_snapshot_is_one_line_in_the_status_not_a_traceback(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results / "weights", copy / "weights")
    ex = explore.Explorer(copy)
    assert list(ex.epoch.options) == [1, "final"]
    (ex.right.value.path / "epochs" / "1.safetensors").write_bytes(b"\x80\x04 a pickle is not a weights file")
    before = ex.picture.value
    ex.epoch.value = 1
    assert ex.status.value.startswith("cannot show this selection:") and "cannot be read" in ex.status.value
    assert "\n" not in ex.status.value and ex.picture.value == before
