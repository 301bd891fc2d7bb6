import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sarlib.sar.components as components
from sarlib import label_components
from oracles import (
    checkerboard,
    diagonal_chain,
    opencv_labels,
    same_partition,
    scipy_labels,
    serpentine,
    spiral,
)

SHAPES = [(14, 14), (7, 9), (28, 28), (1, 31), (31, 1), (12, 20)]
DENSITIES = [0.05, 0.3, 0.5, 0.6, 0.8, 0.95]
METHODS = ("scipy", "union-find")


def _labels(mask: torch.Tensor, method: str) -> torch.Tensor:
    """Labels from `method`, after checking that every other method returns the very same tensor."""
    got = label_components(mask, method=method)
    for other in METHODS:
        assert torch.equal(label_components(mask, method=other), got), (method, other)
    return got


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", SHAPES)
def test_random_masks_match_scipy_and_opencv(shape, method):
    gen = torch.Generator().manual_seed(hash(shape) % 2**31)
    n = 150  # 6 shapes x 6 densities x 150 = 5,400 masks
    for density in DENSITIES:
        mask = torch.rand(n, *shape, generator=gen) < density
        labels = _labels(mask, method).numpy()
        for i in range(n):
            m = mask[i].numpy()
            assert same_partition(labels[i], scipy_labels(m)), (shape, density, i)
            assert same_partition(labels[i], opencv_labels(m)), (shape, density, i)


def _adversarial():
    masks = {
        "serpentine14": serpentine(14, 14),
        "serpentine28": serpentine(28, 28),
        "serpentine_7x9": serpentine(7, 9),
        "spiral14": spiral(14),
        "spiral28": spiral(28),
        "diagonal": diagonal_chain(14, 14),
        "anti_diagonal": diagonal_chain(14, 14)[:, ::-1].copy(),
        "checkerboard": checkerboard(14, 14),
        "empty": np.zeros((14, 14), bool),
        "full": np.ones((14, 14), bool),
        "full_row": np.ones((1, 40), bool),
    }
    lone = np.zeros((14, 14), bool)
    lone[0, 0] = True
    masks["lone_cell_at_0"] = lone
    lone_last = np.zeros((14, 14), bool)
    lone_last[-1, -1] = True
    masks["lone_cell_at_end"] = lone_last
    return masks


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,mask", list(_adversarial().items()))
@pytest.mark.parametrize("flip", [False, True])
def test_adversarial_masks_match_scipy_and_opencv(name, mask, flip, method):
    # flipping puts the component's smallest index at the far end of the path: the slowest direction
    mask = mask[::-1, ::-1].copy() if flip else mask
    got = _labels(torch.from_numpy(mask)[None], method)[0].numpy()
    assert same_partition(got, scipy_labels(mask)), name
    assert same_partition(got, opencv_labels(mask)), name


@pytest.mark.parametrize("method", METHODS)
def test_adversarial_masks_in_one_batch(method):
    # all of them side by side in one call: components must not leak across neighbouring maps
    masks = [m for m in _adversarial().values() if m.shape == (14, 14)]
    batch = torch.from_numpy(np.stack(masks + [m[::-1, ::-1].copy() for m in masks]))
    got = _labels(batch, method).numpy()
    for i, m in enumerate(batch.numpy()):
        assert same_partition(got[i], scipy_labels(m)), i


def test_serpentine_is_one_component_and_few_syncs(monkeypatch):
    calls = []
    real_equal = torch.equal
    monkeypatch.setattr(components.torch, "equal", lambda a, b: calls.append(1) or real_equal(a, b))
    mask = torch.from_numpy(np.stack([serpentine(28, 28)[::-1].copy(), spiral(28)]))
    labels = label_components(mask, method="union-find")
    assert labels[0][mask[0]].unique().numel() == 1
    assert labels[1][mask[1]].unique().numel() == 1
    # ~380 cells along the serpentine: plain sweeps would need hundreds of rounds; pointer jumping does not
    assert len(calls) <= 6


@pytest.mark.parametrize("method", METHODS)
def test_batch_mixes_sizes_of_components_and_maps_are_independent(method):
    masks = torch.from_numpy(np.stack([serpentine(14, 14), checkerboard(14, 14), np.ones((14, 14), bool)]))
    batched = _labels(masks, method)
    for i in range(3):
        assert torch.equal(batched[i], label_components(masks[i : i + 1], method=method)[0])


@pytest.mark.parametrize("method", METHODS)
def test_labels_are_one_plus_first_cell_index(method):
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    mask[1, 0, 3] = mask[1, 1, 2] = True  # diagonal pair -> first cell is flat index 3 of map 1
    mask[1, 2, 0] = True  # lone cell at flat index 8
    out = label_components(mask, method=method)
    assert out.dtype == torch.int64 and out[0].sum() == 0
    out = out[1]
    assert out[0, 3] == out[1, 2] == 4 and out[2, 0] == 9 and out.sum() == 4 + 4 + 9


@pytest.mark.parametrize("method", METHODS)
def test_non_contiguous_masks(method):
    mask = torch.from_numpy(np.stack([spiral(14), serpentine(14, 14)]))
    view = mask.transpose(1, 2)  # a strided view, not a copy
    assert torch.equal(label_components(view, method=method), label_components(view.contiguous(), method="union-find"))


@pytest.mark.parametrize("method", ("auto",) + METHODS)
def test_empty_batch_and_zero_size(method):
    assert label_components(torch.zeros(0, 14, 14, dtype=torch.bool), method=method).shape == (0, 14, 14)
    assert label_components(torch.zeros(2, 0, 5, dtype=torch.bool), method=method).shape == (2, 0, 5)


def test_auto_sends_cpu_tensors_to_scipy(monkeypatch):
    calls = []
    real = components._label_scipy
    monkeypatch.setattr(components, "_label_scipy", lambda mask: calls.append(mask.shape) or real(mask))
    mask = torch.from_numpy(np.stack([spiral(14), checkerboard(14, 14)]))
    assert torch.equal(label_components(mask), label_components(mask, method="union-find"))
    assert calls == [(2, 14, 14)]


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        label_components(torch.zeros(14, 14, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        label_components(torch.zeros(1, 14, 14))
    with pytest.raises(ValueError, match="union-find"):
        label_components(torch.zeros(1, 14, 14, dtype=torch.bool), method="opencv")


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=16)))
def test_property_any_mask_matches_scipy_with_every_method(mask):
    t = torch.from_numpy(mask)
    got = _labels(t, "scipy").numpy()  # also asserts the union-find returns the same tensor
    for i in range(mask.shape[0]):
        assert same_partition(got[i], scipy_labels(mask[i]))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4))
def test_result_does_not_depend_on_rounds_per_check(k):
    mask = torch.from_numpy(np.stack([spiral(20), serpentine(20, 20)]))
    reference = label_components(mask, method="union-find")
    assert torch.equal(label_components(mask, method="union-find", rounds_per_check=k), reference)
