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
