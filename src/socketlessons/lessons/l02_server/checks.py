"""Checkers of lesson 02: an echo server that serves each client right, and a restartable server.

``check_echo_server`` runs the learner's ``echo_server(listener, clients, timeout)`` in the
background (``clients.serve_in_background``) and drives it with helper clients, one after
another: one that sends in five pieces with pauses, one that sends nothing and says it is done,
one that connects and stays silent, one that sends 4 MiB at once, and a last one; then it calls
the function a second time for one more client (state kept across calls shows there). Each
client compares what it got back with what it sent, byte for byte, and notes who closed and
how. It catches: a single ``recv`` (the slow client gets its first piece back), a loop bounded
by a count (part of the slow client, or the 4 MiB client reset with bytes unread), bytes not
echoed exactly (stripped, ``\\r`` dropped, decoded), a buffer shared between clients or calls,
a loop that does not stop at ``b""`` or a connection not closed (the client never sees the end
of the stream), no timeout or a timeout that is caught and retried (the silent client blocks
the server), a timeout that escapes the function or is swallowed around the whole loop,
``send`` instead of ``sendall`` (the 4 MiB client gets part back), serving fewer clients than
asked, never returning, and closing the caller's listener (``with listener:``). ``checks._core.checker`` adds the busy loop (CPU of the learner's
thread), a changed ``socket.setdefaulttimeout`` and sockets left open.

Judged on behaviour, with margins for a busy machine: the learner's timeout (0.5 s) is ten times
the slow client's pause; a helper client waits 3 s for an echo that takes milliseconds; and the
listener has ``TCP_NODELAY`` (inherited by the connections it accepts), so that an echo in small
pieces is not held back by Nagle's algorithm waiting for delayed ACKs: without it, echoing
4 MiB with ``recv(1024)`` through the 64 KiB send buffer took 0.8-1.4 s here instead of 0.03 s,
and correct servers failed on time.

``check_open_server`` calls the learner's ``open_server(port)`` with port 0, leaves a
connection of that server in TIME_WAIT (the server closes first) and closes it, calls
``open_server`` again on the same port, as a restarted server would, and then once more while
that one still listens, as a second copy of the server started by mistake would. It catches: no
``SO_REUSEADDR`` ("Address already in use" on Linux and macOS), the bind error caught and
``None`` returned, another port tried instead, ``SO_REUSEADDR`` set after
``bind()``, ``SO_REUSEPORT`` instead (two live servers could then share the port), a socket not
closed when ``bind()`` fails, not listening, binding beyond loopback, a socket kept across
calls, and returning nothing. ``socket.create_server()`` passes: it does all of this right.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

from ...addresses import address_in_use_errnos
from ...checks._core import NotYet, call, checker, expect, safe_str
from ...clients import BackgroundServer, ClientRecord, drive, serve_in_background, start_clients
from ...resources import recording_resource_warnings
from .demos import time_wait_count, try_connect

__all__ = ["check_echo_server", "check_open_server"]

LOOP_HINT = ("recv returns what has arrived so far: call it in a loop, sending back each chunk, "
             "until it returns b'' (the client is done)")
COUNT_HINT = ("loop until recv returns b'', not a fixed number of times: `while data := conn.recv(4096):` "
              "stops exactly when the client is done, however many pieces its bytes came in")
BYTES_HINT = ("send back exactly the bytes you received: no strip(), no decode()/encode(), no line-end "
              "changes; an echo server never looks inside the data")
STATE_HINT = ("keep everything a client needs inside the function (a buffer per connection, a counter per "
              "call): a module-level variable carries bytes or counts from one client, or one call, to the next")
EOF_HINT = ("when recv returns b'' the client is done: leave the loop and close the connection "
            "(with conn: ...), so the client sees the end of the stream")
CLOSE_HINT = ("close every connection on every path, also when a client timed out: "
              "with conn: ... closes it for you")
GIVEN_TIMEOUT_HINT = ("use the timeout you were given, in seconds: conn.settimeout(timeout), not a number of "
                      "your own (settimeout takes seconds, not milliseconds)")
TIMEOUT_HINT = ("give each connection a timeout, conn.settimeout(timeout), so a client that sends nothing "
                "cannot block the server forever")
RETRY_HINT = ("when recv raises TimeoutError, give up on that client (leave its loop, close it): catching "
              "the timeout and calling recv again waits for the silent client forever")
CATCH_HINT = ("a silent client makes recv raise TimeoutError: catch it for that client (close its "
              "connection) and go on with the next one")
SWALLOW_HINT = ("put the try/except TimeoutError inside the for loop, around one client: around the whole "
                "loop, the first timeout silently ends the function and the clients after it are never served")
SENDALL_HINT = ("send() takes only what fits in the buffer (with a timeout set, it does not wait for "
                "room): use sendall(), which loops until every byte is sent")
CLIENTS_HINT = "accept one connection per client: loop for _ in range(clients): around accept()"
LISTENER_HINT = ("the listening socket belongs to the caller, who may serve more clients with it: close each "
                 "connection you accept, never the listener (no `with listener:` in your function)")
RETURN_HINT = "after the last client, return: loop for _ in range(clients):, not while True:"
PORT_ARG_HINT = ("bind to the port you are given: sock.bind(('127.0.0.1', port)); port 0 asks the operating "
                 "system for any free port, a fixed number would clash with other servers (and students)")
REUSE_HINT = ("set SO_REUSEADDR before bind(): sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "it lets a restarted server bind a port whose old connections are still in TIME_WAIT")
REUSE_ORDER_HINT = ("the option counts only if it is set before bind(): call setsockopt(...SO_REUSEADDR...) "
                    "first, then bind()")
REUSEPORT_HINT = ("use SO_REUSEADDR, not SO_REUSEPORT: SO_REUSEPORT lets several live servers share one port "
                  "(the kernel spreads clients between them), so a second copy of your server started by "
                  "mistake would silently take half of its clients")
SHARED_HINT = ("a second server could listen on a port your first one still used: on Windows SO_REUSEADDR "
               "allows exactly that, so set it only where TIME_WAIT needs it (not on Windows)")
BIND_ERROR_HINT = ("when bind() fails, let the OSError ('Address already in use') leave your function after "
                   "closing the socket (except OSError: sock.close(); raise): returning None, or printing the "
                   "error, hides from the caller that the server could not start")
NEXT_PORT_HINT = ("bind exactly the port you are given, and when it is in use let the OSError leave your function: "
                  "a server that quietly moves to another port is one its clients cannot find, and a second copy "
                  "started by mistake should fail, not run beside the first")
BIND_CLOSE_HINT = ("when bind() fails, close the socket before the error leaves your function: wrap bind() "
                   "and listen() in try: ... except OSError: sock.close(); raise")
RETURN_SOCK_HINT = "return the listening socket itself (return sock), so the caller can accept() on it"
SAME_SOCK_HINT = ("create a new socket in every call: the one you returned before was closed by its caller; "
                  "a socket kept in a module-level variable cannot be used again")
LISTEN_HINT = "call sock.listen() after bind(): without it, connections are refused"
LOOPBACK_HINT = ("bind to ('127.0.0.1', port): an empty host or '0.0.0.0' listens on every network "
                 "interface, so other machines could connect")

#: The timeout the checker gives the learner's server: ten times the slow client's pause, so a
#: correct server never gives up on the slow client, even when a busy machine delays a thread.
SERVER_TIMEOUT_S = 0.5
#: The slow client sends SLOW in pieces of SLOW_PIECE bytes, PAUSE_S apart.
PAUSE_S = 0.05
SLOW = b" Hello,\r\n  dribbled\tworld \r\n"
SLOW_PIECE = 6
#: How long a helper client waits for the end of the stream before it gives up. A correct
#: server answers within milliseconds; the wait only bounds a wrong one.
CLIENT_WAIT_S = 3.0
BIG = 4 * 1024 * 1024
LAST = b"last one\n"
SECOND = b"second call\r\n"
#: The payloads a server that keeps bytes between clients or calls hands to the wrong client.
KNOWN = (SLOW, LAST, SECOND)
#: The send buffer of the learner's connections: 64 KiB (the kernel doubles it), so that a
#: send() of a 64 KiB chunk, or of everything at once, takes only part of it when the client
#: is slower to read than the server to write; measured here: 8 of 8 runs lost bytes with
#: send(), none with sendall().
SNDBUF = 65536
#: Seconds the learner's function may run in one call before it is stopped.
DEADLINE_S = 20.0


def _describe(rec: ClientRecord) -> str:
    if not rec.payload:
        return f"got back {len(rec.received):,} bytes ({rec.received[:32]!r}{'...' if len(rec.received) > 32 else ''})"
    if len(rec.payload) > 1024:  # random bytes: their repr would say nothing
        return f"got back {len(rec.received):,} of {len(rec.payload):,} bytes"
    got = rec.received if len(rec.received) <= 32 else rec.received[:29] + b"..."
    return f"got back {len(rec.received):,} of {len(rec.payload):,} bytes ({got!r})"


def _served(server: BackgroundServer, n: int, wait_s: float = 0.5) -> bool:
    """True once the server has accepted ``n`` connections (waits at most ``wait_s``)."""
    end = time.monotonic() + wait_s
    while len(server.accepted) < n and time.monotonic() < end:
        time.sleep(0.01)
    return len(server.accepted) >= n


#: How long a client that saw its connection end early waits for the learner's function to
#: finish raising (only on a failing path; a correct server is never waited for).
LEARNER_SETTLE_S = 0.5


def _learner_error(server: BackgroundServer) -> None:
    """Fail with the learner's own exception, if their function raised one."""
    err = server.error
    if err is None:
        return
    if isinstance(err, TimeoutError):
        raise NotYet("your function raised TimeoutError: the silent client's timeout ended the whole server",
                     CATCH_HINT)
    if isinstance(err, UnicodeError):
        raise NotYet(f"your function raised {type(err).__name__}: {safe_str(err)}", BYTES_HINT)
    # Anything else (SystemExit, an exception whose str() fails, ...): call() marked it as the
    # learner's, so checker() reports it with its own hint.
    raise err


def _one(server: BackgroundServer, number: int, payload: bytes, **kwargs: Any) -> ClientRecord:
    [rec] = drive(server.address, [payload], timeout=CLIENT_WAIT_S, **kwargs)
    if rec.received != payload or not rec.eof:
        # The function may be raising right now, after closing the connection: give it a moment
        # (bounded), so its own exception is what the learner reads. CI once reported an
        # unprintable exception as "only its first piece" (the client saw the close first).
        server._returned.wait(LEARNER_SETTLE_S)
    if not _served(server, number, 0.0) and not server.returned:
        _learner_error(server)
        raise NotYet(f"client {number} connected (the backlog took it) but your server never accepted it",
                     CLIENTS_HINT)
    if server.returned and len(server.accepted) < number:
        _learner_error(server)
        if number == 4 and len(server.accepted) == 3:
            raise NotYet("your function returned, without an error, right after the silent client 3 timed out; "
                         "clients 4 and 5 were never served", SWALLOW_HINT)
        raise NotYet(f"your function returned after {len(server.accepted)} client(s); client {number} "
                     "was never served", CLIENTS_HINT)
    _learner_error(server)
    return rec


def _stopped_reading(rec: ClientRecord) -> bool:
    """The server closed while the client was still sending (a reset, or bytes never taken)."""
    return rec.sent < len(rec.payload) or "Reset" in rec.error or "Broken" in rec.error


def _foreign(rec: ClientRecord) -> bool:
    """Bytes that belong to another client (or to an earlier call) came back."""
    got = rec.received
    return (len(got) > len(rec.payload) and rec.payload in got) or any(
        p != rec.payload and p in got for p in KNOWN)


def _holes(sent: bytes, got: bytes) -> bool:
    """``got`` is ``sent`` with pieces missing (each send() took part), not altered bytes."""
    i = next((k for k, (a, b) in enumerate(zip(sent, got)) if a != b), min(len(sent), len(got)))
    window = got[i:i + 64]
    return len(got) < len(sent) and len(window) == 64 and sent.find(window, i) > i


def _judge_bytes(number: int, rec: ClientRecord, what: str) -> None:
    """Fail unless client ``number`` got exactly its bytes back; the hint from how they differ."""
    sent, got = rec.payload, rec.received
    if got == sent:
        return
    told = f"client {number} {what} and {_describe(rec)}"
    if _foreign(rec):
        raise NotYet(f"{told}: bytes another client sent", STATE_HINT)
    if sent.startswith(got):
        if number == 1:
            if len(got) <= SLOW_PIECE:
                raise NotYet(f"{told}: only its first piece", LOOP_HINT)
            raise NotYet(f"{told}: {len(got) // SLOW_PIECE} of its {-(-len(sent) // SLOW_PIECE)} pieces", COUNT_HINT)
        if _stopped_reading(rec):
            end = f" ({rec.error})" if rec.error else ""
            raise NotYet(f"{told}; your server closed the connection while the client was still sending{end}",
                         COUNT_HINT)
        raise NotYet(f"{told}, then the end of the stream: the rest was never sent", SENDALL_HINT)
    if _holes(sent, got):
        raise NotYet(f"{told}: pieces are missing in the middle", SENDALL_HINT)
    raise NotYet(f"{told}; expected exactly {sent[:32]!r}{'...' if len(sent) > 32 else ''}", BYTES_HINT)


def _background(echo_server: Callable[..., Any], clients: int, name: str) -> BackgroundServer:
    def server(listener: socket.socket, *args: Any) -> Any:
        # Inherited by every accepted connection (Linux): no Nagle wait for delayed ACKs when
        # the learner echoes in small pieces (see the module docstring).
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Through call(), so that checker() counts the CPU of the learner's thread (busy loops).
        return call(echo_server, listener, *args, timeout=DEADLINE_S + 5)

    return serve_in_background(server, clients, SERVER_TIMEOUT_S, name=name, deadline=DEADLINE_S, sndbuf=SNDBUF)


def _silent(server: BackgroundServer) -> None:
    """Client 3 connects and stays silent; the server must drop it after its timeout."""
    silent = start_clients(server.address, [b""], shut_write=False, timeout=SERVER_TIMEOUT_S + 2 * CLIENT_WAIT_S)
    end = time.monotonic() + SERVER_TIMEOUT_S + CLIENT_WAIT_S
    while not silent.done and time.monotonic() < end:
        time.sleep(0.01)
    if not silent.done:
        _learner_error(server)
        conn = server.accepted[2] if len(server.accepted) >= 3 else None  # read before the clients stop
        timeout = conn.gettimeout() if conn is not None and conn.fileno() != -1 else None
        probe = start_clients(server.address, [b"probe"], timeout=1.0)
        moved_on = _served(server, 4, 0.5)
        probe.stop()
        silent.stop()
        if moved_on:
            raise NotYet("your server gave up on the silent client 3 but left its connection open", CLOSE_HINT)
        waited = SERVER_TIMEOUT_S + CLIENT_WAIT_S
        if timeout is not None and abs(timeout - SERVER_TIMEOUT_S) > 1e-9:  # not the one it was given
            raise NotYet(f"client 3 connected and stayed silent; its connection had a {timeout:g} s timeout, but "
                         f"your function was given timeout={SERVER_TIMEOUT_S:g}", GIVEN_TIMEOUT_HINT)
        if timeout is not None:
            raise NotYet(f"client 3 connected and stayed silent; its connection had a {timeout:g} s timeout, yet "
                         f"after {waited:g} s your server was still waiting for it", RETRY_HINT)
        listener = server._listener
        misplaced = (" Your listening socket has a timeout, but a socket accept() returns does not inherit it."
                     if listener is not None and listener.fileno() != -1 and listener.gettimeout() is not None else "")
        raise NotYet(f"client 3 connected and stayed silent; after {waited:g} s your server was still waiting "
                     f"for it, so no other client could be served.{misplaced}", TIMEOUT_HINT)
    [rec] = silent.wait()
    _learner_error(server)
    expect(not rec.received, f"client 3 sent nothing and {_describe(rec)}: bytes another client sent", STATE_HINT)
    expect(rec.eof, "client 3 (silent) was dropped without the end of the stream", CLOSE_HINT)


def _returns(server: BackgroundServer, clients: int) -> None:
    returned = server._returned.wait(2.0)
    _learner_error(server)
    expect(returned, f"all {clients} clients were served, but your function was still running 2 s later",
           RETURN_HINT)
    expect(server.left_open == 0, f"your function returned with {server.left_open} connection(s) still open",
           CLOSE_HINT)
    listener = server._listener
    expect(listener is None or listener.fileno() != -1, f"all {clients} clients were served, but your function "
           "closed the listening socket it was given (the caller could accept no more clients on it)", LISTENER_HINT)


@checker("echo_server", solution="echo_server")
def check_echo_server(echo_server: Callable[..., Any]) -> str:
    clients = 5
    with _background(echo_server, clients, "check-echo_server") as server:
        # 1. A slow client: five pieces with pauses.
        rec = _one(server, 1, SLOW, piece=SLOW_PIECE, pause=PAUSE_S)
        _judge_bytes(1, rec, f"sent {len(SLOW)} bytes in {-(-len(SLOW) // SLOW_PIECE)} pieces")
        expect(rec.eof, "client 1 got its bytes back but never saw the end of the stream", EOF_HINT)

        # 2. A client that sends nothing and says it is done.
        rec = _one(server, 2, b"")
        expect(not rec.received, f"client 2 sent nothing and {_describe(rec)}: bytes another client sent",
               STATE_HINT)
        expect(rec.eof, "client 2 sent nothing and never saw the end of the stream", EOF_HINT)

        # 3. A silent client: connects, sends nothing, never says it is done.
        _silent(server)

        # 4. A big payload at once (random bytes: any change shows).
        rec = _one(server, 4, os.urandom(BIG))
        _judge_bytes(4, rec, "sent 4 MiB at once")
        expect(rec.eof, "client 4 got its 4 MiB back but never saw the end of the stream", EOF_HINT)

        # 5. The last client, then the function must return.
        rec = _one(server, 5, LAST)
        _judge_bytes(5, rec, f"sent {LAST!r}")
        expect(rec.eof, f"client 5 {_describe(rec)} but never saw the end of the stream", EOF_HINT)
        _returns(server, clients)

    # A second call, as when the cell runs again: it must serve its client as the first call did.
    with _background(echo_server, 1, "check-echo_server-again") as server:
        [rec] = drive(server.address, [SECOND], timeout=CLIENT_WAIT_S)
        returned = server._returned.wait(2.0)
        _learner_error(server)
        again = (f"called a second time with clients=1, your function {'returned' if returned else 'kept running'}"
                 f" and its client {_describe(rec)}{'' if rec.eof else ' without the end of the stream'}")
        expect(rec.received == SECOND and rec.eof and returned and server.left_open == 0, again, STATE_HINT)
    return (f"{clients} clients served one after another (a slow one, an empty one, a silent one dropped after "
            f"{SERVER_TIMEOUT_S:g} s, 4 MiB echoed byte for byte, a last one), every connection closed, and "
            "a second call served its client the same way")


# ---- open_server ------------------------------------------------------------------------------


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


def _option(sock: socket.socket, name: str) -> bool:
    option = getattr(socket, name, None)
    if option is None:
        return False
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, option))
    except OSError:
        return False


def _in_use(exc: OSError) -> bool:
    return exc.errno in address_in_use_errnos() or exc.errno == errno.EADDRINUSE


@checker("open_server", solution="open_server")
def check_open_server(open_server: Callable[..., Any]) -> str:
    first = call(open_server, 0, timeout=3)
    try:
        port = _check_listener(first, "open_server(0)")
        first_reuse = _option(first, "SO_REUSEADDR")
        _port_zero_is_any_free_port(open_server, first, port)
        _leave_time_wait(first)
    finally:
        if isinstance(first, socket.socket):
            first.close()
    waiting = time_wait_count(port)
    try:
        second = call(open_server, port, timeout=3)
    except OSError as exc:
        if not _in_use(exc):
            raise
        _forget(exc)
        if first_reuse:
            raise NotYet(f"restarting on port {port} failed with 'Address already in use', although your "
                         "socket had SO_REUSEADDR", REUSE_ORDER_HINT) from None
        raise NotYet(f"restarting on port {port} failed with 'Address already in use': its last connection "
                     "is in TIME_WAIT", REUSE_HINT) from None
    try:
        expect(second is not first, f"open_server({port}) returned the same socket object as the first call",
               SAME_SOCK_HINT)
        again = _check_listener(second, f"open_server({port})")
        expect(again == port, f"open_server({port}) listened on port {again} instead", PORT_ARG_HINT)
        _no_second_live_server(open_server, second, port)
    finally:
        if isinstance(second, socket.socket):
            second.close()
    state = f" ({waiting} connection(s) in TIME_WAIT on it)" if waiting else " while its last connection was in TIME_WAIT"
    return (f"your server listened on port {port}, closed, and listened there again at once{state}; a second "
            "copy started while it listened got 'Address already in use' and closed its socket")


def _port_zero_is_any_free_port(open_server: Callable[..., Any], first: socket.socket, taken: int) -> None:
    """While the first server listens on ``taken``, ``open_server(0)`` must listen somewhere else:
    port 0 asks the operating system for any free port. A function that ignores its ``port`` and
    binds a fixed one (8000, say) gets 'Address already in use' here, or the same port."""
    try:
        other = call(open_server, 0, timeout=3)
    except OSError as exc:
        if not _in_use(exc):
            raise
        _forget(exc)
        raise NotYet(f"with your first server still listening on port {taken}, open_server(0) failed with "
                     "'Address already in use': it did not ask for port 0", PORT_ARG_HINT) from None
    if other is first:
        raise NotYet("a second open_server(0) returned the same socket object as the first call", SAME_SOCK_HINT)
    try:
        again = _check_listener(other, "a second open_server(0)")
        expect(again != taken, f"a second open_server(0) listened on port {again} too", PORT_ARG_HINT)
    finally:
        if isinstance(other, socket.socket):
            other.close()


def _forget(exc: BaseException) -> None:
    """Drop the learner's frames an exception keeps alive (with any socket in them)."""
    traceback.clear_frames(exc.__traceback__)


def _no_second_live_server(open_server: Callable[..., Any], live: socket.socket, port: int) -> None:
    """While ``live`` listens on ``port``, a second ``open_server(port)`` must fail, and close its socket."""
    failed = False
    with recording_resource_warnings() as unclosed:
        try:
            third = call(open_server, port, timeout=3)
        except OSError as exc:
            if not _in_use(exc):
                raise
            _forget(exc)
            third, failed = None, True
    if isinstance(third, socket.socket) and third.fileno() != -1:
        elsewhere = third.getsockname()[1]
        if elsewhere != port:
            third.close()
            raise NotYet(f"while your server listened on port {port}, a second open_server({port}) returned a "
                         f"socket on port {elsewhere} instead of failing with 'Address already in use'",
                         NEXT_PORT_HINT)
    if third is None and not failed:
        raise NotYet(f"while your server listened on port {port}, a second open_server({port}) returned None "
                     "instead of raising the OSError from bind() ('Address already in use')", BIND_ERROR_HINT)
    if third is not None:
        shared = isinstance(third, socket.socket) and _listening(third)
        reuseport = _option(live, "SO_REUSEPORT")
        if isinstance(third, socket.socket):
            third.close()
        expect(not shared and not reuseport, f"while your server listened on port {port}, a second "
               f"open_server({port}) {'listened there too' if shared else 'did not fail'}"
               f"{' (SO_REUSEPORT is set)' if reuseport else ''}", REUSEPORT_HINT if reuseport else SHARED_HINT)
        raise NotYet(f"while your server listened on port {port}, a second open_server({port}) returned "
                     f"{type(third).__name__} instead of failing with 'Address already in use'", SHARED_HINT)
    expect(not unclosed, f"a second open_server({port}), started while the first listened, failed in bind() "
           "as it should, but left its socket open (ResourceWarning: unclosed socket)", BIND_CLOSE_HINT)
