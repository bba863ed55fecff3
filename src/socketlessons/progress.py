"""Who passed which exercise: read from the students' saved notebooks.

Every checker cell displays its verdict (``✅ recv_exactly: passed — …`` or ``❌ recv_exactly: not
yet — …``), and JupyterLab saves that output with the notebook. ``python -m socketlessons progress
PATH…`` reads those outputs from saved notebooks, a folder per student (a hub's home folders, an
nbgrader ``submitted/`` folder, or copies collected by hand), and prints one row per student:
``✅`` passed, ``❌`` tried and not yet, ``·`` never run. Nothing is sent anywhere; the notebooks
are the record.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Iterable, Sequence

__all__ = ["Progress", "read_progress"]

# " —" since 2026-12; "." before: notebooks saved by either version are read.
VERDICT = re.compile(r"^(✅|❌) ([A-Za-z_][A-Za-z0-9_]*): (passed|not yet)(?:\.| —)", re.MULTILINE)


class Progress(dict[str, dict[str, bool]]):
    """``{student: {exercise: passed}}``; an exercise never run is absent."""

    def table(self, exercises: Sequence[str] | None = None) -> str:
        """A plain-text table, one row per student, one column per exercise."""
        names = list(exercises) if exercises is not None else sorted({e for row in self.values() for e in row})
        if not self:
            return "no saved checker outputs found (did the students save their notebooks after running the checks?)"
        width = max(len("student"), *(len(s) for s in self))
        lines = [f"{'student':<{width}}  " + "  ".join(names),
                 f"{'':<{width}}  " + "  ".join("-" * len(n) for n in names)]
        for student in sorted(self):
            cells = []
            for name in names:
                mark = {True: "✅", False: "❌"}.get(self[student].get(name), "·")  # type: ignore[arg-type]
                cells.append(f"{mark:^{len(name)}}")
            passed = sum(self[student].get(n) is True for n in names)
            lines.append(f"{student:<{width}}  " + "  ".join(cells) + f"   {passed}/{len(names)}")
        return "\n".join(lines)


def _outputs_text(cell: dict) -> Iterable[str]:
    for output in cell.get("outputs", []):
        text = output.get("text")
        if text:
            yield "".join(text) if isinstance(text, list) else text
        plain = output.get("data", {}).get("text/plain")
        if plain:
            yield "".join(plain) if isinstance(plain, list) else plain


def verdicts_in(notebook: pathlib.Path) -> dict[str, bool]:
    """The last verdict of each exercise checked in ``notebook`` (a later run replaces an earlier one)."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{notebook}: not a readable notebook ({exc})") from None
    found: dict[str, bool] = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for text in _outputs_text(cell):
            for _mark, exercise, word in VERDICT.findall(text):
                found[exercise] = word == "passed"
    return found


def read_progress(paths: Sequence[str | pathlib.Path]) -> Progress:
    """Verdicts per student from ``paths``: each folder holds one folder per student (anything
    below it is searched for ``*.ipynb``); a notebook given directly counts under its file name."""
    progress = Progress()
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_file():
            progress.setdefault(path.stem, {}).update(verdicts_in(path))
        elif path.is_dir():
            for student in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
                row = progress.setdefault(student.name, {})
                for notebook in sorted(student.rglob("*.ipynb")):
                    if ".ipynb_checkpoints" not in notebook.parts:
                        row.update(verdicts_in(notebook))
        else:
            raise ValueError(f"{path}: no such file or folder (give the folder that holds one folder per student)")
    return progress


def exercises_in_course_order() -> list[str]:
    """Every exercise of the course, lesson by lesson (from the registered checkers)."""
    import importlib

    from . import lessons
    from .checks import registered_checkers

    for name in lessons.LESSONS:
        importlib.import_module(f"{lessons.__name__}.{name}")
    return list(registered_checkers())
