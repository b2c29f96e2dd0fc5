"""notebooks/compare.ipynb runs top to bottom against the committed example results."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "compare.ipynb"
KERNEL_TIMEOUT_S = 120


def outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


@pytest.mark.slow
def test_compare_notebook_runs_and_draws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("FFBENCH_RESULTS", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    produced = outputs(notebook)
    assert not [out for out in produced if out.output_type == "error"]
    images = [out for out in produced if "image/png" in out.get("data", {})]
    assert len(images) >= 3  # memory, time and category figures at least
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for out in produced)
    assert "MiB per layer" in text and "example" in text
