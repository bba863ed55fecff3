"""The lessons as a learner meets them: executed twice in one kernel (the untouched exercise stubs
answer "not yet"), and with each exercise stub replaced by its reference solution (every checker
cell says "passed")."""

from __future__ import annotations

import asyncio
import inspect
import pathlib

import nbformat
import pytest

from socketlessons.checks import solution

from .jupyter_harness import NOTEBOOK_DIR, LessonKernel, copy_notebooks

#: Lesson -> {exercise: the imports its reference needs in a stub cell}.
SOLVED = {
    "01_client": {"recv_exactly": "", "send_all": ""},
    "02_server": {"echo_server": "", "open_server": ""},
    "03_server_loop": {"echo_until_eof": "", "serve_concurrently": "from collections.abc import Callable\n"},
    "04_udp": {"recv_datagram": "import socket\n", "ping": "import socket\nimport time\n"},
    "05_best_practices": {"fetch": "import socket\n", "fetch_all": "import asyncio\n"},
    "06_framing": {"read_lines": "", "read_message": "import struct\nfrom socketlessons.framing import recv_exactly\n"},
    "07_ipv6_and_versions": {"connect_first": "from typing import Any\n", "ask": ""},
    "08_under_the_hood": {"nodelay_client": "", "send_request": ""},
    "09_real_protocols": {"read_requests": "MAX_HEAD = 8192\n", "send_response": "import http\n",
                          "tls_echo": "import socket, ssl\n"},
}
RERUN = ["01_client", "02_server"]


def _cell_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _checker_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "\ncheck_" in "\n" + c.source]


async def _run(lesson: pathlib.Path, base: pathlib.Path, times: int = 1) -> nbformat.NotebookNode:
    async with LessonKernel.started(base / "kernel", lesson.parent) as kernel:
        for _ in range(times):
            run = await kernel.run_lesson(lesson)
    return run.nb


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", RERUN)
def test_notebook_runs_twice_in_one_kernel(name, tmp_path):
    cwd = copy_notebooks(tmp_path / "notebooks")
    nb = asyncio.run(_run(cwd / f"{name}.ipynb", tmp_path, times=2))
    cells = _checker_cells(nb)
    assert len(cells) == len(SOLVED[name])
    for i in cells:  # the untouched stubs: a verdict, not an exception
        text = _cell_text(nb.cells[i])
        assert "not yet" in text and "`...` body" in text, f"{name}: cell {i} printed {text!r}"


def _solve(path: pathlib.Path) -> None:
    """Replace each exercise stub of the notebook at ``path`` with the reference solution."""
    nb = nbformat.read(path, as_version=4)
    for name, imports in SOLVED[path.stem].items():
        stubs = [c for c in nb.cells if c.cell_type == "code"
                 and c.source.removeprefix("async ").startswith(f"def {name}(")]
        assert len(stubs) == 1, f"{path.stem}: expected one stub cell for {name}"
        stubs[0].source = imports + inspect.getsource(solution(name))
    nbformat.write(nb, path)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(SOLVED))
def test_reference_solutions_pass_in_the_notebook(name, tmp_path):
    checker_cells = _checker_cells(nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4))
    assert len(checker_cells) == len(SOLVED[name])
    cwd = copy_notebooks(tmp_path / "notebooks")
    _solve(cwd / f"{name}.ipynb")
    nb = asyncio.run(_run(cwd / f"{name}.ipynb", tmp_path))
    for i in checker_cells:
        text = _cell_text(nb.cells[i])
        assert "passed" in text, f"{name}: cell {i} with the reference solution printed {text!r}"
