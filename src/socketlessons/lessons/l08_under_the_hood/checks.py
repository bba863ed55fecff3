"""Checkers of lesson 08: two fixes for the write-write-read stall.

Both judge what the peer observes, not how long things took (a busy classroom host can make a
healthy round trip take milliseconds):

* ``check_nodelay_client`` reads the option back from the socket the learner returned
  (``getsockopt(IPPROTO_TCP, TCP_NODELAY)``): with Nagle off, a small write cannot wait for an
  ACK. The round trips it then times are reported, never judged. When the option is off, the
  hint names the likeliest cause, read from the function's source where it can be (the option
  at the SOL_SOCKET level, a look-alike option such as TCP_QUICKACK, the option set to 0 or on
  another socket).
* ``check_send_request`` runs requests against ``RequestServer`` with ``expect=`` the exact
  request bytes, on a socket where Nagle is on. The server records each request's bytes and the
  size of each ``recv()`` it arrived in: header and body written separately arrive in two
  pieces (with Nagle on, the body waits for the header's ACK: the stall), one write arrives in
  one. Wrong bytes (order, ``str`` formatting of ``bytes``, missing pieces) are named; touching
  TCP_NODELAY is the other exercise. The socket handed over is a ``socket.socket`` subclass on
  the same descriptor that counts write calls: two or more per request fail even when a server
  slowed by a busy machine reads them in one piece (one per byte is named as such). Then a 1 MiB
  request on a socket with a 16 KiB send buffer and a timeout: one ``send()``/``sendmsg()``
  whose return value is ignored leaves bytes unsent, and the server sees it.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from ...checks._core import CallersSocket, NotYet, call, checker, expect, in_learners_code
from ...framing import recv_up_to
from .demos import BODY, HEADER, REPLY, RequestServer, write_write_read

__all__ = ["check_nodelay_client", "check_send_request"]

ROUNDS = 5
#: A reply on loopback takes µs, or one delayed ACK (≤ 0.5 s anywhere): longer means no reply.
REPLY_TIMEOUT_S = 2.0
REQUEST = HEADER + BODY

NODELAY_HINT = ("switch Nagle's algorithm off on the socket you return: "
                "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)")
LEVEL_HINT = ("TCP_NODELAY is an option of TCP: its level is socket.IPPROTO_TCP, not SOL_SOCKET or "
              "IPPROTO_IP (at another level the same number means another option)")
CORK_HINT = ("set only TCP_NODELAY: TCP_CORK holds small writes back until a full segment is ready (up to "
             "200 ms), whatever Nagle does, so the requests still stall")
BLOCKING_HINT = ("return the socket blocking (a timeout is fine): a non-blocking one makes the caller's "
                 "recv() raise BlockingIOError when the reply is not there yet")
CLOSED_HINT = ("the socket you returned is closed: a `with` block closes it on the way out; create it "
               "without `with` and return it (the caller closes it)")
TCP_HINT = ("return a TCP socket (SOCK_STREAM, as socket.create_connection makes): Nagle and TCP_NODELAY "
            "belong to TCP; UDP has neither")
LOOKALIKE_HINT = ("TCP_QUICKACK changes when THIS side acknowledges; the stall is your Nagle waiting for the "
                  "server's delayed ACK: set TCP_NODELAY (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)")
WHICH_SOCKET_HINT = ("your function sets TCP_NODELAY, yet the socket it returned has it off: set it to 1 "
                     "(not 0), on the very socket you return, after creating it and before returning it")
NOT_CONNECTED_HINT = "connect it to the address you were given before returning it"
RETURN_HINT = "return the connected socket (socket.create_connection(address) returns one)"


def _source(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


def _nodelay_off_hint(fn: Callable[..., Any]) -> str:
    """The hint for a returned socket whose TCP_NODELAY is off, from what the source mentions."""
    src = _source(fn)
    if "TCP_NODELAY" not in src:
        return LOOKALIKE_HINT if "QUICKACK" in src else NODELAY_HINT
    return LEVEL_HINT if re.search(r"\b(SOL_SOCKET|IPPROTO_IP)\b", src) else WHICH_SOCKET_HINT


@checker("nodelay_client", solution="nodelay_client")
def check_nodelay_client(nodelay_client: Callable[..., Any]) -> str:
    with RequestServer() as server:
        sock = call(nodelay_client, server.address, timeout=5, on_timeout=server.stop)
        if not isinstance(sock, socket.socket):
            raise NotYet(f"your function returned {type(sock).__name__}, not a socket", RETURN_HINT)
        if sock.fileno() == -1:
            raise NotYet("the socket you returned is closed", CLOSED_HINT)
        with sock:
            expect(sock.type == socket.SOCK_STREAM, f"the socket you returned is not TCP ({sock.type!r})", TCP_HINT)
            try:
                sock.getpeername()
            except OSError:
                raise NotYet("the socket you returned is not connected", NOT_CONNECTED_HINT) from None
            flag = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            expect(flag, "TCP_NODELAY is off on the socket you returned: small writes wait for ACKs (Nagle)",
                   _nodelay_off_hint(nodelay_client))
            cork = getattr(socket, "TCP_CORK", None)  # Linux
            expect(cork is None or not sock.getsockopt(socket.IPPROTO_TCP, cork),
                   "TCP_NODELAY is on, and TCP_CORK too on the socket you returned", CORK_HINT)
            expect(sock.gettimeout() != 0.0, "the socket you returned is non-blocking", BLOCKING_HINT)
            sock.settimeout(5)
            times = [write_write_read(sock) for _ in range(ROUNDS)]
    # Reported, not judged: with the option read back as on, a small write cannot wait for an ACK,
    # and a busy machine (a server thread scheduled late) can make a healthy round trip take tens
    # of milliseconds, as long as a stall.
    median = statistics.median(times)
    return (f"TCP_NODELAY is on; {ROUNDS} write-write-read requests took {median / 1e3:,.0f} µs each "
            f"(median; a stalled one waits for a delayed ACK, 40 ms on Linux)")


OPTION_HINT = ("leave the socket options alone here (TCP_NODELAY is the first exercise's fix, and before or "
               "after the writes it changes the socket for every later request): send header and body in one write")
TWO_WRITES_HINT = ("two writes = the second waits for an ACK the server delays; join them into one: "
                   "sock.sendall(header + body)")
MISSING_HINT = "send both the header and the body, every byte (sendall)"
ORDER_HINT = "the header goes first: sock.sendall(header + body)"
REPR_HINT = ("f'{header}{body}' or str(header) writes the text b'...' of each bytes object: join the bytes "
             "themselves, header + body")
BYTES_HINT = "send exactly header + body, nothing added or changed"
ONCE_HINT = "send the request once per call: the server answers every copy, and the caller reads one answer"
READS_REPLY_HINT = ("only send in send_request: the caller reads the reply, so a recv() in your function takes "
                    "the answer away from it")
CALLERS_HINT = ("the socket is the caller's: do not close or shut it down (no `with sock:`); the caller sends "
                "the next request and reads the reply on it")
MANY_WRITES_HINT = ("one write per byte (or per small piece) sends the request in many writes, and with Nagle on "
                    "each write after the first waits for an ACK: join header and body and send them with one "
                    "sock.sendall(header + body)")
SENDALL_HINT = ("send() and sendmsg() take what fits in the socket's buffer and return how many bytes they took "
                "(here only part of a 1 MiB request): use sock.sendall(header + body), which loops until every "
                "byte is out")

#: The large request: 1 MiB, on a socket with a 16 KiB send buffer and a timeout (so send()
#: never blocks: it takes what fits and returns the count), so one send() cannot take it all.
BIG_HEADER = b"LEN %07d\n" % ((1 << 20) - 12)
BIG_BODY = (bytes(range(256)) * 4096)[: (1 << 20) - 12]
SMALL_SNDBUF = 16 * 1024


class _CountingSocket(CallersSocket):
    """A real socket (same descriptor) that counts the calls that write to it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0

    def send(self, *args: Any, **kwargs: Any) -> int:
        self.writes += 1
        return super().send(*args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self.writes += 1
        return super().sendall(*args, **kwargs)

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        self.writes += 1
        return super().sendmsg(*args, **kwargs)

    options_set = 0  # setsockopt calls from the learner's function

    def setsockopt(self, *args: Any) -> None:
        if in_learners_code():
            self.options_set += 1
        super().setsockopt(*args)


def _counting(sock: socket.socket) -> _CountingSocket:
    return _CountingSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())


def _wrong_bytes_hint(got: bytes) -> str:
    if got.startswith(BODY) or got == BODY + HEADER:
        return ORDER_HINT
    if got.startswith(b"b'") or b"'b'" in got:
        return REPR_HINT
    return BYTES_HINT


@checker("send_request", solution="send_request")
def check_send_request(send_request: Callable[..., Any]) -> str:
    with RequestServer(expect=REQUEST) as server, \
            _counting(socket.create_connection(server.address, timeout=5)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # Nagle on, as by default
        sock.settimeout(REPLY_TIMEOUT_S)
        writes: list[int] = []

        def rounds() -> list[tuple[int, bytes]]:
            out = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter_ns()
                before = sock.writes
                send_request(sock, HEADER, BODY)
                writes.append(sock.writes - before)
                try:
                    reply = recv_up_to(sock, len(REPLY))
                except TimeoutError:
                    reply = b""
                out.append((time.perf_counter_ns() - t0, reply))
                if reply != REPLY:
                    break
            return out

        results = call(rounds, timeout=8 + ROUNDS * REPLY_TIMEOUT_S, on_timeout=server.stop)
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        _wait_for_server_eof(sock)
        seen = [r for r in server.requests]
        pending = server.pending
    n = len(HEADER) + len(BODY)
    last_reply = results[-1][1] if results else b""
    if sock.closed_by_learner:
        raise NotYet("your function closed (or shut down) the socket it was given", CALLERS_HINT)
    if nodelay or sock.options_set:
        raise NotYet("your function switched TCP_NODELAY on" if nodelay else
                     f"your function changed the socket's options ({sock.options_set} setsockopt call(s))", OPTION_HINT)
    if len(seen) > len(results):
        raise NotYet(f"{len(results)} calls of your function sent {len(seen)} requests: each call sent it "
                     f"{len(seen) / max(1, len(results)):.0f} times", ONCE_HINT)
    if last_reply != REPLY and seen and seen[-1].data == REQUEST and not pending:
        raise NotYet(f"the server got the whole {n}-byte request and answered, but the answer never reached the "
                     "caller: your function read it", READS_REPLY_HINT)
    if last_reply != REPLY:
        wrong = [r.data for r in seen if r.data != REQUEST]
        if wrong:
            raise NotYet(f"the server expected {REQUEST[:20]!r}… ({n} bytes) and got {wrong[0][:20]!r}…",
                         _wrong_bytes_hint(wrong[0]))
        if pending and not REQUEST.startswith(pending):  # short, and not a piece of the request either
            raise NotYet(f"the server expected {REQUEST[:20]!r}… ({n} bytes) and got {len(pending)} bytes "
                         f"{pending[:20]!r}…", _wrong_bytes_hint(pending))
        raise NotYet(f"no answer within {REPLY_TIMEOUT_S:g} s: the server is still waiting for the rest of the "
                     f"{n}-byte request (it got {len(pending)})", MISSING_HINT)
    split = [r for r in seen if len(r.pieces) > 1]
    median = statistics.median(t for t, _ in results)
    most = max(writes, default=0)
    hint = MANY_WRITES_HINT if most > 2 else TWO_WRITES_HINT
    if split:
        pieces = " + ".join(str(p) for p in split[0].pieces)
        raise NotYet(f"{len(split)} of {len(seen)} requests reached the server in pieces ({pieces} bytes) after "
                     f"{most} writes each; with Nagle on, each took {median / 1e6:.1f} ms (median)", hint)
    if most > 1:  # a server slowed by a busy machine reads both writes at once: the count still tells
        raise NotYet(f"your function wrote each request in {most} writes (send/sendall calls); this time the "
                     "server, slowed by a busy machine, read them together, but with Nagle on each write after "
                     "the first waits for an ACK", hint)
    _check_big_request(send_request)
    return (f"each request arrived in one piece, {len(seen)} of {len(seen)}: {median / 1e3:,.0f} µs per request "
            f"(median), even with Nagle on; a 1 MiB request through a 16 KiB send buffer arrived whole")


def _wait_for_server_eof(sock: socket.socket, deadline_s: float = 5.0) -> None:
    """Shut the checker's write side and read until the server closes: then ``server.requests``
    holds every request the learner's function sent. Without it a busy server may not yet have
    read a second copy of the last request (each reply read may answer an earlier copy), and a
    function that sends twice would pass. Bounded: at most ``deadline_s``."""
    end = time.monotonic() + deadline_s
    try:
        sock.shutdown(socket.SHUT_WR)
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return
    except OSError:  # TimeoutError included: the verdict then rests on what the server saw so far
        return


def _check_big_request(send_request: Callable[..., Any]) -> None:
    """1 MiB through a small send buffer, on a socket with a timeout: a send() whose return is
    ignored leaves the rest unsent, and the server (which answers only a whole request) sees it."""
    request = BIG_HEADER + BIG_BODY
    with RequestServer(request_size=len(request), expect=request) as server, \
            socket.create_connection(server.address, timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SNDBUF)
        sock.settimeout(REPLY_TIMEOUT_S)

        def one() -> bytes:
            send_request(sock, BIG_HEADER, BIG_BODY)
            try:
                return recv_up_to(sock, len(REPLY))
            except TimeoutError:
                return b""

        reply = call(one, timeout=8 + REPLY_TIMEOUT_S, on_timeout=server.stop)
        got = server.pending if not server.requests else server.requests[-1].data
    if reply == REPLY:
        return
    if len(got) < len(request) and request.startswith(got):
        raise NotYet(f"a request of {len(request):,} bytes on a socket with a {SMALL_SNDBUF // 1024} KiB send "
                     f"buffer: the server received {len(got):,} of them", SENDALL_HINT)
    raise NotYet(f"a request of {len(request):,} bytes: the server received {len(got):,} bytes that differ from it "
                 f"(sha256 {hashlib.sha256(got).hexdigest()[:12]}…)", _wrong_bytes_hint(got))
