"""benchmarks/gpu_check.py without CUDA: one line, exit 0, nothing written (the GPU path needs a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_cuda_it_says_so_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "results"
    assert gpu_check.main(["--results-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    printed = capsys.readouterr()
    assert printed.out.count("\n") == 1 and "no CUDA device" in printed.out and printed.err == ""
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_without_cuda_exits_0_and_writes_nothing(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--results-dir", str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "nothing written" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit) as stop:
        gpu_check.parse_args(["--epochs", "1"])
    assert stop.value.code == 2
