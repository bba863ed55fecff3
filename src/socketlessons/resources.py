"""Count what a process holds (descriptors, threads), portably, for leak checks and lessons.

psutil answers on Linux, macOS and Windows (``num_fds`` on POSIX, ``num_handles`` on Windows);
on a platform it does not support we fall back to ``/proc/self/fd`` or report ``None``.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["open_descriptors", "thread_count"]


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
