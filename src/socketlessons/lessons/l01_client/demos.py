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
import html
import socket
import statistics
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...addresses import Address, check_loopback_host, family_of
from ...measure import Growth, Point, Verdict, compare, fit_affine, fit_growth
from ...servers import ConnectionStats, LoopbackServer, TCPServer

__all__ = ["socket_verdict", "socket_with_open", 
    "SourceServer",
    "connect_op",
    "connect_with_open",
    "connect_verdict",
    "held_connections",
    "never_accepting_listener",
    "one_recv_timer",
    "tcp_pair",
    "recv_timer",
    "recv_verdicts",
    "send_timer",
    "send_verdict",
    "verdict_table",
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


def connect_with_open(address: Address) -> Callable[[int], Any]:
    """For ``measure.sweep`` over n: hold n connections to ``address`` open, time ``connect_op``."""

    @contextlib.contextmanager
    def make(n: int) -> Iterator[Callable[[], None]]:
        with held_connections(address, int(n)):
            yield connect_op(address)

    return make


def socket_with_open(address: Address) -> Callable[[int], Any]:
    """For ``measure.sweep`` over n: hold n connections to ``address`` open, time ``socket().close()``."""

    @contextlib.contextmanager
    def make(n: int) -> Iterator[Callable[[], None]]:
        with held_connections(address, int(n)):
            yield lambda: socket.socket().close()

    return make


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


def _address(target: LoopbackServer | Address) -> Address:
    """A server's address, (re)starting it if the lesson's last cell stopped it; or an address."""
    return target.start().address if isinstance(target, LoopbackServer) else target


def send_timer(sink: LoopbackServer | Address) -> Callable[[Any], Any]:
    """A ``SweepPanel`` measurement: ``sendall(payload)`` to ``sink``, on one connection.

    Blocking socket, no timeout (a timeout adds a ``poll()`` per call, measured in 08). Given
    a server rather than an address, the panel keeps working after ``stop_all()``.
    """

    @contextlib.contextmanager
    def measure(s: Any) -> Iterator[Callable[[], None]]:
        with socket.create_connection(_address(sink)) as sock:
            sock.settimeout(None)
            payload = s.payload
            yield lambda: sock.sendall(payload)

    return measure


def recv_timer(source: LoopbackServer | Address) -> Callable[[Any], Any]:
    """A ``SweepPanel`` measurement: ask a ``SourceServer`` for ``s.payload_size`` bytes and
    time reading them all with ``recv(s.x)``; each point's ``extra`` holds the recv calls."""

    @contextlib.contextmanager
    def measure(s: Any) -> Iterator[Callable[[], None]]:
        size, bufsize = s.payload_size, s.x
        request = SourceServer.COUNT.pack(size)
        calls: list[int] = []
        with socket.create_connection(_address(source)) as sock:
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


@contextlib.contextmanager
def tcp_pair(host: str = "127.0.0.1") -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected TCP sockets on loopback, both in this thread: ``(sender, receiver)``.

    No server thread and no other process: timing ``recv`` on the receiver measures the call
    itself, not the scheduling of a peer (which makes a cross-process round trip bimodal on a
    busy machine).
    """
    host = check_loopback_host(host)
    family = family_of(host)
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        listener.settimeout(5.0)
        sender = socket.create_connection(listener.getsockname()[:2], timeout=5.0)
        try:
            receiver, _ = listener.accept()
        except BaseException:
            sender.close()
            raise
    with sender, receiver:
        sender.settimeout(None)
        receiver.settimeout(None)
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sender, receiver


#: Largest bufsize for ``recv_timer_in_pair(full=True)``: the payload must fit in the
#: receiver's buffer, since one thread both sends it and receives it.
MAX_FULL_RECV = 64 * 1024


def one_recv_timer(*, full: bool = False) -> Callable[[int], Any]:
    """For ``measure.sweep`` over buffer sizes, on a ``tcp_pair``: send 1 byte (or, with
    ``full``, ``bufsize`` bytes), then time it together with the ``recv(bufsize)`` that takes it.

    With one byte waiting, only the size asked for changes between points; with ``full``, the
    bytes returned grow with it.
    """

    @contextlib.contextmanager
    def make(bufsize: int) -> Iterator[Callable[[], None]]:
        bufsize = int(bufsize)
        if full and bufsize > MAX_FULL_RECV:
            raise ValueError(f"full=True needs bufsize ≤ {MAX_FULL_RECV} (the payload must fit in the buffers)")
        payload = b"x" * (bufsize if full else 1)
        with tcp_pair() as (sender, receiver):

            def op() -> None:
                sender.sendall(payload)
                got = len(receiver.recv(bufsize))
                while got < len(payload):  # rarely: the bytes came in two segments
                    got += len(receiver.recv(bufsize))

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


def socket_verdict(points: Sequence[Point]) -> Verdict:
    """Verdict on "socket() is O(1)" from ``socket()+close()`` timed against the number of
    connections already open (what could make it grow: a fuller descriptor table)."""
    growth = fit_growth([max(p.x, 1) for p in points], [p.median_ns for p in points])
    most = max(p.x for p in points)
    return compare(f"socket() is O(1) (with 1 to {most:,.0f} connections open)", "constant", growth)


def connect_verdict(socket_ns: float, connect_ns: float, rtt_ns: float, by_open: Sequence[Point]) -> Verdict:
    """Verdict on "connect() is O(1) + network latency" (and the snippet's "O(n)") from the
    cost of ``socket()+close()``, of ``socket()+connect()+close()``, of a 1-byte echo round
    trip, and of connect against the number of connections already open."""
    handshake = connect_ns - socket_ns
    growth = fit_growth([max(p.x, 1) for p in by_open], [p.median_ns for p in by_open])
    per_rtt = handshake / rtt_ns if rtt_ns > 0 else float("nan")
    than = "less than" if per_rtt < 0.8 else "more than" if per_rtt > 1.25 else "about"
    base = (f"connect() costs {_fmt_ns(handshake)} beyond socket()+close(), {than} a 1-byte echo round trip "
            f"({_fmt_ns(rtt_ns)}, {per_rtt:.1f}×): the server's kernel answers the handshake by itself, no "
            "server code runs; over a real network the same handshake waits one network round trip")
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


def send_verdict(points: Sequence[Point], *, large_from: int = 512 * 1024) -> tuple[Verdict, str, Growth]:
    """Verdict on "send() is O(k)" from a sweep of ``sendall`` time against payload size.

    Returns the verdict, a one-line summary of what was measured ("0.8 µs + 0.3 ns/byte") and
    the log-log growth over the points with ``k ≥ large_from`` (where the per-byte cost shows;
    below it the fixed per-call cost dominates).
    """
    xs, ys = [p.x for p in points], [p.median_ns for p in points]
    if len(xs) < 3:
        raise ValueError("need at least 3 points: run the sweep over more payload sizes")
    big = [(x, y) for x, y in zip(xs, ys) if x >= large_from]
    if len(big) >= 3:
        growth = fit_growth([x for x, _ in big], [y for _, y in big])
        per_byte = max(fit_affine([x for x, _ in big], [y for _, y in big]).per_unit_ns, 1e-6)
        where = f"k ≥ {_fmt_bytes(large_from)}"
    else:
        growth = fit_growth(xs, ys)
        per_byte = max(fit_affine(xs, ys).per_unit_ns, 1e-6)
        where = "all k"
    fixed = min(ys[: max(1, len(ys) // 3)])  # the flat left end: the cost of an almost empty send
    breakeven = fixed / per_byte
    core = compare(f"send() is O(k) (over {where})", "linear", growth)
    text = (f"{core.text} Every call also pays a fixed {_fmt_ns(fixed)} (the smallest sends); each byte of a "
            f"large send costs {per_byte:.3g} ns ({1 / per_byte:.3g} GB/s): below about {_fmt_bytes(breakeven)} "
            "the fixed cost is most of the time, so small sends look O(1).")
    status = core.status
    if core.status == "confirmed":
        status = "refined"
        text = text.replace(": confirmed,", ": confirmed for large k, refined for small k,", 1)
    return Verdict(status, text), f"{_fmt_ns(fixed)} + {per_byte:.2g} ns/byte", growth


def recv_verdicts(by_bufsize: Sequence[Point], one_recv: Sequence[Point],
                  full: Sequence[Point] = ()) -> tuple[Verdict, Verdict, str]:
    """Verdicts on "recv() is O(k), k = buffer size", and a one-line summary of the measurement.

    ``by_bufsize``: time to receive a fixed payload against the buffer size (points carry
    ``extra["calls"]``); ``one_recv``: one ``recv(bufsize)`` that returns a single byte,
    against the buffer size; ``full`` (optional): one that returns ``bufsize`` bytes.
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
    lo, hi = min(one_recv, key=lambda p: p.x), max(one_recv, key=lambda p: p.x)
    growth = fit_growth([p.x for p in one_recv], [p.median_ns for p in one_recv])
    size_ratio, time_ratio = hi.x / lo.x, hi.median_ns / lo.median_ns
    detail = (f"With one byte waiting, the buffer grew {size_ratio:,.0f}× ({_fmt_bytes(lo.x)} to "
              f"{_fmt_bytes(hi.x)}) and the time {time_ratio:.2g}× ({_fmt_ns(lo.median_ns)} to "
              f"{_fmt_ns(hi.median_ns)}, slope {growth.slope:.2f})")
    if len(full) >= 2:
        per_byte = fit_affine([p.x for p in full], [p.median_ns for p in full]).per_unit_ns
        flo, fhi = min(full, key=lambda p: p.x), max(full, key=lambda p: p.x)
        detail += (f". With bufsize bytes waiting, each byte returned added about {per_byte:.2g} ns (the copy): "
                   f"recv({_fmt_bytes(fhi.x)}) of a full buffer cost {fhi.median_ns / flo.median_ns:.2g}× "
                   f"recv({_fmt_bytes(flo.x)})")
    if growth.label in ("constant", "sub-linear") and time_ratio < size_ratio / 100:
        second = Verdict("refined", f"recv() is O(k) with k = buffer size: refined. {detail}. A recv costs a "
                                    "fixed amount per call plus the bytes it actually returns; the size you ask "
                                    "for costs nothing by itself (beyond CPython reserving that much memory for "
                                    "the call: a step, not a slope).")
    elif growth.label == "too noisy to say":
        second = Verdict("inconclusive", f"recv() is O(k) with k = buffer size: inconclusive ({growth.note}). "
                                         f"{detail}. Run the cell again.")
    else:
        second = Verdict("confirmed", f"recv() is O(k) with k = buffer size: confirmed. {detail}.")
    measured = f"1 byte: {_fmt_ns(lo.median_ns)} at {_fmt_bytes(lo.x)}, {_fmt_ns(hi.median_ns)} at {_fmt_bytes(hi.x)}"
    return first, second, measured


class VerdictTable:
    """The reference's claims beside your measurements and verdicts (HTML in a notebook)."""

    def __init__(self, rows: Sequence[tuple[str, str, str, Verdict | str]]) -> None:
        self.rows = [(op, claim, measured, v if isinstance(v, Verdict) else Verdict(v, v))  # type: ignore[arg-type]
                     for op, claim, measured, v in rows]

    def __str__(self) -> str:
        return "\n".join(f"{op:<10} {claim:<24} {measured:<28} {v.status}" for op, claim, measured, v in self.rows)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colours = {"confirmed": "#1b7837", "refined": "#b35806", "contradicted": "#b2182b", "inconclusive": "#555"}
        head = "<tr><th>operation</th><th>the reference says</th><th>you measured</th><th>verdict</th></tr>"
        body = "".join(
            f"<tr><td><code>{html.escape(op)}</code></td><td>{html.escape(claim)}</td><td>{html.escape(measured)}</td>"
            f'<td style="color:{colours.get(v.status, "#000")}"><b>{v.status}</b></td></tr>'
            for op, claim, measured, v in self.rows)
        return f"<table>{head}{body}</table>"


def verdict_table(rows: Sequence[tuple[str, str, str, Verdict | str]]) -> VerdictTable:
    """A table of ``(operation, claim, what you measured, verdict)`` rows; a str verdict is a status."""
    return VerdictTable(rows)
