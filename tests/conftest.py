"""Shared fixtures: leak checks around every test that uses helper servers."""

from __future__ import annotations

import gc
import threading
import time

import pytest

import socketlessons
from socketlessons.plots import close_cached_fonts
from socketlessons.resources import open_descriptors, thread_count


def settle(baseline_threads: int, deadline_s: float = 2.0) -> int:
    """Wait (bounded) for threads that are finishing on their own; return the count."""
    end = time.monotonic() + deadline_s
    while thread_count() > baseline_threads and time.monotonic() < end:
        time.sleep(0.01)
    return thread_count()


@pytest.fixture(scope="session", autouse=True)
def _multiprocessing_tracker():
    """Start multiprocessing's resource tracker up front: the first spawned process (a server in
    process mode) starts it once per interpreter and it keeps one pipe open, which is not a leak."""
    try:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    except (ImportError, AttributeError):  # Windows has no resource tracker
        pass


def threads_started_since(before: set[threading.Thread], deadline_s: float = 2.0) -> list[str]:
    """Names of threads started after ``before`` was taken that are still alive, after waiting
    (bounded) for those finishing on their own. Threads that ended since (e.g. the panel
    worker retiring when idle) do not count either way."""
    end = time.monotonic() + deadline_s
    while True:
        alive = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not alive or time.monotonic() >= end:
            return [t.name for t in alive]
        time.sleep(0.01)


@pytest.fixture
def no_leaks():
    """Fail the test if it leaves servers running, threads alive or descriptors open.

    matplotlib's per-thread font cache is emptied on both sides (``close_cached_fonts``, what a
    retiring panel worker does): the font files a figure drawn in this thread keeps open are
    not the test's, and a worker that retires during the test closes them."""
    gc.collect()
    close_cached_fonts()
    fds, threads = open_descriptors(), set(threading.enumerate())
    yield
    leftover = socketlessons.stop_all()
    gc.collect()
    assert leftover == 0, f"{leftover} server(s) still running at the end of the test"
    assert threads_started_since(threads) == [], "threads left behind"
    close_cached_fonts()
    assert descriptors_back_to(fds) == fds, "descriptors left open"


def descriptors_back_to(baseline: int | None, deadline_s: float = 5.0) -> int | None:
    """The open descriptors, after waiting (bounded) for ones another thread is still closing:
    a panel's worker closes its sockets when the measurement it ran returns, which on a busy
    machine can come a few seconds after the test's last line. A real leak stays."""
    end = time.monotonic() + deadline_s
    while True:
        gc.collect()
        now = open_descriptors()
        if now == baseline or baseline is None or time.monotonic() >= end:
            return now
        time.sleep(0.05)


# ---- mutation score of the exercise checkers ---------------------------------------------------


@pytest.fixture
def record_mutation(record_property):
    """``record_mutation(checker, kind, name, ok)``: note how one mutant ("mutant": ``ok`` when it
    failed with its own hint) or one correct alternative ("alternative": ``ok`` when it passed)
    fared; the terminal summary prints the score per checker. Kept in the report's
    ``user_properties``, so it also works under pytest-xdist."""

    def record(checker: str, kind: str, name: str, ok: bool) -> None:
        if kind not in ("mutant", "alternative"):
            raise ValueError(f"kind must be 'mutant' or 'alternative', got {kind!r}")
        record_property("mutation", (checker, kind, name, bool(ok)))

    return record


def pytest_terminal_summary(terminalreporter):
    rows: dict[str, dict[str, list[int]]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key == "mutation":
                    checker, kind, _name, ok = value
                    tally = rows.setdefault(checker, {"mutant": [0, 0], "alternative": [0, 0]})[kind]
                    tally[0] += bool(ok)
                    tally[1] += 1
    if not rows:
        return
    terminalreporter.section("mutation score of the exercise checkers")
    for checker in sorted(rows):
        (killed, mutants), (passed, alternatives) = rows[checker]["mutant"], rows[checker]["alternative"]
        terminalreporter.write_line(f"{checker:24} {killed}/{mutants} mutants fail with their own hint, "
                                    f"{passed}/{alternatives} correct alternatives pass")
