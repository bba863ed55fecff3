"""Lesson 01 (the TCP client): the measurements and demonstrations that only it needs.

* ``never_accepting_listener()``: a peer that completes the handshake (the kernel does it, in
  the backlog) but never reads and never answers: ``send`` fills the buffers and stops, ``recv``
  waits until a timeout. Needs no thread, so nothing can print or leak.
* ``SourceServer``: sends as many bytes as a client asks for (an 8-byte count), so a client
  can time receiving a fixed payload with any ``recv`` buffer size, without deadlocks.
* ``held_connections``, ``with_open``, ``tcp_pair``, ``DrainedConnection``: the set-ups the
  notebook's cells time their own socket code in (the socket calls taught are in the cells).
* ``sweep_rounds`` (interleaved rounds, low quantile, adaptive bounded budget), ``cost``,
  ``shown_low``, ``plot_rounds``: measuring what a call itself costs on a busy machine.
* ``socket_verdict``, ``connect_verdict``, ``send_verdict``, ``recv_verdicts``: verdicts
  computed from the learner's own points, printed beside each claim of the reference's table.

Used in 01_client.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...addresses import Address, check_loopback_host, family_of
from ...measure import (Growth, Point, Verdict, compare, fit_affine, fit_growth, fmt_slope, quantile_interval,
                        slope_band)
from ...servers import ConnectionStats, TCPServer

__all__ = [
    "connect_verdict",
    "cost",
    "DrainedConnection",
    "held_connections",
    "LOW_QUANTILE",
    "machine_load",
    "never_accepting_listener",
    "plot_rounds",
    "recv_verdicts",
    "SEND_BUDGET_S",
    "SEND_FIT_FROM",
    "SEND_SIZES",
    "send_verdict",
    "show_rounds",
    "shown_low",
    "slope_settled",
    "socket_verdict",
    "SourceServer",
    "sweep_rounds",
    "tcp_pair",
    "verdict_table",
    "with_open",
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


class with_open:  # noqa: N801 - used like a function in the cells
    """For ``sweep_rounds(..., interleave=False)`` over n (ascending): hold n idle connections to
    ``address`` open and time ``op`` (the cell's own code) meanwhile. The connections are kept
    and topped up from one n to the next (256 in all for n up to 256, not 1 + 2 + … + 256);
    use it in a ``with`` block, which closes them all.

        with with_open(echo.address, connect_once) as make:
            points = sweep_rounds(make, [1, 2, 4, 8], interleave=False)
    """

    def __init__(self, address: Address, op: Callable[[], object], *, timeout: float = 5.0) -> None:
        if not callable(op):
            raise TypeError(f"op must be a zero-argument function (the call to time), not {type(op).__name__}")
        self.address, self.op, self.timeout = address, op, timeout
        self.socks: list[socket.socket] = []

    @contextlib.contextmanager
    def __call__(self, n: int) -> Iterator[Callable[[], object]]:
        if isinstance(n, bool) or not isinstance(n, (int, float)) or n != int(n) or not 0 <= n <= 2000:
            raise ValueError(f"n must be a whole number from 0 to 2000 (connections to hold), got {n!r}")
        while len(self.socks) > n:  # a smaller n than before: close the extra ones
            self.socks.pop().close()
        while len(self.socks) < n:
            self.socks.append(socket.create_connection(self.address, timeout=self.timeout))
        yield self.op

    def close(self) -> None:
        while self.socks:
            self.socks.pop().close()

    def __enter__(self) -> with_open:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


# ---- measuring what a call itself costs, on a busy machine ----------------------------------

#: The estimator for "what the call itself costs": the 10th percentile of the batch times.
#: Noise on a busy machine (another process scheduled, a cold cache) only ever ADDS time to a
#: batch, so the fastest batches are the closest to the call's own cost: the ``timeit`` docs say
#: "the min is the most useful value" (docs.python.org/3/library/timeit.html, Timer.repeat);
#: pyperf and Google Benchmark report the spread for the same reason. A low quantile keeps that
#: property while one lucky batch (a timer quirk) cannot set it alone.
LOW_QUANTILE = 0.10
#: A timed batch lasts about this long: two timer reads (~0.1 µs) are still a negligible share,
#: and a short batch is seldom hit by another program's time slice (milliseconds), so on a busy
#: machine more batches come out clean. It also bounds how fast a sweep makes connections: at
#: 200 µs the connect() sweep made about 5,000 in a fraction of a second, the thread-per-client
#: echo server fell behind starting threads, its accept queue (4,096 deep) overflowed and one
#: connect() waited 1 s for its SYN to be sent again (seen as a ListenOverflows count in nstat).
TARGET_BATCH_NS = 50_000
#: Most calls in one batch.
MAX_BATCH = 10_000
#: ``sweep_rounds`` stops once every size's low quantile is known within this relative width
#: (its 90 % interval over the estimate). 0.10 keeps a fit's slope over a 16× range of sizes
#: within about ±0.03 (log 1.1 / log 16), far inside the bands that name a growth.
SETTLE_WITHIN = 0.10


def _settled(per_x: Sequence[Sequence[float]], within: float) -> bool:
    """Every series of batch times has its low quantile inside an interval ≤ ``within`` × itself."""
    for samples in per_x:
        interval = quantile_interval(samples, LOW_QUANTILE)
        if interval is None:
            return False
        estimate = _quantile(samples, LOW_QUANTILE)
        if not estimate > 0 or (interval[1] - interval[0]) > within * estimate:
            return False
    return True


def _quantile(data: Sequence[float], q: float) -> float:
    data = sorted(data)
    pos = q * (len(data) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def machine_load() -> tuple[float, int]:
    """``(1-minute load average, logical CPUs)``; ``(nan, cpus)`` where the system has none."""
    cpus = os.cpu_count() or 1
    try:
        return float(os.getloadavg()[0]), cpus
    except (AttributeError, OSError):  # Windows: psutil emulates it
        try:
            import psutil

            return float(psutil.getloadavg()[0]), cpus
        except Exception:  # noqa: BLE001
            return math.nan, cpus


def cost(point: Point) -> float:
    """The point's cost estimate: its low quantile when it was measured in rounds, else its median."""
    return float(point.extra.get("low", point.median_ns))


def _calibrate(op: Callable[[], object]) -> int:
    for _ in range(3):  # warm-up: caches, the connection's buffers, lazy imports
        op()
    single = min(_time_batch(op, 1) for _ in range(3))
    return max(1, min(MAX_BATCH, math.ceil(TARGET_BATCH_NS / max(single, 1))))


def _time_batch(op: Callable[[], object], batch: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(batch):
        op()
    return time.perf_counter_ns() - t0


def _point(x: float, samples: list[float], series: str, batch: int, rounds: int, load: float,
           extra: dict[str, Any] | None = None) -> Point:
    q1, med, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else [samples[0]] * 3
    return Point(float(x), med, q1, q3, len(samples), series,
                 {**(extra or {}), "low": _quantile(samples, LOW_QUANTILE), "min": min(samples), "batch": batch,
                  "rounds": rounds, "load": load})


def _extra_of(op: Callable[[], object]) -> dict[str, Any] | None:
    extra = getattr(op, "extra", None)
    if callable(extra):
        extra = extra()
    return dict(extra) if extra else None


def sweep_rounds(make_op: Callable[[Any], Any], xs: Sequence[float], *, series: str = "",
                 budget_s: float = 1.5, min_rounds: int = 15, max_rounds: int = 400, interleave: bool = True,
                 enough: Callable[[list[Point]], bool] | None = None, settle: float | None = SETTLE_WITHIN,
                 before_batch: Callable[[], object] | None = None,
                 on_round: Callable[[list[Point]], object] | None = None,
                 stop: threading.Event | None = None) -> list[Point]:
    """Time ``make_op(x)`` (an op, or a context manager yielding one) for every x, in rounds.

    ``interleave=True``: every op is set up first, then each round times one batch of every
    x, forward then backward, so a burst of load from elsewhere lands on all sizes alike
    instead of bending the line where it hit. ``interleave=False``: one x after another (for
    set-ups that cannot coexist, like "n connections open"), the budget shared equally.
    Adaptive and bounded: at least ``min_rounds`` rounds, then stop as soon as ``enough(points)``
    is true, or every x's estimate is settled (``settle``, below), or ``budget_s`` (seconds of
    measuring) or ``max_rounds`` is reached; never past twice ``budget_s`` (then with at least 3
    rounds), however busy the machine.

    ``settle``: stop once every x's 10th percentile is pinned down, its 90 % interval
    (``measure.quantile_interval``) no wider than ``settle`` times the estimate (0.10: within
    about ±5 %). Measuring is spent where the spread is: on a quiet machine the batches agree and
    a sweep ends after a few dozen rounds, a tenth of its budget; on a busy one the interval
    stays wide and the sweep uses its budget, as before. ``None``: the budget alone decides.

    Each point's median and quartiles are over its batches; ``extra["low"]`` is the 10th
    percentile (``cost(point)``), ``extra["min"]`` the fastest batch, ``extra["load"]`` the
    machine's load average at the end. ``before_batch()`` runs, untimed, before every batch
    (``DrainedConnection.wait_empty``). ``on_round(points)`` runs between rounds, never during
    a batch (a live plot redraws there, throttled by the caller). An op's ``extra`` attribute
    (a dict, or a function returning one) is read at the end and kept in its point's ``extra``.
    """
    xs = list(xs)
    if not xs:
        raise ValueError("xs must hold at least one value to measure")
    for name, value in (("budget_s", budget_s),):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 30:
            raise ValueError(f"{name} must be a number of seconds in (0, 30], got {value!r}")
    if settle is not None and (isinstance(settle, bool) or not isinstance(settle, (int, float))
                               or not 0 < settle <= 1):
        raise ValueError(f"settle must be a relative width in (0, 1] (0.1: within about ±5 %), or None for "
                         f"no early stop; got {settle!r}")
    if isinstance(min_rounds, bool) or not isinstance(min_rounds, int) or min_rounds < 3:
        raise ValueError(f"min_rounds must be an int ≥ 3 (quartiles need a few batches), got {min_rounds!r}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < min_rounds:
        raise ValueError(f"max_rounds must be an int ≥ min_rounds ({min_rounds}), got {max_rounds!r}")

    extras: dict[float, dict[str, Any] | None] = {}

    def points_of(samples: dict[float, list[float]], batches: dict[float, int], rounds: int) -> list[Point]:
        load = machine_load()[0]
        return [_point(x, samples[x], series, batches[x], rounds, load, extras.get(x))
                for x in xs if samples.get(x)]

    def rounds_over(ops: dict[float, Callable[[], object]], keys: list[float], budget: float,
                    samples: dict[float, list[float]], batches: dict[float, int]) -> int:
        for x in keys:
            batches[x] = _calibrate(ops[x])
        deadline = time.perf_counter() + budget
        hard = time.perf_counter() + 2 * budget  # min_rounds yields to this (a very busy machine)
        rounds = 0
        while rounds < max_rounds and not (stop is not None and stop.is_set()):
            for x in (keys if rounds % 2 == 0 else keys[::-1]):
                if before_batch is not None:
                    before_batch()  # untimed: e.g. wait until the buffers are empty again
                samples.setdefault(x, []).append(_time_batch(ops[x], batches[x]) / batches[x])
            rounds += 1
            if rounds >= 3 and time.perf_counter() > hard:
                break
            if rounds < min_rounds:
                continue
            if time.perf_counter() > deadline:
                break
            if rounds % 5 == 0 and settle is not None and _settled([samples[x] for x in keys], settle):
                break
            if rounds % 5 == 0 and (on_round is not None or enough is not None):
                now = points_of(samples, batches, rounds)
                if on_round is not None:
                    on_round(now)
                if enough is not None and interleave and enough(now):
                    break
        return rounds

    samples: dict[float, list[float]] = {}
    batches: dict[float, int] = {}
    rounds = 0
    if interleave:
        with contextlib.ExitStack() as stack:
            ops = {x: _enter(stack, make_op(x)) for x in xs}
            rounds = rounds_over(ops, xs, budget_s, samples, batches)
            extras.update({x: _extra_of(op) for x, op in ops.items()})
    else:
        for x in xs:
            with contextlib.ExitStack() as stack:
                op = _enter(stack, make_op(x))
                rounds = rounds_over({x: op}, [x], budget_s / len(xs), samples, batches)
                extras[x] = _extra_of(op)
            if on_round is not None:
                on_round(points_of(samples, batches, rounds))
    return points_of(samples, batches, rounds)


def _enter(stack: contextlib.ExitStack, made: Any) -> Callable[[], object]:
    op = stack.enter_context(made) if hasattr(made, "__enter__") else made
    if not callable(op):
        raise TypeError(f"make_op(x) must return a zero-argument op or a context manager yielding one, "
                        f"got {type(op).__name__}")
    return op


class DrainedConnection:
    """A TCP connection on loopback whose far end is a thread of this kernel that reads (and
    throws away) everything, and can say when it has read every byte sent so far.

    ``wait_empty()`` (untimed, between batches) makes each timed ``sendall`` start with empty
    buffers, so its time is what sending k bytes costs, not what was left over from the batch
    before. ``sndbuf``/``rcvbuf`` fix both buffers (no autotuning): a send larger than them
    always streams through a receiver that is reading, the same regime at every size fitted.
    The reader holds the GIL only between its ``recv_into`` calls (each takes up to 256 KiB).
    """

    def __init__(self, *, sndbuf: int = 32 * 1024, rcvbuf: int = 32 * 1024, host: str = "127.0.0.1") -> None:
        for name, value in (("sndbuf", sndbuf), ("rcvbuf", rcvbuf)):
            if isinstance(value, bool) or not isinstance(value, int) or not 4096 <= value <= 64 << 20:
                raise ValueError(f"{name} must be an int of bytes from 4096 to 64 MiB, got {value!r}")
        host = check_loopback_host(host)
        self.sent = 0
        self._read = 0
        self._cond = threading.Condition()
        with socket.socket(family_of(host), socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # inherited by the accepted one
            listener.bind((host, 0))
            listener.listen(1)
            listener.settimeout(5)
            self.sock = socket.socket(family_of(host), socket.SOCK_STREAM)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
                self.sock.connect(listener.getsockname()[:2])
                self._peer, _ = listener.accept()
            except BaseException:
                self.sock.close()
                raise
        self.sock.settimeout(None)  # blocking: a timeout would add a poll() to every call
        self._thread = threading.Thread(target=self._drain, name="socketlessons-drain", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        buf = bytearray(256 * 1024)
        with contextlib.suppress(OSError):
            while n := self._peer.recv_into(buf):
                with self._cond:
                    self._read += n
                    self._cond.notify_all()
        with self._cond:
            self._read = -1  # closed: nobody waits any longer
            self._cond.notify_all()

    def sendall(self, data: Any) -> None:
        """``sock.sendall(data)``, counted (what ``wait_empty`` waits for)."""
        self.sock.sendall(data)
        self.sent += len(data)

    def wait_empty(self, timeout: float = 2.0) -> bool:
        """Wait (bounded) until the reader has read every byte sent so far; False on timeout.

        It first pushes out what Nagle's algorithm may be holding back. Nagle keeps a last
        small segment in the sender's kernel until the bytes before it are acknowledged, and
        the receiver delays that acknowledgement (about 40 ms on Linux, up to 200 ms on
        Windows): after a batch of small sends this wait took those 40 ms, every time
        (measured: 20 rounds of the send sweep waited 0.95 s, 0.011 s with the push). Setting
        ``TCP_NODELAY`` "forces an explicit flush of pending output" (Linux ``tcp(7)``);
        clearing it again at once keeps the timed sends under Nagle, as on a default socket.
        """
        if self._read < self.sent:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        with self._cond:
            return self._cond.wait_for(lambda: self._read < 0 or self._read >= self.sent, timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(2)
        self._peer.close()

    def __enter__(self) -> DrainedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plot_rounds(plot: Any, label: str, *, every_s: float = 0.5) -> Callable[[list[Point]], None]:
    """``on_round`` for ``sweep_rounds``: show the points so far on a ``LivePlot`` (as
    ``shown_low`` does), at most every ``every_s`` seconds, the first time ``every_s`` after it
    was made. A redraw costs 0.1–0.3 s: a sweep that settles sooner is drawn once, at its end
    (``show_rounds``), instead of spending more time drawing than measuring."""
    last = [time.monotonic()]

    def show(points: list[Point]) -> None:
        if time.monotonic() - last[0] >= every_s:
            show_rounds(plot, label, points)
            last[0] = time.monotonic()

    return show


def show_rounds(plot: Any, label: str, points: Sequence[Point], *, fit_from: float | None = None) -> Growth | None:
    """Replace ``label``'s points on ``plot`` with ``points`` (as ``shown_low``: what the verdict
    used), and with ``fit_from`` draw the log-log fit of ``cost`` over ``x ≥ fit_from``."""
    plot.keep_series({p.series for p in plot.points} - {label})
    plot.points.extend(shown_low(points, label))
    growth = None
    used = [p for p in points if fit_from is None or p.x >= fit_from]
    if fit_from is not None and len(used) >= 3:
        growth = fit_growth([p.x for p in used], [cost(p) for p in used])
        plot.add_fit(label, growth, (used[0].x, used[-1].x))
    else:
        plot.update()  # drawn now, or when the cell ends: two calls in one cell draw once
    return growth


def shown_low(points: Sequence[Point], label: str = "") -> list[Point]:
    """Points to plot what a verdict used: the dot at the low quantile, the bar from the fastest
    batch up to the median (an ordinary plot shows the median and the quartiles)."""
    return [Point(p.x, cost(p), float(p.extra.get("min", cost(p))), p.median_ns, p.n, label or p.series, p.extra)
            for p in points]


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


def _fmt_ratio(r: float) -> str:
    return f"{r:,.0f}×" if r >= 10 else f"{r:.2f}×"


def _load_seen(points: Sequence[Point]) -> str:
    loads = [p.extra["load"] for p in points if isinstance(p.extra.get("load"), float) and not math.isnan(p.extra["load"])]
    if not loads:
        return ""
    return f"load average {max(loads):.1f} on {os.cpu_count() or 1} CPUs"


def _why_inconclusive(growth: Growth, points: Sequence[Point], more: str) -> str:
    """Why a fit could not name the growth, and what would help (run again only when it can)."""
    note = growth.note or "the fit is too poor"
    if math.isnan(growth.slope) or "spans only" in note:
        return f"{note}; {more} (running the same sizes again cannot change this)"
    load = _load_seen(points)
    busy = f" while the machine was busy ({load})" if load else ""
    return f"{note}{busy}: other programs added time to some batches; run the cell again when it is quieter"


def socket_verdict(points: Sequence[Point]) -> Verdict:
    """Verdict on "socket() is O(1)" from ``socket()+close()`` timed against the number of
    connections already open (what could make it grow: a fuller descriptor table)."""
    growth = fit_growth([max(p.x, 1) for p in points], [cost(p) for p in points])
    most = max(p.x for p in points)
    claim = f"socket() is O(1) (with 1 to {most:,.0f} connections open)"
    if growth.label == "too noisy to say":
        return Verdict("inconclusive", f"{claim}: inconclusive, "
                       f"{_why_inconclusive(growth, points, 'hold a wider range of connections open')}.")
    lo, hi = min(points, key=lambda p: p.x), max(points, key=lambda p: p.x)
    span = (f"{_fmt_ns(cost(lo))} with {lo.x:,.0f} open, {_fmt_ns(cost(hi))} with {hi.x:,.0f} open "
            f"({_fmt_ratio(cost(hi) / cost(lo))}; slope {fmt_slope(growth.slope, growth.slope_error)} on a log-log scale)")
    if growth.label == "constant":
        return Verdict("confirmed", f"{claim}: confirmed, {span}: it does not grow with the connections open.")
    status = compare(claim, "constant", growth).status
    return Verdict(status, f"{claim}: {status}, {span}: {growth.label}, it grew with the connections open.")


def connect_verdict(socket_ns: float, connect_ns: float, rtt_ns: float, by_open: Sequence[Point]) -> Verdict:
    """Verdict on "connect() is O(1) + network latency" (and the snippet's "O(n)") from the
    cost of ``socket()+close()``, of ``socket()+connect()+close()``, of a 1-byte echo round
    trip, and of connect against the number of connections already open."""
    handshake = connect_ns - socket_ns
    growth = fit_growth([max(p.x, 1) for p in by_open], [cost(p) for p in by_open])
    per_rtt = handshake / rtt_ns if rtt_ns > 0 else float("nan")
    than = "less than" if per_rtt < 0.8 else "more than" if per_rtt > 1.25 else "about"
    base = (f"connect() costs {_fmt_ns(handshake)} beyond socket()+close(), {than} a 1-byte echo round trip "
            f"({_fmt_ns(rtt_ns)}, {per_rtt:.2g}×): the server's operating-system kernel answers the handshake by "
            "itself, no server code runs; over a real network the same handshake waits one network round trip")
    most = max(p.x for p in by_open)
    lo, hi = min(by_open, key=lambda p: p.x), max(by_open, key=lambda p: p.x)
    span = (f"socket()+connect()+close() {_fmt_ns(cost(lo))} with {lo.x:,.0f} open, {_fmt_ns(cost(hi))} with "
            f"{hi.x:,.0f}")
    if growth.label == "constant":
        return Verdict("confirmed", f"connect() is O(1) + latency: confirmed. {base}; with up to "
                                    f"{most:,.0f} connections open it stays flat ({span}; slope "
                                    f"{fmt_slope(growth.slope, growth.slope_error)}), so the snippet's 'O(n)' is "
                                    "refined: no n that grows, only the latency of one round trip.")
    if growth.label == "too noisy to say":
        why = _why_inconclusive(growth, by_open, "hold a wider range of connections open")
        return Verdict("inconclusive", f"connect() is O(1) + latency: inconclusive. {base}; against the "
                                       f"connections open: {why}.")
    return Verdict("refined", f"connect() is O(1) + latency: refined. {base}; against the connections open "
                              f"it grew ({span}; {growth.label}, slope "
                              f"{fmt_slope(growth.slope, growth.slope_error)}): more open connections made each connect cost more.")


#: The send sweep of lessons 00 and 01: small sizes (×4) show the fixed cost per call, large
#: ones (×2, from ``SEND_FIT_FROM``: four times the fixed buffers of a ``DrainedConnection``, so
#: every fitted send streams through the reader) show the cost per byte. 13 sizes, interleaved.
SEND_SIZES = (16, 64, 256, 1024, 4096, 16384, 65536, 131072, 262144, 524288, 1 << 20, 2 << 20, 4 << 20)
SEND_FIT_FROM = 128 * 1024
#: Seconds of measuring for the send sweep (it stops sooner once the slope is settled).
SEND_BUDGET_S = 1.5


def slope_settled(points: Sequence[Point], *, fit_from: int = SEND_FIT_FROM, error: float = 0.05) -> bool:
    """``enough`` for ``sweep_rounds``: the slope over ``x ≥ fit_from`` is known within ``error``."""
    big = [p for p in points if p.x >= fit_from]
    if len(big) < 3:
        return False
    growth = fit_growth([p.x for p in big], [cost(p) for p in big])
    return not math.isnan(growth.slope_error) and growth.slope_error <= error


#: A headline fit rests on at least this many sizes, spanning at least this ratio.
SEND_MIN_POINTS = 5
SEND_MIN_RATIO = 16


def send_verdict(points: Sequence[Point], *, large_from: int = SEND_FIT_FROM,
                 what: str = "send()") -> tuple[Verdict, str, Growth]:
    """Verdict on "send() is O(k)" (``what`` names the call: lesson 00 says "sendall()") from a
    sweep of ``sendall`` time against payload size.

    Uses ``cost(point)`` (the low quantile of the batch times when measured with
    ``sweep_rounds``: the claim is about what the call itself costs). Returns the verdict, a
    one-line summary of what was measured ("0.8 µs + 0.3 ns/byte") and the log-log growth over
    the points with ``k ≥ large_from`` (where the per-byte cost shows; below it the fixed
    per-call cost dominates).
    """
    if len(points) < 3:
        raise ValueError(f"need at least 3 points, got {len(points)}: sweep over more payload sizes")
    pts = sorted(points, key=lambda p: p.x)
    big = [p for p in pts if p.x >= large_from]
    small = [p for p in pts if p.x < large_from]
    claim = f"{what} is O(k) (fitted over k ≥ {_fmt_bytes(large_from)})"
    if len(big) < SEND_MIN_POINTS or big[-1].x / big[0].x < SEND_MIN_RATIO:
        span = f"{big[-1].x / big[0].x:.3g}×" if big else "nothing"
        growth = fit_growth([p.x for p in big], [cost(p) for p in big]) if len(big) >= 3 else \
            Growth(math.nan, math.nan, math.nan, "too noisy to say", f"only {len(big)} point(s)")
        return (Verdict("inconclusive", f"{claim}: inconclusive, only {len(big)} sizes of at least "
                        f"{_fmt_bytes(large_from)} (spanning {span}); a fit needs {SEND_MIN_POINTS} sizes over "
                        f"{SEND_MIN_RATIO}× or more: sweep up to larger payloads (running the same sizes again "
                        "cannot change this)."), "too few large sizes", growth)
    xs, ys = [p.x for p in big], [cost(p) for p in big]
    growth = fit_growth(xs, ys)
    per_byte = fit_affine(xs, ys).per_unit_ns
    fixed = min(cost(p) for p in (small or pts[:1]))
    smallest = (small or pts)[0]
    measured = f"{_fmt_ns(fixed)} + {per_byte:.2g} ns/byte" if per_byte > 0 else "no per-byte cost"
    if growth.label == "too noisy to say":
        return (Verdict("inconclusive", f"{claim}: inconclusive, {_why_inconclusive(growth, big, '')}."),
                measured, growth)
    slope = f"slope {fmt_slope(growth.slope, growth.slope_error)} on a log-log scale over {len(big)} sizes from " \
            f"{_fmt_bytes(xs[0])} to {_fmt_bytes(xs[-1])}"
    first, last = ys[0] / xs[0], ys[-1] / xs[-1]
    if growth.label == "linear":
        breakeven = fixed / per_byte if per_byte > 0 else math.inf
        # A fixed cost "shows" when the smallest send costs more than twice what its bytes would.
        shows = per_byte > 0 and fixed > 2 * per_byte * smallest.x
        text = (f"{claim}: confirmed for large k, {slope}, which counts as linear (a slope from "
                "{:g} to {:g}; ".format(*slope_band("linear")) +
                f"{1 / per_byte:.3g} GB/s, {per_byte:.3g} ns per byte). ")
        if shows:
            text += (f"Refined for small k: every call also pays a fixed {_fmt_ns(fixed)} (the cheapest small send), so "
                     f"below about {_fmt_bytes(breakeven)} the fixed cost is most of the time and small sends "
                     "look O(1).")
            return Verdict("refined", text), measured, growth
        return Verdict("confirmed", text), measured, growth
    if growth.label == "sub-linear":
        return (Verdict("refined", f"{claim}: refined, {slope} (sub-linear): the time grew more slowly than k, because a fixed "
                                   f"cost per call ({_fmt_ns(fixed)}) is still a large share at these sizes; "
                                   "sweep up to larger payloads to see the per-byte part alone."), measured, growth)
    if growth.label in ("super-linear", "quadratic"):
        v = compare(claim, "linear", growth)
        return (Verdict(v.status, f"{claim}: {v.status}, {slope}: larger sends cost more per byte than smaller ones "
                                  f"({first:.3g} ns/byte at {_fmt_bytes(xs[0])}, {last:.3g} at "
                                  f"{_fmt_bytes(xs[-1])}). That happens when a send no longer fits in the socket "
                                  "buffers and waits for the receiver to read, which got less CPU time "
                                  "(load average {:.1f} on {} cores).".format(*machine_load())),
                measured, growth)
    return (Verdict("contradicted", f"{claim}: contradicted, {slope} ({growth.label}): the time did not grow "
                                    "with k."), measured, growth)


def recv_verdicts(by_bufsize: Sequence[Point], one_recv: Sequence[Point],
                  full: Sequence[Point] = ()) -> tuple[Verdict, Verdict, str]:
    """Verdicts on "recv() is O(k), k = buffer size", and a one-line summary of the measurement.

    ``by_bufsize``: time to receive a fixed payload against the buffer size (points carry
    ``extra["calls"]``); ``one_recv``: one ``recv(bufsize)`` that returns a single byte,
    against the buffer size; ``full`` (optional): one that returns ``bufsize`` bytes. Every
    time is ``cost(point)``: what the calls themselves cost.
    """
    calls = [float(p.extra.get("calls", 0)) for p in by_bufsize]
    times = [cost(p) for p in by_bufsize]
    if len(by_bufsize) >= 3 and len(set(calls)) >= 3:
        per_call = fit_affine(calls, times)
        many, few = max(range(len(calls)), key=calls.__getitem__), min(range(len(calls)), key=calls.__getitem__)
        ratio = times[many] / times[few]  # the two times the sentence quotes (not the extremes of all points)
        said = (f"Receiving a fixed payload: {calls[many]:,.0f} recv calls took {_fmt_ns(times[many])}, "
                f"{calls[few]:,.0f} call(s) took {_fmt_ns(times[few])} ({ratio:.3g}× apart).")
        if per_call.r2 >= 0.9 and per_call.per_unit_ns > 0:
            first = Verdict("refined", f"{said} The time follows the number of calls (a straight line through "
                                       f"the points: R² {per_call.r2:.2f}, where 1 is a perfect line), about "
                                       f"{_fmt_ns(per_call.per_unit_ns)} per call: the buffer size sets how many "
                                       "calls you need, ≈ payload / bufsize, not how much each one costs.")
        else:
            first = Verdict("inconclusive", f"{said} The time does not follow the number of calls closely (R² "
                                            f"{per_call.r2:.2f}, where 1 is a perfect line): other programs added "
                                            "time; run the cell again when the machine is quieter.")
    else:
        first = Verdict("inconclusive", f"Receiving a fixed payload: only {len(set(calls))} different numbers of "
                                        "recv calls; sweep over a wider range of buffer sizes (running the same "
                                        "sizes again cannot change this).")
    lo, hi = min(one_recv, key=lambda p: p.x), max(one_recv, key=lambda p: p.x)
    growth = fit_growth([p.x for p in one_recv], [cost(p) for p in one_recv])
    size_ratio, time_ratio = hi.x / lo.x, cost(hi) / cost(lo)
    detail = (f"With one byte waiting, the buffer grew {size_ratio:,.0f}× ({_fmt_bytes(lo.x)} to "
              f"{_fmt_bytes(hi.x)}) and the time {_fmt_ratio(time_ratio)} ({_fmt_ns(cost(lo))} to "
              f"{_fmt_ns(cost(hi))}, slope {fmt_slope(growth.slope)})")
    if len(full) >= 2:
        per_byte = fit_affine([p.x for p in full], [cost(p) for p in full]).per_unit_ns
        flo, fhi = min(full, key=lambda p: p.x), max(full, key=lambda p: p.x)
        detail += (f". With bufsize bytes waiting, each byte sent and returned added about {per_byte:.2g} ns "
                   "(the copies): "
                   f"recv({_fmt_bytes(fhi.x)}) of a full buffer cost {_fmt_ratio(cost(fhi) / cost(flo))} "
                   f"recv({_fmt_bytes(flo.x)})")
    if growth.label in ("constant", "sub-linear") and time_ratio < size_ratio / 100:
        second = Verdict("refined", f"recv() is O(k) with k = buffer size: refined. {detail}. A recv costs a "
                                    "fixed amount per call plus the bytes it actually returns; the size you ask "
                                    "for costs little by itself (CPython reserves that much memory for the call, "
                                    "a cost too small to see here).")
    elif growth.label == "too noisy to say":
        why = _why_inconclusive(growth, one_recv, "sweep over a wider range of buffer sizes")
        second = Verdict("inconclusive", f"recv() is O(k) with k = buffer size: inconclusive, {why}. {detail}.")
    elif growth.label == "linear":
        second = Verdict("confirmed", f"recv() is O(k) with k = buffer size: confirmed. {detail}.")
    else:
        second = Verdict("refined", f"recv() is O(k) with k = buffer size: refined. {detail}: the time grew with the "
                                    f"buffer size, but not in proportion ({growth.label}).")
    measured = f"1 byte: {_fmt_ns(cost(lo))} at {_fmt_bytes(lo.x)}, {_fmt_ns(cost(hi))} at {_fmt_bytes(hi.x)}"
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
