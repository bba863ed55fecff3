"""Checkers of lesson 05: a client that always closes and never hangs, and asyncio fan-out.

``check_fetch`` runs the learner's ``fetch(address, request, timeout)`` three times:

1. against a server that reads the request until the client's half-close, then replies in
   2-byte pieces (with spaces and ``b"\\r\\n"`` in the reply) and closes: catches a single
   ``recv``, a loop bounded by a count or a length, a stripped reply, no half-close;
2. with a 16 MiB request to a server that starts reading late, so one ``send()`` cannot take
   it all: the server counts and hashes what arrived (an ignored ``send()`` result); the reply
   must not contain the first call's bytes (a module-level buffer, a mutable default);
3. against a server that never answers: a missing timeout (the call hangs), a swallowed one
   (it returns), a socket left open on that path (its ``ResourceWarning`` is recorded);
4. against a server that sends 20 bytes of its reply and pauses longer than the timeout: the
   call must raise ``TimeoutError`` (a per-recv timeout and one deadline for the call both do),
   not return the partial reply as if it were whole.

``check_fetch_all`` runs ``async def fetch_all(address, requests, timeout)`` in a fresh event
loop in a worker thread (never in the kernel's loop) against a *barrier* echo server: it holds
every echo until all the requests are in progress at once (or 2 s pass), so concurrency is
observed directly, not timed: one after another, batches, a semaphore or a small thread pool
show up as "at most k at once" however busy the machine is. Echoes come back in small pieces
(a single ``read`` is not the echo); a second call with other requests must not return the
first call's replies, and its 11 requests (not 8: a limit tuned to the first call shows) must all
be in progress at once; a silent server must make it raise ``TimeoutError``.

Busy loops, a changed ``socket.setdefaulttimeout`` and leaked descriptors are judged by the
shared ``checker`` machinery (``checks._core``) after these bodies pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...servers import TCPServer
from ...servers._tcp import ConnectionStats
from .demos import HangingServer, recording_resource_warnings

__all__ = ["check_fetch", "check_fetch_all"]

LOOP_HINT = "recv returns what has arrived so far: call it in a loop until it returns b'' (the server closed)"
COUNT_HINT = ("your loop stopped before the server closed: stop when recv returns b'', not after a fixed "
              "number of calls or bytes (the reply's length is not known in advance)")
STRIP_HINT = ("return the bytes exactly as they arrived: no strip(), no decoding; spaces and b'\\r\\n' are "
              "part of the reply")
SHUT_HINT = ("after sendall, say you are done sending with sock.shutdown(socket.SHUT_WR): this server "
             "replies and closes only then")
SENDALL_HINT = ("send() sends what fits in the socket's buffer and returns how many bytes it took: use "
                "sock.sendall(request), which loops until every byte is sent")
STATE_HINT = ("keep the reply in a local variable created inside the function: a module-level buffer or a "
              "default argument (chunks=[]) survives the call and hands old bytes to the next socket")
TIMEOUT_HINT = ("bound every wait by the timeout argument (in seconds): socket.create_connection(address, "
                "timeout=timeout); a silent server then makes recv raise TimeoutError instead of waiting forever")
PROPAGATE_HINT = ("let the TimeoutError propagate (do not catch it): an empty reply and a server that never "
                  "answered must not look the same to the caller")
PARTIAL_REPLY_HINT = ("a pause is not the end of the reply: only recv returning b'' says the server is done. "
                     "When recv raises TimeoutError, let it propagate instead of returning the bytes so far "
                     "as if they were the whole reply")
SLOW_HINT = ("your function half-closed and the server was answering when it raised TimeoutError: the "
             "machine was too busy to reply within the timeout; run the check again")
CLOSE_HINT = ("open the socket in a with statement (with socket.create_connection(...) as sock:): it is "
              "closed on every path, also when recv raises TimeoutError")
#: The silent server's timeout in the checks, and the slack allowed on top of it.
SILENT_TIMEOUT_S = 0.3
SLACK_S = 2.0
#: The large request of ``check_fetch``: more than Linux's largest socket buffers (4 MiB send
#: + 6 MiB receive by default) can hold while the server is not reading, so one send() on a
#: socket with a timeout (non-blocking inside) cannot take it all.
BIG_REQUEST = 16 * 1024 * 1024
#: How long the server waits before reading the large request (the buffers fill meanwhile).
LATE_READ_S = 0.05


#: The reply goes out in pieces this small, this far apart: about 50 pieces over 0.15 s, so
#: that a loop bounded by a count or by the request's length stops early even on a machine so
#: busy that the client falls behind and finds several pieces glued in one recv.
PIECE, PAUSE_S = 2, 0.003
#: ...except after the first piece: a single recv then returns that piece alone (the client
#: would have to stall 30 ms between waking up and reading to see more), so "one recv" and
#: "a few recvs" are told apart by what came back.
FIRST_PAUSE_S = 0.03
#: The pausing server of ``check_fetch`` sends this many bytes of its reply, then waits (longer
#: than any timeout the check gives) until the checker stops it.
STALL_AFTER = 20


def _reply(n: int, head: bytes) -> bytes:
    """The reply to an ``n``-byte request starting with ``head``: longer than the request itself."""
    return b"  got %d bytes: " % n + head + b" -- and this reply is longer than the request \r\n"


class ReplyAfterEOFServer(TCPServer):
    """Reads a request until the client's half-close, then replies in pieces and closes.

    The reply (``_reply``) quotes the request's size and first 40 bytes, and is longer than it.
    ``requests`` records ``(bytes received, sha256 digest)`` per connection, so a checker can
    compare what arrived with what was meant to be sent, byte for byte.
    """

    kind = "reply-after-eof"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, piece: int = PIECE, pause: float = PAUSE_S,
                 read_delay: float = 0.0, stall_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.piece, self.pause, self.read_delay = piece, pause, read_delay
        self.stall_after = stall_after
        self.requests: list[tuple[int, bytes]] = []
        self.eof_at: float | None = None  # time.monotonic() when the request's end was read

    @staticmethod
    def reply_for(request: bytes) -> bytes:
        return _reply(len(request), request[:40])

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        if self.read_delay and self._stopping.wait(self.read_delay):
            return
        digest, head, n = hashlib.sha256(), b"", 0
        while data := self._recv(conn, stats):  # until the client's half-close (or close)
            digest.update(data)
            head = head if len(head) >= 40 else (head + data)[:40]
            n += len(data)
        self.eof_at = time.monotonic()
        self.requests.append((n, digest.digest()))
        reply = _reply(n, head)
        for i in range(0, len(reply), self.piece):
            if self.stall_after is not None and i >= self.stall_after:
                self._stopping.wait()  # a pause mid-reply, until the checker stops the server
                return
            # a longer pause after the first piece: a single recv gets exactly that piece
            if i and self._stopping.wait(FIRST_PAUSE_S if i == self.piece else self.pause):
                return
            self._send(conn, stats, reply[i : i + self.piece])
        conn.shutdown(socket.SHUT_WR)


def _closed_everything(warnings_seen: list[str], where: str) -> None:
    expect(not warnings_seen, f"a socket was left open ({where}): Python warned "
           f"'{warnings_seen[0] if warnings_seen else ''}'", CLOSE_HINT)


#: The timeout the normal calls get: generous, so that a busy machine (30 kernels on a classroom
#: host) does not make a correct client time out; a client that never half-closes costs this much.
FETCH_TIMEOUT_S = 3.0


def _fetch_once(fetch: Callable[..., Any], request: bytes, read_delay: float) -> tuple[Any, list[tuple[int, bytes]]]:
    limit = FETCH_TIMEOUT_S + 5.0
    with recording_resource_warnings() as leaked:
        with ReplyAfterEOFServer(read_delay=read_delay) as server:
            try:
                got = call(fetch, server.address, request, FETCH_TIMEOUT_S, timeout=limit, on_timeout=server.stop)
            except DidNotReturn:
                raise NotYet("against a server that replies once you are done sending, your function did not "
                             f"return within {limit:g} s", SHUT_HINT) from None
            except TimeoutError:
                # A client that never half-closes is seen to end its request only when it closes,
                # i.e. after its recv timed out; a client that half-closed was seen to end it at
                # least one timeout before it raised (its recv waited that long after shutdown).
                eof_at = server.eof_at
                if eof_at is not None and eof_at < time.monotonic() - FETCH_TIMEOUT_S / 2:
                    raise NotYet(f"your function raised TimeoutError ({FETCH_TIMEOUT_S:g} s) while the server, "
                                 "which had your whole request, was still replying", SLOW_HINT) from None
                raise NotYet("your function raised TimeoutError: the server was still waiting for the end of your "
                             "request", SHUT_HINT) from None
            received = list(server.requests)
    _closed_everything(leaked, "after a normal reply")
    expect(isinstance(got, (bytes, bytearray)), f"expected bytes, got {type(got).__name__}",
           "return the bytes the server sent (joined together)")
    return bytes(got), received


@checker("fetch", solution="fetch")
def check_fetch(fetch: Callable[..., Any]) -> str:
    request = b"best practices: with, timeout, shutdown, close"
    expected = ReplyAfterEOFServer.reply_for(request)
    got, _ = _fetch_once(fetch, request, 0.0)
    if got != expected:
        shown = (f"expected the whole {len(expected)}-byte reply ({expected[:20]!r}…{expected[-12:]!r}), got "
                 f"{len(got)} bytes: {got[:24]!r}{'…' if len(got) > 24 else ''}")
        if got and got in (expected.strip(), expected.rstrip(), expected.lstrip()):
            raise NotYet(shown, STRIP_HINT)
        if expected.startswith(got) and len(got) > PIECE:  # more than the first piece: several recvs
            raise NotYet(shown, COUNT_HINT)
        raise NotYet(shown, LOOP_HINT)

    big = b"second call " + b"x" * (BIG_REQUEST - 12)
    got2, received = _fetch_once(fetch, big, LATE_READ_S)
    expect(expected not in got2, f"the second call (another socket) returned bytes of the first call's reply: "
           f"{got2[:40]!r}…", STATE_HINT)
    n, digest = received[0] if received else (0, b"")
    expect(n == len(big), f"with a {len(big) // 2**20} MiB request, the server received {n:,} of its "
           f"{len(big):,} bytes before your half-close", SENDALL_HINT)
    expect(digest == hashlib.sha256(big).digest(), "the server received as many bytes as you were given, but "
           "not the same bytes", "send the request exactly as given (bytes, unchanged)")
    expect(got2 == ReplyAfterEOFServer.reply_for(big), f"on the second call, expected the reply "
           f"{ReplyAfterEOFServer.reply_for(big)[:30]!r}…, got {got2[:30]!r}", LOOP_HINT)

    outcome, got = "returned", None
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
    expect(outcome == "timed out", f"against a silent server your function returned {got!r:.60} instead of "
           "raising TimeoutError", PROPAGATE_HINT)
    _closed_everything(leaked, "when the server stayed silent")

    # A pause in the middle of the reply, longer than the timeout: a correct client raises
    # TimeoutError whether its timeout restarts at each recv or is one deadline for the call.
    outcome, got = "returned", None
    with recording_resource_warnings() as leaked:
        with ReplyAfterEOFServer(stall_after=STALL_AFTER) as stalling:
            try:
                got = call(fetch, stalling.address, request, SILENT_TIMEOUT_S,
                           timeout=SILENT_TIMEOUT_S + SLACK_S, on_timeout=stalling.stop)
            except DidNotReturn:
                outcome = "hung"
            except TimeoutError:
                outcome = "timed out"
            finally:
                stalling.stop()
    expect(outcome != "hung", f"the server sent {STALL_AFTER} bytes of its reply and paused: your function did not "
           f"return within {SILENT_TIMEOUT_S + SLACK_S:g} s (its timeout argument was {SILENT_TIMEOUT_S} s)",
           TIMEOUT_HINT)
    if outcome != "timed out":
        partial = isinstance(got, (bytes, bytearray)) and 0 < len(got) < len(expected) and expected.startswith(got)
        raise NotYet(f"the server sent {STALL_AFTER} of its {len(expected)} bytes and paused longer than your "
                     f"timeout: your function returned {got!r:.60} instead of raising TimeoutError",
                     PARTIAL_REPLY_HINT if partial else PROPAGATE_HINT)
    _closed_everything(leaked, "when the server paused mid-reply")
    return ("the whole reply arrived through pieces, a 16 MiB request arrived whole, a second call started "
            f"afresh, a silent server and one pausing mid-reply raised TimeoutError after {SILENT_TIMEOUT_S} s, and every "
            "socket was closed")


ASYNC_HINT = "define it with async def and use asyncio.open_connection, so that waits overlap"
GATHER_HINT = ("start every request before waiting for any: asyncio.gather(*(one(r) for r in requests)) "
               "runs them at once and keeps their order")
PARTIAL_HINT = ("something limits how many requests run at once (batches, a semaphore, a pool of threads): "
                "start them all together with asyncio.gather(*(one(r) for r in requests))")
READ_HINT = ("one read() returns what has arrived, not the whole echo: await reader.readexactly(len(request)) "
             "waits for all of it")
AWAIT_HINT = ("a coroutine call only makes a coroutine: await it (await reader.readexactly(n)), or the reply "
              "you return is a coroutine object, not bytes")
ASYNC_STRIP_HINT = "return each echo exactly as it arrived: no strip(), no decoding"
ORDER_HINT = "asyncio.gather returns results in the order of its arguments (as_completed does not)"
ASYNC_STATE_HINT = ("build the list of replies inside the function: a module-level list (or a default argument) "
                    "keeps the replies of earlier calls")
ASYNC_TIMEOUT_HINT = "wrap the waiting in asyncio.wait_for(..., timeout) so a silent server cannot hold you forever"
ASYNC_PROPAGATE_HINT = ("let the TimeoutError reach the caller: gather(..., return_exceptions=True) or an except "
                        "that returns makes a silent server look like an answer")
ASYNC_CANCEL_HINT = ("when the timeout fires, cancel the requests still running: asyncio.wait_for(asyncio.gather("
                     "...), timeout) does it for you; asyncio.wait(tasks, timeout=...) leaves them running")
ASYNC_CLOSE_HINT = "close each connection: writer.close(); await writer.wait_closed() in a finally block"
#: How long the barrier server waits for every request to be in progress before it gives up
#: and echoes anyway. A correct fetch_all starts all of them within milliseconds; 2 s leave
#: room for a machine where every core is busy.
BARRIER_PATIENCE_S = 2.0
#: The first call's requests: spaces, b"\r\n", a newline inside (readline would stop there).
REQUESTS = [b"request 0", b"  request 1  ", b"request 2\r\n", b"line one\nline two", b"request 4\t",
            b"request 5: " + b"." * 40, b"\r\nrequest 6", b"request 7 \n"]
#: The second call's requests: another count (11, not 8), so a limit tuned to the first call
#: (a Semaphore(8), a pool of 8 threads) shows up as "not all at once".
SECOND_REQUESTS = [b"second call a", b"second call b ", b"second call c\r\n",
                   *(b"second call %d" % i for i in range(3, 11))]
#: The pause after each echo's first piece (see ``BarrierEchoServer._echo``).
ECHO_FIRST_PAUSE_S = 0.05
#: fetch_all's timeout against the silent server: long enough that a busy loop waiting for it
#: uses a measurable share of CPU even when every core is busy (the shared busy-loop check).
ASYNC_SILENT_TIMEOUT_S = 0.6


class BarrierEchoServer(TCPServer):
    """Echo server that holds every echo until ``parties`` requests are in progress at once.

    A client that sends all its requests together gets its echoes at once; one that waits for
    some replies before sending the others makes the server wait ``patience`` seconds, after
    which it echoes everything (late) from then on. ``max_concurrent`` is the most requests in
    progress at the same moment: behaviour, not timing. Echoes go out in ``piece``-byte pieces.
    """

    kind = "barrier-echo"

    def __init__(self, parties: int, host: str = "127.0.0.1", port: int = 0, *,
                 patience: float = BARRIER_PATIENCE_S, piece: int = 4, pause: float = 0.001, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.parties, self.patience, self.piece, self.pause = parties, patience, piece, pause
        self._barrier = threading.Barrier(parties)
        self._count_lock = threading.Lock()
        self._in_progress = 0
        self.max_concurrent = 0

    def _wake(self) -> None:
        self._barrier.abort()  # threads waiting at the barrier go on (and see _stopping)
        super()._wake()

    def _echo(self, conn: socket.socket, stats: ConnectionStats, data: bytes) -> bool:
        for i in range(0, len(data), self.piece):
            # a longer pause after the first piece: a single read() gets exactly that piece, however
            # busy the machine (the client would have to stall 50 ms between waking and reading)
            if i and self._stopping.wait(ECHO_FIRST_PAUSE_S if i == self.piece else self.pause):
                return False
            self._send(conn, stats, data[i : i + self.piece])
        return True

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        data = self._recv(conn, stats)
        if not data:
            return
        with self._count_lock:
            self._in_progress += 1
            self.max_concurrent = max(self.max_concurrent, self._in_progress)
        try:
            self._barrier.wait(self.patience)
        except threading.BrokenBarrierError:
            pass  # not all at once (or stopping): echo anyway, late
        finally:
            with self._count_lock:  # uncounted BEFORE the echo leaves
                self._in_progress -= 1
        if self._stopping.is_set() or not self._echo(conn, stats, data):
            return
        while data := self._recv(conn, stats):
            if not self._echo(conn, stats, data):
                return


#: How many of the learner's tasks were still running when its coroutine ended (the last run).
_LEFT_RUNNING: list[int] = [0]


def _run_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Run the learner's coroutine function in a fresh event loop (we are in a worker thread).

    As ``asyncio.run`` does, but first counts the tasks still running when the coroutine ended
    (``_LEFT_RUNNING``): ``asyncio.run`` cancels them quietly, which hid a ``fetch_all`` that
    raises on its timeout and leaves its requests running (in a notebook's loop they would go on).
    """
    coro = fn(*args)
    if not inspect.isawaitable(coro):
        raise NotYet(f"fetch_all returned {type(coro).__name__}, not a coroutine", ASYNC_HINT)
    loop = asyncio.new_event_loop()
    try:
        main = loop.create_task(coro)  # type: ignore[arg-type]
        try:
            return loop.run_until_complete(main)
        finally:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            _LEFT_RUNNING[0] = len(left)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _fetch_all_once(fetch_all: Callable[..., Any], requests: list[bytes]) -> tuple[list[bytes], int]:
    deadline = BARRIER_PATIENCE_S + 4
    with recording_resource_warnings() as leaked:
        with BarrierEchoServer(len(requests)) as server:
            try:
                got = call(_run_async, fetch_all, server.address, list(requests), 5.0, timeout=deadline,
                           on_timeout=server.stop)
            except DidNotReturn:
                raise NotYet(f"fetch_all did not return within {deadline:g} s", GATHER_HINT) from None
            at_once = server.max_concurrent
    if isinstance(got, (list, tuple)) and any(inspect.isawaitable(g) for g in got):
        for g in got:  # never awaited: close them, so no "never awaited" warning reaches a later cell
            if inspect.iscoroutine(g):
                g.close()
        raise NotYet(f"expected a list of bytes, got {got!r:.80}", AWAIT_HINT)
    if isinstance(got, (list, tuple)) and got and all(isinstance(g, str) for g in got):
        raise NotYet(f"expected a list of bytes, got {got!r:.80}", ASYNC_STRIP_HINT)
    expect(isinstance(got, (list, tuple)) and all(isinstance(g, (bytes, bytearray)) for g in got),
           f"expected a list of bytes, got {got!r:.80}", GATHER_HINT)
    expect(not leaked, "a connection was left open after the replies", ASYNC_CLOSE_HINT)
    return [bytes(g) for g in got], at_once


@checker("fetch_all", solution="fetch_all")
def check_fetch_all(fetch_all: Callable[..., Any]) -> str:
    expect(inspect.iscoroutinefunction(fetch_all), "fetch_all is a plain function", ASYNC_HINT)
    n = len(REQUESTS)
    got, at_once = _fetch_all_once(fetch_all, REQUESTS)
    if sorted(got) != sorted(REQUESTS):
        shown = f"{n} requests, {len(got)} replies; the replies differ from the requests: {got[:3]!r:.80}…"
        if len(got) == n and sorted(got) == sorted(r.strip() for r in REQUESTS):
            raise NotYet(shown, ASYNC_STRIP_HINT)
        if len(got) == n and all(any(r.startswith(g) for r in REQUESTS) for g in got):
            raise NotYet(shown, READ_HINT)
        raise NotYet(shown, GATHER_HINT if len(got) != n else READ_HINT)
    expect(got == REQUESTS, "the replies are not in the order of the requests", ORDER_HINT)
    expect(at_once > 1, f"the server saw one request at a time: each of your {n} requests waited for the "
           "previous reply", GATHER_HINT)
    expect(at_once == n, f"the server saw at most {at_once} of your {n} requests in progress at once, "
           f"never all {n}", PARTIAL_HINT)

    again, at_once = _fetch_all_once(fetch_all, SECOND_REQUESTS)
    expect(again == SECOND_REQUESTS, f"a second call with {len(SECOND_REQUESTS)} other requests returned "
           f"{len(again)} replies: {again[:2]!r:.80}…",
           ASYNC_STATE_HINT if len(again) > len(SECOND_REQUESTS) or any(g in REQUESTS for g in again)
           else READ_HINT)
    m = len(SECOND_REQUESTS)
    expect(at_once == m, f"a second call with {m} requests: the server saw at most {at_once} in progress at once, "
           f"never all {m} (the first call had {n})", PARTIAL_HINT)

    outcome = "returned"
    with recording_resource_warnings() as leaked:
        with HangingServer() as silent:
            _LEFT_RUNNING[0] = 0
            try:
                call(_run_async, fetch_all, silent.address, SECOND_REQUESTS, ASYNC_SILENT_TIMEOUT_S,
                     timeout=ASYNC_SILENT_TIMEOUT_S + SLACK_S, on_timeout=silent.stop)
            except DidNotReturn:
                outcome = "hung"
            except (TimeoutError, asyncio.TimeoutError):
                outcome = "timed out"
    expect(outcome != "hung", f"against a silent server fetch_all did not return within "
           f"{ASYNC_SILENT_TIMEOUT_S + SLACK_S:g} s (its timeout argument was {ASYNC_SILENT_TIMEOUT_S} s)",
           ASYNC_TIMEOUT_HINT)
    expect(outcome == "timed out", "against a silent server fetch_all returned instead of raising TimeoutError",
           ASYNC_PROPAGATE_HINT)
    expect(not _LEFT_RUNNING[0], f"against a silent server fetch_all raised TimeoutError, but {_LEFT_RUNNING[0]} "
           "of its requests were still running (their connections open)", ASYNC_CANCEL_HINT)
    expect(not leaked, "a connection was left open when the server stayed silent", ASYNC_CLOSE_HINT)
    return (f"all {n} requests were in progress at the same time, every echo came back whole and in order, "
            f"a second call started afresh with all its {len(SECOND_REQUESTS)} at once, and a silent server raised "
            "TimeoutError")
