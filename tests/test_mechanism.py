import numpy as np
import pytest
import torch

from oracles import scipy_labels
from sarlib import create_model, spatial_entropy
from sarlib.metrics.attention import attention_stats, region_counts


def _scipy_region_count(x: np.ndarray, grid) -> int:
    return int(scipy_labels((x > x.mean()).reshape(grid)).max())


@pytest.mark.parametrize("grid", [(8, 8), (14, 14), (5, 9)])
def test_region_counts_match_scipy(grid):
    gen = torch.Generator().manual_seed(0)
    # sparse bumps give many regions, smooth noise few: cover both
    logits = torch.randn(6, 4, grid[0] * grid[1], generator=gen) ** 3
    got = region_counts(logits, grid)
    want = [[_scipy_region_count(logits[b, h].numpy(), grid) for h in range(4)] for b in range(6)]
    assert got.tolist() == want


def test_region_counts_extremes():
    grid = (6, 6)
    one_blob = torch.zeros(1, 1, 36)
    one_blob[0, 0, :3] = 5.0  # a single above-mean run in the first row
    checker = torch.tensor([[(r + c) % 2 for c in range(6)] for r in range(6)], dtype=torch.float32)
    stripes = torch.tensor([[r % 2 for c in range(6)] for r in range(6)], dtype=torch.float32)
    logits = torch.stack([one_blob[0, 0], checker.flatten(), stripes.flatten(), torch.zeros(36)]).view(1, 4, 36)
    # checkerboard cells touch diagonally: one 8-connected region; rows 1, 3, 5 are three regions;
    # a constant map has no above-mean cell
    assert region_counts(logits, grid).tolist() == [[1, 1, 3, 0]]


def test_attention_stats_average_the_loss_and_regions_over_maps():
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", num_classes=3, img_size=32, patch_size=4, embed_dim=24,
                         depth=1, num_heads=2).eval()
    images = torch.randn(10, 3, 32, 32)
    loader = [(images[:6], torch.zeros(6)), (images[6:], torch.zeros(4))]
    stats = attention_stats(model, loader, device=torch.device("cpu"))
    from sarlib import forward_with_attention

    with torch.no_grad():
        _, cls = forward_with_attention(model, images)
    assert stats["entropy"] == pytest.approx(float(spatial_entropy(cls, (8, 8))), rel=1e-5)
    assert stats["regions"] == pytest.approx(float(region_counts(cls, (8, 8)).float().mean()))
    assert attention_stats(model, loader, device=torch.device("cpu"), max_images=6)["entropy"] == pytest.approx(
        float(spatial_entropy(cls[:6], (8, 8))), rel=1e-5)
    with pytest.raises(ValueError, match="empty loader"):
        attention_stats(model, [], device=torch.device("cpu"))
