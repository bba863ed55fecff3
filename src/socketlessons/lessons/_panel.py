"""Run a lesson panel's measurement on the shared panel worker thread (``widgets.submit_to_panel_worker``).

One thread runs every panel's work, one run after another: two runs never distort each other
through the GIL, and matplotlib opens its font files once (it keeps them per rendering thread).
``PanelRun`` adds what a panel needs around it: "already running", a done event, a bounded wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..widgets import submit_to_panel_worker


class PanelRun:
    """One panel's runs: ``start(job)`` queues it on the shared worker, ``wait(timeout)`` waits."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._done.set()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self, job: Callable[[], None]) -> bool:
        """Queue ``job`` (it must catch its own errors); False if a run is already going."""
        if self.running:
            return False
        self._done.clear()

        def wrapped() -> None:
            try:
                job()
            finally:
                self._done.set()

        submit_to_panel_worker(wrapped)
        return True

    def wait(self, timeout: float) -> bool:
        """True once the run is done (False if ``timeout`` passed first)."""
        return self._done.wait(timeout)


class LessonPanel:
    """The shared shape of a lesson's own panel (not a ``SweepPanel``).

    A subclass builds ``self.box`` (what displays) and ``self._run = PanelRun()``, and defines
    ``start_run()``: check the inputs, say what starts in the status line, queue the run and
    return whether it started. ``run()`` is the same from a cell: start, then wait (bounded).
    A subclass that records a failure in ``self.error`` makes ``run()`` return False for it.
    """

    RUN_TIMEOUT_S = 300.0
    box: Any
    _run: PanelRun

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def start_run(self) -> bool:  # pragma: no cover - every panel defines it
        raise NotImplementedError

    def run(self, timeout: float | None = None) -> bool:
        """Measure and wait (from a cell); True if the run finished in time without error."""
        if not self.start_run():
            return False
        finished = self._run.wait(self.RUN_TIMEOUT_S if timeout is None else timeout)
        return finished and not getattr(self, "error", "")
