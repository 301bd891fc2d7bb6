"""The target's progress bar: image-epochs read from the runs' logs, whoever writes them."""

import importlib
import io
import os
import json
import threading
import time

import pytest
from concurrent.futures import Future

from sarlib import study
from sarlib.study.progress import TargetProgress, epochs_logged, images_per_epoch, training_images


def _runs(tmp_path):
    """The smoke sample-efficiency runs, each directory once (its full-set runs are listed under both budgets)."""
    return list({r.run_dir: r for r in study.plan("sample-efficiency", profile="smoke", runs_root=tmp_path / "runs")}.values())


def _log(run, epochs, *, torn=False):
    run.run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps({"epoch": e, "loss": 1.0}) + "\n" for e in range(epochs))
    (run.run_dir / "log.jsonl").write_text(text + ('{"epoch": 9, "lo' if torn else ""))


def test_image_epochs_follow_sizes_fractions_and_step_caps(tmp_path):
    runs = _runs(tmp_path)
    sizes = {r.config.train_fraction: images_per_epoch(r) for r in runs}
    assert sizes == {0.5: 100, 1.0: 200}  # synthetic-colour-tiny has 200 training images
    capped = runs[0].config.replace(max_steps_per_epoch=2)
    assert images_per_epoch(study.Run(arm="baseline", dataset=capped.dataset, seed=0, config=capped)) == 2 * capped.batch_size
    fashion = study.plan("table2", profile="cpu", seeds=[0], runs_root=tmp_path)
    assert {images_per_epoch(r) for r in fashion if r.dataset.startswith("fashion")} == {2000}


def test_finished_reused_and_running_runs_are_counted_and_torn_lines_ignored(tmp_path):
    runs = _runs(tmp_path)
    _log(runs[0], runs[0].config.epochs)
    (runs[0].run_dir / "metrics.json").write_text("{}")
    _log(runs[1], 1, torn=True)
    assert epochs_logged(runs[1].run_dir) == 1
    progress = TargetProgress(runs + runs[:2], text=True, file=io.StringIO())  # a run listed twice counts once
    done, counts = progress.state()
    w = progress.weights
    assert done == w[runs[0].run_dir] * runs[0].config.epochs + w[runs[1].run_dir] * 1
    assert counts == {"done": 1, "running": 1, "left": len(runs) - 2}


def test_the_bar_follows_logs_written_by_another_process_to_the_end(tmp_path):
    runs = _runs(tmp_path)
    out = io.StringIO()
    stop = threading.Event()

    def trainer():  # stands for runs training elsewhere (side-by-side processes, SLURM jobs)
        for run in runs:
            for e in range(1, run.config.epochs + 1):
                _log(run, e)
                time.sleep(0.02)
            (run.run_dir / "metrics.json").write_text("{}")
        stop.set()

    with TargetProgress(runs, desc="sample-efficiency", text=True, file=out, poll_s=0.01) as progress:
        thread = threading.Thread(target=trainer)
        thread.start()
        stop.wait(30)
        thread.join()
    assert progress.bar.n == progress.total
    last = out.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("sample-efficiency: 100%") and f"runs {len(runs)} done, 0 running, 0 left" in last


def test_table2_of_the_cpu_profile_is_started_longest_first(tmp_path, monkeypatch):
    """Two workers, 25 runs of two sizes: submitted in plan order, one long run would finish alone."""
    execute_module = importlib.import_module("sarlib.study.execute")  # the module, not the function

    submitted = []

    class Pool:  # records the order runs are handed to the workers
        def __init__(self, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, cfg, **kw):
            submitted.append(cfg.output_dir)
            done = Future()
            done.set_result(None)
            return done

    monkeypatch.setattr(execute_module, "ProcessPoolExecutor", Pool)
    runs = study.plan("table2", profile="cpu", runs_root=tmp_path)
    execute_module._train_in_parallel(runs, jobs=2)
    costs = [training_images(next(r for r in runs if r.config.output_dir == d)) for d in submitted]
    assert len(submitted) == len(runs) and costs == sorted(costs, reverse=True) and costs[0] > costs[-1]


def test_a_fifo_or_a_nested_line_under_the_log_name_never_blocks_or_crashes_the_bar(tmp_path):
    """Untrusted files under a name the bar reads: a FIFO (reading it would block the whole target), a
    line nested 100,000 deep (RecursionError in json), a file past the size sarlib reads."""
    from sarlib.utils import files

    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "log.jsonl")
    assert epochs_logged(fifo) == 0  # returns at once: nothing opened the pipe
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "log.jsonl").write_text("[" * 100_000 + "\n" + json.dumps({"epoch": 0}) + "\n")
    assert epochs_logged(nested) == 1
    with pytest.raises(files.CorruptFileError, match="not a regular file"):
        files.read_json(fifo / "log.jsonl", fix="remove it")
    with pytest.raises(files.CorruptFileError, match="nests its values deeper"):
        files.read_json(_write(tmp_path / "deep.json", "[" * 100_000), fix="remove it")
    with pytest.raises(files.CorruptFileError, match="more than the 10 sarlib reads"):
        files.read_text_bounded(_write(tmp_path / "big.json", "x" * 11), fix="remove it", limit=10)


def _write(path, text):
    path.write_text(text)
    return path
