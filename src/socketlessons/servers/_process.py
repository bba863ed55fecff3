"""Process mode: the same helper server, run in a child Python process.

A helper server in the kernel's own threads shares the kernel's GIL: while any other Python
code runs in the kernel, every ``recv``/``send`` of the server waits for its turn (up to the
5 ms switch interval). Lesson 08 measures that. For measurements the GIL would distort, start a
server with ``mode="process"``: the child builds the same server in thread mode, reports its
address through a pipe, and serves until told to stop (or until the pipe closes, so an orphaned
child never outlives the kernel).

The child is started with the ``spawn`` method on every platform: it is what macOS and Windows
use anyway, and forking a kernel with running threads is unsafe.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import warnings
from typing import Any

from ._base import LoopbackServer, ServerError, ServerEvent

#: How long the child may take to import socketlessons and bind (a cold spawn takes ~0.2 s).
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def _child_main(cls: type[LoopbackServer], settings: dict[str, Any], pipe: multiprocessing.connection.Connection) -> None:
    server = cls(**settings)
    try:
        server.start()
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    pipe.send(("ready", server.address))
    try:
        pipe.recv()  # "stop", or EOFError when the parent went away
    except (EOFError, OSError):
        pass
    try:
        with warnings.catch_warnings():  # the parent reports the errors, in the learner's cell
            warnings.simplefilter("ignore")
            server.stop()
    finally:
        try:
            pipe.send(("stopped", list(server.errors), list(server.events)))
        except (OSError, ValueError):
            pass
        finally:
            # Sockets are closed and the report is sent: skip interpreter finalisation, which
            # made stop() wait ~17 ms for nothing (benchmarks/README.md).
            os._exit(0)


class ServerProcess:
    """Runs ``server``'s twin in a child process."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child_end = ctx.Pipe()
        self.process = ctx.Process(
            target=_child_main,
            args=(type(server), server._settings(), child_end),
            name=f"socketlessons-{server._label}",
            daemon=True,
        )
        self._child_end = child_end

    def start(self) -> tuple[str, int]:
        self.process.start()
        self._child_end.close()
        if not self.pipe.poll(START_TIMEOUT_S):
            self._kill()
            raise RuntimeError(f"the server process did not start within {START_TIMEOUT_S} s")
        try:
            kind, payload = self.pipe.recv()
        except EOFError:
            self._kill()
            raise RuntimeError("the server process exited before it was ready") from None
        if kind != "ready":
            self._kill()
            raise RuntimeError(f"the server process could not start: {payload}")
        return tuple(payload)  # type: ignore[return-value]

    def stop(self) -> tuple[list[ServerError], list[ServerEvent]]:
        errors: list[ServerError] = []
        events: list[ServerEvent] = []
        try:
            self.pipe.send("stop")
            if self.pipe.poll(STOP_TIMEOUT_S):
                _, errors, events = self.pipe.recv()
        except (OSError, EOFError, ValueError):
            pass
        self.process.join(STOP_TIMEOUT_S)
        self._kill()
        return errors, events

    def _kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_TIMEOUT_S)
        self.pipe.close()
        self.process.close()
