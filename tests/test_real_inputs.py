"""Real inputs at scale: the paper recipe over tens of thousands of decoded images, RandAugment's
posterize under every Pillow, and a failing sample inside a loader worker.

A failure that strikes one image in a few hundred (posterize with 0 bits under Pillow 13), one epoch
boundary or the last short batch never shows in a test that pushes a few dozen images through the
transform; the soak below draws more than 20,000 images through the paper profile's real pipeline.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from timm.data import auto_augment as timm_aa

from sarlib.train import train
import sarlib.train.checkpoint as checkpoint
from sarlib.train.config import load_profile
from sarlib.data import GuardedSamples, ImageListDataset, SampleError
from sarlib.data.synthetic.export import export_imagefolder, export_voc
from sarlib.train.cli import main
from sarlib.utils.text import one_line
from sarlib.data.transforms import NamedCompose, TransformError, build_transforms, posterize_keep_zero

TINY = dict(img_size=32, model_kwargs=dict(patch_size=4, embed_dim=48, depth=2, num_heads=3), device="cpu",
            threads=1)


def _paper(data_root, output_dir, **overrides):
    return load_profile("paper", dataset="imagenet", data_root=str(data_root), output_dir=str(output_dir),
                       **{**TINY, **overrides})


def _pil_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


# ----------------------------------------------------------------------------- posterize with 0 bits


def test_posterize_with_zero_bits_is_a_black_image_with_every_pillow():
    """Upstream-ready reproduction (timm 1.0.31, Pillow 13.0.0):

        >>> from PIL import Image
        >>> from timm.data.auto_augment import AugmentOp
        >>> op = AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)  # 4 - int(4 * 10 / 10) = 0 bits
        >>> op(Image.new("RGB", (8, 8), "white"))
        ValueError: bits must be between or equal to 1 and 8

    Pillow < 13 returned a black image for 0 bits (the mask ~(2**8 - 1) clears every value), which is
    what `rand-m9-mstd0.5-inc1` meant whenever its magnitude noise reached 10. timm's `posterize` passes
    0 through to Pillow; `sarlib.data.transforms.posterize_keep_zero` keeps the old result.
    """
    white = Image.new("RGB", (8, 8), "white")
    assert np.asarray(posterize_keep_zero(white, 0)).max() == 0
    assert posterize_keep_zero(white, 0).mode == "RGB"
    image = _pil_images(1)[0]
    for bits in (1, 2, 3, 4):  # every other level is Pillow's own posterize
        assert np.array_equal(np.asarray(posterize_keep_zero(image, bits)), np.asarray(ImageOps.posterize(image, bits)))
    assert posterize_keep_zero(image, 8) is image

    op = timm_aa.AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)
    op.aug_fn = posterize_keep_zero
    assert np.asarray(op(white)).max() == 0


def test_the_paper_transform_posterizes_with_the_safe_op_and_survives_thousands_of_images(tmp_path):
    cfg = _paper(tmp_path, tmp_path / "run")
    train_tf, _ = build_transforms(cfg)
    ops = [op for step in train_tf.transforms for op in getattr(step, "ops", [])]
    posterize = [op for op in ops if "Posterize" in op.name]
    assert posterize and all(op.aug_fn is posterize_keep_zero for op in posterize)
    assert len(ops) == 15  # the op is wrapped, not dropped: the policy keeps all of its ops
    # 0 bits are drawn about once in 400-700 images; 4,000 images meet it several times
    torch.manual_seed(0)
    np.random.seed(0)
    for image in _pil_images(50) * 80:
        assert train_tf(image).shape == (3, 32, 32)


# ----------------------------------------------------------------------------- the soak


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """2,101 training images (an odd remainder of 53 after 32 batches of 64), 201 test images and a
    301-image VOC layout, all JPEG/PNG files decoded by PIL as a real dataset is."""
    root = tmp_path_factory.mktemp("exported")
    export_imagefolder(root, size=32, num_train=2101, num_val=201, num_classes=4)
    export_voc(root, size=32, num_val=301, num_classes=4)
    return root


def test_soak_the_paper_recipe_over_20k_exported_images(exported, tmp_path, monkeypatch):
    """PIL decode, RandAugment, random erasing, mixup/CutMix, the SAR term on the no-skip block, two
    loader workers, a checkpoint at each of 10 epoch boundaries, the eval transform over the test set and
    the VOC set: 20,480 training images in all, the odd last batch of every epoch left out by the sampler
    (mixup pairs images, so a batch must be even)."""
    saves = []
    real_save = checkpoint.atomic_torch_save

    def counted_save(obj, path):
        saves.append(obj["state"]["epoch"])
        real_save(obj, path)

    monkeypatch.setattr(checkpoint, "atomic_torch_save", counted_save)
    cfg = _paper(exported, tmp_path / "run", seg_dataset="voc2012", batch_size=64, epochs=10, warmup_epochs=2,
                 num_workers=2, train_eval_images=200)
    assert cfg.mixup > 0 and cfg.cutmix > 0 and cfg.reprob > 0 and cfg.rand_augment.startswith("rand-m9")
    metrics = train(cfg)
    history = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert metrics["complete"] and saves == list(range(1, 11)) and len(history) == 10
    seen = sum(round(r["images_per_s"] * r["epoch_seconds"]) for r in history)
    assert seen == 10 * 32 * 64 >= 20_000
    assert all(np.isfinite(r["loss"]) and r["reg_term"] is not None and r["reg_skips"] == 0 for r in history)
    assert history[-1]["lambda"] > 0 and 0.0 <= metrics["jaccard"] <= 1.0
    assert metrics["train_top1_final"] is not None and metrics["entropy"] is not None


def test_a_run_with_loader_workers_resumes_exactly(exported, tmp_path, interrupt_at_epoch):
    """RandAugment and random erasing run in two worker processes; a run stopped after its first epoch
    and started again must draw the augmentations the uninterrupted run drew, epoch for epoch."""
    cfg = _paper(exported, tmp_path / "ref", batch_size=32, epochs=3, warmup_epochs=1, num_workers=2,
                 max_steps_per_epoch=3, train_eval_images=64)
    train(cfg)
    interrupted = interrupt_at_epoch(1)  # as if killed once epoch 0 was checkpointed
    cut = cfg.replace(output_dir=str(tmp_path / "cut"))
    with pytest.raises(interrupted):
        train(cut)
    train(cut)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
              for name in ("ref", "cut")]
    assert len(losses[0]) == 3 and losses[1] == losses[0]


# ----------------------------------------------------------------------------- a failing sample


def _raise_on_dark(image):
    if np.asarray(image).mean() < 60:
        raise RuntimeError("cannot handle dark images")
    return image


def test_a_transform_that_raises_in_a_worker_is_one_line_naming_dataset_sample_file_and_step(tmp_path):
    paths = []
    for k, colour in enumerate(["white", "black", "white"]):
        paths.append(tmp_path / f"img{k}.png")
        Image.new("RGB", (8, 8), colour).save(paths[-1])
    dataset = GuardedSamples(ImageListDataset(paths, [0, 1, 0], ["a", "b"], NamedCompose([_raise_on_dark])),
                             name="pets", split="train")
    assert dataset.num_classes == 2 and dataset.targets == [0, 1, 0]  # the wrapped dataset reads through
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=1)
    with pytest.raises(SampleError) as info:
        list(loader)
    line = one_line(info.value)
    assert line.startswith(f"pets train sample 1 ({paths[1]}): transform _raise_on_dark raised RuntimeError: "
                           "cannot handle dark images") and "resumes from the last finished epoch" in line


def test_a_randaugment_op_that_raises_is_named():
    op = timm_aa.AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)

    def broken(img, *args, **kwargs):
        raise ValueError("bits must be between or equal to 1 and 8")

    op.aug_fn = broken
    pipeline = NamedCompose([timm_aa.RandAugment([op], num_layers=1)])
    with pytest.raises(TransformError, match="transform RandAugment op PosterizeIncreasing raised ValueError: bits"):
        pipeline(Image.new("RGB", (8, 8), "white"))


def test_a_file_that_disappears_mid_run_stops_in_one_line_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    export_imagefolder(root, size=32, num_train=40, num_val=8, num_classes=4)
    victim = sorted((root / "train").rglob("*.JPEG"))[5]
    kept = tmp_path / "kept.JPEG"
    real_save = checkpoint.atomic_torch_save

    def save_then_lose_a_file(obj, path):
        real_save(obj, path)
        if victim.exists():
            shutil.move(victim, kept)  # gone after the first epoch's checkpoint, as on a flaky mount

    monkeypatch.setattr(checkpoint, "atomic_torch_save", save_then_lose_a_file)
    argv = ["--profile", "paper", "--dataset", "imagenet", "--data-root", str(root), "--img-size", "32",
            "--model-kwargs", json.dumps(TINY["model_kwargs"]), "--batch-size", "8", "--epochs", "2",
            "--num-workers", "2", "--threads", "1", "--device", "cpu", "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("error: imagenet train sample ") and f"({victim}): the file is gone" in err[0]
    assert "restore it" in err[0] and "resumes from the last finished epoch" in err[0]
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert ckpt["state"]["epoch"] == 1  # the finished epoch is kept

    shutil.move(kept, victim)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.err and "after epoch 1 of 2" in captured.err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 2
