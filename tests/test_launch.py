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

from sarlib.train.config import load_profile
from sarlib.train import train
from sarlib.study import Run, execute, plan
from sarlib.study.launch import LaunchError, run_with_submitit


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

    bad_cfg = load_profile("smoke", dataset="imagenet", data_root=str(tmp_path / "missing"), threads=1,
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


_SWEEP = """
import sys
from sarlib.study import plan
from sarlib.study.launch import run_with_submitit
runs = plan("table2", profile="smoke", seeds=[0], epochs=30, runs_root="runs",
            overrides=dict(threads=1, cache_dir=sys.argv[1]))
run_with_submitit(runs, launcher="local", gpus_per_node=0, timeout_min=30, poll_s=0.1, progress=True)
print("sweep done")
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="follows the jobs' processes through /proc")
def test_rerun_after_the_waiting_process_is_interrupted_reattaches_instead_of_resubmitting(tmp_path):
    """The notebook waiting on a sweep is interrupted (a kernel interrupt is SIGINT to that process alone)
    while its jobs are queued or training; rerunning the target must follow those jobs, not submit twins."""
    import subprocess
    import sys

    script = tmp_path / "sweep.py"
    script.write_text(_SWEEP)
    cmd = [sys.executable, str(script), str(tmp_path / "cache")]
    out = tmp_path / "first.out"  # a file, not a pipe: the jobs inherit the caller's stdout and outlive it
    # a shell that runs the tests in the background ignores SIGINT, and its children inherit that: restore
    # the default so that Python turns the signal into KeyboardInterrupt, as in a notebook kernel
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=out.open("w"), stderr=subprocess.STDOUT,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    records = lambda: sorted((tmp_path / "runs").rglob("job.json"))  # noqa: E731
    _wait_for(lambda: len(records()) == 2, 120, "both submissions to be recorded")
    jobs = {p.parent: json.loads(p.read_text())["job_id"] for p in records()}
    first.send_signal(signal.SIGINT)
    first.wait(timeout=60)
    assert first.returncode != 0 and "KeyboardInterrupt" in out.read_text()
    alive = [Path(f"/proc/{job_id}").is_dir() and not (run_dir / "metrics.json").exists() for run_dir, job_id in jobs.items()]
    assert all(alive), "a job ended with its caller, or before the rerun could follow it"

    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "re-attached to 2 of 2 jobs" in second.stdout and "sweep done" in second.stdout
    for run_dir, job_id in jobs.items():
        assert len(list((run_dir / "submitit").glob("*_submitted.pkl"))) == 1, run_dir  # one job per run
        assert json.loads((run_dir / "job.json").read_text())["job_id"] == job_id
        assert _metrics(run_dir)["complete"] and _metrics(run_dir)["epochs"] == 30
        log = "\n".join(p.read_text() for p in (run_dir / "submitit").glob("*_log.*"))
        assert "resuming" not in log  # trained once, start to end, by its one job

    # A recorded job that has ended is not followed: a later sweep of an unfinished run submits anew.
    run_dir = next(iter(jobs))
    (run_dir / "metrics.json").unlink()
    runs = plan("table2", profile="smoke", seeds=[0], epochs=30, runs_root=str(tmp_path / "runs"),
                overrides=dict(threads=1, cache_dir=str(tmp_path / "cache")))
    again = [r for r in runs if r.run_dir.absolute() == run_dir.absolute()]
    run_with_submitit(again, launcher="local", gpus_per_node=0, timeout_min=30, poll_s=0.1, progress=False)
    assert len(list((run_dir / "submitit").glob("*_submitted.pkl"))) == 2
    assert json.loads((run_dir / "job.json").read_text())["job_id"] != jobs[run_dir]
