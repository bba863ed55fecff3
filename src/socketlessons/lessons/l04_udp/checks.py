"""Checker of lesson 04: a UDP pinger with timeouts, retries and sequence numbers.

``check_ping`` hands the learner's ``ping(sock, address, count, timeout, retries)`` a fresh UDP
socket and runs it against seeded misbehaving echo servers:

1. a perfect server: every ping answered, each round trip a positive number below the timeout;
2. loss 30 %: a pinger without a timeout waits forever; one without retries sends only one
   datagram per ping (the server counts them); answered pings must match the replies sent;
3. loss 30 % with every reply duplicated: the duplicate copies must be ignored, or the pinger
   counts replies the server never sent;
4. every reply 80 ms late against a 50 ms timeout: all pings time out, and a reply that turns
   up during the NEXT ping's wait belongs to the previous ping, not to this one.

A pinger without a timeout blocks on the first lost reply; the checker then wakes its socket
(``shutdown``) and says so.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...servers import UDPEchoServer

__all__ = ["check_ping"]

TIMEOUT_HINT = ("UDP never says a datagram was lost: set a timeout (sock.settimeout(timeout)) and catch "
                "TimeoutError around recvfrom")
RETRY_HINT = "when a ping times out, send it again (up to `retries` more times) before giving up with None"
SEQ_HINT = ("put the ping's number in the message (f'ping {seq}') and ignore replies with another number: "
            "late replies and duplicates belong to other pings")
SHAPE_HINT = "return a list with one entry per ping: the round trip in seconds (a float), or None if it was lost"

TIMEOUT_S = 0.05
COUNT = 20
LOSSY_SEED = 7


@contextlib.contextmanager
def _udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def _waker(sock: socket.socket, server: UDPEchoServer) -> Callable[[], None]:
    def wake() -> None:
        server.stop()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a recvfrom that waits forever (no timeout set)

    return wake


def _run(ping: Callable[..., Any], server: UDPEchoServer, count: int, retries: int, label: str) -> list[Any]:
    with _udp_socket() as sock:
        t0 = time.perf_counter()
        try:
            rtts = call(ping, sock, server.address, count, TIMEOUT_S, retries, timeout=count * (retries + 1) * TIMEOUT_S + 2,
                        on_timeout=_waker(sock, server))
        except DidNotReturn:
            raise NotYet(f"{label}: your pinger did not return; it waited forever for a lost reply",
                         TIMEOUT_HINT) from None
        elapsed = time.perf_counter() - t0
    expect(isinstance(rtts, (list, tuple)) and len(rtts) == count,
           f"{label}: expected a list of {count} round trips, got {rtts!r:.80}", SHAPE_HINT)
    for rtt in rtts:
        expect(rtt is None or (isinstance(rtt, (int, float)) and not isinstance(rtt, bool)),
               f"{label}: each entry must be a number of seconds or None, got {rtt!r}", SHAPE_HINT)
        expect(rtt is None or (rtt > 0 and math.isfinite(rtt)), f"{label}: a round trip of {rtt!r} s",
               "measure with time.perf_counter() just before sendto and just after the matching reply")
    # The round trips are disjoint moments of the run, so in seconds they add up to less than it.
    total = sum(r for r in rtts if r is not None)
    expect(total <= elapsed, f"{label}: your round trips add up to {total:.3g}, but the whole run took "
           f"{elapsed:.3g} s: are they in seconds?", "measure with time.perf_counter() (seconds), just before "
           "sendto and just after the matching reply; do not convert to milliseconds")
    return list(rtts)


@checker("ping", solution="ping")
def check_ping(ping: Callable[..., Any]) -> str:
    with UDPEchoServer() as server:
        rtts = _run(ping, server, 5, 0, "a server that answers every ping")
    expect(all(r is not None for r in rtts), f"a server that answers every ping: you reported {rtts.count(None)} "
           "of 5 as lost", TIMEOUT_HINT)

    with UDPEchoServer(loss=0.3, seed=LOSSY_SEED) as server:
        rtts = _run(ping, server, COUNT, 2, "30 % loss")
    answered = sum(r is not None for r in rtts)
    expect(server.received > COUNT, f"30 % loss: {server.dropped} replies were lost but your pinger sent only "
           f"{server.received} pings for {COUNT} (no retries)", RETRY_HINT)
    expect(answered == server.sent, f"30 % loss: the server answered {server.sent} pings, you counted {answered}",
           SEQ_HINT)

    with UDPEchoServer(loss=0.3, duplicate=1.0, seed=LOSSY_SEED + 1) as server:
        dup = _run(ping, server, COUNT, 2, "30 % loss, every reply duplicated")
    counted = sum(r is not None for r in dup)
    real = server.sent // 2  # each answered attempt was sent back twice
    expect(counted <= real, f"30 % loss, every reply duplicated: you counted {counted} answered pings, "
           f"but the server answered only {real} (you took duplicates for answers)", SEQ_HINT)
    expect(counted == real, f"30 % loss, every reply duplicated: the server answered {real} pings, you counted "
           f"{counted}", SEQ_HINT)

    with UDPEchoServer(delay=TIMEOUT_S + 0.03) as server:
        late = _run(ping, server, 5, 0, "replies 30 ms after the timeout")
    wrongly = sum(r is not None for r in late)
    expect(wrongly == 0, f"every reply came after the timeout, yet you reported {wrongly} of 5 pings answered "
           "(a late reply to ping n arrived while you waited for ping n+1)", SEQ_HINT)
    loss = 1 - answered / COUNT
    return (f"timeouts, retries and sequence numbers all work: with 30 % loss per datagram your pinger lost "
            f"{loss:.0%} of {COUNT} pings after retries, and ignored every duplicate and late reply")
