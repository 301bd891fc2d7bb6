"""The `paper` profile, shrunk only in size, trained on exported ImageNet-format files and scored on an
exported VOC layout: the same code path as a real run (PIL decoding, RandAugment, random erasing,
mixup/cutmix with soft targets, EMA, SAR + no-skip, checkpoint and resume, a data root)."""

import json

import pytest
import torch
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing
from timm.loss import SoftTargetCrossEntropy

from sarlib.train import train
import sarlib.train.checkpoint as checkpoint
from sarlib.train.setup import loss_fn
from sarlib.train.config import load_profile
from sarlib.data.synthetic.export import export_imagefolder, export_voc
from sarlib.data.transforms import build_transforms

# What a DeiT-S run changes to fit CI: image and model size, batch, steps. Everything else is the profile's.
SIZE_OVERRIDES = dict(
    img_size=32,
    model_kwargs=dict(patch_size=4, embed_dim=48, depth=2, num_heads=3),  # DeiT-tiny's shape, narrower
    batch_size=8,
    epochs=2,
    max_steps_per_epoch=2,
    num_workers=0,
    device="cpu",
    threads=1,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    export_imagefolder(root, size=32, num_train=20, num_val=10, num_classes=4)
    export_voc(root, size=32, num_val=4, num_classes=4)
    return root


def _config(data_root, output_dir):
    # The profile's EMA setting is a recipe decision; it is switched on here so its path always runs.
    return load_profile("paper", dataset="imagenet", data_root=str(data_root), seg_dataset="voc2012",
                       model_ema=True, output_dir=str(output_dir), **SIZE_OVERRIDES)


def _history(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_paper_profile_uses_the_deit_pipeline(data_root, tmp_path):
    cfg = _config(data_root, tmp_path)
    assert (cfg.model, cfg.augment, cfg.regularizer, cfg.no_skip) == ("deit_small_patch16_224", "deit", "sar", True)
    train_tf, _ = build_transforms(cfg)
    kinds = {type(t) for t in train_tf.transforms}
    assert RandomErasing in kinds and any(isinstance(t, RandAugment) for t in train_tf.transforms)
    assert isinstance(loss_fn(cfg, mixup_on=cfg.mixup > 0 or cfg.cutmix > 0), SoftTargetCrossEntropy)


def test_paper_recipe_trains_on_exported_files_scores_voc_and_resumes_exactly(data_root, tmp_path, monkeypatch, capfd):
    ref = train(_config(data_root, tmp_path / "ref"))
    assert ref["complete"] and ref["epochs"] == 2
    assert 0.0 <= ref["jaccard"] <= 1.0 and ref["top1_ema_final"] is not None
    history = _history(tmp_path / "ref")
    assert all(r["reg_term"] is not None and r["reg_skips"] == 0 for r in history)  # SAR ran on every step
    assert history[1]["lambda"] > 0 and torch.isfinite(torch.tensor([r["loss"] for r in history])).all()

    # Stop the second run right after its first checkpoint, as a kill between epochs would.
    class Stop(Exception):
        pass

    saves = []
    real_save = checkpoint.atomic_torch_save

    def save_then_stop(obj, path):
        real_save(obj, path)
        saves.append(path)
        raise Stop

    run_dir = tmp_path / "killed"
    monkeypatch.setattr(checkpoint, "atomic_torch_save", save_then_stop)
    with pytest.raises(Stop):
        train(_config(data_root, run_dir))
    monkeypatch.setattr(checkpoint, "atomic_torch_save", real_save)
    assert len(saves) == 1 and not (run_dir / "metrics.json").exists()

    resumed = train(_config(data_root, run_dir))
    assert "resuming" in capfd.readouterr().err
    for key in ("top1_best", "top1_final", "top5_final", "jaccard", "top1_ema_final", "best_epoch"):
        assert resumed[key] == ref[key], key
    assert [r["loss"] for r in _history(run_dir)] == [r["loss"] for r in history]
