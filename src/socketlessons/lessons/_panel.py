"""Run a lesson panel's measurement on the shared panel worker thread (``widgets.submit_to_panel_worker``).

One thread runs every panel's work, one run after another: two runs never distort each other
through the GIL, and matplotlib opens its font files once (it keeps them per rendering thread).
``PanelRun`` adds what a panel needs around it: "already running", a done event, a bounded wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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
