"""Exceptions and warnings raised by socketlessons, each saying what to do next.

    ValueError
    └── LoopbackOnlyError      a helper was asked to use a host that is not loopback
    UserWarning
    └── ServerWarning          a helper server's handler failed; the server kept serving

Helper servers run in background threads of the kernel. A thread that raised would print its
traceback into whatever cell happens to be running, so servers never raise or print from their
threads: they keep what went wrong in ``server.errors`` and the main thread turns it into a
``ServerWarning`` in the learner's own cell (after the cell, or at ``stop()``).
"""

from __future__ import annotations

__all__ = ["LoopbackOnlyError", "ServerWarning"]


class LoopbackOnlyError(ValueError):
    """Raised when a host is not a loopback address (127.0.0.0/8 or ::1)."""


class ServerWarning(UserWarning):
    """A handler of a helper server raised; the error is also kept in ``server.errors``."""
