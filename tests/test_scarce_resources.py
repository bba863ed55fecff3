"""Every lesson under scarce resources: with ``ulimit -n 256`` (soft and hard: the lesson cannot
raise it back), each lesson runs top to bottom. A demo that cannot get the descriptors it wants
scales itself down or says what was limited and how to raise it, and the cells after it run
(no "Too many open files" traceback, no NameError cascade)."""

from __future__ import annotations

import asyncio
import os
import pathlib

import pytest

from .jupyter_harness import LessonKernel, copy_notebooks, lesson_id, lessons

MAX_DESCRIPTORS = 256

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.name != "posix", reason="resource limits are a POSIX notion (ulimit -n)")]

CHECK_LIMIT = "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))"


async def _run(lesson: pathlib.Path, base: pathlib.Path) -> str:
    cwd = copy_notebooks(base / "notebooks")
    async with LessonKernel.started(base / "kernel", cwd, max_descriptors=MAX_DESCRIPTORS) as kernel:
        limit = await kernel.run_code(CHECK_LIMIT)
        await kernel.run_lesson(cwd / lesson.name)  # raises LessonError on the first failing cell
    return limit


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lesson", lessons(), ids=lesson_id)
def test_the_lesson_runs_with_256_descriptors(lesson, tmp_path):
    limit = asyncio.run(_run(lesson, tmp_path))
    assert limit.strip() == f"({MAX_DESCRIPTORS}, {MAX_DESCRIPTORS})", f"the kernel's limit was {limit!r}"
