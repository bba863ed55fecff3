"""Run a lesson panel's measurement on the shared panel worker thread (``widgets.submit_to_panel_worker``).

One thread runs every panel's work, one run after another: two runs never distort each other
through the GIL, and matplotlib opens its font files once (it keeps them per rendering thread).
``PanelRun`` adds what a panel needs around it: "already running", a done event, a bounded wait,
and **Stop**: a ``StopSignal`` (``run.signal``) the job may poll (``run.stopped``) and hang
cleanups on (``run.on_stop(fn)``, ``run.guard(sock)``: a ``send``/``recv`` blocked on a guarded
socket returns when Stop is pressed), and a time limit after which the run is stopped anyway.

``LessonPanel`` gives a lesson's panel the usual behaviour with a few calls::

    self.stop_button = self._make_stop_button()          # hidden until a run starts
    self.box = widgets.VBox([..., widgets.HBox([self.button, self.stop_button]), self.status, ...])
    self._run = PanelRun()

    def start_run(self):
        return self._begin(self._worker, f"Measuring {n} sizes …")   # refuses a second click, says so

    def _worker(self):                                   # on the panel worker thread
        for n in ns:
            if self._run.stopped:                        # Stop pressed, or out of time
                break
            with self._run.guard(socket.create_connection(addr)) as sock: ...

``self._say(text)`` / ``self._say_problem(text)`` write the status line (escaped); use them to say
when a value was clamped or refused ("clients 5,000 is beyond the 1,024 this machine allows: used
1,024").
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

from ..widgets import StopSignal, shutdown_on_stop, submit_to_panel_worker

__all__ = ["LessonPanel", "PanelRun"]


class PanelRun:
    """One panel's runs: ``start(job)`` queues it on the shared worker, ``wait(timeout)`` waits.

    ``stop()`` (the Stop button) sets ``signal``: the job sees ``stopped`` and the cleanups it
    registered (``on_stop``, ``guard``) run at once. ``start(job, max_run_s=...)`` also stops the
    run after that many seconds; ``timed_out`` then says so.
    """

    def __init__(self) -> None:
        self._done = threading.Event()
        self._done.set()
        self.signal = StopSignal()
        self.timed_out = False
        self._timer: threading.Timer | None = None

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    @property
    def stopped(self) -> bool:
        """True once Stop was pressed or the run ran out of time (poll it between steps)."""
        return self.signal.is_set()

    def on_stop(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` when the run is stopped (at once if it already is)."""
        self.signal.on_stop(fn)

    def guard(self, sock: Any) -> Any:
        """``sock``, shut down when the run is stopped (a call blocked on it returns); returns it."""
        return shutdown_on_stop(self.signal, sock)

    def stop(self) -> bool:
        """Stop the run; False if none is going or it is already stopping."""
        if not self.running or self.signal.is_set():
            return False
        self.signal.set()
        return True

    def start(self, job: Callable[[], None], *, max_run_s: float | None = None,
              after: Callable[[], None] | None = None) -> bool:
        """Queue ``job`` (it must catch its own errors); False if a run is already going.
        ``after()`` runs when the job has returned (re-enable buttons); ``max_run_s`` bounds it."""
        if self.running:
            return False
        self._done.clear()
        self.signal.clear()
        self.timed_out = False
        if max_run_s is not None:
            self._timer = threading.Timer(max_run_s, self._out_of_time)
            self._timer.daemon = True
            self._timer.name = "socketlessons-panel-timer"
            self._timer.start()

        def wrapped() -> None:
            try:
                job()
            finally:
                timer, self._timer = self._timer, None
                if timer is not None:
                    timer.cancel()
                    timer.join(1.0)
                try:
                    if after is not None:
                        after()
                finally:
                    self._done.set()

        submit_to_panel_worker(wrapped)
        return True

    def _out_of_time(self) -> None:
        if self.running and not self.signal.is_set():
            self.timed_out = True
            self.signal.set()

    def wait(self, timeout: float) -> bool:
        """True once the run is done (False if ``timeout`` passed first)."""
        return self._done.wait(timeout)


class LessonPanel:
    """The shared shape of a lesson's own panel (not a ``SweepPanel``).

    A subclass builds ``self.box`` (what displays) and ``self._run = PanelRun()``, and defines
    ``start_run()``: check the inputs, say what starts in the status line, queue the run and
    return whether it started (``_begin`` does the usual). ``run()`` is the same from a cell:
    start, then wait (bounded). A subclass that records a failure in ``self.error`` makes
    ``run()`` return False for it. Optional attributes used when present: ``status`` (an HTML
    widget), ``button`` (Run), ``stop_button`` (from ``_make_stop_button``).
    """

    RUN_TIMEOUT_S = 300.0
    #: A run longer than this is stopped by the panel itself (``_begin``), and says so.
    MAX_RUN_S = 120.0
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

    # ---- Stop, status line, the usual start ----------------------------------------------------

    def _make_stop_button(self) -> Any:
        """A Stop button, hidden until a run starts (``_begin`` shows it), wired to ``stop()``."""
        from .._interrupts import import_held

        widgets = import_held("ipywidgets")  # ■ during a first import would break it for the kernel

        button = widgets.Button(description="Stop", icon="stop", layout=widgets.Layout(display="none"),
                                tooltip="end the run now")
        button.on_click(lambda _b: self.stop())
        return button

    def stop(self) -> None:
        """End the run promptly (the Stop button). Says so, also when nothing runs or it is
        already stopping."""
        run = getattr(self, "_run", None)
        if run is None or not run.running:
            self._say("Nothing to stop: no run is going.")
        elif run.stopped:
            self._say("Already stopping: waiting for the measurement in progress to return.")
        else:
            self._say("Stopping: ending the measurement in progress …")
            run.stop()

    @property
    def stopped(self) -> bool:
        """True if the current (or last) run was stopped or ran out of time."""
        run = getattr(self, "_run", None)
        return run is not None and run.stopped

    def _stop_note(self) -> str:
        """"" or a sentence for the status line saying the run was stopped, and why."""
        run = getattr(self, "_run", None)
        if run is None or not run.stopped:
            return ""
        if run.timed_out:
            return f"Stopped: the run took longer than {self.MAX_RUN_S:g} s; what was measured until then is shown."
        return "Stopped: what was measured until then is shown."

    def _begin(self, job: Callable[[], None], text: str, *, max_run_s: float | None = None) -> bool:
        """The usual ``start_run``: refuse a click while a run goes (saying so), else disable Run,
        show Stop, say ``text``, and queue ``job``; Run and Stop are restored when it returns."""
        if self._run.running:
            self._say("A run is already in progress: wait for it to finish, or press Stop (this click was ignored).")
            return False
        button, stop_button = getattr(self, "button", None), getattr(self, "stop_button", None)
        if button is not None:
            button.disabled = True
        if stop_button is not None:
            stop_button.layout.display = ""
        self._say(text)

        def after() -> None:
            if button is not None:
                button.disabled = False
            if stop_button is not None:
                stop_button.layout.display = "none"

        return self._run.start(job, max_run_s=self.MAX_RUN_S if max_run_s is None else max_run_s, after=after)

    def _say(self, text: str) -> None:
        status = getattr(self, "status", None)
        if status is not None:
            status.value = html.escape(text)

    def _say_problem(self, text: str) -> None:
        status = getattr(self, "status", None)
        if status is not None:
            status.value = "<b>" + html.escape(text) + "</b>"
