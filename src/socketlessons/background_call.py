"""One call in a daemon thread, waited for with a deadline, its outcome handed back.

Several helpers need the same thing: run code that may never return (a learner's function, a
``recv`` on a silent server, a fresh asyncio loop) without letting it hang the kernel. The call
runs in a daemon thread; the caller's thread waits for it with ``join(timeout)`` (always
bounded) and then either gets the value, gets the exception re-raised in *its* thread (never
printed from the helper thread: that output would land in whichever cell runs next), or learns
that the call is still running and decides what to do: wake it (stop the server it waits on),
report it, or wait again.

Used by ``checks.call`` (exercise deadlines), ``lessons.practices.watch`` and ``run_async``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundCall"]


class BackgroundCall:
    """``fn()`` started in a daemon thread; ``join`` waits for it, bounded, as often as needed.

    >>> call = BackgroundCall(lambda: 6 * 7, name="answer").start()
    >>> call.join(1.0), call.outcome()
    (True, 42)
    """

    def __init__(self, fn: Callable[[], Any], *, name: str) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self._finished_at: float | None = None
        self.started_at = time.perf_counter()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller's thread by outcome()
            self._error = exc
        finally:
            self._finished_at = time.perf_counter()

    def start(self) -> BackgroundCall:
        self.started_at = time.perf_counter()
        self.thread.start()
        return self

    def join(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the call to finish; True if it has."""
        self.thread.join(timeout)
        return not self.still_running

    @property
    def still_running(self) -> bool:
        return self._finished_at is None

    @property
    def elapsed_s(self) -> float:
        """Seconds from start to finish, or to now while the call still runs."""
        end = time.perf_counter() if self._finished_at is None else self._finished_at
        return end - self.started_at

    @property
    def value(self) -> Any:
        """What the call returned (None while it runs or when it raised)."""
        return self._value

    @property
    def error(self) -> BaseException | None:
        """What the call raised, if it did."""
        return self._error

    def outcome(self) -> Any:
        """The call's value, or its exception raised here. Only once it has finished."""
        if self.still_running:
            raise RuntimeError(f"{self.thread.name} is still running: join() it first")
        if self._error is not None:
            raise self._error
        return self._value
