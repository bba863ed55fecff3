"""Checkers of lesson 08: two fixes for the write-write-read stall.

Both run small requests against ``RequestServer`` (which answers only a complete request) and
time them: a stalled request waits for the server's delayed ACK (40 ms on Linux, more elsewhere),
an unstalled one takes tens of µs on loopback. A request counts as stalled above
``internals.STALL_NS`` (10 ms), far from both. Where this system does not stall at all, the
timing cannot tell the answers apart and the checkers say so; the option check still runs.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from ...checks._core import NotYet, call, checker, expect
from ...framing import recv_up_to
from .demos import BODY, HEADER, REPLY, STALL_NS, RequestServer, write_write_read

__all__ = ["check_nodelay_client", "check_send_request"]

ROUNDS = 5
#: A reply on loopback takes µs, or one delayed ACK (≤ 0.5 s anywhere): longer means no reply.
REPLY_TIMEOUT_S = 2.0


@checker("nodelay_client", solution="nodelay_client")
def check_nodelay_client(nodelay_client: Callable[..., Any]) -> str:
    with RequestServer() as server:
        sock = call(nodelay_client, server.address, timeout=5, on_timeout=server.stop)
        if not isinstance(sock, socket.socket):
            raise NotYet(f"your function returned {type(sock).__name__}, not a socket",
                         "return the connected socket (socket.create_connection(address) returns one)")
        with sock:
            try:
                sock.getpeername()
            except OSError:
                raise NotYet("the socket you returned is not connected",
                             "connect it to the address you were given before returning it") from None
            flag = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            expect(flag, "TCP_NODELAY is off on the socket you returned: small writes wait for ACKs (Nagle)",
                   "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1): the level is IPPROTO_TCP, "
                   "not SOL_SOCKET")
            sock.settimeout(5)
            times = [write_write_read(sock) for _ in range(ROUNDS)]
    median = statistics.median(times)
    expect(median < STALL_NS, f"requests still took {median / 1e6:.1f} ms each",
           "set TCP_NODELAY before the first request, on the socket you return")
    return f"TCP_NODELAY is on; {ROUNDS} write-write-read requests took {median / 1e3:.0f} µs each (median)"


@checker("send_request", solution="send_request")
def check_send_request(send_request: Callable[..., Any]) -> str:
    with RequestServer() as server, socket.create_connection(server.address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # Nagle on, as by default
        sock.settimeout(REPLY_TIMEOUT_S)

        def rounds() -> list[int]:
            out = []
            for _ in range(ROUNDS + 1):  # the first is a warm-up (quick-ACK mode)
                t0 = time.perf_counter_ns()
                send_request(sock, HEADER, BODY)
                try:
                    reply = recv_up_to(sock, len(REPLY))
                except TimeoutError:
                    raise NotYet(f"no answer within {REPLY_TIMEOUT_S:g} s: the server is still waiting for the rest "
                                 f"of the {len(HEADER) + len(BODY)}-byte request",
                                 "send both the header and the body, every byte (sendall)") from None
                out.append(time.perf_counter_ns() - t0)
                if reply != REPLY:
                    raise NotYet(f"the server answered {reply!r} instead of {REPLY!r}: it did not get the whole "
                                 f"request of {len(HEADER) + len(BODY)} bytes",
                                 "send both the header and the body, every byte (sendall)")
            return out[1:]

        times = call(rounds, timeout=8, on_timeout=server.stop)
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
            raise NotYet("your function switched TCP_NODELAY on: that is the first exercise's fix",
                         "leave the socket options alone here: send header and body in one write instead")
    median = statistics.median(times)
    expect(median < STALL_NS, f"with Nagle on, each request took {median / 1e6:.1f} ms: the stall is still there",
           "two writes = the second waits for an ACK; join them into one: sock.sendall(header + body)")
    return f"one write per request: {median / 1e3:.0f} µs each (median of {ROUNDS}), even with Nagle on"
