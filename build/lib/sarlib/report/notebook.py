"""Run a notebook with papermill; a failing cell is reported as one line, not papermill's traceback.

    python -m sarlib.report.notebook table2.ipynb ../results/notebooks/table2.ipynb -p profile smoke ...

Takes exactly papermill's command-line arguments (`make reproduce-<target>` uses it). The executed copy
still holds the cell's full output for reading in JupyterLab; the terminal gets
`error: <notebook> (cell <n>): <exception>: <message>` and exit status 1.
"""

from __future__ import annotations

import sys

from papermill.cli import papermill
from papermill.exceptions import PapermillExecutionError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        papermill.main(args=args, prog_name="papermill", standalone_mode=False)
    except PapermillExecutionError as err:
        notebook = next((a for a in args if a.endswith(".ipynb")), "notebook")
        # ParameterError and the package's other errors carry their fix in the message
        what = "parameter error" if err.ename == "ParameterError" else err.ename
        print(f"error: {notebook} (cell {err.exec_count}): {what}: {err.evalue}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
