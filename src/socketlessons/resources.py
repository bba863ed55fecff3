"""Count what a process holds (descriptors, threads), portably, for leak checks and lessons.

psutil answers on Linux, macOS and Windows (``num_fds`` on POSIX, ``num_handles`` on Windows);
on a platform it does not support we fall back to ``/proc/self/fd`` or report ``None``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import sys
import threading
import warnings
from collections.abc import Iterator

__all__ = ["ThreadRoom", "descriptors_left", "open_descriptors", "recording_resource_warnings", "thread_count",
           "thread_room"]


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


def descriptors_left() -> int | None:
    """How many more descriptors this process may open before "Too many open files" (the soft
    ``RLIMIT_NOFILE``, ``ulimit -n``, minus those open now); ``None`` where there is no such
    limit (Windows counts handles without a per-process cap like it)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = open_descriptors()
    if soft == resource.RLIM_INFINITY or opened is None:
        return None
    return max(0, soft - opened)


def thread_count() -> int:
    """Python threads alive in this process (``threading.active_count()``)."""
    return threading.active_count()


@dataclasses.dataclass(frozen=True)
class ThreadRoom:
    """How many more threads could start on this machine, and which limit says so.

    Every thread takes an ID from a pool the whole machine (or container) shares: Linux's
    ``kernel.pid_max`` (32,768 on many systems), ``kernel.threads-max``, a container's cgroup
    ``pids.max``, the user's ``RLIMIT_NPROC``. A thread-per-connection server with thousands of
    connections spends that pool for every student on a classroom host.
    """

    free: int | None  # about how many more threads could start; None: unknown here
    limit: int | None
    source: str

    def __str__(self) -> str:
        if self.free is None:
            return f"threads: no limit known ({self.source})"
        return f"threads: about {self.free:,} more can start here ({self.source}: {self.limit:,})"


def _read_count(path: str, field: int = 0) -> int | None:
    """Whitespace-separated ``field`` of a /proc or /sys file as an int; None if absent or "max".

    A field like ``/proc/loadavg``'s "running/total" gives its last part, the total."""
    try:
        with open(path) as f:
            text = f.read().split()[field].split("/")[-1]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def thread_room() -> ThreadRoom:
    """The tightest of the thread limits this machine has, and the room left under it (Linux).

    Usage is counted conservatively: ``/proc/loadavg`` gives every thread on the machine, which
    stands in for this user's (RLIMIT_NPROC) and this container's counts when those are unknown.
    """
    if not sys.platform.startswith("linux"):
        return ThreadRoom(None, None, "only read on Linux; other systems refuse a new thread when full")
    everyone = _read_count("/proc/loadavg", 3) or 0  # every thread on the machine
    candidates: list[tuple[int, int, str]] = []  # (free, limit, source)
    for path, name in (("/proc/sys/kernel/pid_max", "kernel.pid_max"),
                       ("/proc/sys/kernel/threads-max", "kernel.threads-max")):
        limit = _read_count(path)
        if limit is not None:
            candidates.append((limit - everyone, limit, name))
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/pids"):  # cgroup v2, then v1
        limit = _read_count(f"{base}/pids.max")
        if limit is not None:
            used = _read_count(f"{base}/pids.current")
            candidates.append((limit - (used if used is not None else everyone), limit, "cgroup pids.max"))
            break
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if soft != resource.RLIM_INFINITY:
            candidates.append((soft - everyone, soft, "ulimit -u (RLIMIT_NPROC)"))
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    if not candidates:
        return ThreadRoom(None, None, "no limit readable")
    free, limit, source = min(candidates)
    return ThreadRoom(max(free, 0), limit, source)


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
