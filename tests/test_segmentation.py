import math

import numpy as np
import pytest
import torch
from PIL import Image

from sarlib.sar.regularizers import total_variation
from sarlib.metrics.jaccard import object_jaccard, top_mass_masks


def test_top_mass_keeps_the_smallest_set_reaching_the_mass():
    attn = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]).view(1, 1, 5)
    assert top_mass_masks(attn, 0.6).flatten().tolist() == [True, True, False, False, False]
    assert top_mass_masks(attn, 0.5).flatten().tolist() == [True, False, False, False, False]
    assert top_mass_masks(attn, 0.71).flatten().tolist() == [True, True, True, False, False]
    # unnormalized maps (softmax rows without the prefix tokens) are normalized first
    assert torch.equal(top_mass_masks(attn * 0.9, 0.6), top_mass_masks(attn, 0.6))


def test_object_jaccard_best_head_per_object_and_void_excluded():
    objects = torch.zeros(4, 4, dtype=torch.int64)
    objects[:2, :2] = 1
    objects[2:, 2:] = 2
    objects[0, 3] = 255
    heads = torch.zeros(2, 4, 4, dtype=torch.bool)
    heads[0, :2, :2] = True  # head 0 finds object 1 exactly
    heads[1, 2:, 2:] = True
    heads[1, 2, 1] = True  # head 1 finds object 2 with one extra pixel: IoU 4/5
    heads[1, 0, 3] = True  # void pixel: ignored
    assert object_jaccard(heads, objects).item() == pytest.approx((1.0 + 0.8) / 2)
    assert object_jaccard(heads, torch.zeros(4, 4, dtype=torch.int64)) is None


def test_total_variation_prefers_smooth_maps_and_ignores_scale():
    smooth = torch.linspace(0, 1, 16).view(1, 1, 16)
    noisy = torch.randn(1, 1, 16, generator=torch.Generator().manual_seed(0))
    assert total_variation(smooth, (4, 4)) < total_variation(noisy, (4, 4))
    assert total_variation(noisy * 10, (4, 4)).item() == pytest.approx(total_variation(noisy, (4, 4)).item(), rel=1e-4)
    with pytest.raises(ValueError):
        total_variation(noisy, (3, 4))


def test_void_in_union_counts_the_void_pixels_a_head_covers():
    objects = torch.zeros(4, 4, dtype=torch.int64)
    objects[2:, 2:] = 2
    objects[0, 3] = 255
    heads = torch.zeros(1, 4, 4, dtype=torch.bool)
    heads[0, 2:, 2:] = True
    heads[0, 0, 3] = True  # one void pixel
    assert object_jaccard(heads, objects).item() == pytest.approx(1.0)
    assert object_jaccard(heads, objects, void_in_union=True).item() == pytest.approx(4 / 5)


def test_both_top_mass_formulations_keep_the_same_patches():
    from sarlib.metrics.jaccard import _ascending_top_mass_masks

    attn = torch.rand(4, 3, 7, 7, generator=torch.Generator().manual_seed(0)).softmax(-1)
    for mass in (0.3, 0.6, 0.9):
        assert torch.equal(_ascending_top_mass_masks(attn, mass), top_mass_masks(attn, mass))


# ----------------------------------------------------------------------------- the two protocols on VOC files

# A hand-built VOC sample: 48x48 palette masks, resized by the loader to 480x480 (one mask pixel -> a
# 10x10 block). Every region is a multiple of 8 mask pixels (80 px at 480), so it is exactly a union of
# cells both of the 6x6 grid of a 96 px model input ("dino") and of the 30x30 grid at 480 px ("authors").
VOC_IDS = ["2008_000001", "2008_000002"]


def _voc_masks():
    """(object ids, class ids) of the two images."""
    a_obj = np.zeros((48, 48), np.uint8)
    a_obj[0:16, 0:16] = 1  # two people (class 15)
    a_obj[0:16, 32:48] = 2
    a_obj[16:24, 0:16] = 255  # a void band under the first
    a_cls = np.where(a_obj == 255, 255, np.where(a_obj > 0, 15, 0)).astype(np.uint8)
    b_obj = np.zeros((48, 48), np.uint8)
    b_obj[24:48, 16:32] = 1  # a car (class 7)
    b_obj[32:48, 40:48] = 2  # a chair (class 9)
    b_cls = np.select([b_obj == 1, b_obj == 2], [7, 9], 0).astype(np.uint8)
    return [(a_obj, a_cls), (b_obj, b_cls)]


def _palette_png(mask, path):
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.tobytes())
    image.putpalette([0, 0, 0, 128, 0, 0] + [64, 64, 64] * 253 + [224, 224, 192])
    image.save(path)


def _make_voc(root):
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    for image_id, (obj, cls), shade in zip(VOC_IDS, _voc_masks(), (0, 255)):
        # image A is black, image B white: the controlled attention below tells them apart by brightness
        Image.new("RGB", (60, 45), (shade,) * 3).save(base / "JPEGImages" / f"{image_id}.jpg")
        _palette_png(obj, base / "SegmentationObject" / f"{image_id}.png")
        _palette_png(cls, base / "SegmentationClass" / f"{image_id}.png")
    (base / "ImageSets/Segmentation/val.txt").write_text("\n".join(VOC_IDS) + "\n")
    return base


# per image, per head: the attended rectangle (row0, row1, col0, col1) in fractions of the image
HEADS = {
    # head 0: person 1 + the void band under it; head 1: person 2 + a background band of the same size
    "A": [(0, 1 / 2, 0, 1 / 3), (0, 1 / 2, 2 / 3, 1)],
    "B": [(1 / 2, 1, 1 / 3, 2 / 3), (2 / 3, 1, 2 / 3, 1)],  # head 0: the car; head 1: twice the chair
}


def _region_attention(grid, rect):
    """A map whose 60% top-mass set is exactly the cells with centres inside `rect`: those cells share
    the mass 0.6 / (1 - 1/(2n)), so n - 1 of them hold less than 0.6 and all n hold more."""
    h, w = grid
    rows = (torch.arange(h) + 0.5) / h
    cols = (torch.arange(w) + 0.5) / w
    inside = ((rows >= rect[0]) & (rows < rect[1])).view(h, 1) & ((cols >= rect[2]) & (cols < rect[3])).view(1, w)
    n = int(inside.sum())
    mass = 0.6 / (1 - 1 / (2 * n))
    return torch.where(inside, mass / n, (1 - mass) / (h * w - n))


def _voc_cfg(root, protocol):
    from sarlib.train.config import load_profile

    return load_profile("smoke", seg_dataset="voc2012", data_root=str(root), img_size=96, seg_protocol=protocol,
                       model_kwargs=dict(patch_size=16, embed_dim=24, depth=1, num_heads=2))


@pytest.fixture
def controlled_attention(monkeypatch):
    """Replace the model's attention by HEADS, after checking the real one runs at the input's grid."""
    import sarlib.metrics.jaccard as seg
    from sarlib.models.vit import patch_grid

    real = seg.cls_attention
    grids = []

    def fake(model, images):
        grid = patch_grid(model)
        assert tuple(real(model, images).shape[-2:]) == grid  # the (resized) model really runs at this size
        grids.append(grid)
        maps = [torch.stack([_region_attention(grid, r) for r in HEADS["A" if img.mean() < 0 else "B"]])
                for img in images]
        return torch.stack(maps).to(images.device)

    monkeypatch.setattr(seg, "cls_attention", fake)
    return grids


def test_voc_class_masks_merge_instances(tmp_path):
    from sarlib.data import build_segmentation_dataset

    _make_voc(tmp_path)
    objects = build_segmentation_dataset("voc2012", root=tmp_path)[0][1]
    classes = build_segmentation_dataset("voc2012", root=tmp_path, masks="class")[0][1]
    assert objects.shape == classes.shape == (480, 480)
    assert set(objects.unique().tolist()) == {0, 1, 2, 255} and set(classes.unique().tolist()) == {0, 15, 255}
    assert torch.equal(classes == 15, (objects == 1) | (objects == 2))
    with pytest.raises(ValueError, match="masks must be"):
        build_segmentation_dataset("voc2012", root=tmp_path, masks="instance")


def test_missing_class_masks_name_the_folder(tmp_path):
    import shutil

    from sarlib.data import DatasetLayoutError, build_segmentation_dataset

    base = _make_voc(tmp_path)
    shutil.rmtree(base / "SegmentationClass")
    assert len(build_segmentation_dataset("voc2012", root=tmp_path)) == 2  # the DINO protocol needs none
    with pytest.raises(DatasetLayoutError, match="SegmentationClass"):
        build_segmentation_dataset("voc2012", root=tmp_path, masks="class")


@pytest.mark.parametrize("protocol,grid,expected", [
    # Pixels at 480x480. Each person is 160x160 = 25600 px; each band is 80x160 = 12800 px.
    # dino, image A: person 1 = head 0 exactly once the void band is ignored: 1; person 2: head 1 adds
    #   the background band: 25600 / 38400 = 2/3; A = 5/6. Image B: car 1, chair 12800 / 25600 = 0.5,
    #   B = 0.75 (B has one object per class and no void: the same under both protocols).
    ("dino", (6, 6), (5 / 6 + 0.75) / 2),
    # authors, image A: one "person" region of 51200 px; head 0: 25600 / (51200 + 12800 void) = 0.4;
    #   head 1: 25600 / (51200 + 12800 background) = 0.4; A = 0.4 (0.5 if void were excluded).
    ("authors", (30, 30), (0.4 + 0.75) / 2),
])
def test_both_protocols_give_the_hand_computed_jaccard(tmp_path, controlled_attention, protocol, grid, expected):
    from sarlib.train import build_model, build_segmentation_loader
    from sarlib.metrics.jaccard import evaluate_jaccard

    _make_voc(tmp_path)
    cfg = _voc_cfg(tmp_path, protocol)
    model = build_model(cfg, num_classes=20)
    loader = build_segmentation_loader(cfg)
    score = evaluate_jaccard(model, loader, device=torch.device("cpu"), protocol=protocol)
    assert score == pytest.approx(expected, abs=1e-6)
    assert set(controlled_attention) == {grid}
    assert tuple(model.patch_embed.grid_size) == (6, 6) and model.pos_embed.shape[1] == 37  # left untouched


def test_authors_protocol_refuses_images_not_at_the_mask_size(tmp_path):
    from sarlib.train import build_model, build_segmentation_loader
    from sarlib.metrics.jaccard import evaluate_jaccard

    _make_voc(tmp_path)
    cfg = _voc_cfg(tmp_path, "dino")
    with pytest.raises(ValueError, match="seg_protocol='authors'"):
        evaluate_jaccard(build_model(cfg, 20), build_segmentation_loader(cfg), device=torch.device("cpu"),
                         protocol="authors")
    with pytest.raises(ValueError, match="protocol must be"):
        evaluate_jaccard(build_model(cfg, 20), [], device=torch.device("cpu"), protocol="voc")


def test_protocols_agree_on_synthetic_sets(tmp_path, monkeypatch):
    """One object per image, no void, masks at the model's resolution: nothing differs but the code path."""
    from sarlib.train.config import load_profile
    from sarlib.train import build_model, build_segmentation_loader
    from sarlib.metrics.jaccard import evaluate_jaccard

    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = load_profile("smoke", seg_max_images=64)
    model = build_model(cfg, 10)
    scores = {p: evaluate_jaccard(model, build_segmentation_loader(cfg.replace(seg_protocol=p)),
                                  device=torch.device("cpu"), max_images=64, protocol=p) for p in ("dino", "authors")}
    assert 0 < scores["dino"] < 1 and scores["authors"] == pytest.approx(scores["dino"], abs=1e-6)


# ----------------------------------------------------------------------------- position embedding at 480 px


def _keys_cubic(t, a=-0.75):
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0


def _bicubic_at(grid, y, x, scale):
    """Independent bicubic sample (Keys a=-0.75, half-pixel centres, edge clamp, no antialiasing) of a
    2-D array at output pixel (y, x) for an upsampling factor `scale`."""
    h, w = grid.shape
    sy, sx = (y + 0.5) / scale - 0.5, (x + 0.5) / scale - 0.5
    iy, ix = math.floor(sy), math.floor(sx)
    total = 0.0
    for dy in range(-1, 3):
        for dx in range(-1, 3):
            weight = _keys_cubic(sy - (iy + dy)) * _keys_cubic(sx - (ix + dx))
            total += weight * float(grid[min(max(iy + dy, 0), h - 1), min(max(ix + dx, 0), w - 1)])
    return total


def test_position_embedding_is_resampled_as_the_authors_evaluation_does():
    from sarlib.models.vit import create_model
    from sarlib.models.pos_embed import interpolate_pos_embed, model_at_input_size

    model = create_model("deit_tiny_patch16_224", num_classes=5, embed_dim=24, depth=1, num_heads=2)
    torch.nn.init.normal_(model.pos_embed, std=1.0)
    resized = model_at_input_size(model, (480, 480))
    assert tuple(resized.patch_embed.grid_size) == (30, 30) and resized.pos_embed.shape == (1, 901, 24)
    assert tuple(model.patch_embed.grid_size) == (14, 14) and model.pos_embed.shape == (1, 197, 24)
    assert torch.equal(resized.pos_embed[:, 0], model.pos_embed[:, 0])  # [CLS] position unchanged
    old = model.pos_embed[0, 1:].detach().reshape(14, 14, 24)
    new = resized.pos_embed[0, 1:].detach().reshape(30, 30, 24)
    for y, x, c in [(0, 0, 0), (7, 19, 3), (29, 29, 5), (15, 2, 23)]:
        # DINO's scale factor (30 + 0.1) / 14 places the samples, not 30 / 14
        assert float(new[y, x, c]) == pytest.approx(_bicubic_at(old[..., c], y, x, 30.1 / 14), abs=1e-5)
    assert float((new[..., 0] - torch.tensor([[_bicubic_at(old[..., 0], y, x, 30 / 14) for x in range(30)]
                                              for y in range(30)])).abs().max()) > 1e-3
    assert model_at_input_size(model, (224, 224)) is model
    with pytest.raises(ValueError, match="not divisible"):
        model_at_input_size(model, (470, 470))
    assert interpolate_pos_embed(model.pos_embed, old_grid=(14, 14), new_grid=(14, 14), num_prefix_tokens=1) is model.pos_embed
    images = torch.randn(2, 3, 480, 480)
    assert resized(images).shape == (2, 5)
