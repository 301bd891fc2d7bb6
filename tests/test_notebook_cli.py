"""What a researcher sees in the terminal: `make reproduce-<target>` (one line for a bad parameter, the
notebook's own lines and one progress bar otherwise), `papermill --help-notebook`, and `make lab`."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_a_bad_notebook_parameter_is_one_line_writes_nothing_and_keeps_the_last_good_executed_copy(tmp_path):
    out = tmp_path / "table2.ipynb"
    out.write_text("the last good executed copy")
    env = {**os.environ, "SAR_RESULTS": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "sarlib.report.notebook", "table2.ipynb", str(out), "-p", "profile",
                           "nonsense"], cwd=REPO / "notebooks", capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "table2.ipynb" in lines[0] and "parameter error: profile must be one of" in lines[0]
    # refused before anything ran: no copy of the refusal beside the good one, which is not replaced
    assert out.read_text() == "the last good executed copy" and "nothing was written" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table2.ipynb"]


@pytest.mark.parametrize("overrides", ["{bad", "[1, 2]", "7"])
def test_overrides_that_are_not_an_object_are_one_line_before_anything_is_written(tmp_path, overrides, capsys,
                                                                                   monkeypatch):
    """make's OVERRIDES reaches papermill as `-y 'overrides: <value>'`: YAML that does not parse (or is no
    mapping) is the runner's one line, not papermill's parser traceback."""
    from sarlib.report import notebook

    monkeypatch.chdir(REPO / "notebooks")
    value = f"overrides: {overrides}" if overrides != "7" else "7"
    status = notebook.main(["--cwd", ".", "table2.ipynb", str(tmp_path / "r" / "notebooks" / "table2.ipynb"),
                            "-p", "profile", "smoke", "-p", "results_dir", str(tmp_path / "r"), "-y", value])
    captured = capsys.readouterr()
    if overrides == "[1, 2]":  # a mapping whose value is a list: the notebook's own check names it
        assert status == 1 and "overrides must be" in captured.err, captured.err
        return
    line = captured.err.strip()
    assert status == 2 and "\n" not in line and "OVERRIDES must be a JSON object" in line, line
    assert captured.out == "" and list(tmp_path.iterdir()) == []


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
    assert done.stdout.strip().splitlines()[-1].startswith("done: table2.ipynb in ")  # the one-line summary
    assert out.is_file() and not (tmp_path / "table2.running.ipynb").exists()


def test_papermill_help_names_every_parameter_and_its_type():
    from click.testing import CliRunner
    from papermill.cli import papermill

    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        done = CliRunner().invoke(papermill, ["--help-notebook", str(notebook)])  # papermill's command, in-process
        text = done.output
        assert done.exit_code == 0 and "Unable to parse" not in text and "Unknown type" not in text, text
        # the explorer is a tool, not a target: it reads a results folder and has no profile to run
        for name in (("results_dir",) if notebook.stem == "explore" else ("profile", "results_dir", "nproc")):
            assert f"  {name}: " in text, (notebook.name, text)


def test_make_lab_prints_one_line_whose_url_opens_on_the_notebooks_readme(tmp_path):
    with socket.socket() as s:  # a free port for this test
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_PORT={port}"], cwd=REPO, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        first = lab.stdout.readline().strip()
        assert first.startswith(f"JupyterLab: http://localhost:{port}/lab/tree/notebooks/README.md?token="), first
        url = first.split(" ", 1)[1]
        for _ in range(120):  # the server takes a few seconds to listen
            try:
                with urllib.request.urlopen(url, timeout=5) as page:
                    assert page.status == 200 and "JupyterLab" in page.read().decode()
                break
            except OSError:
                time.sleep(1)
        else:
            raise AssertionError("JupyterLab did not answer at " + url)
        with pytest.raises(urllib.error.HTTPError):  # the token is what lets a browser in
            urllib.request.urlopen(f"http://localhost:{port}/api/contents", timeout=5)
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=60)
    assert lab.stdout.read().strip() == ""  # nothing but the one line on stdout
    assert not [line for line in lab.stderr.read().splitlines() if line.startswith("[I ")]  # no INFO chatter


def _interrupt_once(cmd: list[str], cwd: Path, ready: str, env: dict) -> subprocess.CompletedProcess:
    """Run `cmd` in its own process group, and once a stdout line contains `ready`, press Ctrl-C (SIGINT to
    the whole group, as a terminal does)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                time.sleep(1)
                os.killpg(proc.pid, signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines) + out, err)


def test_ctrl_c_during_a_training_run_is_one_line_and_status_130(tmp_path):
    run_dir = tmp_path / "run"
    done = _interrupt_once([sys.executable, "-m", "sarlib.train", "--profile", "smoke", "--epochs", "40",
                            "--output-dir", str(run_dir)], REPO, "epoch 1/", dict(os.environ))
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stderr.strip().startswith("interrupted:")
    assert len(done.stderr.strip().splitlines()) == 1 and "run the same command again to resume" in done.stderr


def test_ctrl_c_during_a_target_is_one_line_status_130_and_keeps_the_last_good_copy(tmp_path):
    out = tmp_path / "table2.ipynb"
    out.write_text("the last good executed copy")
    (tmp_path / ".sarlib-results").write_text("")  # a results folder an earlier run made
    env = {**os.environ, "SAR_RESULTS": str(tmp_path)}
    done = _interrupt_once([sys.executable, "-m", "sarlib.report.notebook", "table2.ipynb", str(out), "-p", "profile",
                            "smoke", "-p", "results_dir", str(tmp_path)], REPO / "notebooks", "to train", env)
    assert done.returncode == 130, done.stderr[-2000:]
    # the runner's own traceback (papermill's click turns the KeyboardInterrupt into Abort) is gone; the kernel
    # runs in its own session, so Ctrl-C never reaches it, and what it prints while it is shut down is its own
    assert "click.exceptions.Abort" not in done.stderr and "sarlib/report/notebook.py" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("interrupted:", "error:"))]
    assert len(lines) == 1 and lines[0].startswith("interrupted: table2.ipynb"), done.stderr[-2000:]
    assert out.read_text() == "the last good executed copy"


def test_every_notebook_names_the_installed_kernel_as_jupyterlab_shows_it():
    """A kernelspec whose display name differs from the installed kernel's makes JupyterLab rewrite the
    notebook as soon as it is opened (autosave then writes it back)."""
    import json

    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3")
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        spec = json.loads(path.read_text())["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"], spec["language"]) == (
            "python3", installed.display_name, installed.language), path.name
