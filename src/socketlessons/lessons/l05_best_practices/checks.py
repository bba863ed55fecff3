"""Checkers of lesson 05: a client that always closes and never hangs, and asyncio fan-out.

``check_fetch`` runs the learner's ``fetch(address, request, timeout)`` against a server that
echoes in small delayed pieces and closes once the client has half-closed, then against a
silent server. It catches: a single ``recv`` (part of the reply), no half-close (the server
never finishes: the read times out), no timeout (the call hangs on the silent server), a
swallowed timeout, and a socket left open on any path (its ``ResourceWarning`` is recorded).

``check_fetch_all`` runs the learner's ``async def fetch_all(address, requests, timeout)`` in
a fresh event loop in a worker thread (never in the kernel's loop) against a slow echo server
that records how many connections it served at once, then against a silent server. It catches:
requests made one after another, replies out of order, a plain ``def``, a missing timeout and
connections left open.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...servers import DribbleServer
from .demos import HangingServer, SlowEchoServer, recording_resource_warnings

__all__ = ["check_fetch", "check_fetch_all"]

LOOP_HINT = "recv returns what has arrived so far: call it in a loop until it returns b'' (the server closed)"
SHUT_HINT = ("after sendall, say you are done sending with sock.shutdown(socket.SHUT_WR): this server "
             "finishes its reply and closes only then")
TIMEOUT_HINT = ("give the socket a timeout: socket.create_connection(address, timeout=timeout); "
                "a silent server then makes recv raise TimeoutError instead of waiting forever")
PROPAGATE_HINT = ("let the TimeoutError propagate (do not catch it): an empty reply and a server that never "
                  "answered must not look the same to the caller")
CLOSE_HINT = ("open the socket in a with statement (with socket.create_connection(...) as sock:): it is "
              "closed on every path, also when recv raises TimeoutError")
#: The silent server's timeout in the checks, and the slack allowed on top of it.
SILENT_TIMEOUT_S = 0.3
SLACK_S = 2.0


def _closed_everything(warnings_seen: list[str], where: str) -> None:
    expect(not warnings_seen, f"a socket was left open ({where}): Python warned "
           f"'{warnings_seen[0] if warnings_seen else ''}'", CLOSE_HINT)


@checker("fetch", solution="fetch")
def check_fetch(fetch: Callable[..., Any]) -> str:
    request = b"best practices: with, timeout, shutdown, close"
    with recording_resource_warnings() as leaked:
        with DribbleServer(piece=4, pause=0.002) as server:
            try:
                got = call(fetch, server.address, request, 1.0, timeout=4, on_timeout=server.stop)
            except DidNotReturn:
                raise NotYet("against a server that replies in pieces, your function did not return within 4 s",
                             SHUT_HINT) from None
            except TimeoutError:
                raise NotYet("your function raised TimeoutError although the server answered", SHUT_HINT) from None
    _closed_everything(leaked, "after a normal reply")
    expect(isinstance(got, (bytes, bytearray)), f"expected bytes, got {type(got).__name__}",
           "return the bytes the server sent (joined together)")
    expect(got == request, f"expected the whole {len(request)}-byte reply, got {len(got)} bytes: {bytes(got)[:24]!r}",
           LOOP_HINT)

    outcome = "returned"
    with recording_resource_warnings() as leaked:
        with HangingServer() as silent:
            try:
                got = call(fetch, silent.address, b"anyone there?", SILENT_TIMEOUT_S,
                           timeout=SILENT_TIMEOUT_S + SLACK_S, on_timeout=silent.stop)
            except DidNotReturn:
                outcome = "hung"
            except TimeoutError:
                outcome = "timed out"
    expect(outcome != "hung", f"against a silent server your function did not return within "
           f"{SILENT_TIMEOUT_S + SLACK_S:g} s (its timeout argument was {SILENT_TIMEOUT_S} s)", TIMEOUT_HINT)
    expect(outcome == "timed out", f"against a silent server your function returned {got!r} instead of "
           "raising TimeoutError", PROPAGATE_HINT)
    _closed_everything(leaked, "when the server stayed silent")
    return ("the whole reply arrived through pieces, a silent server raised TimeoutError after "
            f"{SILENT_TIMEOUT_S} s, and every socket was closed")


ASYNC_HINT = "define it with async def and use asyncio.open_connection, so that waits overlap"
GATHER_HINT = ("start every request before waiting for any: asyncio.gather(*(one(r) for r in requests)) "
               "runs them at once and keeps their order")
ASYNC_TIMEOUT_HINT = "wrap the waiting in asyncio.wait_for(..., timeout) so a silent server cannot hold you forever"
ASYNC_CLOSE_HINT = "close each connection: writer.close(); await writer.wait_closed() in a finally block"
SLOW_DELAY_S = 0.3


def _run_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Run the learner's coroutine function in a fresh event loop (we are in a worker thread)."""
    coro = fn(*args)
    if not inspect.isawaitable(coro):
        raise NotYet(f"fetch_all returned {type(coro).__name__}, not a coroutine", ASYNC_HINT)
    return asyncio.run(coro)  # type: ignore[arg-type]


@checker("fetch_all", solution="fetch_all")
def check_fetch_all(fetch_all: Callable[..., Any]) -> str:
    expect(inspect.iscoroutinefunction(fetch_all), "fetch_all is a plain function", ASYNC_HINT)
    requests = [f"request {i}: {'.' * i}".encode() for i in range(8)]
    with recording_resource_warnings() as leaked:
        with SlowEchoServer(delay=SLOW_DELAY_S) as server:
            try:
                got = call(_run_async, fetch_all, server.address, requests, 5.0, timeout=6, on_timeout=server.stop)
            except DidNotReturn:
                raise NotYet("fetch_all did not return within 6 s", GATHER_HINT) from None
            at_once = server.max_concurrent
    expect(isinstance(got, (list, tuple)) and len(got) == len(requests),
           f"expected a list of {len(requests)} replies, got {got!r:.80}", GATHER_HINT)
    expect(sorted(map(bytes, got)) == sorted(requests), f"the replies differ from the requests sent: {got[0]!r:.60}…",
           "read each whole echo: await reader.readexactly(len(request))")
    expect(list(map(bytes, got)) == requests, "the replies are not in the order of the requests",
           "asyncio.gather returns results in the order of its arguments (as_completed does not)")
    # All of them at once is what gather gives; half is enough to tell it from one by one, and
    # leaves room for a loaded machine (a classroom) starting some connections late.
    expect(at_once >= len(requests) // 2, f"the server saw at most {at_once} of your {len(requests)} connections "
           f"at once: the requests waited for each other ({len(requests)} × {SLOW_DELAY_S} s)", GATHER_HINT)
    expect(not leaked, "a connection was left open after the replies", ASYNC_CLOSE_HINT)

    outcome = "returned"
    with recording_resource_warnings() as leaked:
        with HangingServer() as silent:
            try:
                call(_run_async, fetch_all, silent.address, requests[:3], SILENT_TIMEOUT_S,
                     timeout=SILENT_TIMEOUT_S + SLACK_S, on_timeout=silent.stop)
            except DidNotReturn:
                outcome = "hung"
            except (TimeoutError, asyncio.TimeoutError):
                outcome = "timed out"
    expect(outcome != "hung", f"against a silent server fetch_all did not return within "
           f"{SILENT_TIMEOUT_S + SLACK_S:g} s", ASYNC_TIMEOUT_HINT)
    expect(outcome == "timed out", "against a silent server fetch_all returned instead of raising TimeoutError",
           ASYNC_TIMEOUT_HINT)
    expect(not leaked, "a connection was left open when the server stayed silent", ASYNC_CLOSE_HINT)
    return (f"{len(requests)} requests were served at the same time ({at_once} connections at once), "
            "in order, and a silent server raised TimeoutError")
