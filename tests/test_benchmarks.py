"""The benchmark scripts: the per-map reference agrees with sarlib, and both scripts run and write rows.

Timings are reported by the benchmarks, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import sarlib

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

from reference import reference_spatial_entropy  # noqa: E402

COLUMNS = {
    "benchmark",
    "device",
    "device_name",
    "torch",
    "timestamp",
    "git_commit",
    "B",
    "heads",
    "grid",
    "impl",
    "median_ms",
    "ratio_vs_ours",
}


def _fwd_bwd(fn, x, grid, reduction="mean"):
    inp = x.clone().requires_grad_(True)
    out = fn(inp, grid, reduction=reduction)
    (out.sum() if reduction == "none" else out).backward()
    return out.detach(), inp.grad


@pytest.mark.parametrize(
    "shape,grid,scale",
    [((4, 3), (14, 14), 1.0), ((2, 6), (28, 28), 0.1), ((3, 2), (7, 9), 10.0), ((2, 2), (1, 16), 1.0)],
)
def test_reference_matches_sarlib(shape, grid, scale):
    gen = torch.Generator().manual_seed(grid[0] * 31 + grid[1])
    x = torch.randn(*shape, grid[0] * grid[1], generator=gen) * scale
    ours, g_ours = _fwd_bwd(sarlib.spatial_entropy, x, grid)
    ref, g_ref = _fwd_bwd(reference_spatial_entropy, x, grid)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())
    per_ours, _ = _fwd_bwd(sarlib.spatial_entropy, x, grid, reduction="none")
    per_ref, _ = _fwd_bwd(reference_spatial_entropy, x, grid, reduction="none")
    torch.testing.assert_close(per_ours, per_ref, rtol=1e-5, atol=1e-7)


def test_reference_edge_cases():
    grid = (4, 4)
    x = torch.zeros(2, 2, 16)  # constant maps: no foreground -> 0 with zero gradient
    x[1, 1] = torch.arange(16.0)  # one ramp: a single component -> 0
    x[0, 1, [0, 15]] = 5.0  # two far-apart corners (not 8-connected): two equal shares -> log 2
    loss, grad = _fwd_bwd(reference_spatial_entropy, x, grid, reduction="none")
    assert torch.isfinite(grad).all()
    assert loss[0, 0].item() == 0.0 and loss[1, 0].item() == 0.0 and loss[1, 1].item() == pytest.approx(0.0, abs=1e-7)
    assert loss[0, 1].item() == pytest.approx(float(torch.log(torch.tensor(2.0))), rel=1e-6)
    assert torch.equal(grad[0, 0], torch.zeros(16))
    ours, _ = _fwd_bwd(sarlib.spatial_entropy, x, grid, reduction="none")
    torch.testing.assert_close(ours, loss, rtol=1e-6, atol=1e-7)


def _check_csv(out: Path, benchmark: str) -> pd.DataFrame:
    df = pd.read_csv(out)
    assert COLUMNS <= set(df.columns), set(COLUMNS) - set(df.columns)
    mine = df[df["benchmark"] == benchmark]
    assert len(mine) > 0
    assert (mine["median_ms"] > 0).all()
    assert (mine["device"] == "cpu").all()
    assert mine["torch"].notna().all() and mine["timestamp"].notna().all()
    return df


def test_loss_speed_quick_cli_writes_rows(tmp_path):
    """The command line, in a subprocess (importing sarlib/timm there costs most of this test's time)."""
    out = tmp_path / "bench.csv"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(
        [sys.executable, str(BENCH / "loss_speed.py"), "--quick", "--device", "cpu", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| device |" in proc.stdout  # the markdown table
    df = _check_csv(out, "loss_speed")
    assert set(df["impl"]) == {"ours", "reference"}
    assert len(df) == 4  # two quick shapes x two implementations
    assert (df.loc[df["impl"] == "ours", "ratio_vs_ours"] == 1.0).all()
    assert (df["ratio_vs_ours"] > 0).all()


def test_step_overhead_quick_appends_rows(tmp_path, capsys):
    """Through main(argv), in this process: same code path as the command line, without a second import."""
    import step_overhead

    out = tmp_path / "bench.csv"
    pd.DataFrame([{"benchmark": "earlier", "median_ms": 1.0}]).to_csv(out, index=False)  # must be kept
    rows = step_overhead.main(["--quick", "--device", "cpu", "--out", str(out)])
    assert "| device |" in capsys.readouterr().out
    assert [r["impl"] for r in rows] == ["none", "ours", "reference"]
    df = _check_csv(out, "step_overhead")
    assert list(df["benchmark"]) == ["earlier", "step_overhead", "step_overhead", "step_overhead"]
    steps = df[df["benchmark"] == "step_overhead"]
    assert list(steps["impl"]) == ["none", "ours", "reference"]
    assert steps["overhead_pct"].notna().all()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file behind
