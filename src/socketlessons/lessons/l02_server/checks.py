"""Checkers of lesson 02: an echo server that serves each client right, and a restartable server.

``check_echo_server`` runs the learner's ``echo_server(listener, clients, timeout)`` in the
background (``clients.serve_in_background``) and drives it with helper clients, one after
another: one that sends in pieces with pauses, one that sends nothing and says it is done,
one that connects and stays silent, one that sends 4 MiB at once, and a last one. The connections have a small send buffer. It
catches:
a single ``recv`` (the slow client gets part back), a loop that does not stop at ``b""`` or a
connection not closed (the client never sees the end of the stream), no timeout (the silent
client blocks the server, the next ones are never served), a timeout that escapes the
function, ``send`` instead of ``sendall`` (the 4 MiB client gets part back: with a timeout
set, ``send`` takes only what fits), and serving fewer clients than asked.

``check_open_server`` calls the learner's ``open_server(port)`` with port 0, leaves a
connection of that server in TIME_WAIT (the server closes first) and closes it, then calls
``open_server`` again on the same port, as a restarted server would. It catches: no
``SO_REUSEADDR`` ("Address already in use" on Linux and macOS), ``SO_REUSEADDR`` set after
``bind()``, not listening, binding beyond loopback and returning nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from ...checks._core import NotYet, call, checker, expect, hint_for
from ...clients import (
    BackgroundServer,
    ClientRecord,
    drive,
    serve_in_background,
    start_clients,
)
from ...resources import recording_resource_warnings
from .demos import address_in_use_errnos, time_wait_count, try_connect

__all__ = ["check_echo_server", "check_open_server"]

LOOP_HINT = ("recv returns what has arrived so far: call it in a loop, sending back each chunk, "
             "until it returns b'' (the client is done)")
EOF_HINT = ("when recv returns b'' the client is done: leave the loop and close the connection "
            "(with conn: ...), so the client sees the end of the stream")
CLOSE_HINT = ("close every connection on every path, also when a client timed out: "
              "with conn: ... closes it for you")
TIMEOUT_HINT = ("give each connection a timeout, conn.settimeout(timeout), so a client that sends nothing "
                "cannot block the server forever")
CATCH_HINT = ("a silent client makes recv raise TimeoutError: catch it for that client (close its "
              "connection) and go on with the next one")
SENDALL_HINT = ("send() takes only what fits in the buffer (with a timeout set, it does not wait for "
                "room): use sendall(), which loops until every byte is sent")
CLIENTS_HINT = "accept one connection per client: loop for _ in range(clients): around accept()"
RETURN_HINT = "after the last client, return: loop for _ in range(clients):, not while True:"
REUSE_HINT = ("set SO_REUSEADDR before bind(): sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "it lets a restarted server bind a port whose old connections are still in TIME_WAIT")
REUSE_ORDER_HINT = ("the option counts only if it is set before bind(): call setsockopt(...SO_REUSEADDR...) "
                    "first, then bind()")
RETURN_SOCK_HINT = "return the listening socket itself (return sock), so the caller can accept() on it"
LISTEN_HINT = "call sock.listen() after bind(): without it, connections are refused"
LOOPBACK_HINT = ("bind to ('127.0.0.1', port): an empty host or '0.0.0.0' listens on every network "
                 "interface, so other machines could connect")

#: The timeout the checker gives the learner's server, and the pause of the slow client (well
#: below it, so a correct server never times out on the slow client).
SERVER_TIMEOUT_S = 0.3
PAUSE_S = 0.03
#: How long a helper client waits for the end of the stream before it gives up.
CLIENT_WAIT_S = 1.5
BIG = 4 * 1024 * 1024
#: The send buffer of the learner's connections: small, so that a send() (with the timeout the
#: learner set) takes only part of a chunk, and a send that should be sendall shows every time.
SNDBUF = 8192


def _describe(rec: ClientRecord) -> str:
    got = rec.received if len(rec.received) <= 24 else rec.received[:21] + b"..."
    return f"got back {len(rec.received):,} of {len(rec.payload):,} bytes ({got!r})"


def _served(server: BackgroundServer, n: int, wait_s: float = 0.5) -> bool:
    """True once the server has accepted ``n`` connections (waits at most ``wait_s``)."""
    end = time.monotonic() + wait_s
    while len(server.accepted) < n and time.monotonic() < end:
        time.sleep(0.01)
    return len(server.accepted) >= n


def _learner_error(server: BackgroundServer) -> None:
    """Fail with the learner's own exception, if their function raised one."""
    err = server.error
    if err is None:
        return
    if isinstance(err, TimeoutError):
        raise NotYet("your function raised TimeoutError: the silent client's timeout ended the whole server",
                     CATCH_HINT)
    raise NotYet(f"your function raised {type(err).__name__}: {err}", hint_for(err))


def _one(server: BackgroundServer, number: int, payload: bytes, **kwargs: Any) -> ClientRecord:
    [rec] = drive(server.address, [payload], timeout=CLIENT_WAIT_S, **kwargs)
    if not _served(server, number, 0.0) and not server.returned:
        _learner_error(server)
        raise NotYet(f"client {number} connected (the backlog took it) but your server never accepted it",
                     CLIENTS_HINT)
    if server.returned and len(server.accepted) < number:
        _learner_error(server)
        raise NotYet(f"your function returned after {len(server.accepted)} client(s); client {number} "
                     "was never served", CLIENTS_HINT)
    return rec


@checker("echo_server", solution="echo_server")
def check_echo_server(echo_server: Callable[..., Any]) -> str:
    clients = 5
    with serve_in_background(echo_server, clients, SERVER_TIMEOUT_S, name="check-echo_server",
                             deadline=15, sndbuf=SNDBUF) as server:
        # 1. A slow client: three pieces with pauses.
        slow = b"hello, dribbled world"
        rec = _one(server, 1, slow, piece=7, pause=PAUSE_S)
        _learner_error(server)
        if rec.received != slow:
            hint = LOOP_HINT if slow.startswith(rec.received) and len(rec.received) < len(slow) else EOF_HINT
            raise NotYet(f"client 1 sent {len(slow)} bytes in 3 pieces and {_describe(rec)}", hint)
        expect(rec.eof, "client 1 got its bytes back but never saw the end of the stream", EOF_HINT)

        # 2. A client that sends nothing and says it is done.
        rec = _one(server, 2, b"")
        _learner_error(server)
        expect(rec.eof and not rec.received, f"client 2 sent nothing; it {_describe(rec)} and "
               f"{'saw' if rec.eof else 'never saw'} the end of the stream", EOF_HINT)

        # 3. A silent client: connects, sends nothing, never says it is done. While it is still
        #    connected, a probe client tells a server stuck on it from one that moved on.
        silent = start_clients(server.address, [b""], shut_write=False, timeout=3 * CLIENT_WAIT_S)
        end = time.monotonic() + CLIENT_WAIT_S
        while not silent.done and time.monotonic() < end:
            time.sleep(0.01)
        if not silent.done:
            _learner_error(server)
            probe = start_clients(server.address, [b"probe"], timeout=1.0)
            moved_on = _served(server, 4, 0.5)
            probe.stop()
            silent.stop()
            if moved_on:
                raise NotYet("your server gave up on the silent client 3 but left its connection open",
                             CLOSE_HINT)
            raise NotYet(f"client 3 connected and stayed silent; after {CLIENT_WAIT_S} s your server was "
                         "still waiting for it, so no other client could be served", TIMEOUT_HINT)
        [rec] = silent.wait()
        _learner_error(server)
        expect(rec.eof, "client 3 (silent) was dropped without the end of the stream", CLOSE_HINT)

        # 4. A big payload at once: with the connection's timeout set, send() takes part of it.
        big = os.urandom(BIG)
        rec = _one(server, 4, big)
        _learner_error(server)
        if rec.received != big:
            # Client 1 showed the recv loop works: bytes missing here (at the end, or in holes
            # when each chunk's send() took only part of it) were lost in sending.
            lost = len(rec.received) < len(big)
            raise NotYet(f"client 4 sent 4 MiB at once and {_describe(rec)}", SENDALL_HINT if lost else LOOP_HINT)
        expect(rec.eof, "client 4 got its 4 MiB back but never saw the end of the stream", EOF_HINT)

        # 5. The last client, then the function must return.
        rec = _one(server, 5, b"last one")
        _learner_error(server)
        expect(rec.received == b"last one" and rec.eof, f"client 5 {_describe(rec)}", EOF_HINT)
        returned = server._returned.wait(2.0)
        _learner_error(server)
        expect(returned, f"all {clients} clients were served, but your function was still running 2 s later",
               RETURN_HINT)
        expect(server.left_open == 0, f"your function returned with {server.left_open} connection(s) still open",
               CLOSE_HINT)
    return (f"{clients} clients served one after another: a slow one, an empty one, a silent one dropped after "
            f"{SERVER_TIMEOUT_S} s, 4 MiB echoed whole, and every connection closed")


def _listening(sock: socket.socket) -> bool:
    attempt = try_connect(sock.getsockname()[:2], timeout=0.5)
    attempt.close()
    return attempt.outcome == "connected"


def _check_listener(sock: Any, what: str) -> int:
    """Check the learner returned a loopback listening TCP socket; return its port."""
    if sock is None:
        raise NotYet(f"{what}: your function returned None", RETURN_SOCK_HINT)
    if not isinstance(sock, socket.socket):
        raise NotYet(f"{what}: expected a socket, got a {type(sock).__name__}", RETURN_SOCK_HINT)
    expect(sock.fileno() != -1, f"{what}: the socket you returned is already closed", RETURN_SOCK_HINT)
    expect(sock.type == socket.SOCK_STREAM, f"{what}: the socket is not a TCP (SOCK_STREAM) socket",
           "create it with socket.socket(socket.AF_INET, socket.SOCK_STREAM)")
    host, port = sock.getsockname()[:2]
    expect(port != 0, f"{what}: the socket is not bound to a port", "bind it: sock.bind(('127.0.0.1', port))")
    expect(host in ("127.0.0.1", "::1"), f"{what}: the socket is bound to {host!r}", LOOPBACK_HINT)
    expect(_listening(sock), f"{what}: a client could not connect to port {port}", LISTEN_HINT)
    return port


def _leave_time_wait(listener: socket.socket) -> None:
    """One connection to ``listener``, closed by the server first (TIME_WAIT on its port)."""
    listener.settimeout(5.0)
    with socket.create_connection(listener.getsockname()[:2], timeout=5.0) as client:
        while True:  # earlier probes may still wait in the backlog: accept until ours comes
            conn, peer = listener.accept()
            conn.close()
            if peer[:2] == client.getsockname()[:2]:
                break
        client.recv(1)


def _reuse_set(sock: socket.socket) -> bool:
    with contextlib.suppress(OSError):
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))
    return False


@checker("open_server", solution="open_server")
def check_open_server(open_server: Callable[..., Any]) -> str:
    # A socket the learner's function leaks when bind() fails is kept alive by the exception's
    # traceback: turn every failure into plain text inside the block, so that the garbage
    # collection at its end finalises the socket here and not in a later cell (or test).
    failure: tuple[str, str] | None = None
    with recording_resource_warnings():
        try:
            return _restart_twice(open_server)
        except NotYet as exc:
            failure = (exc.message, exc.hint)
        except Exception as exc:
            failure = (f"your function raised {type(exc).__name__}: {exc}", hint_for(exc))
    raise NotYet(*failure)


def _restart_twice(open_server: Callable[..., Any]) -> str:
    """Open, leave TIME_WAIT, close, open again on the same port; the success message."""
    first = call(open_server, 0, timeout=3)
    try:
        port = _check_listener(first, "open_server(0)")
        first_reuse = _reuse_set(first)
        _leave_time_wait(first)
    finally:
        if isinstance(first, socket.socket):
            first.close()
    waiting = time_wait_count(port)
    try:
        second = call(open_server, port, timeout=3)
    except OSError as exc:
        in_use = exc.errno in address_in_use_errnos() or exc.errno == errno.EADDRINUSE
        if not in_use:
            raise
        if first_reuse:
            raise NotYet(f"restarting on port {port} failed with 'Address already in use', although your "
                         "socket had SO_REUSEADDR", REUSE_ORDER_HINT) from None
        raise NotYet(f"restarting on port {port} failed with 'Address already in use': its last connection "
                     "is in TIME_WAIT", REUSE_HINT) from None
    try:
        again = _check_listener(second, f"open_server({port})")
        expect(again == port, f"open_server({port}) listened on port {again} instead", "bind to the port you are given")
    finally:
        if isinstance(second, socket.socket):
            second.close()
    state = f" ({waiting} connection(s) in TIME_WAIT on it)" if waiting else " while its last connection was in TIME_WAIT"
    return f"your server listened on port {port}, closed, and listened there again at once{state}"
