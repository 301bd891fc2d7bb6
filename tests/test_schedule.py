import math

import pytest

from sarlib import sar_weight


def test_warmup_then_cosine_to_zero():
    w = [sar_weight(e, 100, base=0.01, warmup=10) for e in range(100)]
    assert w[0] == 0.0
    assert w[9] == pytest.approx(0.01) and w[10] == pytest.approx(0.01)
    assert all(b > a for a, b in zip(w[:9], w[1:10]))  # strictly increasing warm-up
    assert all(b <= a for a, b in zip(w[10:], w[11:]))  # non-increasing decay
    assert w[-1] == pytest.approx(0.0, abs=1e-12)
    mid = 10 + (99 - 10) / 2
    assert sar_weight(int(mid), 100) == pytest.approx(0.005 * (1 + math.cos(math.pi * (int(mid) - 10) / 89)))


def test_constant_and_no_warmup():
    assert {sar_weight(e, 20, base=0.3, schedule="constant") for e in range(20)} == {0.3}
    assert sar_weight(0, 20, base=0.3, warmup=0) == pytest.approx(0.3)


def test_runs_shorter_than_warmup():
    w = [sar_weight(e, 3, base=1.0, warmup=10) for e in range(3)]
    assert w == pytest.approx([0.0, 1 / 9, 2 / 9])


@pytest.mark.parametrize("bad", [dict(epoch=5, epochs=5), dict(epoch=-1, epochs=5), dict(epoch=0, epochs=5, schedule="step")])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        sar_weight(**bad)
