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
  TCP_NODELAY is the other exercise.
"""

from __future__ import annotations

import inspect
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from ...checks._core import NotYet, call, checker, expect
from ...framing import recv_up_to
from .demos import BODY, HEADER, REPLY, RequestServer, write_write_read

__all__ = ["check_nodelay_client", "check_send_request"]

ROUNDS = 5
#: A reply on loopback takes µs, or one delayed ACK (≤ 0.5 s anywhere): longer means no reply.
REPLY_TIMEOUT_S = 2.0
REQUEST = HEADER + BODY

NODELAY_HINT = ("switch Nagle's algorithm off on the socket you return: "
                "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)")
LEVEL_HINT = ("TCP_NODELAY is an option of TCP: its level is socket.IPPROTO_TCP, not SOL_SOCKET "
              "(at SOL_SOCKET the same number means another option)")
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
    return LEVEL_HINT if "SOL_SOCKET" in src else WHICH_SOCKET_HINT


@checker("nodelay_client", solution="nodelay_client")
def check_nodelay_client(nodelay_client: Callable[..., Any]) -> str:
    with RequestServer() as server:
        sock = call(nodelay_client, server.address, timeout=5, on_timeout=server.stop)
        if not isinstance(sock, socket.socket):
            raise NotYet(f"your function returned {type(sock).__name__}, not a socket", RETURN_HINT)
        with sock:
            try:
                sock.getpeername()
            except OSError:
                raise NotYet("the socket you returned is not connected", NOT_CONNECTED_HINT) from None
            flag = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            expect(flag, "TCP_NODELAY is off on the socket you returned: small writes wait for ACKs (Nagle)",
                   _nodelay_off_hint(nodelay_client))
            sock.settimeout(5)
            times = [write_write_read(sock) for _ in range(ROUNDS)]
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


def _wrong_bytes_hint(got: bytes) -> str:
    if got.startswith(BODY) or got == BODY + HEADER:
        return ORDER_HINT
    if got.startswith(b"b'") or b"'b'" in got:
        return REPR_HINT
    return BYTES_HINT


@checker("send_request", solution="send_request")
def check_send_request(send_request: Callable[..., Any]) -> str:
    with RequestServer(expect=REQUEST) as server, socket.create_connection(server.address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # Nagle on, as by default
        sock.settimeout(REPLY_TIMEOUT_S)

        def rounds() -> list[tuple[int, bytes]]:
            out = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter_ns()
                send_request(sock, HEADER, BODY)
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
        seen = [r for r in server.requests]
    n = len(HEADER) + len(BODY)
    last_reply = results[-1][1] if results else b""
    if nodelay:
        raise NotYet("your function switched TCP_NODELAY on", OPTION_HINT)
    if last_reply != REPLY:
        wrong = [r.data for r in seen if r.data != REQUEST]
        if wrong:
            raise NotYet(f"the server expected {REQUEST[:20]!r}… ({n} bytes) and got {wrong[0][:20]!r}…",
                         _wrong_bytes_hint(wrong[0]))
        raise NotYet(f"no answer within {REPLY_TIMEOUT_S:g} s: the server is still waiting for the rest of the "
                     f"{n}-byte request", MISSING_HINT)
    split = [r for r in seen if len(r.pieces) > 1]
    median = statistics.median(t for t, _ in results)
    if split:
        pieces = " + ".join(str(p) for p in split[0].pieces)
        raise NotYet(f"{len(split)} of {len(seen)} requests reached the server in pieces ({pieces} bytes); "
                     f"with Nagle on, each took {median / 1e6:.1f} ms (median)", TWO_WRITES_HINT)
    return (f"each request arrived in one piece, {len(seen)} of {len(seen)}: {median / 1e3:,.0f} µs per request "
            f"(median), even with Nagle on")
