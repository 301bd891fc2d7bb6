"""The robustness target's own parts: one-pass scores against the separate evaluators, clean slices that give
exactly the test loader's tensors, the mCE tables on hand-made detail rows, and its parameter checks.
(The corruptions and the ImageNet-C / -A readers have their own test files; the notebook runs at smoke
scale with the others.)"""

import numpy as np
import pandas as pd
import pytest
import torch

from sarlib import create_model
from sarlib.data import build_dataset
from sarlib.data.corrupted import clean_test_set
from sarlib.data.transforms import eval_transform
from sarlib.metrics.attention import attention_stats
from sarlib.metrics.jaccard import evaluate_jaccard, object_jaccard
from sarlib.metrics.scores import score_images, single_object_jaccard
from sarlib.models.cnn import create_cnn
from sarlib.report.summaries import robustness_scores
from sarlib.study import ParameterError
from sarlib.study.robustness import check_corruptions, measure_robustness
from sarlib.train.engine import evaluate
from test_fashion_mnist import no_default_places, write_fashion_mnist  # noqa: F401 (a fixture)


def _vit(img_size=32, classes=5):
    torch.manual_seed(0)
    return create_model("vit_nano_patch4", num_classes=classes, img_size=img_size).eval()


def test_single_object_jaccard_is_object_jaccard_on_one_object_masks():
    gen = torch.Generator().manual_seed(0)
    keep = torch.rand(16, 3, 12, 12, generator=gen) > 0.6
    objects = (torch.rand(16, 12, 12, generator=gen) > 0.5).long()
    objects[3] = 0  # no object: no score, as object_jaccard's None
    fast = single_object_jaccard(keep, objects)
    for i in range(16):
        slow = object_jaccard(keep[i], objects[i])
        assert (slow is None and fast[i].isnan()) or fast[i] == pytest.approx(float(slow))


def test_one_pass_scores_are_the_separate_evaluators():
    model = _vit()
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(70, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 5, (70,), generator=gen)
    masks = (torch.rand(70, 32, 32, generator=gen) > 0.7).long()
    got = score_images(model, images, labels, masks, batch_size=32)
    loader = [(images[i:i + 32], labels[i:i + 32]) for i in range(0, 70, 32)]
    seg = [(images[i:i + 32], masks[i:i + 32]) for i in range(0, 70, 32)]
    cpu = torch.device("cpu")
    assert got["top1"] == pytest.approx(evaluate(model, loader, cpu)["top1"])
    stats = attention_stats(model, loader, device=cpu)
    assert got["entropy"] == pytest.approx(stats["entropy"], rel=1e-5)
    assert got["regions"] == pytest.approx(stats["regions"])
    assert got["jaccard"] == pytest.approx(evaluate_jaccard(model, seg, device=cpu), abs=1e-6)


def test_a_cnn_gets_top1_only_and_several_objects_are_refused():
    torch.manual_seed(0)
    cnn = create_cnn("cnn_micro", num_classes=5).eval()
    images, labels = torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)
    got = score_images(cnn, images, labels, torch.ones(8, 32, 32, dtype=torch.long))
    assert 0 <= got["top1"] <= 100 and np.isnan(got["entropy"]) and np.isnan(got["jaccard"])
    with pytest.raises(ValueError, match="one object per image"):
        score_images(_vit(), images, labels, torch.full((8, 32, 32), 2))


def test_a_synthetic_clean_slice_is_the_test_loader_s_tensors(tmp_path):
    clean = clean_test_set("synthetic-colour-tiny", per_class=3, img_size=32, cache_dir=tmp_path)
    test = build_dataset("synthetic-colour-tiny", split="val", cache_dir=tmp_path)
    labels = test.targets.numpy()
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:3] for c in np.unique(labels)]))
    assert clean.images.dtype == np.uint8 and clean.images.shape == (len(keep), 32, 32, 3)
    assert (clean.labels == labels[keep]).all()
    assert torch.equal(clean.to_tensor(clean.images), torch.stack([test[int(i)][0] for i in keep]))
    assert set(np.unique(clean.masks)) <= {0, 1} and clean.masks.shape == (len(keep), 32, 32)


@pytest.mark.parametrize("img_size", [28, 32])
def test_a_fashion_mnist_clean_slice_is_the_test_loader_s_tensors(tmp_path, no_default_places, img_size):  # noqa: F811
    written = write_fashion_mnist(tmp_path / "data", per_class=(2, 5))
    clean = clean_test_set("fashion-mnist", per_class=2, img_size=img_size, root=tmp_path / "data")
    images, labels = written["val"]
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(10)]))
    assert clean.images.shape == (20, 28, 28) and (clean.images == images[keep]).all()
    test = build_dataset("fashion-mnist", split="val", root=tmp_path / "data",
                         transform=eval_transform("fashion-mnist", img_size))
    assert torch.equal(clean.to_tensor(clean.images), torch.stack([test[int(i)][0] for i in keep]))
    # the silhouette, padded as the image is
    pad = (img_size - 28) // 2
    assert clean.masks.shape == (20, img_size, img_size)
    assert (clean.masks[:, pad:pad + 28, pad:pad + 28] == (images[keep] > 0)).all()


def test_a_dataset_without_stored_pixels_is_refused_naming_those_that_work():
    with pytest.raises(ValueError, match="cannot be corrupted in memory.*fashion-mnist"):
        clean_test_set("cifar10", per_class=1, img_size=32)


def test_the_key_changes_with_the_images(tmp_path):
    a = clean_test_set("synthetic-colour-tiny", per_class=2, img_size=32, cache_dir=tmp_path)
    b = clean_test_set("synthetic-colour-tiny", per_class=3, img_size=32, cache_dir=tmp_path)
    assert a.key != b.key and a.key == clean_test_set("synthetic-colour-tiny", per_class=2, img_size=32,
                                                      cache_dir=tmp_path).key


def _detail(top1: dict, clean: dict, jaccard: float = 0.5) -> pd.DataFrame:
    """Detail rows of one seed: per arm, its clean top-1 and top-1 per (corruption, severity 1..5)."""
    rows = []
    for arm, per_corruption in top1.items():
        rows.append(dict(dataset="d", arm=arm, seed=0, run_dir=arm, corruption="none", family="none", severity=0,
                         n_images=10, top1=clean[arm], entropy=1.0, regions=2.0, jaccard=jaccard))
        for c, values in per_corruption.items():
            rows += [dict(dataset="d", arm=arm, seed=0, run_dir=arm, corruption=c, family="noise", severity=s,
                          n_images=10, top1=v, entropy=1.0, regions=2.0, jaccard=jaccard)
                     for s, v in enumerate(values, 1)]
    return pd.DataFrame(rows)


def test_mce_is_one_for_the_baseline_and_halves_with_half_the_errors():
    base = {"a": [90, 80, 70, 60, 50], "b": [90, 90, 90, 90, 90]}
    half = {c: [100 - (100 - v) / 2 for v in values] for c, values in base.items()}
    per_run, per_corruption = robustness_scores(_detail({"baseline": base, "sar+no-skip": half},
                                                        {"baseline": 95, "sar+no-skip": 97.5}))
    scores = per_run.set_index("run_dir")
    assert scores.loc["baseline", "mce"] == pytest.approx(1) and scores.loc["sar+no-skip", "mce"] == pytest.approx(0.5)
    assert scores.loc["baseline", "top1_corrupted"] == pytest.approx(np.mean(base["a"] + base["b"]))
    # relative CE: the drop from clean summed over severities, over the baseline's drop
    assert scores.loc["sar+no-skip", "relative_mce"] == pytest.approx(0.5)
    assert set(per_corruption["ce"].round(6)) == {1.0, 0.5}


def test_a_corruption_the_baseline_does_not_suffer_is_left_out_of_relative_mce_for_every_arm():
    base = {"a": [90, 80, 70, 60, 50], "easy": [95, 95, 95, 95, 95]}
    other = {"a": [92, 84, 76, 68, 60], "easy": [90, 90, 90, 90, 90]}
    per_run, _ = robustness_scores(_detail({"baseline": base, "sar+no-skip": other},
                                           {"baseline": 95, "sar+no-skip": 95}))
    scores = per_run.set_index("run_dir")
    assert (scores["relative_n"] == 1).all()
    assert scores.loc["sar+no-skip", "relative_mce"] == pytest.approx((3 + 11 + 19 + 27 + 35) / (5 + 15 + 25 + 35 + 45))


def test_a_seed_without_its_baseline_is_one_clear_error():
    with pytest.raises(ValueError, match="no baseline run of d seed 0"):
        robustness_scores(_detail({"sar+no-skip": {"a": [90] * 5}}, {"sar+no-skip": 95}))


@pytest.mark.parametrize("value, message", [
    ("gaussian_noise", "non-empty list"), ([], "non-empty list"), (["nope"], "unknown corruptions"),
    (["fog", "fog"], "more than once")])
def test_bad_corruption_lists_are_one_line(value, message):
    with pytest.raises(ParameterError, match=message):
        check_corruptions(value)


@pytest.mark.parametrize("per_class", [0, -1, 1.5, True, "10"])
def test_bad_per_class_is_one_line_before_anything_is_read(per_class):
    with pytest.raises(ParameterError, match="per_class must be a positive int"):
        measure_robustness([], per_class=per_class)


def _jpegs(folder, wnids, n=2):
    from PIL import Image

    for k, wnid in enumerate(wnids):
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (40, 40), (30 * k + 10 * i, 60, 90)).save(folder / wnid / f"i{i}.JPEG")


def test_imagenet_models_read_the_released_benchmarks_under_their_data_root(tmp_path):
    from sarlib.study.robustness import _benchmark_copies
    from sarlib.train import TrainConfig

    classes = ["n01", "n02", "n03"]
    _jpegs(tmp_path / "val", classes)
    for severity in (1, 2):
        _jpegs(tmp_path / "imagenet-c" / "fog" / str(severity), classes + ["n09"])  # n09: not the model's
    _jpegs(tmp_path / "imagenet-a", ["n02", "n07"])
    cfg = TrainConfig(dataset="imagenet", img_size=32, data_root=str(tmp_path))
    model = _vit(classes=3)
    copies = list(_benchmark_copies("imagenet", cfg, [(None, model)], corruptions=None, levels=[1, 2, 3],
                                    per_class=None, batch_size=4, device=torch.device("cpu"), progress=False))
    assert [(name, severity, family) for name, severity, family, _ in copies] == [
        ("none", 0, "none"), ("fog", 1, "weather"), ("fog", 2, "weather"), ("imagenet-a", 1, "natural adversarial")]
    counts = [scores[0]["n_images"] for *_, scores in copies]
    assert counts == [6, 6, 6, 2]  # n09 skipped; ImageNet-A: the images of the one shared class
    # ImageNet-A's top-1 takes the argmax over the classes it shares with the model: n02 alone, so every hit
    assert copies[-1][3][0]["top1"] == 100.0 and np.isnan(copies[-1][3][0]["jaccard"])
    with pytest.raises(ParameterError, match="no ImageNet-C folder for \\['snow'\\]"):
        list(_benchmark_copies("imagenet", cfg, [(None, model)], corruptions=["snow"], levels=[1], per_class=None,
                               batch_size=4, device=torch.device("cpu"), progress=False))
    bare = cfg.replace(data_root=str(tmp_path / "val"))
    with pytest.raises(ValueError, match="imagenet-c/<corruption>/<severity>"):
        list(_benchmark_copies("imagenet", bare, [(None, model)], corruptions=None, levels=[1], per_class=None,
                               batch_size=4, device=torch.device("cpu"), progress=False))
