"""Never destroy what sarlib did not write, never report what it cannot vouch for: each case a user met,
rerun (a real second process where the command line is what a user types)."""

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from sarlib.data.synthetic.export import ExportConflictError, export_imagefolder, export_voc, main as export_main
from sarlib.report import readme
from sarlib.train import RunDirectoryError, load_profile, read_metrics, train

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- 1. export writes only where every file present is one it wrote

def test_export_refuses_to_replace_folders_holding_a_users_files(tmp_path):
    root = tmp_path / "data"
    export_imagefolder(root, size=16, num_train=10, num_classes=2)
    (root / "train" / "my_own_class").mkdir()
    (root / "train" / "my_own_class" / "photo.JPEG").write_bytes(b"my photo")
    (root / "val" / "my_labels.txt").write_text("mine\n")
    before = _snapshot(root)
    with pytest.raises(ExportConflictError, match="not written by sarlib's export"):
        export_imagefolder(root, size=16, num_train=10, num_classes=2, seed=1)
    assert _snapshot(root) == before  # nothing deleted, nothing replaced
    # the same export again is refused too: its folders are no longer only what it wrote
    with pytest.raises(ExportConflictError):
        export_imagefolder(root, size=16, num_train=10, num_classes=2)


def test_export_refuses_an_edited_file_and_a_bare_manifest_beside_real_data(tmp_path):
    root = tmp_path / "data"
    export_imagefolder(root, size=16, num_train=4, num_classes=2)
    edited = next((root / "val").rglob("*.JPEG"))
    edited.write_bytes(b"a user's own image under the same name")
    with pytest.raises(ExportConflictError, match="or changed since"):
        export_imagefolder(root, size=16, num_train=4, num_classes=2, seed=2)
    assert edited.read_bytes() == b"a user's own image under the same name"

    real = tmp_path / "real"
    (real / "train" / "n1").mkdir(parents=True)
    (real / "train" / "n1" / "x.JPEG").write_bytes(b"real data")
    (real / ".sarlib-export-imagefolder.json").write_text("{}")  # a manifest alone proves nothing
    with pytest.raises(ExportConflictError):
        export_imagefolder(real, size=16, num_train=4, num_classes=2)
    assert (real / "train" / "n1" / "x.JPEG").read_bytes() == b"real data"


def test_voc_export_keeps_added_images_and_folders_and_replaces_only_its_own(tmp_path):
    target = export_voc(tmp_path, size=16, num_val=3)
    export_voc(tmp_path, size=16, num_val=4)  # its own files only: replaced
    assert len(list((target / "JPEGImages").iterdir())) == 4
    (target / "JPEGImages" / "mine.jpg").write_bytes(b"mine")
    (target / "Annotations").mkdir()
    before = _snapshot(target)
    assert export_main(["export", "--layout", "voc", "--size", "16", "--num-val", "5", "--root", str(tmp_path)]) == 2
    assert _snapshot(target) == before and (target / "Annotations").is_dir()


# --- 2. a run directory is empty or a sarlib run

@pytest.mark.parametrize("name, content", [("config.json", '{"name": "my-web-app"}'), ("log.jsonl", "mine\n")])
def test_output_dir_holding_another_tools_files_is_refused_untouched(tmp_path, name, content):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / name).write_text(content)
    done = subprocess.run([sys.executable, "-m", "sarlib.train", "--profile", "smoke", "--max-steps-per-epoch", "1",
                           "--output-dir", str(folder)], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "another --output-dir" in done.stderr.strip().splitlines()[-1]
    assert (folder / name).read_text() == content and sorted(p.name for p in folder.iterdir()) == [name]


def _user_entry(folder, name, kind):
    if kind == "dir":
        (folder / name).mkdir()
        (folder / name / "notes.txt").write_text("mine")
    else:
        (folder / name).write_text(kind)


@pytest.mark.parametrize("name, kind", [("job.json", '{"my": "job"}'), ("job.json", "not json"), ("tensorboard", "a file"),
                                        ("tensorboard", "dir"), ("submitit", "a file"), (".lock", "dir")])
def test_a_name_sarlib_uses_does_not_make_a_users_folder_a_run_directory(tmp_path, name, kind):
    """Only what sarlib writes under those names, in its form, is taken for a run directory's own."""
    from sarlib.train.rundir import check_run_dir

    folder = tmp_path / "mine"
    folder.mkdir()
    _user_entry(folder, name, kind)
    before = _snapshot(folder)
    with pytest.raises(RunDirectoryError, match="holds no sarlib run"):
        check_run_dir(load_profile("smoke", output_dir=str(folder)), folder)
    assert _snapshot(folder) == before


def test_what_sarlib_puts_there_before_its_config_is_its_own(tmp_path):
    from sarlib.train.rundir import check_run_dir

    folder = tmp_path / "run"
    (folder / "tensorboard").mkdir(parents=True)
    (folder / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"")
    (folder / "submitit").mkdir()
    (folder / ".lock").write_text("")
    (folder / "job.json").write_text(json.dumps(dict(launcher="local", job_id="1", folder="/x", host="h", submitted=0)))
    check_run_dir(load_profile("smoke", output_dir=str(folder)), folder)  # no error


# --- 2b. a results folder is new, empty or sarlib's

def test_a_results_folder_is_claimed_only_when_new_empty_or_marked(tmp_path):
    from sarlib.utils.files import RESULTS_MARK, ResultsFolderError, claim_results_dir

    claim_results_dir(tmp_path / "new" / "results")
    (tmp_path / "empty").mkdir()
    claim_results_dir(tmp_path / "empty")
    for folder in (tmp_path / "new" / "results", tmp_path / "empty"):
        assert sorted(p.name for p in folder.iterdir()) == [RESULTS_MARK]
        claim_results_dir(folder)  # marked: ours, again and again
    mine = tmp_path / "mine"
    (mine / "figures").mkdir(parents=True)
    (mine / "table2.csv").write_text("my,own\n1,2\n")
    (mine / "figures" / "fig.png").write_bytes(b"png")
    before = _snapshot(mine)
    with pytest.raises(ResultsFolderError, match=f"no {RESULTS_MARK} marker.*touch .*mine/{RESULTS_MARK}"):
        claim_results_dir(mine)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ResultsFolderError, match="is a file"):
        claim_results_dir(tmp_path / "a-file")
    with pytest.raises(ResultsFolderError, match="cannot be written .*choose a folder you can write to"):
        claim_results_dir(tmp_path / "a-file" / "results")  # below a file: no folder can be made there
    assert _snapshot(mine) == before
    assert (REPO / "results" / RESULTS_MARK).is_file()  # the committed results are sarlib's


@pytest.mark.parametrize("where", ["users-folder", "repository-root"])
def test_a_target_never_writes_into_a_folder_it_did_not_make(tmp_path, where, capsys, monkeypatch):
    """`make reproduce-table2 RESULTS=<a folder of the user's>` or `RESULTS=.`: one line, exit 2, and not a
    file added or changed, before papermill writes its executed copy."""
    from sarlib.report import notebook
    from sarlib.study.params import ParameterError, prepare

    if where == "users-folder":
        results = tmp_path / "mine"
        results.mkdir()
        (results / "table2.csv").write_text("my,own\n1,2\n")
    else:
        results = REPO
    before = _snapshot(results) if where == "users-folder" else sorted(p.name for p in REPO.iterdir())
    monkeypatch.chdir(REPO / "notebooks")
    status = notebook.main(["--cwd", ".", "table2.ipynb", str(results / "notebooks" / "table2.ipynb"),
                            "-p", "profile", "smoke", "-p", "results_dir", os.path.relpath(results)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and "did not write" in err and "nothing was written" in err, err
    with pytest.raises(ParameterError, match="did not write"):  # a notebook run by hand in JupyterLab
        prepare("table2", dict(profile="smoke", results_dir=str(results)))
    after = _snapshot(results) if where == "users-folder" else sorted(p.name for p in REPO.iterdir())
    assert after == before


# --- 3. metrics.json is checked before it is printed or tabled

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    train(load_profile("smoke", output_dir=str(run), max_steps_per_epoch=1))
    return run


@pytest.mark.parametrize("content, problem", [('{"top1_best": 99.9, "x": 1}', "is not marked complete"),
                                              ('{"top1_best": 99.9, "x": 1, "complete": true}', "keys a run never writes"),
                                              ("{}", "not marked complete"), ("[]", "JSON list"), ("null", "JSON NoneType"),
                                              ("{not json", "not valid JSON")])
def test_a_metrics_file_a_run_did_not_write_is_refused(finished_run, tmp_path, content, problem):
    shutil.copytree(finished_run, tmp_path / "run")
    cfg = load_profile("smoke", output_dir=str(tmp_path / "run"), max_steps_per_epoch=1)
    assert train(cfg)["complete"] is True  # the run's own metrics are accepted
    (tmp_path / "run" / "metrics.json").write_text(content)
    with pytest.raises(Exception, match=problem) as err:
        train(cfg)
    assert str(tmp_path / "run" / "metrics.json") in str(err.value) and "\n" not in str(err.value)


def test_a_metrics_file_without_a_run_beside_it_is_not_a_result(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"top1_best": 99.9, "top1_final": 99.9, "epochs": 1,
                                                             "device": "cpu", "complete": True}))
    with pytest.raises(RunDirectoryError, match="not a sarlib run's result"):
        train(load_profile("smoke", output_dir=str(tmp_path / "run")))
    assert read_metrics(tmp_path / "run")["top1_best"] == 99.9  # well-formed: the reader itself accepts it


# --- 4, 5. the README generator reads only what it knows, checked, and never advises committing damage

@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    shutil.copytree(REPO / "results", out, ignore=shutil.ignore_patterns("runs", "figures"))
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    return out


def _readme(results, *extra):
    """`python -m sarlib.report.readme` run in this process (its main, as the command line runs it): the
    generator's exit status and what it printed on stderr. An exception escaping main fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = readme.main(["--readme", str(results.parent / "README.md"), "--results-dir", str(results), *extra])
    return SimpleNamespace(returncode=code, stderr=err.getvalue())


def _damage_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\n") + 60])  # the header, then a first row cut mid-line


@pytest.mark.parametrize("stem, damage, problem", [
    ("table2", _damage_truncate, "has no top1_best in row 2"),  # the cut line, before any count is compared
    ("table2_summary", lambda p: p.write_text("a,b\n1,2\n"), "lacks the columns"),
    ("table2", lambda p: p.write_text(""), "is empty"),
    ("table2_delta", lambda p: p.write_bytes(bytes(range(256)) * 4), "is not text"),
])
def test_a_damaged_csv_is_one_line_and_writes_nothing(results, stem, damage, problem):
    damage(results / f"{stem}.csv")
    before = (results.parent / "README.md").read_text(), (results / "README.md").read_text()
    for args in ([], ["--check"]):
        done = _readme(results, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        line = done.stderr.strip()
        assert "\n" not in line and problem in line and f"{stem}.csv" in line and "make reproduce-" in line
        assert "and commit" not in line  # the advice that would put the damage into the repository
    assert ((results.parent / "README.md").read_text(), (results / "README.md").read_text()) == before


@pytest.mark.parametrize("damage, problem", [
    # a smoke run's results folder: its numbers are not the cpu profile's the README reports
    (lambda r: _edit_csv(r / "table2.csv", "profile", "smoke"), "holds rows of the smoke profile"),
    # a delta file edited to claim what its rows do not say: every quoted delta is recomputed from the rows
    (lambda r: _edit_first(r / "table2_delta.csv", "verdict", "cannot resolve", "supports"), "where its rows give 'cannot resolve'"),
    (lambda r: _edit_first(r / "ablation_delta.csv", "delta", None, 12.5), "delta 12.5 where its rows give"),
    # markers removed from the file the tables go into (the README's section is computed first)
    (lambda r: (r / "README.md").write_text("no markers here\n"), "has no generated-section markers"),
])
def test_results_that_cannot_make_the_sections_change_no_file(results, damage, problem):
    damage(results)
    files = [results.parent / "README.md", results / "README.md"]
    before = [p.read_text() for p in files]
    done = _readme(results)
    assert done.returncode == 2 and problem in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert [p.read_text() for p in files] == before


def test_a_generated_body_holding_a_section_marker_is_refused():
    # a cell that held a marker would cut the generated block short the next time it is replaced
    start, end = readme.MARKERS["verdicts"]
    with pytest.raises(readme.DamagedResultError, match="holds the section marker"):
        readme._replaced(Path("README.md"), f"a\n{start}\nold\n{end}\nb\n", (start, end), f"| x | {end} |\n")
    assert readme._replaced(Path("README.md"), f"a\n{start}\nold\n{end}\nb\n", (start, end), "new\n") == \
        f"a\n{start}\nnew\n{end}\nb\n"


def _edit_first(path, column, where, value):
    """Set `column` of the first row (whose `column` is `where`, if given) to `value`."""
    frame = pd.read_csv(path)
    i = frame.index[frame[column] == where][0] if where is not None else 0
    frame.loc[i, column] = value
    frame.to_csv(path, index=False)


def _edit_csv(path, column, value):
    frame = pd.read_csv(path, dtype={"git_commit": str})
    frame[column] = value
    frame.to_csv(path, index=False)


def test_a_damaged_notebook_is_one_line_and_an_unrelated_csv_is_ignored(results):
    pd.DataFrame({"x": [1]}).to_csv(results / "my_notes.csv", index=False)
    assert _readme(results, "--check").returncode == 0, "an unrelated CSV changed the generated sections"
    (results / "notebooks" / "table2.ipynb").write_text('{"cells": [')
    # the real command line, once: exit status 2 and one line on stderr
    done = subprocess.run([sys.executable, "-m", "sarlib.report.readme", "--readme", str(results.parent / "README.md"),
                           "--results-dir", str(results)], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 2 and "table2.ipynb is not a valid notebook" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert set(readme.SCHEMAS) >= {"table2", "table2_summary", "table2_delta", "calibration", "benchmarks"}


# --- 6. no Makefile variable reaches a shell unchecked: every target that takes one, every class of value

_HOSTILE = ['x";touch {m};"', "x';touch {m};'", "x;touch {m}", "x`touch {m}`", "with space {m}", "a\nb"]


def _make(target, variable, value, how, *extra, tmpdir=None):
    args = ["make", "--no-print-directory", *extra, target] + ([f"{variable}={value}"] if how == "argument" else [])
    env = {**os.environ, **({variable: value} if how == "environment" else {}), **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("target, variable", [
    ("reproduce-table2", "RESULTS"), ("reproduce-table2", "DATA_ROOT"), ("reproduce-table2", "PROFILE"),
    ("reproduce-table2", "NPROC"), ("data", "DATA_ROOT"), ("bench", "BENCH_RESULTS"), ("gpu-check", "BENCH_RESULTS"),
    ("lab", "LAB_PORT"),
])
def test_make_refuses_hostile_paths_and_words_before_anything_runs(tmp_path, target, variable):
    """Paths and bare words reach the shell unquoted or double-quoted: every hostile value, on the command
    line or through the environment, is one line naming the variable, exit 2, and nothing ran."""
    marker = tmp_path / "RAN"
    scratch = tmp_path / "tmp"  # where make's check file lives while it runs
    scratch.mkdir()
    for value in (v.format(m=marker) for v in _HOSTILE):
        for how in ("argument", "environment"):
            done = _make(target, variable, value, how, tmpdir=scratch)
            line = done.stderr.strip()
            assert done.returncode == 2 and "nothing was run" in line and "\n" not in line, (value, how, line[-500:])
            assert variable in line or (variable == "PROFILE" and "RESULTS" in line), line  # RESULTS derives from it
    assert not marker.exists() and list(tmp_path.iterdir()) == [scratch] and list(scratch.iterdir()) == []


def _make_goals() -> list[str]:
    """Every goal the Makefile declares, with its per-target families expanded as make expands them."""
    text = (REPO / "Makefile").read_text()
    phony = text.split(".PHONY:", 1)[1].split("\n.DEFAULT_GOAL", 1)[0].replace("\\\n", " ").split()
    targets = sorted(p.stem.replace("_", "-") for p in (REPO / "sarlib" / "study" / "targets").glob("*.py")
                     if p.stem not in ("__init__", "base"))
    goals = [g for g in phony if not g.startswith("$(")]
    return goals + [f"{kind}-{t}" for kind in ("reproduce", "verify") for t in targets]


def test_every_make_goal_refuses_a_hostile_path_before_anything_runs(tmp_path):
    """Not only the goals above: every goal the Makefile has (help only prints), with an injected command
    in each path variable, is one line and exit 2, and the command never ran."""
    from sarlib.utils import make_inputs

    goals = [g for g in _make_goals() if g != "help"]
    assert {"setup", "data", "bench", "lab", "reproduce-table2", "verify-robustness"} <= set(goals)
    marker = tmp_path / "RAN"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    for goal in goals:
        for variable in make_inputs.PATHS:
            done = _make(goal, variable, f'x";touch {marker};"', "argument", tmpdir=scratch)
            line = done.stderr.strip()
            assert done.returncode == 2 and "nothing was run" in line and variable in line, (goal, variable, line)
    assert not marker.exists() and list(scratch.iterdir()) == []


@pytest.mark.parametrize("variable, parameter", [("SEEDS", "seeds"), ("DATASETS", "datasets"), ("JOBS", "jobs"),
                                                 ("OVERRIDES", "overrides")])
def test_notebook_parameters_reach_papermill_as_one_inert_argument(tmp_path, variable, parameter):
    """Notebook parameters go inside single quotes: a quote or line break is refused; anything else arrives
    as one intact argument (read from the command make would run, `make -n`)."""
    marker = tmp_path / "RAN"
    for value in (v.format(m=marker) for v in _HOSTILE):
        done = _make("reproduce-table2", variable, value, "argument", "-n")
        if "'" in value or "\n" in value:
            assert done.returncode == 2 and variable in done.stderr and "nothing was run" in done.stderr, done.stderr
            continue
        command = next(line for line in done.stdout.splitlines() if "sarlib.report.notebook" in line or " -p " in line)
        words = shlex.split(" ".join(line.rstrip("\\") for line in done.stdout.splitlines()
                                     if line.lstrip().startswith(("cd notebooks", "-p"))))
        expected = f"{parameter}: {value}" if variable == "OVERRIDES" else value
        assert expected in words, (value, command, words)
    assert not marker.exists()


# --- 7. sizes that cannot fit are refused in one line, before a run directory or an export folder exists

def test_a_model_or_an_export_that_cannot_fit_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "sarlib.train", "--profile", "smoke", "--model-kwargs",
                           '{"embed_dim": 1000000, "num_heads": 1, "depth": 1}', "--output-dir", str(run)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "parameters: its weights, gradients and optimizer state alone take" in done.stderr and not run.exists()
    assert export_main(["export", "--layout", "imagefolder", "--size", "100000", "--root", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
