"""Saving a source notebook from JupyterLab keeps it a source: no outputs but the checked smoke values."""

import copy
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

from sarlib.report.lab import strip_on_save

REPO = Path(__file__).resolve().parents[1]


def _run_all(nb: dict) -> dict:
    """The notebook as Run All under another profile leaves it: every cell with outputs and a count."""
    ran = copy.deepcopy(nb)
    for k, cell in enumerate(c for c in ran["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = k + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["cpu-profile numbers\n"]},
                           {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo="}}]
    return ran


def test_saving_a_source_notebook_keeps_only_its_checked_outputs(tmp_path):
    (tmp_path / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "table2.ipynb", tmp_path / "notebooks" / "table2.ipynb")
    committed = json.loads((tmp_path / "notebooks" / "table2.ipynb").read_text())
    model = {"type": "notebook", "content": _run_all(committed)}
    strip_on_save(model, "notebooks/table2.ipynb", SimpleNamespace(root_dir=str(tmp_path)))
    assert [c.get("outputs") for c in model["content"]["cells"]] == [c.get("outputs") for c in committed["cells"]]
    assert all(c.get("execution_count") is None for c in model["content"]["cells"])
    assert any(c.get("outputs") for c in committed["cells"])  # the checked cell's smoke values survive


def test_executed_copies_and_other_files_are_saved_as_they_are():
    ran = _run_all(json.loads((REPO / "notebooks" / "table2.ipynb").read_text()))
    for path in ("results/notebooks/table2.ipynb", "mine.ipynb", "elsewhere/notes.ipynb"):
        model = {"type": "notebook", "content": copy.deepcopy(ran)}
        strip_on_save(model, path, SimpleNamespace(root_dir=str(REPO)))
        assert model["content"] == ran, path
