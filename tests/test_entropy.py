import cv2
import numpy as np
import pytest
import torch

from sarlib import SpatialEntropyLoss, spatial_entropy
from oracles import per_map_entropy, serpentine

METHODS = ("scipy", "union-find")


def _cv2_entropy(x: np.ndarray, grid) -> float:
    """A second oracle, OpenCV labels in float64 NumPy (no torch), for one map."""
    m = x.mean()
    fg = (x > m).reshape(grid).astype(np.uint8)
    n, labels = cv2.connectedComponents(fg, connectivity=8)
    a = np.maximum(x - m, 0).reshape(grid)
    masses = np.array([a[labels == c].sum() for c in range(1, n)])
    if masses.size == 0 or masses.sum() == 0:
        return 0.0
    p = masses / masses.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("grid", [(14, 14), (7, 9), (12, 20), (1, 16)])
@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_values_and_gradients_match_per_map_oracle(grid, scale, method):
    gen = torch.Generator().manual_seed(grid[0] * 100 + grid[1])
    x = (torch.randn(4, 3, grid[0] * grid[1], generator=gen, dtype=torch.float64) * scale).float()
    ours_in = x.clone().requires_grad_(True)
    ref_in = x.double().clone().requires_grad_(True)
    ours = spatial_entropy(ours_in, grid, label_method=method)
    ref = per_map_entropy(ref_in, grid)
    ours.backward()
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-7)
    torch.testing.assert_close(ours_in.grad.double(), ref_in.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_values_match_opencv_oracle_per_map(method):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 6, 196, generator=gen)
    per_map = spatial_entropy(x, (14, 14), reduction="none", label_method=method)
    assert per_map.shape == (8, 6)
    for b in range(8):
        for h in range(6):
            assert per_map[b, h].item() == pytest.approx(_cv2_entropy(x[b, h].double().numpy(), (14, 14)), rel=1e-6, abs=1e-7)


def test_one_region_has_zero_entropy_and_equal_regions_have_log_n():
    x = torch.zeros(1, 1, 196)
    x.view(14, 14)[3:8, 3:8] = 1.0
    assert spatial_entropy(x, (14, 14)).item() == pytest.approx(0.0, abs=1e-7)
    y = torch.zeros(1, 1, 196)
    grid = y.view(14, 14)
    for r, c in [(1, 1), (1, 10), (10, 1), (10, 10)]:  # four separated equal blobs
        grid[r : r + 2, c : c + 2] = 1.0
    assert spatial_entropy(y, (14, 14)).item() == pytest.approx(np.log(4), rel=1e-6)


def test_diagonal_contact_joins_regions():
    x = torch.zeros(1, 1, 16)
    x.view(4, 4)[0, 0] = x.view(4, 4)[1, 1] = 1.0  # touch only at a corner: one 8-connected region
    assert spatial_entropy(x, (4, 4)).item() == pytest.approx(0.0, abs=1e-7)


def test_serpentine_is_one_region():
    x = torch.from_numpy(serpentine(14, 14)).float().view(1, 1, 196)
    assert spatial_entropy(x, (14, 14)).item() == pytest.approx(0.0, abs=1e-7)


def test_constant_maps_give_zero_not_nan_with_finite_gradients():
    x = torch.full((2, 3, 196), 3.5, requires_grad=True)
    loss = spatial_entropy(x, (14, 14))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(x.grad).all()


def test_tiny_share_is_finite_with_finite_gradients():
    # Shares of exactly 0 occur in every call (bins with no component) and are masked; this covers the
    # smallest share float32 can produce: a one-cell region barely above the mean beside a huge region.
    x = torch.zeros(1, 1, 196)
    g = x.view(14, 14)
    g[2:6, 2:6] = 1e6
    g[10, 10] = 82052.0  # just above the mean (16e6 + 82052) / 196 = 82051.3
    x.requires_grad_(True)
    per_map = spatial_entropy(x, (14, 14), reduction="none")
    per_map.sum().backward()
    share = (82052.0 - (16e6 + 82052.0) / 196) / (16 * (1e6 - (16e6 + 82052.0) / 196))
    assert 0 < share < 1e-7
    assert per_map.item() == pytest.approx(-(share * np.log(share) + (1 - share) * np.log1p(-share)), rel=1e-2)
    assert torch.isfinite(x.grad).all()


def test_float32_inside_autocast_and_half_inputs():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, 196, generator=gen)
    ref = spatial_entropy(x, (14, 14))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = spatial_entropy(x, (14, 14))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    half = spatial_entropy(x.to(torch.bfloat16), (14, 14))
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_nan_logits_are_reported_not_hidden():
    x = torch.randn(2, 2, 196)
    x[1, 0, 5] = float("nan")
    per_map = spatial_entropy(x, (14, 14), reduction="none")
    assert torch.isnan(per_map[1, 0]) and torch.isfinite(per_map[0]).all()
    assert torch.isnan(spatial_entropy(x, (14, 14)))
    with pytest.raises(ValueError, match="learning rate"):
        spatial_entropy(x, (14, 14), check_finite=True)


def test_bad_shapes_have_clear_errors():
    with pytest.raises(ValueError, match="grid 14x15"):
        spatial_entropy(torch.randn(2, 3, 196), (14, 15))
    with pytest.raises(ValueError, match="prefix tokens"):
        spatial_entropy(torch.randn(2, 3, 197), (14, 14))
    with pytest.raises(ValueError, match=r"\(batch, heads, patches\)"):
        spatial_entropy(torch.randn(3, 196), (14, 14))
    with pytest.raises(ValueError, match="reduction"):
        spatial_entropy(torch.randn(1, 1, 4), (2, 2), reduction="sum")


def test_label_methods_give_bit_identical_loss_and_gradients():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(16, 6, 196, generator=gen)
    results = []
    for method in ("auto",) + METHODS:
        inp = x.clone().requires_grad_(True)
        loss = spatial_entropy(inp, (14, 14), label_method=method)
        loss.backward()
        results.append((loss.detach(), inp.grad))
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1])
    with pytest.raises(ValueError, match="method must be one of"):
        spatial_entropy(x, (14, 14), label_method="cv2")


def test_module_form_matches_function():
    x = torch.randn(3, 2, 240)
    assert SpatialEntropyLoss((12, 20))(x).item() == spatial_entropy(x, (12, 20)).item()
    uf = SpatialEntropyLoss((12, 20), label_method="union-find")(x)
    assert uf.item() == spatial_entropy(x, (12, 20)).item()
    assert "grid=(12, 20)" in repr(SpatialEntropyLoss((12, 20)))
