import pytest
import torch

from sarlib.regularizers import total_variation
from sarlib.segmentation import object_jaccard, top_mass_masks


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
