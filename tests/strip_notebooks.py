"""Strip notebooks before committing: keep only the stdout of `# NBVAL_CHECK_OUTPUT` cells.

Those outputs are the reference text `pytest --nbval-lax` compares against; everything else (tables,
images, papermill metadata) belongs in the executed copies under results/notebooks/.

    make strip-notebooks        # after re-running notebooks at smoke scale
"""
import sys

import nbformat


def strip(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if "NBVAL_CHECK_OUTPUT" in cell.source:
            cell.outputs = [o for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout"]
            cell.execution_count = count  # nbval skips comparing a cell it thinks was never run
        else:
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)  # progress-bar widget state of the run that refreshed them
    nbformat.write(nb, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        strip(name)
