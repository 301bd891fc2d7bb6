import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sarlib.components as components
from sarlib import label_components
from oracles import checkerboard, diagonal_chain, same_partition, scipy_labels, serpentine, spiral

SHAPES = [(14, 14), (7, 9), (28, 28), (1, 31), (31, 1), (12, 20)]
DENSITIES = [0.05, 0.3, 0.5, 0.6, 0.8, 0.95]


@pytest.mark.parametrize("shape", SHAPES)
def test_random_masks_match_scipy(shape):
    gen = torch.Generator().manual_seed(hash(shape) % 2**31)
    n = 150  # 6 shapes x 6 densities x 150 = 5,400 masks
    for density in DENSITIES:
        mask = torch.rand(n, *shape, generator=gen) < density
        labels = label_components(mask).numpy()
        for i in range(n):
            assert same_partition(labels[i], scipy_labels(mask[i].numpy())), (shape, density, i)


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


@pytest.mark.parametrize("name,mask", list(_adversarial().items()))
@pytest.mark.parametrize("flip", [False, True])
def test_adversarial_masks_match_scipy(name, mask, flip):
    # flipping puts the component's smallest index at the far end of the path: the slowest direction
    mask = mask[::-1, ::-1].copy() if flip else mask
    got = label_components(torch.from_numpy(mask)[None])[0].numpy()
    assert same_partition(got, scipy_labels(mask)), name


def test_serpentine_is_one_component_and_few_syncs(monkeypatch):
    calls = []
    real_equal = torch.equal
    monkeypatch.setattr(components.torch, "equal", lambda a, b: calls.append(1) or real_equal(a, b))
    mask = torch.from_numpy(np.stack([serpentine(28, 28)[::-1].copy(), spiral(28)]))
    labels = label_components(mask)
    assert labels[0][mask[0]].unique().numel() == 1
    assert labels[1][mask[1]].unique().numel() == 1
    # ~380 cells along the serpentine: plain sweeps would need hundreds of rounds; pointer jumping does not
    assert len(calls) <= 6


def test_batch_mixes_sizes_of_components_and_maps_are_independent():
    masks = torch.from_numpy(np.stack([serpentine(14, 14), checkerboard(14, 14), np.ones((14, 14), bool)]))
    batched = label_components(masks)
    for i in range(3):
        assert torch.equal(batched[i], label_components(masks[i : i + 1])[0])


def test_labels_are_one_plus_first_cell_index():
    mask = torch.zeros(1, 3, 4, dtype=torch.bool)
    mask[0, 0, 3] = mask[0, 1, 2] = True  # diagonal pair -> first cell is flat index 3
    mask[0, 2, 0] = True  # lone cell at flat index 8
    out = label_components(mask)[0]
    assert out[0, 3] == out[1, 2] == 4 and out[2, 0] == 9 and out.sum() == 4 + 4 + 9
    assert out.dtype == torch.int64


def test_empty_batch_and_zero_size():
    assert label_components(torch.zeros(0, 14, 14, dtype=torch.bool)).shape == (0, 14, 14)
    assert label_components(torch.zeros(2, 0, 5, dtype=torch.bool)).shape == (2, 0, 5)


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        label_components(torch.zeros(14, 14, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        label_components(torch.zeros(1, 14, 14))


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=16)))
def test_property_any_mask_matches_scipy(mask):
    got = label_components(torch.from_numpy(mask)).numpy()
    for i in range(mask.shape[0]):
        assert same_partition(got[i], scipy_labels(mask[i]))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4))
def test_result_does_not_depend_on_rounds_per_check(k):
    mask = torch.from_numpy(np.stack([spiral(20), serpentine(20, 20)]))
    assert torch.equal(label_components(mask, rounds_per_check=k), label_components(mask))
