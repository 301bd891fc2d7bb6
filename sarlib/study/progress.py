"""One progress bar per target: its training image-epochs, fed by every run's `log.jsonl`.

Runs train in this process, in side-by-side processes or as SLURM jobs; each appends one JSON line per
finished epoch to its own log, so the bar reads those files (every `poll_s` seconds, in a thread) and
never needs a channel to the trainers. Finished and reused runs count at once; the postfix says how many
runs are done, running and left, and tqdm's rate and remaining time are in images, so a target whose
runs differ in size (the sample-efficiency fractions) still gets an honest ETA.

In JupyterLab the bar is a widget; under papermill (`SARLIB_PROGRESS=text`, set by
`sarlib.report.notebook`) and in a terminal it is text on stderr, which papermill passes through.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Iterable, TextIO

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm as auto_tqdm

from ..data.readers.fashion_mnist import parse_name as fashion_mnist_name
from ..data.registry import FASHION_MNIST
from ..data.synthetic.generate import SYNTHETIC_PRESETS
from ..train import METRICS_JSON
from ..utils.files import CorruptFileError, read_text_bounded
from .plan import Run

__all__ = ["TargetProgress", "epochs_logged", "images_per_epoch", "training_images"]

_LOG = "log.jsonl"


def images_per_epoch(run: Run) -> int | None:
    """Training images one epoch of `run` sees, where the dataset's name says it (None elsewhere)."""
    cfg = run.config
    if cfg.dataset in SYNTHETIC_PRESETS:
        size = SYNTHETIC_PRESETS[cfg.dataset].num_train
    elif cfg.dataset in FASHION_MNIST:
        size = fashion_mnist_name(cfg.dataset)[1] or 60_000
    else:
        return None
    size = max(1, round(size * min(cfg.train_fraction, 1.0)))
    if cfg.max_steps_per_epoch:
        size = min(size, cfg.max_steps_per_epoch * cfg.batch_size)
    return size


def training_images(run: Run) -> int:
    """A run's training images over all its epochs (its cost, for ordering; 1 per epoch where unknown)."""
    return (images_per_epoch(run) or 1) * run.config.epochs


def epochs_logged(run_dir: Path) -> int:
    """Finished epochs in a run's log (a line being written, or a damaged one, is not counted)."""
    try:  # a regular file of bounded size only: a FIFO under that name must not block the whole target
        lines = read_text_bounded(run_dir / _LOG, fix="").splitlines()
    except CorruptFileError:
        return 0
    done = set()
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            done.add(record["epoch"])
    return len(done)


def _bar_class(text: bool | None) -> Any:
    if text is None:
        text = os.environ.get("SARLIB_PROGRESS") == "text"
    return text_tqdm if text else auto_tqdm  # auto: a widget in JupyterLab, text elsewhere


class TargetProgress:
    """`with TargetProgress(runs, desc="table2"):` shows the bar while the block trains the runs."""

    def __init__(self, runs: Iterable[Run], *, desc: str = "", enabled: bool = True, poll_s: float = 2.0,
                 text: bool | None = None, file: TextIO | None = None) -> None:
        self.runs = list({r.run_dir: r for r in runs}.values())  # a run listed twice trains once
        known = [w for w in (images_per_epoch(r) for r in self.runs) if w]
        fallback = round(sum(known) / len(known)) if known else 1  # an unknown dataset weighs as the mean
        self.weights = {r.run_dir: images_per_epoch(r) or fallback for r in self.runs}
        self.total = sum(self.weights[r.run_dir] * r.config.epochs for r in self.runs)
        self.desc, self.enabled, self.poll_s = desc, enabled and bool(self.runs), poll_s
        self._bar_cls, self._file = _bar_class(text), file
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bar = None

    def state(self) -> tuple[int, dict[str, int]]:
        """(image-epochs done, runs by state: done / running / left), read from the run directories."""
        done_images, counts = 0, {"done": 0, "running": 0, "left": 0}
        for run in self.runs:
            if (run.run_dir / METRICS_JSON).is_file():
                epochs, key = run.config.epochs, "done"
            else:
                epochs = min(epochs_logged(run.run_dir), run.config.epochs)
                key = "running" if (run.run_dir / ".lock").is_file() or epochs else "left"
            done_images += self.weights[run.run_dir] * epochs
            counts[key] += 1
        return done_images, counts

    def refresh(self) -> None:
        if self.bar is None:
            return
        done, counts = self.state()
        self.bar.set_postfix_str(f"runs {counts['done']} done, {counts['running']} running, {counts['left']} left",
                                 refresh=False)
        self.bar.update(max(0, done - self.bar.n))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def __enter__(self) -> "TargetProgress":
        if not self.enabled:
            return self
        done, _ = self.state()  # finished and reused runs count at once, outside the rate
        self.bar = self._bar_cls(total=self.total, initial=done, desc=self.desc, unit="img", unit_scale=True,
                                 smoothing=0.05, dynamic_ncols=True, file=self._file or sys.stderr)
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="sarlib-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.refresh()
        self.bar.close()
