"""The submitit launcher end to end with submitit's local executor on CPU: two smoke runs as two jobs,
one interrupted by the preemption signal mid-run and requeued, plus a job that fails."""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from sarlib.config import load_preset
from sarlib.engine import train
from sarlib.experiments import Run, execute, plan
from sarlib.launch import LaunchError, run_with_submitit


def _job_pids(marker: str) -> list[int]:
    """Processes running a submitit task whose command line holds `marker` (its job folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "submitit.core._submit" in cmdline and marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's process through /proc")
def test_two_jobs_one_preempted_and_requeued_match_plain_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # jobs run where the sweep was planned: relative run dirs must work
    overrides = dict(threads=1, cache_dir=str(tmp_path / "cache"))
    runs = plan("table2", profile="smoke", seeds=[0], epochs=4, runs_root="runs", overrides=overrides)
    assert [r.arm for r in runs] == ["baseline", "sar+no-skip"]
    reference = {r.arm: train(r.config.replace(output_dir=str(tmp_path / "ref" / r.arm))) for r in runs}

    bad_cfg = load_preset("smoke", dataset="imagenet", data_root=str(tmp_path / "missing"), threads=1,
                          output_dir="runs/bad")
    bad = Run(arm="baseline", dataset="imagenet", seed=0, config=bad_cfg)
    outcome: dict = {}

    def sweep():
        try:
            run_with_submitit([*runs, bad], launcher="local", gpus_per_node=0, timeout_min=30, poll_s=0.1,
                              progress=False)
        except Exception as exc:  # handed to the test thread below
            outcome["error"] = exc

    thread = threading.Thread(target=sweep)
    thread.start()
    victim = runs[1]  # SAR + no-skip: interrupted after its first epoch's checkpoint
    _wait_for(lambda: (victim.run_dir / "checkpoint.pth").exists(), 90, "the first checkpoint")
    assert not (victim.run_dir / "metrics.json").exists(), "the run finished before it could be interrupted"
    pids = _job_pids(str(victim.run_dir.absolute() / "submitit"))
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGUSR2)  # what SLURM sends before a time limit or on preemption
    thread.join(timeout=120)
    assert not thread.is_alive()

    error = outcome.get("error")
    assert isinstance(error, LaunchError) and "1 of 3 jobs failed" in str(error)
    assert "runs/bad" in str(error) and "_log.err" in str(error) and "the data root does not exist" in str(error)

    victim_log = "\n".join(p.read_text() for p in (victim.run_dir / "submitit").glob("*_log.*"))
    assert "Requeued job" in victim_log and "resuming" in victim_log
    for run in runs:
        got, ref = _metrics(run.run_dir), reference[run.arm]
        for key in ("top1_best", "top1_final", "top5_final", "jaccard", "best_epoch", "reg_skips"):
            assert got[key] == ref[key], (run.arm, key)

    # A second sweep submits nothing (finished runs are skipped) and execute collects the rows as usual.
    jobs_before = sorted((tmp_path / "runs").rglob("*_submitted.pkl"))
    rows = execute(runs, target="table2", progress=False, launcher="slurm")
    assert sorted((tmp_path / "runs").rglob("*_submitted.pkl")) == jobs_before
    assert rows["top1_final"].tolist() == [reference[r.arm]["top1_final"] for r in runs]


def test_bad_launcher_settings_fail_before_submitting(tmp_path):
    runs = plan("table2", profile="smoke", seeds=[0], runs_root=str(tmp_path / "runs"))
    with pytest.raises(ValueError, match="launcher must be one of slurm, local"):
        run_with_submitit(runs, launcher="slrum")
    with pytest.raises(ValueError, match="launcher must be one of"):
        execute(runs, target="table2", launcher="pbs", progress=False)
    with pytest.raises(ValueError, match="nodes >= 1"):
        run_with_submitit(runs, launcher="local", nodes=0)
    if shutil.which("srun") is None:  # off a cluster, SLURM is refused with the fix, not a submitit internal
        with pytest.raises(LaunchError, match="cannot start here.*leave the launcher at 'local'"):
            run_with_submitit(runs, launcher="slurm")
    assert not (tmp_path / "runs").exists()
