"""A teacher's view of progress: checker cells work unchanged as nbgrader autograder tests
(``assert check_…(fn)``), graded with nbgrader's own API, and ``python -m socketlessons progress``
reads who passed what from saved notebooks."""

from __future__ import annotations

import inspect
import os
import pathlib
import subprocess
import sys

import nbformat
import pytest

from socketlessons.checks import solution
from socketlessons.lessons.l01_client import check_recv_exactly, check_send_all

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "01_client.ipynb"
EXERCISES = ["recv_exactly", "send_all"]


def _nbgrader(cell: nbformat.NotebookNode, grade_id: str, *, solution_cell: bool) -> None:
    cell.metadata["nbgrader"] = {"grade": not solution_cell, "grade_id": grade_id, "locked": not solution_cell,
                                 "schema_version": 3, "solution": solution_cell, "task": False,
                                 **({} if solution_cell else {"points": 1})}


def _with_solution_markers(name: str) -> str:
    """The reference of ``name`` with its body between nbgrader's solution markers (the release
    keeps the ``def`` line, and the body becomes ``raise NotImplementedError()``)."""
    import ast

    source = inspect.getsource(solution(name))
    lines = source.splitlines()
    first_body_line = ast.parse(source).body[0].body[0].lineno - 1
    return "\n".join([*lines[:first_body_line], "    ### BEGIN SOLUTION", *lines[first_body_line:],
                      "    ### END SOLUTION"])


def _as_assignment(source: pathlib.Path, dest: pathlib.Path) -> None:
    """The lesson as a teacher makes it an nbgrader assignment: each stub becomes a solution
    cell holding the reference, and each checker cell, with ``assert`` in front, an autograder
    test cell worth one point."""
    nb = nbformat.read(source, as_version=4)
    for name in EXERCISES:
        stub = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(f"def {name}("))
        stub.source = _with_solution_markers(name)
        _nbgrader(stub, name, solution_cell=True)
        check = next(c for c in nb.cells if c.cell_type == "code" and f"check_{name}({name})" in c.source)
        check.source = check.source.replace(f"check_{name}({name})", f"assert check_{name}({name})")
        _nbgrader(check, f"test_{name}", solution_cell=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)


def _submit(release: pathlib.Path, dest: pathlib.Path, solved: set[str]) -> None:
    nb = nbformat.read(release, as_version=4)
    for name in solved:
        stub = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == name)
        assert "raise NotImplementedError()" in stub.source, stub.source  # what the release hands out
        stub.source = inspect.getsource(solution(name))
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)


def test_a_check_result_is_what_assert_needs():
    assert check_recv_exactly(solution("recv_exactly"))
    result = check_send_all(lambda sock, data: sock.send(data))
    with pytest.raises(AssertionError):
        assert result, "an assert on a failing check fails"


@pytest.mark.slow
@pytest.mark.timeout(600)
# nbgrader 0.9's gradebook triggers a SQLAlchemy 2 warning (an autoflush inside its own code); the
# suite turns warnings into errors, which would stop nbgrader, not a socketlessons defect.
@pytest.mark.filterwarnings("ignore:Object of type <Submitted")
def test_checker_cells_grade_with_nbgraders_own_api(tmp_path, monkeypatch):
    pytest.importorskip("nbgrader", reason="pip install -e '.[test]'")
    # nbgrader runs the `alembic` command of its own environment (the gradebook's migrations).
    monkeypatch.setenv("PATH", f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    course = tmp_path / "course"
    _as_assignment(LESSON, course / "source" / "l01" / LESSON.name)
    config = Config()
    config.CourseDirectory.root = str(course)
    config.Execute.timeout = 180  # a lesson cell on a busy host
    api = NbGraderAPI(config=config)
    generated = api.generate_assignment("l01")
    assert generated["success"], generated.get("error") or generated.get("log")
    release = course / "release" / "l01" / LESSON.name
    students = {"alice": set(EXERCISES), "bob": set(), "carol": {"recv_exactly"}}
    for student, solved in students.items():
        _submit(release, course / "submitted" / student / "l01" / LESSON.name, solved)
        graded = api.autograde("l01", student)
        assert graded["success"], graded.get("error") or graded.get("log")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("l01", s).score for s in students}
    assert scores == {"alice": 2.0, "bob": 0.0, "carol": 1.0}



def test_progress_reads_the_verdicts_saved_in_students_notebooks(tmp_path):
    """Two students' saved copies of lesson 01, with the outputs real checkers displayed."""
    recv_passed = check_recv_exactly(solution("recv_exactly"))
    send_passed = check_send_all(solution("send_all"))
    send_failed = check_send_all(lambda sock, data: sock.send(data))
    assert recv_passed and send_passed and not send_failed
    for student, outputs in {"ada": [recv_passed, send_passed], "bo": [None, send_failed]}.items():
        nb = nbformat.read(LESSON, as_version=4)
        for name, result in zip(EXERCISES, outputs):
            cell = next(c for c in nb.cells if c.cell_type == "code" and f"check_{name}({name})" in c.source)
            if result is not None:  # as JupyterLab saves a displayed result
                cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": str(result),
                                                                                "text/html": result._repr_html_()},
                                                       execution_count=1)]
        dest = tmp_path / "homes" / student / "socketlessons" / "notebooks" / LESSON.name
        dest.parent.mkdir(parents=True)
        nbformat.write(nb, dest)
    out = subprocess.run([sys.executable, "-m", "socketlessons", "progress", str(tmp_path / "homes")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    header, _rule, *rows = out.stdout.splitlines()
    columns = header.split()[1:]
    assert columns[:2] == ["recv_exactly", "send_all"] and len(columns) >= 15, header
    table = {row.split()[0]: row.split()[1:] for row in rows}
    assert table["ada"][:2] == ["✅", "✅"] and table["bo"][:2] == ["·", "❌"], out.stdout
    assert table["ada"][-1] == f"2/{len(columns)}"
    missing = subprocess.run([sys.executable, "-m", "socketlessons", "progress", str(tmp_path / "nowhere")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr


def test_progress_refuses_a_file_that_is_not_a_notebook(tmp_path):
    bad = tmp_path / "x.ipynb"
    bad.write_text("not json")
    out = subprocess.run([sys.executable, "-m", "socketlessons", "progress", str(bad)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "not a readable notebook" in out.stderr and "Traceback" not in out.stderr


def test_progress_reads_verdicts_saved_before_and_after_the_dash(tmp_path):
    """Notebooks saved before the verdict line changed ("passed." then "passed —") still count."""
    from socketlessons.progress import verdicts_in

    nb = nbformat.v4.new_notebook()
    lines = ["✅ recv_exactly: passed. it works", "❌ send_all: not yet. sent 3 of 8 bytes",
             "✅ fetch: passed — it works", "❌ serve_once: not yet — no reply"]
    nb.cells = [nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("stream", name="stdout", text=line)])
                for line in lines]
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    assert verdicts_in(path) == {"recv_exactly": True, "send_all": False, "fetch": True, "serve_once": False}
