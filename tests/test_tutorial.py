"""The tutorial notebook: docs/tutorial.ipynb is docs/tutorial.py (its jupytext source) with outputs stripped, and it
executes top to bottom on a fresh kernel (slow: the embedded SmolLM2)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

DOCS = Path(__file__).resolve().parents[1] / "docs"
SOURCE, NOTEBOOK = DOCS / "tutorial.py", DOCS / "tutorial.ipynb"


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def test_the_committed_notebook_is_its_source_without_outputs() -> None:
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert _cells(committed) == _cells(jupytext.read(SOURCE)), (
        "docs/tutorial.ipynb differs from docs/tutorial.py; regenerate it: jupytext --to notebook docs/tutorial.py")
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in committed.cells
               if cell.cell_type == "code"), "commit docs/tutorial.ipynb with its outputs stripped"


@pytest.mark.slow
def test_the_notebook_executes_top_to_bottom(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from nbclient import NotebookClient

    nb = jupytext.read(SOURCE)
    # A fresh kernel on this interpreter (ipykernel's own spec for sys.executable), run from the repository root so
    # the notebook imports this checkout; one thread, offline.
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    os.environ.update({k: os.environ.get(k, v) for k, v in env.items()})
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(DOCS.parent)}})
    executed = Path(os.environ.get("VETH_TUTORIAL_OUT", tmp_path / "tutorial-executed.ipynb"))
    start = time.perf_counter()
    try:
        client.execute()  # raises CellExecutionError naming the cell and its traceback
    finally:
        executed.write_text(nbformat.writes(nb))  # with its outputs, to look at (set VETH_TUTORIAL_OUT to keep it)
    print(f"tutorial executed in {time.perf_counter() - start:.0f} s ({sys.executable}); outputs in {executed}")
    images = [sum("image/png" in o.get("data", {}) for o in cell.outputs) for cell in nb.cells
              if cell.cell_type == "code"]
    # cells: setup, load, trials (table chart), probe, steering (curves), patching (heatmap)
    assert images[2] >= 1 and images[4] >= 1 and images[5] >= 1, f"figures per code cell: {images}"
