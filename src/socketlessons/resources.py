"""Count what a process holds (descriptors, threads), portably, for leak checks and lessons.

psutil answers on Linux, macOS and Windows (``num_fds`` on POSIX, ``num_handles`` on Windows);
on a platform it does not support we fall back to ``/proc/self/fd`` or report ``None``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import warnings
from collections.abc import Iterator

__all__ = ["open_descriptors", "recording_resource_warnings", "thread_count"]


def open_descriptors() -> int | None:
    """Open file descriptors (POSIX) or handles (Windows) of this process; ``None`` if unknown."""
    try:
        import psutil

        proc = psutil.Process()
        return proc.num_handles() if sys.platform == "win32" else proc.num_fds()
    except Exception:
        pass
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the descriptor listdir itself opened
    except OSError:
        return None


def thread_count() -> int:
    """Python threads alive in this process (``threading.active_count()``)."""
    return threading.active_count()


@contextlib.contextmanager
def recording_resource_warnings() -> Iterator[list[str]]:
    """Collect the ``ResourceWarning`` messages raised inside the block (sockets left open).

    The list is filled when the block ends: garbage collection runs first, so a socket kept
    alive only by a reference cycle or a traceback is finalised (and warns) inside the block,
    not in a later cell. The kernel hides ``ResourceWarning`` by default; this shows it here.
    """
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            yield found
        finally:
            gc.collect()
            found.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))
