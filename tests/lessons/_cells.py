"""Run chosen cells of a lesson in a fresh kernel: for tests of what a lesson prints."""

from __future__ import annotations

import nbclient
import nbformat

from ..jupyter_harness import NOTEBOOK_DIR


def run_cells(sources: list[str]) -> list[str]:
    """Execute code cells in a fresh kernel; return each cell's printed text."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream") for c in nb.cells]


def code_cells(name: str) -> list[str]:
    """The sources of the code cells of ``notebooks/<name>``."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def cell_with(cells: list[str], text: str) -> str:
    """The one cell of ``cells`` that contains ``text``."""
    found = [c for c in cells if text in c]
    assert len(found) == 1, f"expected one cell containing {text!r}, found {len(found)}"
    return found[0]
