"""The benchmark scripts: the per-map reference agrees with sarlib, both scripts run, and their rows
replace those of an earlier run with the same machine and configuration instead of piling up.

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
    "scale",
    "meaningful",
}
LOSS_IMPLS = {"ours", "ours-union-find", "scipy-label-batched", "reference"}


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


def test_loss_speed_quick_cli_writes_rows_into_the_results_dir(tmp_path):
    """The command line, in a subprocess (importing sarlib/timm there costs most of this test's time)."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    mine = tmp_path / "mine"  # a folder of the user's own files: refused before anything is measured
    mine.mkdir()
    (mine / "benchmarks.csv").write_text("my,own\n1,2\n")
    results = tmp_path / "results"  # new: claimed and written
    for folder in (mine, results):
        proc = subprocess.run(
            [sys.executable, str(BENCH / "loss_speed.py"), "--quick", "--device", "cpu", "--results-dir", str(folder)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if folder == mine:
            assert proc.returncode == 2 and proc.stdout == "" and "did not write" in proc.stderr, proc.stderr
            assert (mine / "benchmarks.csv").read_text() == "my,own\n1,2\n" and len(list(mine.iterdir())) == 1
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| device |" in proc.stdout and "meaningful=False" in proc.stdout  # table, and the quick-run label
    df = _check_csv(results / "benchmarks.csv", "loss_speed")
    assert len(df) == 8  # two quick shapes x four implementations
    assert set(df["impl"]) == LOSS_IMPLS
    by_impl = df.set_index(["grid", "impl"])["label_method"]
    assert set(by_impl.xs("ours", level="impl")) == {"scipy"}  # the CPU default is the SciPy path
    assert set(by_impl.xs("ours-union-find", level="impl")) == {"union-find"}
    assert (df.loc[df["impl"] == "ours", "ratio_vs_ours"] == 1.0).all()
    assert (df["ratio_vs_ours"] > 0).all()
    assert (df["scale"] == "quick").all() and not df["meaningful"].any()


def test_rerun_replaces_rows_of_the_same_machine_and_configuration(tmp_path, capsys):
    """Through main(argv), in this process: same code path as the command line, without a second import."""
    import loss_speed

    out = tmp_path / "benchmarks.csv"
    # another machine's row and an unrelated benchmark: both must survive a rerun untouched
    kept = [
        {"benchmark": "loss_speed", "device": "cpu", "device_name": "another machine", "threads": 1,
         "scale": "quick", "B": 8, "heads": 3, "grid": "14x14", "impl": "ours", "maps": "noise", "median_ms": 9.0},
        {"benchmark": "earlier", "median_ms": 1.0},
    ]
    pd.DataFrame(kept).to_csv(out, index=False)

    def run(threads: int) -> pd.DataFrame:
        loss_speed.main(["--quick", "--device", "cpu", "--threads", str(threads), "--repeats", "1", "--warmup", "0",
                         "--out", str(out)])
        return pd.read_csv(out)

    threads = torch.get_num_threads()
    try:
        first, second = run(1), run(1)
        third = run(2)  # a different configuration (another thread count): new rows, not replacements
    finally:
        torch.set_num_threads(threads)  # main() sets it for the whole process
    assert len(first) == len(second) == 2 + 8
    assert list(second["benchmark"][:2]) == ["loss_speed", "earlier"]
    assert second.loc[0, "device_name"] == "another machine" and second.loc[0, "median_ms"] == 9.0
    cols = ["device_name", "B", "heads", "grid", "impl"]
    assert second[cols].equals(first[cols])  # replaced in place, so a diff shows only the new numbers
    assert (second["timestamp"][2:] >= first["timestamp"][2:]).all()
    assert not second.iloc[2:].duplicated(cols).any()
    assert len(third) == 2 + 16 and third[:10][cols].equals(second[cols])
    assert "replaced" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file behind


def test_replace_rows_matches_keys_across_dtypes_and_drops_stored_duplicates(tmp_path):
    import loss_speed

    out = tmp_path / "b.csv"
    key = {"benchmark": "step_overhead", "device": "cpu", "device_name": "m", "threads": 2, "scale": "full",
           "B": 64, "heads": 4, "grid": "8x8", "impl": "ours", "img_size": 32, "lam": 0.01}
    other = {"benchmark": "loss_speed", "device": "cpu", "device_name": "m", "threads": 2, "scale": "full",
             "B": 64, "heads": 4, "grid": "8x8", "impl": "ours", "maps": "noise"}  # img_size, lam: NaN
    # appended twice by an older version, and read back with img_size as float next to the NaN
    stored = [dict(key, median_ms=1.0), dict(other, median_ms=2.0), dict(key, median_ms=3.0)]
    pd.DataFrame(stored).to_csv(out, index=False)
    loss_speed.replace_rows(out, [dict(key, median_ms=4.0), dict(key, impl="none", median_ms=5.0)])
    df = pd.read_csv(out)
    assert list(zip(df["impl"], df["median_ms"])) == [("ours", 4.0), ("ours", 2.0), ("none", 5.0)]
    loss_speed.replace_rows(tmp_path / "new.csv", [key])  # no file yet: written as is
    assert len(pd.read_csv(tmp_path / "new.csv")) == 1


def _row(impl, ms, ratio, threads=2, batch=8):
    return {"device": "cpu", "B": batch, "heads": 3, "grid": "14x14", "impl": impl, "median_ms": ms,
            "ratio_vs_ours": ratio, "threads": threads, "load_1m": 3.5, "components_per_map": 3.8,
            "label_method": "scipy" if impl != "reference" else "opencv"}


def test_a_reference_faster_than_ours_is_explained_not_silent():
    import loss_speed

    rows = [_row("ours", 10.0, 1.0), _row("reference", 8.7, 0.87)]
    table = loss_speed.summary_table(rows)
    assert "0.9x (see note)" in table
    (quick_note, why) = loss_speed.notes(rows, quick=True)
    assert "meaningful=False" in quick_note
    assert "cpu B=8 x 3 heads 14x14" in why and "--threads 1" in why and "load 3.5" in why
    (why_one_thread,) = loss_speed.notes([_row("ours", 10.0, 1.0, 1), _row("reference", 8.7, 0.87, 1)], quick=False)
    assert "not yet amortized" in why_one_thread and "24 maps" in why_one_thread
    assert loss_speed.notes([_row("ours", 1.0, 1.0), _row("reference", 8.7, 8.7)], quick=False) == []


def test_step_overhead_quick_writes_rows(tmp_path, capsys):
    import step_overhead

    rows = step_overhead.main(["--quick", "--device", "cpu", "--results-dir", str(tmp_path)])
    assert "| device |" in capsys.readouterr().out
    assert [r["impl"] for r in rows] == ["none", "ours", "reference"]
    df = _check_csv(tmp_path / "benchmarks.csv", "step_overhead")
    assert list(df["impl"]) == ["none", "ours", "reference"]
    assert df["overhead_pct"].notna().all()
    assert (df["scale"] == "quick").all() and not df["meaningful"].any()


def test_jobs_vs_threads_quick_times_both_modes(tmp_path, monkeypatch, capsys):
    import jobs_vs_threads

    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    rows = jobs_vs_threads.main(["--quick", "--results-dir", str(tmp_path)])
    assert [r["impl"] for r in rows] == ["2 jobs x 1 thread", "sequential, 2 threads"]
    assert "side by side" in capsys.readouterr().out
    df = _check_csv(tmp_path / "benchmarks.csv", "jobs_vs_threads")
    assert (df["median_ms"] > 0).all() and df.loc[0, "ratio_vs_ours"] == 1.0
    assert (df["scale"] == "quick").all() and not df["meaningful"].any()


def test_isa_pinning_quick_trains_under_each_setting_and_says_whether_the_numbers_moved(tmp_path, monkeypatch, capsys):
    import isa_pinning

    monkeypatch.setenv("SARLIB_CACHE", str(tmp_path / "cache"))
    rows = isa_pinning.main(["--quick", "--results-dir", str(tmp_path / "results")])
    assert [r["impl"] for r in rows] == ["unpinned", "pinned avx2"]
    assert all(r["repeatable"] for r in rows) and rows[0]["same_as_unpinned"]  # each setting is deterministic
    assert "pinned avx2: median" in capsys.readouterr().out
    df = _check_csv(tmp_path / "results" / "benchmarks.csv", "isa_pinning")
    assert df.loc[0, "ratio_vs_ours"] == 1.0 and not df["meaningful"].any()


def test_explore_redraw_quick_times_each_kind_of_selection(tmp_path, capsys):
    import explore_redraw

    rows = explore_redraw.main(["--quick", "--results-dir", str(tmp_path / "results")])
    assert [r["impl"] for r in rows] == ["new image", "new head", "run not shown before"]
    assert all(r["median_ms"] > 0 for r in rows) and rows[0]["ratio_vs_ours"] == 1.0
    assert "run not shown before: median" in capsys.readouterr().out
