"""`make reproduce-<target>` with a bad parameter: one line naming the notebook, the parameter and the fix."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_bad_notebook_parameter_is_one_line(tmp_path):
    out = tmp_path / "table2.ipynb"
    env = {**os.environ, "SAR_RESULTS": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "sarlib.report.notebook", "table2.ipynb", str(out), "-p", "profile",
                           "nonsense"], cwd=REPO / "notebooks", capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "table2.ipynb" in lines[0] and "parameter error: profile must be one of" in lines[0]
    assert out.is_file()  # the executed copy is kept for reading


def test_a_smoke_target_prints_its_own_lines_and_one_bar_without_warnings(tmp_path):
    """What a researcher sees in the terminal: the notebook's lines and the target's bar with its ETA,
    no papermill cell markers, no parse warnings, no kernel transport warning."""
    out = tmp_path / "table2.ipynb"
    env = {**os.environ, "SAR_RESULTS": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "sarlib.report.notebook", "--cwd", ".", "table2.ipynb", str(out),
                           "-p", "profile", "smoke", "-p", "results_dir", str(tmp_path)],
                          cwd=REPO / "notebooks", capture_output=True, text=True, env=env, timeout=600)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-3000:]
    for noise in ("WARNING", "Unable to parse", "Executing Cell", "Ending Cell", "Input Notebook", "Traceback"):
        assert noise not in text, (noise, text[-3000:])
    assert "table2: 4 runs, 0 finished (reused), 4 to train" in text
    bar = [line for line in text.replace("\r", "\n").splitlines() if line.startswith("table2:") and "img" in line]
    assert bar and "100%" in bar[-1] and "runs 4 done, 0 running, 0 left" in bar[-1], text[-3000:]
    assert (tmp_path / "table2.csv").is_file()


def test_papermill_help_names_every_parameter_and_its_type():
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        done = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(notebook)],
                              capture_output=True, text=True, timeout=120)
        text = done.stdout + done.stderr
        assert done.returncode == 0 and "Unable to parse" not in text and "Unknown type" not in text, text
        for name in ("profile", "results_dir", "nproc"):
            assert f"  {name}: " in text, (notebook.name, text)
