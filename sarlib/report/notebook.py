"""Run a notebook with papermill, quietly: the terminal shows the notebook's own output (its lines, the
target's progress bar) and, for a failing cell, one line instead of papermill's traceback.

    python -m sarlib.report.notebook table2.ipynb ../results/notebooks/table2.ipynb -p profile smoke ...

Takes papermill's command-line arguments (`make reproduce-<target>` uses it) and adds what keeps the
terminal clean: the cells' stdout and stderr streamed through as they come, no cell markers or
papermill progress bar (`--log-output` is dropped), papermill's own messages from WARNING up, and a
kernel on IPC sockets instead of local TCP (which ipykernel warns about on every start). The executed
copy still holds every cell's full output for reading in JupyterLab. It replaces the output notebook only
once every cell ran; a failure keeps the previous one, prints `error: <notebook> (cell <n>): <exception>:
<message>; executed copy <stem>.failed.ipynb (<output> is unchanged)` and exits with status 1.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import click
import yaml
import papermill.cli as papermill_cli
from papermill.exceptions import PapermillExecutionError
from traitlets.config import Config

from ..utils.files import claim_results_dir, shown_path

__all__ = ["INTERRUPTED", "QUIET_ARGS", "main"]

# the shell's status for a command stopped by Ctrl-C (128 + SIGINT)
INTERRUPTED = 130

QUIET_ARGS = ["--no-progress-bar", "--log-level", "WARNING", "--stdout-file", "/dev/stdout",
              "--stderr-file", "/dev/stderr"]
# the kernel's transport: IPC sockets (files only this user can open) instead of TCP on localhost
_KERNEL_CONFIG = Config({"KernelManager": {"transport": "ipc"}})


def main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--log-output"] + QUIET_ARGS
    os.environ["SARLIB_PROGRESS"] = "text"  # the kernel inherits it: text bars, which papermill streams
    execute = papermill_cli.execute_notebook
    papermill_cli.execute_notebook = functools.partial(execute, config=_KERNEL_CONFIG)
    start = time.monotonic()
    notebooks = [a for a in args if a.endswith(".ipynb")]
    # `make reproduce-*` runs this from notebooks/, not where the user typed make (SARLIB_USER_CWD): the
    # notebook is named by its file name and the executed copy by a path valid where the user is
    name = os.path.basename(notebooks[0]) if notebooks else "notebook"
    # papermill writes the executed copy as it goes: into <stem>.running.ipynb beside the output, moved over
    # the output only when every cell ran, so a failed or killed run never replaces the last good copy
    # (nor does a reader, such as the README's runtime table, see one half-written)
    output = notebooks[-1] if len(notebooks) > 1 else None
    try:
        _check_yaml_parameters(args)
        _claim_outputs(args, output)
    except ValueError as err:  # ResultsFolderError among them
        print(f"error: {name}: {err}; nothing was written", file=sys.stderr)
        return 2
    running = failed = None
    if output is not None:
        stem = output[: -len(".ipynb")]
        running, failed = f"{stem}.running.ipynb", f"{stem}.failed.ipynb"
        args[len(args) - 1 - args[::-1].index(output)] = running
    try:
        papermill_cli.papermill.main(args=args, prog_name="papermill", standalone_mode=False)
    except (PapermillExecutionError, KeyboardInterrupt, click.exceptions.Abort) as err:
        where = ""
        refused = isinstance(err, PapermillExecutionError) and err.ename == "ParameterError"
        if running is not None and os.path.exists(running):
            if refused:  # a bad parameter stops the notebook before it trains or writes: no copy to keep
                os.remove(running)
                where = f"; nothing was written ({shown_path(output)} is unchanged)"
            else:
                os.replace(running, failed)
                where = f"; executed copy {shown_path(failed)} ({shown_path(output)} is unchanged)"
        # Ctrl-C reaches this process, or only the kernel (whose cell then fails with KeyboardInterrupt)
        # (papermill's command line, click, turns a KeyboardInterrupt into Abort)
        if not isinstance(err, PapermillExecutionError) or err.ename == "KeyboardInterrupt":
            print(f"interrupted: {name}; finished runs are kept, run the same command again to resume{where}",
                  file=sys.stderr)
            return INTERRUPTED
        # ParameterError and the package's other errors carry their fix in the message
        what = "parameter error" if err.ename == "ParameterError" else err.ename
        print(f"error: {name} (cell {err.exec_count}): {what}: {err.evalue}{where}", file=sys.stderr)
        return 1
    finally:
        papermill_cli.execute_notebook = execute
    copy = None
    if running is not None:
        os.replace(running, output)
        if os.path.exists(failed):
            os.remove(failed)  # an earlier failure's copy, now superseded
        copy = shown_path(output)
    minutes, seconds = divmod(round(time.monotonic() - start), 60)
    print(f"done: {name} in {minutes} min {seconds:02d} s; executed copy {copy or '-'}", flush=True)
    return 0


def _check_yaml_parameters(args: list[str]) -> None:
    """Parameters given as YAML (`make`'s OVERRIDES arrives as `-y 'overrides: {...}'`) must parse to a
    mapping; papermill would otherwise print its parser's traceback."""
    for flag, value in zip(args, args[1:]):
        if flag in ("-y", "--parameters_yaml"):
            try:
                parsed = yaml.safe_load(value)
                problem = None if isinstance(parsed, dict) else "not a mapping"
            except yaml.YAMLError as err:
                problem = str(getattr(err, "problem", None) or err).splitlines()[0]
            if problem is not None:
                raise ValueError(
                    f"the parameters {value!r} are not YAML of a mapping ({problem}); OVERRIDES must be a JSON "
                    "object, e.g. OVERRIDES='{\"epochs\": 2}'")


def _claim_outputs(args: list[str], output: str | None) -> None:
    """Claim the notebook's results folder (`-p results_dir`, seen from the kernel's `--cwd`) before
    papermill writes the executed copy, then make the copy's folder."""
    for i in range(len(args) - 2):
        if args[i] in ("-p", "--parameters") and args[i + 1] == "results_dir":
            cwd = args[args.index("--cwd") + 1] if "--cwd" in args[:-1] else "."
            claim_results_dir(os.path.join(cwd, args[i + 2]))
    if output is not None:
        os.makedirs(os.path.dirname(output) or ".", exist_ok=True)


if __name__ == "__main__":
    sys.exit(main())
