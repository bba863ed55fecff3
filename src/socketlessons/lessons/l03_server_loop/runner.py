"""Run a server loop written in a notebook cell, so the harness can measure it (lesson 03).

The lesson's cells hold the socket code (the seed's sequential loop, a thread per client, a
``selectors`` loop, ``asyncio.start_server``); this module only runs it and stops it:

* ``LearnerServer(loop)`` binds a loopback listener on port 0 and calls ``loop(listener)`` in a
  background thread (an ``async def`` loop runs on an event loop of its own in that thread: the
  kernel's own loop is never used). ``stop()`` is fast and bounded: the listener's ``accept()``
  raises ``ServerStopped`` from then on, and a wake-up connection makes a loop blocked in
  ``accept()`` or ``select()`` call it; an asyncio loop is cancelled. Errors are kept in
  ``.errors``, never printed from a thread into some other cell.
* ``process(data)`` / ``await aprocess(data)``: the request's cost f, as set by ``work.set(...)``
  or by the LoopPanel's sliders: a sleep (waiting, e.g. on a database) or CPU-bound Python code;
  then the reply, which is the request (an echo).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ...servers._base import LoopbackServer, make_listener
from ...servers._loops import CPU_CLOCK, MAX_COST_S, spend

__all__ = ["LearnerServer", "ServerStopped", "aprocess", "process", "work"]


class ServerStopped(Exception):
    """Raised by the listener's ``accept()`` once the server is stopping: it ends the loop."""


class Work:
    """The cost f of one request: ``cost`` seconds of ``kind`` ("sleep" or "cpu")."""

    def __init__(self) -> None:
        self.cost, self.kind = 0.005, "sleep"

    def set(self, cost: float | None = None, kind: str | None = None) -> Work:
        if cost is not None:
            if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost <= MAX_COST_S:
                raise ValueError(f"cost is seconds per request, between 0 and {MAX_COST_S:g}; got {cost!r}")
            self.cost = float(cost)
        if kind is not None:
            if kind not in ("sleep", "cpu"):
                raise ValueError(f"kind must be 'sleep' (waiting) or 'cpu' (computing), got {kind!r}")
            self.kind = kind
        return self

    def __repr__(self) -> str:
        return f"<work: {self.cost * 1000:g} ms of {self.kind} per request>"


#: The cost every ``process`` call spends (one per kernel: the lesson's cells and panel set it).
work = Work()


#: CPU work is counted in this thread's CPU time (``servers._loops.CPU_CLOCK``, the helpers' clock).
_CPU_CLOCK = CPU_CLOCK


def compute(seconds: float) -> int:
    """Python bytecode for ``seconds`` of this thread's CPU time: a fixed amount of computing, so
    N requests need N × the cost of CPU however their threads take turns for the GIL (a wall-clock
    spin would let waiting threads' deadlines pass while another thread computes)."""
    end, x = _CPU_CLOCK() + seconds, 0
    while _CPU_CLOCK() < end:
        for i in range(200):
            x += i * i
    return x


def process(data: bytes) -> bytes:
    """The seed's ``process(data)``: spend ``work.cost`` (a sleep, or that much CPU), then echo ``data``."""
    if work.kind == "sleep":
        spend(work.cost, "sleep")
    else:
        compute(work.cost)
    return data


async def aprocess(data: bytes) -> bytes:
    """``process`` for a coroutine: a sleep cost is ``await asyncio.sleep`` (others run meanwhile);
    a CPU cost runs right here and holds up the whole event loop, as real computing would."""
    if work.kind == "sleep":
        await asyncio.sleep(work.cost)
    else:
        compute(work.cost)
    return data


class _Listener(socket.socket):
    """The listening socket handed to the learner's loop: ``accept()`` raises once stopping."""

    stopping: threading.Event

    def accept(self) -> tuple[socket.socket, Any]:
        if self.stopping.is_set():
            raise ServerStopped("the server was stopped")
        conn, addr = super().accept()
        if self.stopping.is_set():
            conn.close()
            raise ServerStopped("the server was stopped")
        return conn, addr


def _close_leftover_transports(loop: asyncio.AbstractEventLoop) -> None:
    """Close the client connections an ``async def`` loop left open when it was stopped, before
    its event loop closes.

    In Python < 3.13 closing an ``asyncio`` server stops listening but leaves its clients'
    transports open (3.13 added ``Server.close_clients()``), and a handler cancelled inside
    ``await reader.read()`` never reaches its ``writer.close()``. A transport that *is* closing
    finishes only on a later turn of the loop (``close()`` schedules its ``connection_lost``). If
    the loop closed first, each such transport and its socket were left for the garbage collector,
    which warns "unclosed transport" in whatever cell runs next (seen once in CI, under load: a
    client's EOF arrived in the loop's last turn). CPython's selector loop keeps its transports
    in ``loop._transports`` (a weak map from descriptor to transport, used for its own "in use by
    a transport" check); a loop without one (Windows' Proactor) is left as it is.
    """
    for transport in list(getattr(loop, "_transports", {}).values()):
        if transport is not None and not transport.is_closing():
            transport.abort()  # the peer is a load client the harness is done with: no flush
    loop.run_until_complete(asyncio.sleep(0))  # two turns: every scheduled connection_lost runs


class LearnerServer(LoopbackServer):
    """Serve with ``loop(listener)``, a function (or ``async def``) written in a cell.

    Example::

        def sequential_loop(listener):
            while True:
                conn, _ = listener.accept()
                ...
        with LearnerServer(sequential_loop) as server:
            run_load(server.address, clients=5)
    """

    kind = "learner"

    def __init__(self, loop: Callable[[socket.socket], Any], host: str = "127.0.0.1", *,
                 name: str | None = None, label: str | None = None) -> None:
        if not callable(loop):
            raise TypeError(f"loop must be your server function, taking the listening socket; got "
                            f"{type(loop).__name__}")
        super().__init__(host, 0, name=name)
        self.loop_fn = loop
        self.label = label or getattr(loop, "__name__", "your loop")
        self._listener: _Listener | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def _open(self) -> socket.socket:
        base = make_listener(self.family, socket.SOCK_STREAM, self.host, self.port_requested)
        listener = _Listener(base.family, base.type, base.proto, fileno=base.detach())
        listener.stopping = self._stopping
        self._listener = listener
        return listener

    def _serve(self) -> None:
        assert self._listener is not None
        try:
            if inspect.iscoroutinefunction(self.loop_fn):
                self._serve_async()
            else:
                self.loop_fn(self._listener)
        except ServerStopped:
            pass
        except Exception as exc:  # the learner's loop ended with an error: keep it for the cell
            if not self._stopping.is_set():
                self._loop_ended(exc)

    def _loop_ended(self, exc: BaseException) -> None:
        """Keep the error that ended the learner's loop in ``.errors`` (and the events). Not a
        warning: the helper servers' "the server kept serving" is not true of a loop that ended,
        and the lesson prints ``server.errors`` where it matters."""
        import traceback

        from ...servers._base import ServerError

        self.errors.append(ServerError(time.perf_counter_ns(), self._label, 0, f"{type(exc).__name__}: {exc}",
                                       "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))
        self._record("error", 0, 0, self.errors[-1].error)

    def _serve_async(self) -> None:
        loop = asyncio.new_event_loop()
        def keep(_loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
            exc = ctx.get("exception")
            if self._stopping.is_set() or isinstance(exc, asyncio.CancelledError):
                return  # handlers cancelled by stop(): not an error
            self._keep_error(0, exc or RuntimeError(ctx.get("message", "asyncio error")))

        loop.set_exception_handler(keep)
        self._aloop = loop
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(self.loop_fn(self._listener))
            if self._stopping.is_set():
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]  # handlers of open clients
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            _close_leftover_transports(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def _wake(self) -> None:
        loop, task = self._aloop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(task.cancel)
            return
        if self._address is not None:  # a loop blocked in accept() or select() wakes and sees the stop
            with contextlib.suppress(OSError), socket.create_connection(self._address, timeout=0.5):
                pass

    def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
