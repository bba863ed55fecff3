"""Every lesson survives what learners do to it: Run All twice, and ■ (interrupt) mid-cell.

In one kernel, as in JupyterLab, each lesson is executed:

1. top to bottom (timing each cell),
2. top to bottom again: named servers replace each other, nothing says "Address already in use",
3. up to its longest cell (measured in pass 1, or the cell tagged ``interrupt-test``), which is
   interrupted a third of the way through,
4. top to bottom again, which must pass: nothing the interrupt left behind (a half-started
   server, a sweep thread, a socket) may break the lesson.

Nothing here times anything against a limit; durations only choose when to interrupt.
"""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from .jupyter_harness import (
    LessonKernel,
    LessonRun,
    code_cells,
    copy_notebooks,
    lesson_id,
    lessons,
)

pytestmark = pytest.mark.slow

#: A lesson may name the cell to interrupt with this tag instead of its measured longest one.
INTERRUPT_TAG = "interrupt-test"
#: Interrupt this far into the cell's measured duration (never sooner than MIN_DELAY_S).
FRACTION = 1 / 3
MIN_DELAY_S = 0.05


def cell_to_interrupt(run: LessonRun) -> tuple[int, float]:
    """``(cell index, seconds into it to interrupt)`` for a lesson's first run."""
    assert run.nb is not None and run.cells, f"{run.lesson} has no code cells"
    tagged = [c for c in run.cells if INTERRUPT_TAG in run.nb.cells[c.index].metadata.get("tags", [])]
    target = tagged[0] if tagged else run.longest_cell()
    return target.index, max(MIN_DELAY_S, target.seconds * FRACTION)


async def rerun_lesson(lesson: pathlib.Path, base: pathlib.Path) -> dict[str, object]:
    cwd = copy_notebooks(base / "notebooks")
    async with LessonKernel.started(base / "kernel", cwd) as kernel:
        first = await kernel.run_lesson(lesson)
        await kernel.run_lesson(lesson)
        index, delay = cell_to_interrupt(first)
        before = [i for i in code_cells(first.nb) if i < index]
        await kernel.run_lesson(lesson, cells=before)
        interrupted = await kernel.run_cell_interrupted(lesson, index, delay)
        assert interrupted.error is None or interrupted.error.startswith("KeyboardInterrupt"), (
            f"{lesson.stem}: cell {index} failed with {interrupted.error} when interrupted; "
            "an interrupt should raise KeyboardInterrupt and nothing else"
        )
        await kernel.run_lesson(lesson)
    return {"cell": index, "delay_s": round(delay, 3), "ended_with": interrupted.error or "no error (the cell finished, or handled the interrupt itself)"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lesson", lessons(), ids=lesson_id)
def test_lesson_runs_twice_and_after_an_interrupt(lesson, tmp_path, request):
    report = asyncio.run(rerun_lesson(lesson, tmp_path))
    request.node.user_properties.append(("interrupt", report))  # (record_property warns under xunit2)
    print(f"{lesson.stem}: interrupted {report}")
