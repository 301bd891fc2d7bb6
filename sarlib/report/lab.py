"""JupyterLab's save hook for the source notebooks (`make lab` passes it to the server).

    jupyter lab --ContentsManager.pre_save_hook=sarlib.report.lab.strip_on_save

A source notebook under `notebooks/` holds no outputs but its `NBVAL_CHECK_OUTPUT` cells' smoke-scale
values, which CI compares (`make strip-notebooks` refreshes them). Saving one from the lab after Run All
would otherwise store every output, base64 figures included, and the checked cells' values of whatever
profile ran, which then fail `make test`. The hook clears every output and execution count, and gives
each checked cell the outputs it has on disk (matched by its source). Other files (the executed copies
under `results/notebooks/`, a user's own notebooks) are saved as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CHECKED", "strip_on_save"]

CHECKED = "NBVAL_CHECK_OUTPUT"


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _checked(cell: dict[str, Any]) -> bool:
    return cell.get("cell_type") == "code" and _source(cell).lstrip().startswith(f"# {CHECKED}")


def strip_on_save(model: dict[str, Any], path: str, contents_manager: Any = None, **kwargs: Any) -> None:
    """Clear a source notebook's outputs in place before it is written (a jupyter_server pre-save hook)."""
    parts = Path(path).parts
    if model.get("type") != "notebook" or len(parts) < 2 or parts[-2] != "notebooks" or "results" in parts:
        return
    kept: dict[str, list] = {}
    root = getattr(contents_manager, "root_dir", None)
    on_disk = Path(root, path) if root else None
    if on_disk is not None and on_disk.is_file():
        try:
            saved = json.loads(on_disk.read_text())
            kept = {_source(c): c.get("outputs", []) for c in saved.get("cells", []) if _checked(c)}
        except (OSError, ValueError):
            kept = {}
    for cell in model["content"].get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        cell["execution_count"] = None
        cell["outputs"] = kept.get(_source(cell), []) if _checked(cell) else []
