"""Each unfinished run of a sweep as its own job through submitit: on SLURM, or as local processes.

    run_with_submitit(runs, launcher="slurm", slurm_partition="gpu", gpus_per_node=8, timeout_min=1440)

A job runs one task per GPU (`gpus_per_node` x `nodes` tasks; one task on CPU). Every task exports
torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) from submitit's job
environment, so `sarlib.train.distributed.init_distributed` sets up DDP exactly as under torchrun. When the
scheduler preempts a job or it reaches its time limit, submitit sends the job SIGUSR2; the job is then
requeued with the same arguments and the engine resumes from the run's `checkpoint.pth` (the epoch in
progress is redone). The caller waits with a progress bar; a failed job stops the sweep with an error
naming its log files. Job files and logs live in `<run_dir>/submitit/` unless `folder` is given.

Each submission is recorded in `<run_dir>/job.json` (launcher, job id, job folder, host). A rerun of the
sweep, for example after the waiting notebook was interrupted, re-attaches to a recorded job that is
still queued or running instead of submitting a second one; only a run whose job has ended without
finishing it is submitted again (and resumes from its checkpoint). Checking and submitting happen under
`<run_dir>/.submit.lock`, so two sweeps started at once cannot both submit the same run.

The SLURM jobs must see the same file system paths (code, data root, run directories) and a Python
environment with `sarlib` installed, as with DeiT's and DINO's submitit launchers.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import UncompletedJobError
from submitit.local.local import LocalJob
from tqdm import tqdm  # plain bars: a notebook kernel needs no widgets for them

from ..train import METRICS_JSON, TrainConfig, train
from ..utils.files import atomic_write_text, hold_lock
from .plan import Run
from .progress import TargetProgress

__all__ = ["LAUNCHERS", "LaunchError", "TrainJob", "run_with_submitit"]

LAUNCHERS = ("slurm", "local")
JOB_RECORD = "job.json"  # the run's submitted job, for re-attaching (see the module docstring)
SUBMIT_LOCK = ".submit.lock"


class LaunchError(RuntimeError):
    """One or more jobs of a sweep failed; the message names each job's log files."""


class TrainJob(submitit.helpers.Checkpointable):
    """One training run as a submitit job; requeuing it resubmits the same call, which resumes."""

    def __init__(self, config: TrainConfig, workdir: str) -> None:
        self.config = config
        self.workdir = workdir  # relative output_dir / data_root are resolved where they were planned

    def __call__(self) -> dict[str, Any]:
        os.chdir(self.workdir)
        _export_torch_distributed_env()
        return train(self.config)

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        # Nothing to save here: the engine checkpoints every epoch into the run directory on its own.
        return submitit.helpers.DelayedSubmission(TrainJob(self.config, self.workdir))


def _export_torch_distributed_env() -> None:
    if submitit.JobEnvironment().num_tasks > 1:
        # every task sees all of the node's GPUs and picks its own by LOCAL_RANK, as under torchrun
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


def _job_name(run: Run) -> str:
    return f"sar-{run.dataset}-{run.arm}-seed{run.seed}"


def _make_executor(run: Run, *, launcher: str, folder: str | os.PathLike[str] | None,
                   slurm_partition: str | None, gpus_per_node: int, nodes: int, timeout_min: int,
                   cpus_per_task: int | None, max_timeouts: int) -> submitit.AutoExecutor:
    base = Path(folder) if folder is not None else run.run_dir / "submitit"
    try:
        executor = submitit.AutoExecutor(folder=base.absolute(), cluster=launcher,  # files named by job id
                                         **{f"{launcher}_max_num_timeout": max_timeouts})
    except RuntimeError as exc:  # submitit's SLURM executor needs srun on this machine
        raise LaunchError(f"launcher={launcher!r} cannot start here ({exc}); run the target from a node of the "
                          "SLURM cluster, or leave the launcher at 'local'") from exc
    executor.update_parameters(
        name=_job_name(run), timeout_min=timeout_min, nodes=nodes, gpus_per_node=gpus_per_node,
        tasks_per_node=max(1, gpus_per_node), cpus_per_task=cpus_per_task,
        slurm_partition=slurm_partition,
        # a 2-minute warning before the time limit: enough to leave cleanly, the epoch is redone anyway
        slurm_signal_delay_s=120,
    )
    return executor


def _process_runs(pid: int, marker: str) -> bool:
    """Whether process `pid` is alive (not a zombie) and its command line holds `marker`."""
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and marker in cmdline


class _ReattachedLocalJob(LocalJob):
    """A local job submitted by an earlier process, followed through its pid (submitit's own LocalJob
    knows a job only through the Popen object of the process that started it)."""

    def get_info(self, mode: str = "force") -> dict[str, str]:  # noqa: ARG002 - submitit's signature
        if self.paths.result_pickle.exists():
            return {"jobState": "FINISHED"}
        alive = _process_runs(int(self.job_id), "submitit")
        return {"jobState": "RUNNING" if alive else "INTERRUPTED"}


def _live_job(run: Run, launcher: str) -> submitit.Job | None:
    """The job recorded for `run` if it is still queued or running under `launcher`, else None."""
    try:
        record = json.loads((run.run_dir / JOB_RECORD).read_text())
        job_id, folder = str(record["job_id"]), Path(record["folder"])
        recorded = (record["launcher"], record["host"])
    except (OSError, ValueError, KeyError, TypeError):  # none, or damaged: nothing to re-attach to
        return None
    if launcher == "local":
        if recorded != ("local", socket.gethostname()):
            return None
        job: submitit.Job = _ReattachedLocalJob(folder=folder, job_id=job_id)
    elif recorded[0] == "slurm":
        job = submitit.SlurmJob(folder=folder, job_id=job_id)
    else:
        return None
    return None if job.done(force_check=True) else job


def _submit_or_attach(run: Run, workdir: str, launcher: str, executor_kw: dict[str, Any]) -> tuple[submitit.Job, bool]:
    """(job, attached): the run's live job if one is recorded, else a new submission, recorded."""
    executor = _make_executor(run, launcher=launcher, **executor_kw)  # refuses a launcher before any write
    run.run_dir.mkdir(parents=True, exist_ok=True)
    with hold_lock(run.run_dir / SUBMIT_LOCK, wait=True):
        job = _live_job(run, launcher)
        if job is not None:
            return job, True
        job = executor.submit(TrainJob(run.config, workdir))
        record = dict(launcher=launcher, job_id=str(job.job_id), folder=str(Path(job.paths.folder).absolute()),
                      host=socket.gethostname(), submitted=time.time())
        atomic_write_text(run.run_dir / JOB_RECORD, json.dumps(record, indent=2) + "\n")
        return job, False


def _failure(run: Run, job: submitit.Job) -> str | None:
    """None for a job that finished its run, else one line saying what failed and where its logs are."""
    try:
        error = job.exception()
    except UncompletedJobError as exc:  # killed without a result, e.g. by the scheduler
        error = exc
    if error is None and (run.run_dir / METRICS_JSON).is_file():
        return None
    return (f"{run.run_dir} (job {job.job_id}, {job.state}): {_last_line(error)}; "
            f"logs: {job.paths.stdout} and {job.paths.stderr}")


def _last_line(error: BaseException | None) -> str:
    """The exception line of a job's error: submitit wraps the job's traceback between dashed rulers."""
    if error is None:
        return f"the job ended without writing {METRICS_JSON}"
    text = str(error)
    parts = text.split("-" * 22)
    lines = [line for line in (parts[1] if len(parts) > 2 else text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def run_with_submitit(
    runs: Sequence[Run],
    *,
    launcher: str,
    folder: str | os.PathLike[str] | None = None,
    slurm_partition: str | None = None,
    gpus_per_node: int = 1,
    nodes: int = 1,
    timeout_min: int = 24 * 60,
    cpus_per_task: int | None = None,
    max_timeouts: int = 20,
    poll_s: float = 30.0,
    progress: bool = True,
    desc: str = "jobs",
) -> None:
    """Submit every run without `metrics.json` as one job (or re-attach to its live job), wait for all,
    raise `LaunchError` if any failed.

    `launcher`: "slurm", or "local" (submitit's local processes: the same job path on one machine, used
    by the tests). `gpus_per_node` = tasks per node (0: one CPU task); `timeout_min` is one job's time
    limit, after which it is requeued, at most `max_timeouts` times (preemptions do not count).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)} (or 'local' in "
                         f"sarlib.study.execute to train in-process); got {launcher!r}")
    if gpus_per_node < 0 or nodes < 1 or timeout_min < 1:
        raise ValueError(f"need gpus_per_node >= 0, nodes >= 1, timeout_min >= 1; got {gpus_per_node}, "
                         f"{nodes}, {timeout_min}")
    pending = [run for run in runs if not (run.run_dir / METRICS_JSON).is_file()]
    if not pending:
        return
    workdir = os.getcwd()
    executor_kw = dict(folder=folder, slurm_partition=slurm_partition, gpus_per_node=gpus_per_node, nodes=nodes,
                       timeout_min=timeout_min, cpus_per_task=cpus_per_task, max_timeouts=max_timeouts)
    jobs, attached = [], 0
    for run in pending:
        job, was_live = _submit_or_attach(run, workdir, launcher, executor_kw)
        jobs.append((run, job))
        attached += was_live
    if attached and progress:
        print(f"re-attached to {attached} of {len(jobs)} jobs still queued or running from an earlier submission",
              flush=True)
    with TargetProgress(pending, desc=desc, enabled=progress):
        failures = _wait(jobs, poll_s=poll_s)
    if failures:
        raise LaunchError(f"{len(failures)} of {len(jobs)} jobs failed; fix the cause and run again (finished "
                          "runs are kept, unfinished ones resume):\n  " + "\n  ".join(failures))


def _wait(jobs: list[tuple[Run, submitit.Job]], *, poll_s: float) -> list[str]:
    """Poll until every job is done; report failures as they happen (the other jobs keep running)."""
    failures: list[str] = []
    remaining = list(jobs)
    while remaining:
        still = []
        for run, job in remaining:
            if not job.done():
                still.append((run, job))
                continue
            problem = _failure(run, job)
            if problem is not None:
                failures.append(problem)
                tqdm.write(f"failed: {problem}", file=sys.stderr)
        remaining = still
        if remaining:
            time.sleep(poll_s)
    return failures
