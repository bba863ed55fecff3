"""Lesson 01 (the TCP client): the measurements and demonstrations that only it needs.

* ``never_accepting_listener()``: a peer that completes the handshake (the kernel does it, in
  the backlog) but never reads and never answers: ``send`` fills the buffers and stops, ``recv``
  waits until a timeout. Needs no thread, so nothing can print or leak.
* ``SourceServer``: sends as many bytes as a client asks for (an 8-byte count), so a client
  can time receiving a fixed payload with any ``recv`` buffer size, without deadlocks.
* ``connect_op``, ``send_timer``, ``recv_timer``, ``one_recv_timer``, ``held_connections``:
  what the notebook's sweeps and panels time.
* ``send_verdict``, ``recv_verdicts``, ``connect_verdict``: verdicts computed from the
  learner's own points, printed beside each claim of the reference's table.

Used in 01_client.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..addresses import Address, check_loopback_host, family_of
from ..measure import Affine, Growth, Point, Verdict, compare, fit_affine, fit_growth
from ..servers import ConnectionStats, TCPServer

__all__ = [
    "SourceServer",
    "connect_op",
    "connect_verdict",
    "held_connections",
    "never_accepting_listener",
    "one_recv_timer",
    "recv_timer",
    "recv_verdicts",
    "send_timer",
    "send_verdict",
]

#: Most bytes a SourceServer sends for one request (bounded memory and time).
MAX_SOURCE_BYTES = 64 * 1024 * 1024


@contextlib.contextmanager
def never_accepting_listener(host: str = "127.0.0.1", *, backlog: int = 8,
                             rcvbuf: int | None = None) -> Iterator[Address]:
    """Yield the address of a listening socket that never calls ``accept()``.

    A client's ``connect`` still succeeds (the kernel completes the handshake and queues the
    connection in the backlog) and its first bytes are even accepted into the receive buffer;
    after that, nobody reads: ``send`` stops when the buffers are full and ``recv`` waits for
    an answer that never comes. ``rcvbuf`` shrinks the receive buffer (set before ``listen``,
    so queued connections inherit it). Closing it at the end resets the queued connections.
    """
    host = check_loopback_host(host)
    with socket.socket(family_of(host), socket.SOCK_STREAM) as listener:
        if rcvbuf is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind((host, 0))
        listener.listen(backlog)
        yield listener.getsockname()[:2]


class SourceServer(TCPServer):
    """Answers each 8-byte big-endian count N with N bytes (``b"x"``s), for as long as asked.

    The far end of a receive measurement: the client asks for a payload, then times reading it
    with whatever buffer size it likes; nothing else is in flight, so nothing can deadlock.
    """

    kind = "source"
    COUNT = struct.Struct("!Q")

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        block = memoryview(b"x" * (1024 * 1024))
        pending = b""
        while data := self._recv(conn, stats):
            pending += data
            while len(pending) >= self.COUNT.size:
                (n,), pending = self.COUNT.unpack(pending[: self.COUNT.size]), pending[self.COUNT.size :]
                n = min(n, MAX_SOURCE_BYTES)
                while n > 0 and not self._stopping.is_set():
                    chunk = block[: min(n, len(block))]
                    conn.sendall(chunk)
                    stats.bytes_out += len(chunk)
                    n -= len(chunk)


# ---- what the notebook times ------------------------------------------------------------------


def connect_op(address: Address) -> Callable[[], None]:
    """An op for ``time_op``: create a socket, connect it to ``address``, close it."""
    family = family_of(address[0])

    def op() -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.connect(address)
        finally:
            sock.close()

    return op


@contextlib.contextmanager
def held_connections(address: Address, n: int, *, timeout: float = 5.0) -> Iterator[list[socket.socket]]:
    """Open ``n`` connections to ``address`` and hold them open (idle) inside the block."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 2000:
        raise ValueError(f"n must be an int from 0 to 2000 (connections to hold), got {n!r}")
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(address, timeout=timeout))
        yield socks
    finally:
        for sock in socks:
            sock.close()


def send_timer(address: Address) -> Callable[[Any], Any]:
    """A ``SweepPanel`` measurement: ``sendall(payload)`` to a sink at ``address``, on one connection.

    Blocking socket, no timeout (a timeout adds a ``poll()`` per call, measured in 08).
    """

    @contextlib.contextmanager
    def measure(s: Any) -> Iterator[Callable[[], None]]:
        with socket.create_connection(address) as sock:
            sock.settimeout(None)
            payload = s.payload
            yield lambda: sock.sendall(payload)

    return measure


def recv_timer(address: Address) -> Callable[[Any], Any]:
    """A ``SweepPanel`` measurement: ask a ``SourceServer`` for ``s.payload_size`` bytes and
    time reading them all with ``recv(s.x)``; each point's ``extra`` holds the recv calls."""

    @contextlib.contextmanager
    def measure(s: Any) -> Iterator[Callable[[], None]]:
        size, bufsize = s.payload_size, s.x
        request = SourceServer.COUNT.pack(size)
        calls: list[int] = []
        with socket.create_connection(address) as sock:
            sock.settimeout(None)

            def op() -> None:
                sock.sendall(request)
                got = n = 0
                while got < size:
                    chunk = sock.recv(bufsize)
                    if not chunk:
                        raise ConnectionError("the source server closed the connection early")
                    got += len(chunk)
                    n += 1
                calls.append(n)

            op.extra = lambda: {"calls": statistics.median(calls), "ideal": -(-size // bufsize)}  # type: ignore[attr-defined]
            yield op

    return measure


def one_recv_timer(address: Address) -> Callable[[int], Any]:
    """For ``measure.sweep`` over buffer sizes: one byte is echoed, then ONE ``recv(bufsize)``
    returns it. Times the round trip; only the buffer size asked for changes between points."""

    @contextlib.contextmanager
    def make(bufsize: int) -> Iterator[Callable[[], None]]:
        with socket.create_connection(address) as sock:
            sock.settimeout(None)

            def op() -> None:
                sock.sendall(b"x")
                sock.recv(bufsize)

            yield op

    return make


# ---- verdicts from the learner's own numbers ---------------------------------------------------


def _fmt_ns(ns: float) -> str:
    if abs(ns) >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if abs(ns) >= 1e3:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def connect_verdict(socket_ns: float, connect_ns: float, rtt_ns: float, by_open: Sequence[Point]) -> Verdict:
    """Verdict on "connect() is O(1) + network latency" (and the snippet's "O(n)") from the
    cost of ``socket()+close()``, of ``socket()+connect()+close()``, of a 1-byte echo round
    trip, and of connect against the number of connections already open."""
    handshake = connect_ns - socket_ns
    growth = fit_growth([max(p.x, 1) for p in by_open], [p.median_ns for p in by_open])
    per_rtt = handshake / rtt_ns if rtt_ns > 0 else float("nan")
    base = (f"connect() costs {_fmt_ns(handshake)} beyond socket()+close(), about {per_rtt:.1f}× a 1-byte "
            f"round trip ({_fmt_ns(rtt_ns)}): one handshake, a round trip's worth of waiting")
    if growth.label == "constant":
        return Verdict("confirmed", f"connect() is O(1) + latency: confirmed. {base}; with up to "
                                    f"{max(p.x for p in by_open):.0f} connections open it stays flat "
                                    f"(slope {growth.slope:.2f}), so the snippet's 'O(n)' is refined: "
                                    "no n that grows, only the latency of one round trip.")
    if growth.label == "too noisy to say":
        return Verdict("inconclusive", f"connect() is O(1) + latency: inconclusive. {base}; against the "
                                       f"connections open: {growth.note or 'too noisy'}. Run the sweep again.")
    return Verdict("refined", f"connect() is O(1) + latency: refined. {base}; against the connections open "
                              f"it grew ({growth}): look at what else ran on the machine.")


def send_verdict(points: Sequence[Point], *, large_from: int = 64 * 1024) -> tuple[Verdict, Affine, Growth]:
    """Verdict on "send() is O(k)" from a sweep of ``sendall`` time against payload size.

    Fits ``time = fixed + per_byte × k`` over every point, and the log-log growth over the
    points with ``k ≥ large_from``. Small sends are dominated by the fixed per-call cost.
    """
    xs, ys = [p.x for p in points], [p.median_ns for p in points]
    if len(xs) < 3:
        raise ValueError("need at least 3 points: run the sweep over more payload sizes")
    affine = fit_affine(xs, ys)
    big = [(x, y) for x, y in zip(xs, ys) if x >= large_from]
    growth = fit_growth([x for x, _ in big], [y for _, y in big]) if len(big) >= 3 else fit_growth(xs, ys)
    fixed = min(ys[: max(1, len(ys) // 3)])  # the flat left end: the cost of an almost empty send
    per_byte = max(affine.per_unit_ns, 1e-6)
    breakeven = fixed / per_byte
    where = f"k ≥ {_fmt_bytes(large_from)}" if len(big) >= 3 else "all k"
    core = compare(f"send() is O(k) (over {where})", "linear", growth)
    text = (f"{core.text} Every call also pays a fixed {_fmt_ns(fixed)} (the smallest sends), and each byte "
            f"{per_byte:.3g} ns: below about {_fmt_bytes(breakeven)} the fixed cost is most of the time, so "
            "small sends look O(1).")
    status = core.status if core.status != "confirmed" else "refined"
    if core.status == "confirmed":
        text = text.replace(": confirmed,", ": confirmed for large k, refined for small k,", 1)
    return Verdict(status, text), affine, growth


def recv_verdicts(by_bufsize: Sequence[Point], one_recv: Sequence[Point]) -> tuple[Verdict, Verdict]:
    """Verdicts on "recv() is O(k), k = buffer size".

    ``by_bufsize``: time to receive a fixed payload against the buffer size (points carry
    ``extra["calls"]``); ``one_recv``: one ``recv(bufsize)`` that returns a single byte,
    against the buffer size.
    """
    calls = [float(p.extra.get("calls", 0)) for p in by_bufsize]
    times = [p.median_ns for p in by_bufsize]
    if len(set(calls)) >= 2:
        per_call = fit_affine(calls, times)
        ratio = max(times) / min(times)
        first = Verdict(
            "refined",
            f"Receiving a fixed payload: {calls[0]:.0f} recv calls took {_fmt_ns(times[0])}, "
            f"{calls[-1]:.0f} call(s) took {_fmt_ns(times[-1])} ({ratio:.3g}× apart). Each call costs about "
            f"{_fmt_ns(per_call.per_unit_ns)} (fit over the calls, R² {per_call.r2:.2f}): the buffer size "
            "sets how many calls you need, ≈ payload / bufsize, not how much each one costs.")
    else:
        first = Verdict("inconclusive", "Receiving a fixed payload: the number of recv calls did not change; "
                                        "sweep over a wider range of buffer sizes.")
    growth = fit_growth([p.x for p in one_recv], [p.median_ns for p in one_recv])
    claim = "recv(bufsize) is O(bufsize) when one byte has arrived"
    core = compare(claim, "linear", growth)
    lo, hi = min(one_recv, key=lambda p: p.x), max(one_recv, key=lambda p: p.x)
    detail = (f" recv({_fmt_bytes(lo.x)}) {_fmt_ns(lo.median_ns)} vs recv({_fmt_bytes(hi.x)}) {_fmt_ns(hi.median_ns)} "
              "for the same single byte: what recv costs follows the bytes that arrived, not the size you asked "
              "for (a big buffer costs an allocation, not a byte-by-byte copy).")
    if core.status == "contradicted" and growth.label == "constant":
        second = Verdict("refined", f"recv() is O(k) with k = buffer size: refined. {core.text}{detail}")
    else:
        second = Verdict(core.status, core.text + detail)
    return first, second
