"""Checkers of lesson 03: the inner loop's end of stream, and a loop that serves clients at once.

``check_echo_until_eof`` hands the learner's function an accepted connection and plays the
client: three requests one after another (a single ``recv`` answers only the first), then
``shutdown(SHUT_WR)`` (EOF: a loop without ``if not data: break`` spins and never returns), then
waits for the server's own EOF (a function that returns without closing leaves the client
hanging). A second client sends a request and resets the connection at once: the function must
neither raise nor leak the socket.

``check_serve_concurrently`` runs the learner's accept loop on a listener with a short timeout
(so it ends on its own), with a handler that takes 0.1 s per request and records when it ran;
six clients connect at once. Their service intervals must overlap: a loop that calls the handler
inline, joins the thread it started, or writes ``Thread(target=handle_client(conn))`` (which
calls it right away) serves them one at a time, and that is what the message says, measured.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...background_call import BackgroundCall
from ...checks._core import NotYet, call, checker, expect
from ...framing import recv_up_to
from ...load import run_load
from ...servers._base import make_listener
from .demos import max_concurrency

__all__ = ["check_echo_until_eof", "check_serve_concurrently"]

LOOP_HINT = "recv returns what has arrived: call it in a loop (while True:) and send back each piece"
EOF_HINT = "recv returns b'' when the client has closed its side: `if not data: break`"
CLOSE_HINT = "close the connection when the loop ends: `with conn:` around the loop, or conn.close() in finally"
RESET_HINT = ("a client can vanish mid-conversation: catch ConnectionError around the loop "
              "(and still close the connection)")
THREAD_HINT = ("start a thread per client and do not wait for it: "
               "threading.Thread(target=handle_client, args=(conn,)).start(); "
               "note that target=handle_client(conn) would call it right away, in the loop")
ACCEPT_HINT = "accept in a loop (while True: conn, addr = listener.accept()) and hand each conn to handle_client"

MESSAGES = (b"first", b"second message", b"third and last")
HANDLER_COST_S = 0.1
CLIENTS = 6


@contextlib.contextmanager
def _pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected (client, server-side conn) pair over real loopback TCP."""
    with make_listener(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 0) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        try:
            conn, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    with client, conn:
        yield client, conn


def _stop(conn: socket.socket) -> Callable[[], None]:
    def stop() -> None:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv; a later send fails

    return stop


def _play_client(client: socket.socket, log: dict[str, Any]) -> None:
    """Three requests, each waiting for its echo; then EOF; then wait for the server's EOF."""
    client.settimeout(1.5)
    log["echoed"] = 0
    try:
        for msg in MESSAGES:
            client.sendall(msg)
            got = recv_up_to(client, len(msg))
            if len(got) < len(msg):
                log["closed_early"] = True
                return
            if got != msg:
                log["wrong"] = (msg, got)
                return
            log["echoed"] += 1
        client.shutdown(socket.SHUT_WR)
        log["server_eof"] = client.recv(100) == b""
    except (TimeoutError, OSError) as exc:
        log["error"] = type(exc).__name__
    finally:
        if "server_eof" not in log:  # gave up early: still let the server see the end of the stream
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)


@checker("echo_until_eof", solution="echo_until_eof")
def check_echo_until_eof(echo_until_eof: Callable[[socket.socket], Any]) -> str:
    with _pair() as (client, conn):
        log: dict[str, Any] = {}
        player = threading.Thread(target=_play_client, args=(client, log), daemon=True)
        player.start()
        try:
            call(echo_until_eof, conn, timeout=3, on_timeout=_stop(conn))
        finally:
            player.join(5)
        echoed = log.get("echoed", 0)
        expect("wrong" not in log, f"the client sent {log.get('wrong', ('',))[0]!r} and got back "
               f"{log.get('wrong', ('', ''))[1]!r}", "send back exactly the bytes you received: conn.sendall(data)")
        expect(echoed == len(MESSAGES), f"the client sent {len(MESSAGES)} messages, one after another, and "
               f"{echoed} came back", LOOP_HINT)
        closed = conn.fileno() == -1
        expect(closed, "your function returned, but the connection is still open: the client is left waiting "
               "for the end of the stream", CLOSE_HINT)
    with _pair() as (client, conn):
        client.sendall(b"goodbye")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # abortive close: a reset, before the server even read the request
        time.sleep(0.05)
        try:
            call(echo_until_eof, conn, timeout=3, on_timeout=_stop(conn))
        except ConnectionError as exc:
            raise NotYet(f"a client that disconnected early made your function raise {type(exc).__name__}",
                         RESET_HINT) from None
        expect(conn.fileno() == -1, "after a client vanished, your function returned without closing the "
               "connection (a leaked socket per rude client)", CLOSE_HINT)
    return (f"echoed {len(MESSAGES)} messages, stopped at the end of the stream, closed the connection, "
            "and survived a client that disconnected early")


@contextlib.contextmanager
def _thread_errors() -> Iterator[list[str]]:
    """Collect exceptions raised in threads the learner started (instead of tracebacks in the cell)."""
    seen: list[str] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        seen.append(f"{args.exc_type.__name__}: {args.exc_value}")

    threading.excepthook = hook
    try:
        yield seen
    finally:
        threading.excepthook = previous


@checker("serve_concurrently", solution="serve_concurrently")
def check_serve_concurrently(serve_concurrently: Callable[..., Any]) -> str:
    spans: list[tuple[int, int]] = []
    lock = threading.Lock()

    def handle_client(conn: socket.socket) -> None:
        """The checker's handler: echo each request after 0.1 s of 'work', record when it ran."""
        with conn:
            conn.settimeout(5)
            while data := conn.recv(1024):
                start = time.perf_counter_ns()
                time.sleep(HANDLER_COST_S)
                conn.sendall(data)
                with lock:
                    spans.append((start, time.perf_counter_ns()))

    with _thread_errors() as thread_errors:
        with make_listener(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 0) as listener:
            listener.settimeout(0.5)  # the learner's loop ends when nobody comes for 0.5 s
            server = BackgroundCall(lambda: serve_concurrently(listener, handle_client),
                                    name="socketlessons-exercise").start()
            t0 = time.perf_counter()
            result = run_load(listener.getsockname(), CLIENTS, timeout=CLIENTS * HANDLER_COST_S + 1.5)
            took = time.perf_counter() - t0
            server.join(3)
        error = server.error  # TimeoutError is the normal end here
        if error is not None and not isinstance(error, TimeoutError):
            raise NotYet(f"your function raised {type(error).__name__}: {error}", ACCEPT_HINT)
        expect(not thread_errors, f"a thread you started raised {thread_errors[0] if thread_errors else ''}",
               THREAD_HINT)
    answered = result.completed
    expect(answered > 0, f"none of the {CLIENTS} clients got an answer", ACCEPT_HINT)
    expect(answered == CLIENTS, f"only {answered} of {CLIENTS} clients got an answer", ACCEPT_HINT)
    at_once = max_concurrency(spans)
    expect(at_once > 1, f"all {CLIENTS} clients were answered, but one at a time (at most {at_once} being "
           f"served at once; {took:.2f} s in all, ≈ {CLIENTS} × {HANDLER_COST_S:g} s)", THREAD_HINT)
    return (f"{CLIENTS} clients, each needing {HANDLER_COST_S:g} s: up to {at_once} were served at once, "
            f"all answered in {took:.2f} s instead of ≈ {CLIENTS * HANDLER_COST_S:.1f} s one by one")
