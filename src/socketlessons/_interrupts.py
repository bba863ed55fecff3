"""Imports that a press of ■ (interrupt) cannot break.

A learner who presses ■ (Kernel → Interrupt) while a cell imports matplotlib for the first time
stops the import half way. Python then drops the half-run module from ``sys.modules`` but keeps
the submodules that had finished, still bound to the parent module it threw away, so every later
import of the library in that kernel fails with errors that name nothing the learner did:
``module 'matplotlib' has no attribute 'get_data_path'``, ``module 'numpy' has no attribute
'matrix'``, ``KeyError: 'Rectangle:kwdoc'``. Measured on a busy machine (the first plot cell of
lesson 01, interrupted 0.02 to 0.7 s in, a fresh kernel each time): 5 of 11 interrupts left the
kernel unable to plot until it was restarted. numpy cannot even be imported a second time in one
process, so there is no repairing it afterwards: the import has to finish.

``held_interrupts()`` holds the interrupt until the block has finished and raises it then, so
the import completes (a second or two at most) and the cell still stops with
``KeyboardInterrupt``. It acts only in the main thread, where Python runs signal handlers, and
only while the interrupt handler is Python's own (the one ipykernel installs for a running cell,
``signal.default_int_handler``, or any other Python callable): an ignored or default SIGINT is
left as it is. On Windows, ipykernel interrupts through ``_thread.interrupt_main()``, which also
calls the SIGINT handler.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, ModuleType

__all__ = ["held_interrupts", "import_held"]

_depth = 0  # nested held blocks (main thread only): the outermost one installs and raises


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold SIGINT (■, Ctrl-C) while the block runs; raise ``KeyboardInterrupt`` after it if one came."""
    global _depth
    if threading.current_thread() is not threading.main_thread() or _depth:
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL or not set from Python: nothing to hold
        yield
        return
    came: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        came.append(signum)

    signal.signal(signal.SIGINT, hold)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        signal.signal(signal.SIGINT, previous)
    if came:  # the block finished: now stop, as the learner asked
        raise KeyboardInterrupt


def import_held(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with interrupts held (see the module docstring)."""
    with held_interrupts():
        return importlib.import_module(name)
