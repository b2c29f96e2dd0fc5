"""notebooks/compare.ipynb runs top to bottom against the committed example results, from the
repository root and from its own folder, and is stored with its outputs (it reads on a code
host). To refresh the stored outputs: `python tests/test_notebook.py` from anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "compare.ipynb"
KERNEL_TIMEOUT_S = 120
MIN_FIGURES = 3  # memory, time and category figures at least


def outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def executed(cwd: Path) -> nbformat.NotebookNode:
    """The notebook run in a fresh kernel whose working directory is `cwd`."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def check_outputs(notebook: nbformat.NotebookNode) -> None:
    produced = outputs(notebook)
    assert not [out for out in produced if out.output_type == "error"]
    images = [out for out in produced if "image/png" in out.get("data", {})]
    assert len(images) >= MIN_FIGURES
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for out in produced)
    assert "MiB per layer" in text and "results/example" in text and "../" not in text


def test_the_stored_notebook_has_its_outputs_from_the_repo_root():
    check_outputs(nbformat.read(NOTEBOOK, as_version=4))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["repo root", "notebooks folder"])
def test_compare_notebook_runs_and_draws(where: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("FFBENCH_RESULTS", raising=False)
    cwd = REPO if where == "repo root" else NOTEBOOK.parent
    monkeypatch.chdir(cwd)
    notebook = executed(cwd)
    if where == "repo root":
        check_outputs(notebook)
    else:  # the same results, named relative to this folder
        assert not [out for out in outputs(notebook) if out.output_type == "error"]


if __name__ == "__main__":
    os.chdir(REPO)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    os.environ.pop("FFBENCH_RESULTS", None)
    nbformat.write(executed(REPO), NOTEBOOK)
