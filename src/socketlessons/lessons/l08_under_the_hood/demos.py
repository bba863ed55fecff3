"""Lesson 08 helpers: Nagle's stall, socket buffers, TCP_INFO, and what the GIL does to timings.

Rules of this module:

* Every experiment is bounded: a count *and* a deadline, so a platform that stalls for seconds
  (small send buffers do on some network stacks) costs the learner half a second, not a minute.
* Every conclusion is computed from the numbers just measured (``*_verdict`` functions are
  pure, so tests feed them both outcomes), never written in.
* Platform features sit behind a probe that says what this system does instead: ``TCP_INFO`` is
  Linux's ``struct tcp_info``; macOS has ``TCP_CONNECTION_INFO`` with another layout; Windows has
  nothing Python's ``socket`` can read (``SIO_TCP_INFO`` exists in WinSock, but
  ``socket.ioctl`` accepts only three other codes).

Used in ``notebooks/08_under_the_hood.ipynb``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ...framing import recv_up_to
from ...measure import Load, Point, Status, Verdict, machine_load, summarize, sweep
from ...servers import ConnectionStats, SinkServer, TCPServer

__all__ = [
    "SNDBUF_SIZES",
    "SNDBUF_SWEEP",
    "SNDBUF_TRANSFER",
    "switch_verdict",
    "sndbuf_curve_verdict",
    "BufferResult",
    "GilResult",
    "NagleResult",
    "ReceivedRequest",
    "RequestServer",
    "TcpInfo",
    "buffer_verdict",
    "busy_thread",
    "echo_rtts_ns",
    "gil_figure",
    "gil_rounds",
    "gil_trial",
    "gil_verdict",
    "largest_gap",
    "nagle_verdict",
    "parse_linux_tcp_info",
    "parse_macos_tcp_connection_info",
    "request_points",
    "send_throughput",
    "sndbuf_points_verdict",
    "sndbuf_stall_threshold",
    "sndbuf_sweep",
    "sndbuf_timing",
    "switch_interval",
    "tcp_info",
    "tcp_info_changes",
    "tcp_info_support",
    "time_requests",
    "write_write_read",
]

#: Header and body of the small request used by the Nagle demo (an HTTP-like client writes its
#: headers, then its body, then waits for the answer: the classic write-write-read).
HEADER = b"LEN 0100\n"
BODY = b"b" * 100
REPLY = b"OK\n"
#: A round trip slower than this counts as "stalled": loopback answers in tens of µs, a delayed
#: ACK holds a segment back for 40 ms (Linux), 100–200 ms (macOS, Windows).
STALL_NS = 10_000_000
MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """One complete request as the server saw it: its bytes, and the size of each ``recv()``
    that contributed to it (one entry: it arrived in one piece)."""

    conn: int
    data: bytes
    pieces: tuple[int, ...]


class RequestServer(TCPServer):
    """Reads requests of exactly ``request_size`` bytes and answers each with ``reply``.

    Unlike the echo server it does not answer a partial request: so when the client's second
    write is held back (Nagle), nothing goes back that could carry an ACK, and the exchange
    waits for the server's delayed-ACK timer. That is the write-write-read stall.

    ``expect``: when given, a request whose bytes differ from it is answered with ``wrong``
    (same length as ``reply``; ``?`` repeated by default) instead. Every request is kept in ``requests`` (the last 1,000),
    with the sizes of the reads it arrived in: the checkers judge what the server saw.
    """

    kind = "request"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, request_size: int = len(HEADER) + len(BODY),
                 reply: bytes = REPLY, expect: bytes | None = None, wrong: bytes | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if isinstance(request_size, bool) or not isinstance(request_size, int) or not 0 < request_size <= 1 << 20:
            raise ValueError(f"request_size must be between 1 and 1 MiB, got {request_size!r}")
        if not isinstance(reply, bytes) or not reply:
            raise TypeError(f"reply must be non-empty bytes, got {reply!r}")
        if expect is not None and (not isinstance(expect, bytes) or len(expect) != request_size):
            raise ValueError(f"expect must be None or {request_size} bytes (request_size), got {expect!r}")
        wrong = b"?" * len(reply) if wrong is None else wrong
        if not isinstance(wrong, bytes) or len(wrong) != len(reply):
            raise ValueError(f"wrong must be bytes as long as reply ({len(reply)}), got {wrong!r}")
        self.request_size, self.reply, self.expect, self.wrong = request_size, reply, expect, wrong
        self.requests: collections.deque[ReceivedRequest] = collections.deque(maxlen=1000)
        #: the bytes of the request in progress (the last connection's): what came of a short one
        self.pending = b""

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "request_size": self.request_size, "reply": self.reply,
                "expect": self.expect, "wrong": self.wrong}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        pending, pieces = b"", []
        while data := self._recv(conn, stats):
            pending += data
            pieces.append(len(data))
            self.pending = pending[: self.request_size]
            while len(pending) >= self.request_size:
                request, pending = pending[:self.request_size], pending[self.request_size:]
                self.requests.append(ReceivedRequest(stats.conn, request, tuple(pieces)))
                pieces = [len(pending)] if pending else []
                self.pending = pending
                ok = self.expect is None or request == self.expect
                self._send(conn, stats, self.reply if ok else self.wrong)


def _check_count(name: str, value: Any, low: int = 1, high: int = 10_000_000) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int from {low:,} to {high:,}, got {value!r}")


def _check_seconds(name: str, value: Any, high: float = 60.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high:
        raise ValueError(f"{name} must be a number of seconds in (0, {high:g}], got {value!r}")


# ---- Nagle ------------------------------------------------------------------------------------

def write_write_read(sock: socket.socket, header: bytes = HEADER, body: bytes = BODY, reply_size: int = len(REPLY)) -> int:
    """One request as two writes, then read the whole reply; return the round trip in ns."""
    t0 = time.perf_counter_ns()
    sock.sendall(header)
    sock.sendall(body)
    got = 0
    while got < reply_size:
        chunk = sock.recv(reply_size - got)
        if not chunk:
            raise ConnectionError("the server closed the connection before replying")
        got += len(chunk)
    return time.perf_counter_ns() - t0


def time_requests(address: tuple[str, int], *, nodelay: bool, n: int = 8, deadline_s: float = 2.0) -> list[int]:
    """Round trips (ns) of ``n`` write-write-read requests on one connection, NODELAY on or off.

    Stops early at ``deadline_s`` (a stalled platform may take 200 ms per request).
    """
    _check_count("n", n, high=10_000)
    _check_seconds("deadline_s", deadline_s)
    out: list[int] = []
    end = time.monotonic() + deadline_s
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        write_write_read(sock)  # warm-up: the first exchange runs in quick-ACK mode
        for _ in range(n):
            out.append(write_write_read(sock))
            if time.monotonic() > end:
                break
    return out


@dataclasses.dataclass(frozen=True)
class NagleResult:
    off_ns: float  # median round trip with Nagle on (TCP_NODELAY off: the default)
    on_ns: float  # median with TCP_NODELAY on
    stalled: bool
    text: str
    status: Status = "inconclusive"  # of the claim "write-write-read stalls with Nagle on, not with TCP_NODELAY"

    def __str__(self) -> str:
        return self.text


def nagle_verdict(nagle_ns: Sequence[float], nodelay_ns: Sequence[float]) -> NagleResult:
    """Compare write-write-read round trips with Nagle on (default) and with TCP_NODELAY.

    Medians: the claim is about what each request waits, and a stall hits most requests of a
    connection after the first (the warm-up is left out), so the median request shows it; one
    slow request on a busy machine cannot make a median stall.
    """
    if not nagle_ns or not nodelay_ns:
        raise ValueError("nagle_verdict needs round trips of both kinds, got "
                         f"{len(nagle_ns)} with Nagle and {len(nodelay_ns)} with TCP_NODELAY")
    off, on = statistics.median(nagle_ns), statistics.median(nodelay_ns)
    stalled = off > STALL_NS and off > 20 * on
    if stalled:
        text = (f"stall confirmed: with Nagle (the default) each request took {off / 1e6:.1f} ms (median of "
                f"{len(nagle_ns)}); with TCP_NODELAY {on / 1e3:,.0f} µs, {off / on:,.0f}× faster. The second "
                "write waited for an ACK that the server delayed.")
        return NagleResult(off, on, True, text, "confirmed")
    if on > STALL_NS:
        text = (f"inconclusive: even with TCP_NODELAY each request took {on / 1e6:.1f} ms (median), so this "
                f"run cannot tell a stall from a slow machine ({_load_text()}); Nagle on: {off / 1e6:.1f} ms.")
        return NagleResult(off, on, False, text, "inconclusive")
    if off > 2 * on:
        text = (f"slower with Nagle ({off / 1e3:,.0f} µs vs {on / 1e3:,.0f} µs, medians) but no delayed-ACK "
                "stall (that takes tens of ms): this system acknowledged at once.")
    else:
        text = (f"no stall measured ({off / 1e3:,.0f} µs with Nagle, {on / 1e3:,.0f} µs with TCP_NODELAY, "
                "medians): this system did not hold the second write back.")
    return NagleResult(off, on, False, text, "contradicted")


def _load_text() -> str:
    """The machine's 1-minute load average and cores, for sentences that blame the machine."""
    try:
        import psutil

        return f"load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count() or 1} cores"
    except (ImportError, OSError, AttributeError):  # pragma: no cover - psutil is a dependency
        return "load unknown"


# ---- socket buffers -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BufferResult:
    asked: int  # SO_SNDBUF we set
    granted: int  # what getsockopt says afterwards (Linux doubles it)
    nbytes: int  # bytes the sink counted
    seconds: float

    @property
    def bytes_per_s(self) -> float:
        return self.nbytes / self.seconds if self.seconds > 0 else 0.0


def send_throughput(address: tuple[str, int], sndbuf: int, *, total: int = 4 << 20, chunk: int = 64 << 10,
                    deadline_s: float = 0.5) -> BufferResult:
    """Send up to ``total`` bytes into a ``SinkServer`` with ``SO_SNDBUF=sndbuf``; time until counted.

    Stops sending at ``deadline_s`` and measures what got through, so a stalling platform costs
    half a second, not minutes. The time runs until the sink's 8-byte count arrives, so every
    byte counted was really received.
    """
    if isinstance(sndbuf, bool) or not isinstance(sndbuf, int) or sndbuf <= 0:
        raise ValueError(f"sndbuf must be a positive number of bytes, got {sndbuf!r}")
    data = b"\x00" * chunk
    with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)  # before connect: sizes the window
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        sock.settimeout(10)
        sock.connect(address)
        sent = 0
        t0 = time.perf_counter_ns()
        end = t0 + int(deadline_s * 1e9)
        while sent < total and time.perf_counter_ns() < end:
            sock.sendall(data)
            sent += chunk
        sock.shutdown(socket.SHUT_WR)
        count = recv_up_to(sock, SinkServer.COUNT.size)
        if len(count) < SinkServer.COUNT.size:
            raise ConnectionError("the sink closed without sending its count")
        seconds = (time.perf_counter_ns() - t0) / 1e9
    (nbytes,) = SinkServer.COUNT.unpack(count)
    return BufferResult(sndbuf, granted, nbytes, seconds)


#: A transfer is "stalled" when it costs at least this many ms per MiB: a 4 MiB transfer that
#: took ≥ 40 ms, one delayed-ACK timer on Linux (200 ms on macOS and Windows), or one cut off by
#: its deadline before 4 MiB got through. It waited on a timer, not on copying: unhindered
#: transfers cost 0.13-0.4 ms per MiB here, a CPU hog per core adds whole scheduler ticks (4 ms
#: here: 1.0, 2.0, at most 3.9 ms per MiB in 300 transfers from 64 KiB up), and at load 14 on
#: 2 cores the typical transfer of every size cost 4-9 ms per MiB.
STALL_MS_PER_MIB = 10.0
#: ... and at least this many times the fastest size's own cost (on a machine slower than this one).
CLIFF = 10.0
#: A larger buffer "helps" when its transfers are at least this many times faster.
EFFECT = 1.5
#: A size needs this many transfers before its quantiles mean anything.
MIN_TRANSFERS = 3


def _kib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else (
        f"{n >> 10} KiB" if n % 1024 == 0 else f"{n:,} B")


def _sizes(pts: Sequence[Sequence[float]]) -> str:
    names = [_kib(int(p[0])) for p in pts]
    return names[0] if len(names) == 1 else f"{names[0]}–{names[-1]}" if len(names) > 2 else " and ".join(names)


def _listed(pts: Sequence[Sequence[float]]) -> str:
    names = [_kib(int(p[0])) for p in pts]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:,.2f}–{hi:,.2f}"


def _gains(values: Sequence[float]) -> list[float]:
    """For each size but the largest: how many times faster the fastest LARGER size was."""
    return [v / min(values[i + 1:]) if min(values[i + 1:]) > 0 else math.inf for i, v in enumerate(values[:-1])]


def sndbuf_curve_verdict(sizes: Sequence[int], ms_per_mib: Sequence[float], q1: Sequence[float] | None = None,
                         q3: Sequence[float] | None = None, *, low: Sequence[float] | None = None,
                         n: Sequence[int] | None = None, doubled: bool = False,
                         load: Load | None = None) -> Verdict:
    """Read the whole curve "time per MiB against SO_SNDBUF", not just its two ends.

    The claim is "a bigger send buffer moves data faster". The story can be a slope (every
    larger size is faster still: confirmed), a cliff (below some size transfers stall or cost
    more, above it a bigger buffer is no faster: refined, the claim holds only up to that
    size), no effect (contradicted), or a curve the run cannot read (inconclusive, saying why).

    Per size: ``ms_per_mib`` the median of its transfers, ``q1``/``q3`` their quartiles, ``low``
    their 10th percentile (default ``q1``, else the median), ``n`` how many. Two questions, two
    estimators:

    * **Did the transfers stall?** A stall (≥ ``STALL_MS_PER_MIB``, ``CLIFF`` × the fastest
      size's own cost) is a timer, the buffer's doing, and what a user waits; it hits some
      transfers, not all. So the MEDIAN says whether the typical transfer stalled, the upper
      quartile whether a quarter did. A bigger buffer never makes loopback stall more, so the
      sizes that stall must all lie below those that do not, or the run cannot name a cliff.
    * **Above the stalls, does a bigger buffer still help?** Those transfers wait on nothing
      but copying and the scheduler, so each size's OWN cost is its fastest transfers (the 10th
      percentile): load only ever adds time (the ``timeit`` docs: "the min is the most useful
      value", higher values come from "other processes interfering with your timing accuracy"),
      and under a CPU hog per core the medians of equal sizes differed ×3-7 (whole scheduler
      ticks), which would read as a slope. A slope (confirmed) must also show in the medians.

    ``load``: the machine during the run (default: ``machine_load()`` now). No stall and no
    effect is "contradicted" only on a machine that was not busy: load hides the stall (measured
    under a CPU hog per core: whole runs with 20+ transfers of 4 KiB and not one stall, where a
    quiet machine stalls nearly every one; the benchmark called those runs "contradicted").
    """
    if len(sizes) != len(ms_per_mib):
        raise ValueError(f"sizes and ms_per_mib differ in length: {len(sizes)} vs {len(ms_per_mib)}")
    for name, seq in (("q1", q1), ("q3", q3), ("low", low), ("n", n)):
        if seq is not None and len(seq) != len(sizes):
            raise ValueError(f"{name} must have one value per size ({len(sizes)}), got {len(seq)}")
    lows = low if low is not None else (q1 if q1 is not None else ms_per_mib)
    pts = sorted(zip(sizes, ms_per_mib, q1 or ms_per_mib, q3 or ms_per_mib, lows, n or [MIN_TRANSFERS] * len(sizes)))
    if len({p[0] for p in pts}) < 3:
        return Verdict("inconclusive", f"only {len({p[0] for p in pts})} buffer size(s) measured: a curve needs at "
                                       "least 3 (add sizes to bufsize_sizes)")
    note = " Linux granted twice each size asked (room for its bookkeeping)." if doubled else ""
    few = [p for p in pts if p[5] < MIN_TRANSFERS]
    if few:
        return Verdict("inconclusive", (
            f"too few transfers to read a curve: {', '.join(f'{_kib(p[0])} {p[5]}' for p in few)} (at least "
            f"{MIN_TRANSFERS} per size needed); the run's time budget ran out first ({_load_text()}). Run it again."
            f"{note}"), rerun_helps=True)
    stall_at = stall_threshold_ms([p[4] for p in pts])
    level = ["most" if p[1] >= stall_at else "some" if p[3] >= stall_at else "none" for p in pts]
    def_stall = f"≥ {stall_at:,.1f} ms per MiB"
    # A size without stalls below one with them: not a cliff. (Between two sizes that both stall,
    # which stalls more often is chance: a stall comes and goes, as the 4 KiB one did under load.)
    if any(a == "none" and b != "none" for a, b in zip(level, level[1:])):
        where = "; ".join(f"{_kib(p[0])}: median {p[1]:,.2f}, upper quartile {p[3]:,.2f}" for p in pts)
        return Verdict("inconclusive", (
            f"stalls ({def_stall}) that do not follow the buffer size: a larger buffer stalled where a smaller "
            f"one did not ({where} ms per MiB), which a bigger buffer cannot cause on loopback. A stall hits some "
            f"transfers, not all, so {min(p[5] for p in pts)} transfers at a size can miss it: run again "
            f"({_load_text()}).{note}"), rerun_helps=True)
    stalled = [p for p, lv in zip(pts, level) if lv != "none"]
    clean = [p for p, lv in zip(pts, level) if lv == "none"]
    if stalled and len(clean) < 2:
        return Verdict("inconclusive", (
            f"transfers stalled ({def_stall}) at every size but {', '.join(_kib(p[0]) for p in clean) or 'none'}: "
            "a curve above the stalls needs at least 2 sizes without them; add larger sizes to bufsize_sizes."
            f"{note}"))
    lows_c = [p[4] for p in clean]
    gains = _gains(lows_c)
    helps = [g >= EFFECT for g in gains]
    mid = sorted(p[1] for p in clean)
    stall_text = ""
    if stalled:
        most = [p for p in stalled if p[1] >= stall_at]
        some = [p for p in stalled if p[1] < stall_at]
        parts = []
        if most:
            parts.append(f"at {_listed(most)} the typical transfer stalled (medians "
                         f"{_span([p[1] for p in most])} ms per MiB)")
        if some:
            parts.append(f"at {_listed(some)} a quarter or more of the transfers stalled (upper "
                         f"quartiles {_span([p[3] for p in some])} ms per MiB, medians {_span([p[1] for p in some])})")
        # Like with like: a stalled size's median (or upper quartile) against the clean sizes'
        # slowest median, so the factor says how much longer a stalled transfer took than a
        # typical unstalled one (not a median against a 10th percentile).
        worst = min(p[1] if p[1] >= stall_at else p[3] for p in stalled)
        typical = max(p[1] for p in clean)
        stall_text = (f"{' and '.join(parts)}: those stalled transfers took ×{worst / typical:,.0f} or more the "
                      f"slowest median from {_kib(clean[0][0])} up ({typical:,.2f} ms per MiB; a stall: {def_stall}, "
                      f"a timer, not copying); from {_kib(clean[0][0])} up fewer than a quarter stalled (upper quartiles "
                      f"{_span([p[3] for p in clean])})")
    def unordered(what: str) -> Verdict:
        return Verdict("inconclusive", (
            (f"{stall_text[0].upper()}{stall_text[1:]}; above that" if stalled
             else f"no transfer stalled ({def_stall});")
            + f" {what} (10th percentiles " + ", ".join(f"{_kib(p[0])} {p[4]:,.2f}" for p in clean)
            + f" ms per MiB): neither a cliff nor a slope. A busy machine can do that ({_load_text()}): run again."
            + note), rerun_helps=True)

    if all(helps) and len(clean) >= 3:
        # "The larger the buffer, the less time per MiB" says the curve falls at every step: a
        # middle size slower than the one below it is no slope, however fast the largest was
        # (measured beside 8 busy kernels: 10th percentiles 0.60, 3.40, 0.36 ms per MiB at 64 KiB,
        # 256 KiB and 1 MiB were called a slope, because each size was beaten by SOME larger one).
        if any(b >= a for a, b in zip(lows_c, lows_c[1:])):
            return unordered("each size was beaten by a larger one, but not in order of size")
        med_gains = _gains([p[1] for p in clean])
        head = (f"from {_kib(clean[0][0])} to {_kib(clean[-1][0])} each size was beaten ×{min(gains):.1f} or more by "
                f"a larger one in its fastest transfers (10th percentiles {lows_c[0]:,.2f} → {lows_c[-1]:,.2f} ms "
                f"per MiB)")
        if all(g >= EFFECT for g in med_gains) and all(b < a for a, b in zip((p[1] for p in clean),
                                                                              (p[1] for p in clean[1:]))):
            return Verdict("confirmed", (
                f"a slope: {head} and in its typical ones (medians {clean[0][1]:,.2f} → {clean[-1][1]:,.2f}): the "
                f"larger the buffer, the less time per MiB, up to the largest size measured"
                + (f"; below it, {stall_text}" if stalled else "") + f".{note}"))
        return Verdict("inconclusive", (
            f"{head}, but not in its typical ones (medians {', '.join(f'{p[1]:,.2f}' for p in clean)} ms per MiB): "
            f"the machine's waits hide the slope ({_load_text()}). Measure again when it is quieter.{note}"),
            rerun_helps=True)
    if not stalled and not any(helps):
        ratio = clean[0][1] / clean[-1][1] if clean[-1][1] > 0 else math.inf
        head = (f"no transfer stalled ({def_stall}) and no larger buffer was ×{EFFECT:g} faster in its fastest "
                f"transfers (10th percentiles {_span(lows_c)} ms per MiB)")
        load = load if load is not None else machine_load()
        if mid[-1] < EFFECT * mid[0] and load.busy:
            return Verdict("inconclusive", (
                f"{head}, nor in its typical ones (medians {_span(mid)}): no effect of the buffer size this run, but "
                f"the machine was busy ({load}), and load hides the stalls of small buffers (measured with a CPU hog "
                "per core: 20+ transfers of 4 KiB without one stall, where a quiet machine stalls nearly every one). "
                f"Measure again when it is quieter.{note}"), rerun_helps=True)
        if mid[-1] < EFFECT * mid[0]:
            return Verdict("contradicted", (
                f"{head}, nor in its typical ones (medians {_span(mid)}): no clear effect of the buffer size from "
                f"{_kib(clean[0][0])} to {_kib(clean[-1][0])}.{note}"))
        if ratio <= 1 / EFFECT:
            return Verdict("inconclusive", (
                f"{head}; in the typical transfers the smaller buffer was ×{1 / ratio:.1f} faster here (medians "
                f"{clean[0][1]:,.2f} at {_kib(clean[0][0])}, {clean[-1][1]:,.2f} at {_kib(clean[-1][0])}), which a "
                "bigger buffer cannot cause on loopback (it only lets more bytes wait in the operating system's "
                f"kernel): something else slowed those transfers ({_load_text()}). Measure again when the machine is "
                f"quieter.{note}"), rerun_helps=True)
        return Verdict("inconclusive", (
            f"{head}, yet the typical ones differed ×{mid[-1] / mid[0]:.1f} (medians "
            f"{', '.join(f'{_kib(p[0])} {p[1]:,.2f}' for p in clean)}): waits that do not follow the buffer size, the "
            f"machine's ({_load_text()}). Measure again when it is quieter.{note}"), rerun_helps=True)
    if all(helps):  # only 2 sizes above the stalls, the larger faster: a slope or a cliff at the top?
        return Verdict("inconclusive", (
            f"{stall_text[0].upper()}{stall_text[1:]}; above that only {_sizes(clean)} ran without stalls, and the "
            f"larger was ×{gains[0]:.1f} faster (10th percentiles {lows_c[0]:,.2f} and {lows_c[1]:,.2f} ms per MiB): "
            f"two sizes cannot tell a slope from a cliff; add larger sizes to bufsize_sizes.{note}"))
    k = helps.index(False)
    if any(helps[k:]):
        return unordered("the fastest transfers got slower and faster again with the size")
    knee, tail = clean[k], clean[k:]
    best = max(gains[k:])
    slower = max(p[4] for p in tail) / knee[4] if knee[4] > 0 else 1.0
    flat = (f"from {_kib(knee[0])} up no larger buffer was ×{EFFECT:g} faster (fastest transfers, 10th percentiles "
            f"{_span([p[4] for p in tail])} ms per MiB: "
            + (f"a larger buffer was at best ×{best:.2f} faster than a smaller one" if best > 1
               else f"none faster than at {_kib(knee[0])}")
            + (f", and the slowest size ×{slower:.1f} slower than {_kib(knee[0])}" if slower >= EFFECT else "") + ")")
    below = [stall_text] if stalled else []
    if k > 0:
        before = clean[:k]
        below.append(f"{'above the stalls, ' if stalled else 'no transfer stalled, but '}even the fastest transfers "
                     f"at {_sizes(before)} cost {_span([p[4] for p in before])} ms per MiB, ×{min(gains[:k]):.1f} or "
                     "more a larger buffer's (10th percentiles)")
    if stalled and k == 0:  # "from 64 KiB up fewer than a quarter stalled and no larger buffer was ..."
        below[-1] += " and" + flat.split(" up", 1)[1]
    else:
        below.append(flat)
    return Verdict("refined", (
        f"a cliff, not a slope: {'; '.join(below)}. A bigger buffer helps up to {_kib(knee[0])}; above it, "
        f"more buffer changes little.{note}"))


def buffer_verdict(results: Sequence[BufferResult]) -> Verdict:
    """``sndbuf_curve_verdict`` for ``send_throughput`` results (several per size allowed)."""
    if not results:
        return Verdict("inconclusive", "no buffer sizes measured")
    by_size: dict[int, list[float]] = {}
    for r in results:
        by_size.setdefault(r.asked, []).append(r.seconds * 1e3 * MIB / max(r.nbytes, 1))
    sizes = sorted(by_size)
    timings = [summarize(by_size[s]) for s in sizes]
    doubled = all(r.granted == 2 * r.asked for r in results)
    return sndbuf_curve_verdict(sizes, [t.median_ns for t in timings], [t.q1_ns for t in timings],
                                [t.q3_ns for t in timings], low=[t.low_ns for t in timings], n=[t.n for t in timings],
                                doubled=doubled)


# ---- TCP_INFO ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TcpInfo:
    """The kernel's view of one TCP connection (the fields both Linux and macOS report)."""

    platform: str
    state: int
    rtt_us: float  # smoothed round-trip time
    rttvar_us: float
    rto_us: float  # retransmission timeout
    snd_cwnd: int  # congestion window
    cwnd_unit: str  # "segments" (Linux) or "bytes" (macOS)
    mss: int
    retransmits: int  # retransmissions of the segment now outstanding
    total_retrans: int  # over the connection's life (Linux; macOS: packets)
    extra: dict[str, int] = dataclasses.field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"rtt {self.rtt_us:,.0f} µs (± {self.rttvar_us:,.0f}), rto {self.rto_us / 1000:,.0f} ms",
               f"congestion window {self.snd_cwnd:,} {self.cwnd_unit}, MSS {self.mss:,} bytes",
               f"retransmits now {self.retransmits}, total {self.total_retrans}"]
        out += [f"{k} {v:,}" for k, v in self.extra.items()]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


#: Linux ``struct tcp_info`` (include/uapi/linux/tcp.h): 8 one-byte fields, then 24 u32 up to
#: ``tcpi_total_retrans`` (104 bytes, stable since Linux 2.6); newer kernels append u64 counters.
_LINUX = struct.Struct("=8B24I")
_LINUX_NAMES = ("rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans", "fackets",
                "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv", "pmtu",
                "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss", "reordering",
                "rcv_rtt", "rcv_space", "total_retrans")
_LINUX_TAIL = struct.Struct("=4Q2I")  # pacing_rate, max_pacing_rate, bytes_acked, bytes_received, segs_out, segs_in


def parse_linux_tcp_info(raw: bytes) -> TcpInfo:
    """Decode the first 104 bytes of Linux ``struct tcp_info`` (plus byte/segment counters if present)."""
    if len(raw) < _LINUX.size:
        raise ValueError(f"struct tcp_info needs at least {_LINUX.size} bytes, got {len(raw)}")
    values = _LINUX.unpack_from(raw)
    f = dict(zip(_LINUX_NAMES, values[8:]))
    extra: dict[str, int] = {}
    if len(raw) >= _LINUX.size + _LINUX_TAIL.size:
        _, _, acked, received, segs_out, segs_in = _LINUX_TAIL.unpack_from(raw, _LINUX.size)
        extra = {"bytes_acked": acked, "bytes_received": received, "segs_out": segs_out, "segs_in": segs_in}
    return TcpInfo("linux", values[0], f["rtt"], f["rttvar"], f["rto"], f["snd_cwnd"], "segments",
                   f["snd_mss"], values[2], f["total_retrans"], extra)


#: macOS ``struct tcp_connection_info`` (xnu bsd/netinet/tcp.h): 4 bytes, 12 u32, one u32 of
#: TFO bit flags, then 7 u64 packet/byte counters (112 bytes). Times in ms.
_MACOS = struct.Struct("=4B13I7Q")


def parse_macos_tcp_connection_info(raw: bytes) -> TcpInfo:
    """Decode macOS ``struct tcp_connection_info`` (RTTs in ms there; converted to µs)."""
    if len(raw) < _MACOS.size:
        raise ValueError(f"struct tcp_connection_info needs {_MACOS.size} bytes, got {len(raw)}")
    v = _MACOS.unpack_from(raw)
    state = v[0]
    (_options, _flags, rto, maxseg, _ssthresh, cwnd, _snd_wnd, _sbbytes, _rcv_wnd, _rttcur, srtt, rttvar,
     _bits) = v[4:17]
    txpackets, txbytes, txretransbytes, rxpackets, rxbytes, _ooo, txretranspackets = v[17:24]
    extra = {"bytes_sent": txbytes, "bytes_received": rxbytes, "segs_out": txpackets, "segs_in": rxpackets,
             "retransmitted_bytes": txretransbytes}
    return TcpInfo("macos", state, srtt * 1000.0, rttvar * 1000.0, rto * 1000.0, cwnd, "bytes", maxseg,
                   0, txretranspackets, extra)


_MACOS_TCP_CONNECTION_INFO = 0x106  # <netinet/tcp.h>; not exported by every Python build


def tcp_info_support() -> str:
    """What this platform offers to read the kernel's per-connection TCP state."""
    if sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO"):
        return "Linux: getsockopt(IPPROTO_TCP, TCP_INFO) returns struct tcp_info (RTT in µs, cwnd in segments)."
    if sys.platform == "darwin":
        return ("macOS: no TCP_INFO for user programs; getsockopt(IPPROTO_TCP, TCP_CONNECTION_INFO) returns "
                "struct tcp_connection_info (RTT in ms, cwnd in bytes).")
    if sys.platform == "win32":
        return ("Windows: WinSock has SIO_TCP_INFO, but Python's socket.ioctl() accepts only SIO_RCVALL, "
                "SIO_KEEPALIVE_VALS and SIO_LOOPBACK_FAST_PATH, so Python cannot read it; "
                "`netstat -s -p tcp` shows system-wide counters instead.")
    return f"{sys.platform}: no per-connection TCP statistics that Python's socket module can read."


def tcp_info(sock: socket.socket) -> TcpInfo | None:
    """The kernel's TCP state of ``sock``; ``None`` where this platform cannot say (see ``tcp_info_support``)."""
    try:
        if sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO"):
            return parse_linux_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256))
        if sys.platform == "darwin":
            opt = getattr(socket, "TCP_CONNECTION_INFO", _MACOS_TCP_CONNECTION_INFO)
            return parse_macos_tcp_connection_info(sock.getsockopt(socket.IPPROTO_TCP, opt, _MACOS.size))
    except (OSError, ValueError):
        return None
    return None


def tcp_info_changes(before: TcpInfo, after: TcpInfo, sent: int) -> str:
    """What moved between two ``tcp_info()`` readings around sending ``sent`` bytes, one line per
    field, each with the mechanism that moves it; every number is read from the two readings."""
    lines = []
    grew = after.snd_cwnd > before.snd_cwnd
    lines.append(f"congestion window {before.snd_cwnd:,} → {after.snd_cwnd:,} {after.cwnd_unit}: "
                 + ("TCP starts small and widens the window as ACKs come back (slow start)" if grew else
                    "it did not grow: TCP widens it only when the sender used all of it and ACKs came back"))
    if after.mss != before.mss:
        # Linux: tcp_bound_to_half_wnd() (net/ipv4/tcp_output.c) caps a segment at half the largest
        # window the peer has advertised; a fresh loopback receiver offers a small one at first.
        lines.append(f"MSS {before.mss:,} → {after.mss:,} bytes: "
                     + ("Linux sends segments of at most half the largest window the receiver has offered; "
                        "the receiver's window grew during the transfer, and the cap with it"
                        if after.platform == "linux" and after.mss > before.mss else
                        "the sender re-sized its segments to what the path and the receiver allow"))
    else:
        lines.append(f"MSS {after.mss:,} bytes, unchanged")
    rose = after.rtt_us > before.rtt_us
    lines.append(f"smoothed RTT {before.rtt_us:,.0f} → {after.rtt_us:,.0f} µs: the first estimate is the "
                 "handshake's round trip alone; " +
                 ("during the transfer each ACK came back behind queued data (and, on a busy machine, behind a "
                  "receiver waiting for a CPU), so the round trips grew"
                  if rose else "the transfer's ACKs came back as fast as the handshake's"))
    acked_b, acked_a = before.extra.get("bytes_acked"), after.extra.get("bytes_acked")
    if acked_b is not None and acked_a is not None:
        delta = acked_a - acked_b
        # TCP numbers the SYN and the FIN as one byte each, so they show in the acknowledged count.
        every = {sent: f"all {sent:,} bytes sent",
                 sent + 1: f"all {sent:,} bytes sent, plus 1 for the FIN that shutdown() sent"}.get(
            delta, f"{delta:,} bytes (of the {sent:,} sent)")
        syn = "; the 1 before any data is the SYN" if acked_b == 1 else ""
        lines.append(f"bytes acknowledged {acked_b:,} → {acked_a:,}: {every}{syn} "
                     "(TCP numbers the SYN and the FIN as one byte each)")
    out_b, out_a = before.extra.get("segs_out"), after.extra.get("segs_out")
    in_b, in_a = before.extra.get("segs_in"), after.extra.get("segs_in")
    if None not in (out_b, out_a, in_b, in_a):
        d_out, d_in = out_a - out_b, in_a - in_b  # type: ignore[operator]
        carried = acked_a - acked_b if acked_a is not None and acked_b is not None else sent
        if d_out > 0 and d_in > 0:
            lines.append(f"segments out {d_out:,} (about {carried / d_out:,.0f} bytes each), segments in {d_in:,}: "
                         f"mostly the receiver's ACKs, one per {d_out / d_in:.1f} segments sent (one ACK may "
                         "cover several segments)")
    lost = after.total_retrans - before.total_retrans
    lines.append(f"retransmissions {lost:,}: " + ("nothing was sent twice" if lost == 0 else
                                                 "segments were sent again because their ACK did not come in "
                                                 "time: a lost segment, or, on loopback, an ACK held up (Linux "
                                                 "also re-sends the last segment early to probe for a loss)"))
    return "\n".join(lines)


# ---- the GIL ----------------------------------------------------------------------------------

def _spin(until_ns: int, stop: threading.Event, counter: list[float], started: threading.Event | None = None) -> None:
    # Pure Python work holds the GIL except when the interpreter forces a switch. The clock is
    # read only every 2**14 rounds: a timer call on every round made the thread let go of the
    # GIL far more often on some systems (measured: no slowdown at all under gVisor).
    n, cpu0, wall0 = 0, time.thread_time(), time.perf_counter()
    if started is not None:
        started.set()
    while not stop.is_set():
        for _ in range(1 << 14):
            n += 1
        if time.perf_counter_ns() >= until_ns:
            break
    counter[:] = [n, time.thread_time() - cpu0, time.perf_counter() - wall0]


@contextlib.contextmanager
def busy_thread(seconds: float = 0.5) -> Iterator[list[float]]:
    """Run a CPU-bound Python thread for at most ``seconds`` (or until the block ends).

    Yields a list that holds, once the thread has ended, ``[loops, cpu_s, wall_s]``: its loop
    count, the CPU seconds it used (``time.thread_time``) and the seconds it ran. Bounded twice:
    by its own deadline and by the block's exit, so it can never outlive the cell.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 5:
        raise ValueError(f"seconds must be a number in (0, 5], got {seconds!r}")
    stop, counter, started = threading.Event(), [0, 0.0, 0.0], threading.Event()
    thread = threading.Thread(target=_spin, args=(time.perf_counter_ns() + int(seconds * 1e9), stop, counter, started),
                              name="socketlessons-busy", daemon=True)
    thread.start()
    # Spinning before the block starts: on a crowded host a new thread can take tens of ms to
    # run at all, and a check made before that sees a quiet kernel.
    started.wait(1.0)
    time.sleep(0.01)  # let it take the GIL before the measurement starts
    try:
        yield counter
    finally:
        stop.set()
        thread.join(seconds + 1)


@contextlib.contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """Temporarily set ``sys.setswitchinterval`` (how long a thread may hold the GIL when another waits)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def echo_rtts_ns(address: tuple[str, int], *, n: int = 100_000, deadline_s: float = 0.3) -> list[int]:
    """1-byte echo round trips on one connection, back to back: at most ``n``, for at most ``deadline_s``.

    A fixed time window (rather than a fixed count) makes "how many round trips fit in 0.3 s"
    the measure: a GIL wait of 5 ms now and then hardly moves the median but costs hundreds
    of round trips.
    """
    _check_count("n", n)
    _check_seconds("deadline_s", deadline_s, high=10.0)
    out: list[int] = []
    end = time.perf_counter_ns() + int(deadline_s * 1e9)
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter_ns()
            sock.sendall(b"x")
            sock.recv(1)
            t1 = time.perf_counter_ns()
            out.append(t1 - t0)
            if t1 > end:
                break
    return out


#: A round trip this long waited for something: a 1-byte loopback echo costs 5-50 µs, and a GIL
#: wait lasts up to the switch interval (0.5 ms at the shortest the lesson sets): half of that.
WAIT_NS = 250_000


@dataclasses.dataclass(frozen=True)
class GilResult:
    """Round trips measured in one condition (quiet or busy kernel, thread or process server).

    ``busy``: a CPU-bound Python thread ran in this process (the Jupyter kernel) meanwhile;
    ``server``: ``"thread"`` (in this process, sharing its GIL) or ``"process"`` (its own);
    ``busy_cpu_share``: the CPU the busy thread got, as a share of its wall time (``nan`` when
    none ran): on a crowded machine it gets less than a whole core, and says so.
    """

    label: str
    median_ns: float
    mean_ns: float  # total time / round trips: counts every GIL wait
    p99_ns: float
    max_ns: float
    n: int
    switch_s: float = 0.005  # sys.getswitchinterval() during the measurement
    busy: bool = False
    server: str = "thread"
    busy_cpu_share: float = math.nan
    #: ``gil_rounds``: the mean round trip of each window this condition ran (µs); empty for one window
    window_means_us: tuple[float, ...] = ()
    window_s: float = 0.3
    #: ``gil_rounds``: the median round trip of each window (µs)
    window_medians_us: tuple[float, ...] = ()
    #: round trips of at least ``WAIT_NS`` (GIL waits, or the machine's), and the median of those
    waits: int = 0
    wait_median_ns: float = math.nan

    @classmethod
    def from_samples(cls, label: str, samples_ns: Sequence[float], switch_s: float | None = None, *,
                     busy: bool = False, server: str = "thread", busy_cpu_share: float = math.nan) -> GilResult:
        if not samples_ns:
            raise ValueError("no round trips were measured")
        if server not in ("thread", "process"):
            raise ValueError(f"server must be 'thread' or 'process', got {server!r}")
        ordered = sorted(samples_ns)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        long = [t for t in ordered if t >= WAIT_NS]
        return cls(label, statistics.median(ordered), statistics.fmean(ordered), p99, ordered[-1], len(ordered),
                   sys.getswitchinterval() if switch_s is None else switch_s, busy, server, busy_cpu_share,
                   waits=len(long), wait_median_ns=statistics.median(long) if long else math.nan)

    def __str__(self) -> str:
        busy = (f"; the busy thread got {self.busy_cpu_share:.0%} of a core"
                if self.busy and not math.isnan(self.busy_cpu_share) else "")
        windows = (f" (median of {len(self.window_means_us)} windows' means: "
                   + ", ".join(f"{m:,.0f}" for m in self.window_means_us) + " µs)"
                   if len(self.window_means_us) > 1 else "")
        medians = (" (windows' medians: " + ", ".join(f"{m:,.1f}" for m in self.window_medians_us) + " µs)"
                   if len(self.window_medians_us) > 1 else "")
        # A 99th percentile needs 100 round trips or more to be more than the slowest of a few.
        p99 = f", 99th percentile {self.p99_ns / 1e3:,.0f} µs" if self.n >= 100 else ""
        return (f"{self.label}: {self.n:,} round trips, mean {self.mean_ns / 1e3:,.0f} µs{windows}, "
                f"median {self.median_ns / 1e3:,.0f} µs{medians}{p99}, slowest {self.max_ns / 1e6:,.1f} ms, "
                f"{self.waits:,} waited ≥ {WAIT_NS / 1e3:g} µs{busy}")

    @property
    def fastest_median_ns(self) -> float:
        """The median of the fastest window (of ``gil_rounds``; the median of the one window otherwise)."""
        return min(self.window_medians_us) * 1e3 if self.window_medians_us else self.median_ns

    @property
    def how(self) -> str:
        """How this condition was measured, for verdict sentences ("5 windows of 0.06 s")."""
        k = max(len(self.window_means_us), 1)
        return f"{k} window{'s' if k > 1 else ''} of {self.window_s:g} s"


def gil_trial(address: tuple[str, int], label: str, *, busy: bool = False, switch_s: float | None = None,
              window_s: float = 0.3, server: str = "thread") -> GilResult:
    """Echo round trips for ``window_s`` seconds, optionally with a busy Python thread and another
    switch interval (both restored afterwards): one condition of the GIL experiment. ``server``
    says where the echo server at ``address`` runs ("thread": in this process; "process")."""
    if server not in ("thread", "process"):
        raise ValueError(f"server must be 'thread' or 'process' (where the echo server runs), got {server!r}")
    _check_seconds("window_s", window_s, high=4.0)
    if switch_s is not None:
        _check_seconds("switch_s", switch_s, high=1.0)
    return _trial(address, label, busy=busy, switch_s=switch_s, window_s=window_s, server=server)[0]


def _trial(address: tuple[str, int], label: str, *, busy: bool = False, switch_s: float | None = None,
           window_s: float = 0.3, server: str = "thread") -> tuple[GilResult, list[int]]:
    if server not in ("thread", "process"):
        raise ValueError(f"server must be 'thread' or 'process' (where the echo server runs), got {server!r}")
    if switch_s is not None:
        _check_seconds("switch_s", switch_s, high=1.0)
    with contextlib.ExitStack() as stack:
        if switch_s is not None:
            stack.enter_context(switch_interval(switch_s))
        spun = stack.enter_context(busy_thread(window_s + 0.2)) if busy else None
        switch = sys.getswitchinterval()
        samples = echo_rtts_ns(address, deadline_s=window_s)
    share = spun[1] / spun[2] if spun and spun[2] > 0 else math.nan
    result = GilResult.from_samples(label, samples, switch, busy=busy, server=server, busy_cpu_share=share)
    return dataclasses.replace(result, window_s=window_s), samples



def gil_rounds(conditions: Sequence[dict[str, Any]], *, rounds: int = 5, window_s: float = 0.05) -> list[GilResult]:
    """``gil_trial`` for each condition in alternating rounds: condition 1, 2, ..., 1, 2, ...

    ``conditions``: dicts of ``gil_trial``'s arguments (``address``, ``label``, and optionally
    ``busy``, ``switch_s``, ``server``). Each condition runs ``rounds`` windows of ``window_s``
    seconds, interleaved with the others, so that a spell when other programs slow the machine
    (measured here under load: every round trip ×7 slower for a whole 0.3 s window, busy thread
    or not) falls on every condition alike instead of deciding a comparison. Each result's
    ``mean_ns`` is the MEDIAN of its windows' means: a busy thread's GIL waits come back in every
    window, so they stay; one window that the machine slowed does not move a median of five.
    ``median_ns`` is the median of the windows' medians; the rest pools every round trip.
    """
    _check_count("rounds", rounds, high=50)
    _check_seconds("window_s", window_s, high=2.0)
    if not conditions:
        raise ValueError("conditions must list at least one dict of gil_trial arguments, got none")
    runs: list[list[GilResult]] = [[] for _ in conditions]
    samples: list[list[int]] = [[] for _ in conditions]
    for _ in range(rounds):
        for i, cond in enumerate(conditions):
            args = {k: v for k, v in cond.items() if k not in ("address", "label")}
            r, raw = _trial(cond["address"], cond["label"], window_s=window_s, **args)
            runs[i].append(r)
            samples[i].extend(raw)
    out = []
    for cond, rs, raw in zip(conditions, runs, samples):
        pooled = GilResult.from_samples(rs[0].label, raw, rs[0].switch_s, busy=rs[0].busy, server=rs[0].server)
        shares = [r.busy_cpu_share for r in rs if not math.isnan(r.busy_cpu_share)]
        out.append(dataclasses.replace(
            pooled, mean_ns=statistics.median(r.mean_ns for r in rs),
            median_ns=statistics.median(r.median_ns for r in rs),
            busy_cpu_share=statistics.median(shares) if shares else math.nan,
            window_means_us=tuple(r.mean_ns / 1e3 for r in rs), window_s=window_s,
            window_medians_us=tuple(r.median_ns / 1e3 for r in rs)))
    return out

#: Why two trials without a busy thread can differ whatever the server's placement, measured on
#: the course's 2-core VM: with the kernel and both servers pinned to one CPU (``taskset -c 0``),
#: a 1-byte echo took 15-16 µs from either server; unpinned, 45-75 µs in most 50 ms windows from
#: either (each end wakes the other's CPU first), and 15-18 µs in 3 of 12 windows of the process
#: server only (the scheduler had put it on the client's CPU).
#: (The sentence gives no numbers: they are this machine's, not the learner's.)
_PLACEMENT = ("on the client's CPU a round trip is one direct switch, on another CPU each end must first wake the "
              "other's CPU, which can cost several times as much")

#: Mean round trips that differ by at least this factor differ; within SAME they are the same;
#: in between the run cannot say. Means, not medians: the claim is about what the waits cost
#: in total (a 5 ms GIL wait every few hundred round trips hardly moves the median).
DIFFERENT, SAME = 2.0, 1.5
#: A busy thread that got less than this share of a core spent the rest waiting for a CPU, not
#: holding the GIL: it cannot show that a busy thread does NOT slow round trips (measured under
#: a CPU hog per core: 19-60 % of a core, and round trips no slower than quiet ones 5 times in 20).
BUSY_SHARE = 0.7


def gil_verdict(base: GilResult, other: GilResult) -> Verdict:
    """Compare two GIL trials (means) and explain a difference only by what differed between them.

    A busy thread in this process is the only thing that makes round trips wait for the GIL;
    where no busy thread ran, a slowdown has another cause (the server in another process means
    each round trip wakes a second process; other programs compete for the CPU). Status, for
    a busy trial against a quiet one, of "a busy thread slows round trips"; otherwise of "the
    same cost".
    """
    busy_claim = other.busy and not base.busy
    # Estimators: a busy thread's cost IS the occasional 5 ms wait, which only the mean (total
    # time / round trips) counts. Without a busy thread the question is what one round trip
    # costs in each placement: the median, which a few disturbed round trips on a busy machine
    # cannot move (the mean of a 0.3 s window can double from one 10 ms hiccup).
    # With several windows each (gil_rounds), the fastest window's median: what a round trip
    # costs when nothing else intervened. Measured here without any busy thread: 3 windows in a
    # row of 63-77 µs medians against 5-7 µs in the others, the same server, whenever the
    # operating system ran the partner on a CPU that had gone idle and had to be woken first;
    # waiting does not belong to the server's placement, and noise only ever adds time.
    stat = "mean" if (other.busy or base.busy) else (
        "fastest window's median" if base.window_medians_us and other.window_medians_us else "median")
    a, b = ((base.mean_ns, other.mean_ns) if stat == "mean" else
            (base.fastest_median_ns, other.fastest_median_ns))
    ratio = b / a if a > 0 else math.inf
    head = (f"{other.label}: {stat} {b / 1e3:,.1f} µs per round trip vs {a / 1e3:,.1f} µs "
            f"({base.label}), ×{ratio:,.1f}")
    if busy_claim:
        where = ("the client and the server both run" if other.server == "thread"
                 else "the client runs (the server has its own process, but the client still needs this GIL)")
        got = (f"; it got {other.busy_cpu_share:.0%} of a core" if not math.isnan(other.busy_cpu_share) else "")
        if ratio >= DIFFERENT:
            # Built from the counts: how MANY round trips wait is a race between the threads that
            # load tilts (measured beside busy kernels: windows' means of 160-200 µs and one of
            # 21 ms, the median round trip 34 µs against 28 µs quiet), so "every call waited"
            # would often be false; that a returning call CAN wait a switch interval is not.
            med_moved = other.median_ns >= DIFFERENT * base.median_ns
            share = other.waits / other.n if other.n else 0.0
            # "most" from the counts, not from the windows' medians: a window whose every round
            # trip waited holds a handful of them, one without waits thousands (measured beside
            # nine busy kernels: the median of 5 windows' medians 8.9 ms, yet 24 of 2,826 waited).
            how_many = ("most round trips waited: the median moved too" if med_moved and share >= 0.5 else
                        f"the waits came in spells: in some windows nearly every round trip waited, which moved the "
                        f"median of the windows' medians ({other.median_ns / 1e3:,.0f} µs against "
                        f"{base.median_ns / 1e3:,.0f} µs), but only {share:.0%} of all round trips waited"
                        if med_moved else
                        f"the median round trip hardly moved ({other.median_ns / 1e3:,.0f} µs against "
                        f"{base.median_ns / 1e3:,.0f} µs): the waits fell on some round trips, and how many is a "
                        "race between the threads that other work on the machine tilts")
            return Verdict("confirmed", (
                f"{head}: slowed by GIL waits. The busy thread ran in this kernel's process, where {where}{got}. "
                f"{other.waits:,} of {other.n:,} round trips waited ≥ {WAIT_NS / 1e3:g} µs (without it: {base.waits:,} "
                f"of {base.n:,}), the slowest {other.max_ns / 1e6:,.1f} ms. A socket call that returns while the busy "
                f"thread holds the GIL waits up to the switch interval ({other.switch_s * 1e3:g} ms) to run again, and "
                f"a round trip needs the GIL several times (each end's send and recv), so it can wait several "
                f"intervals; {how_many}."))
        extra = other.waits / max(other.n, 1) - base.waits / max(base.n, 1)  # share of round trips that waited
        if ratio < SAME and extra * other.n >= 5 and extra >= 0.001:
            return Verdict("inconclusive", (
                f"{head}: the mean moved little, yet {other.waits:,} of {other.n:,} round trips waited "
                f"≥ {WAIT_NS / 1e3:g} µs (quiet: {base.waits:,} of {base.n:,}){got}: the busy thread did take the "
                f"GIL now and then, too seldom this run to say it slows round trips ({_load_text()}). Run again."))
        if ratio < SAME and not other.busy_cpu_share < BUSY_SHARE:
            # "No slowdown" needs a baseline that was itself undisturbed, and busy windows that
            # agree: a GIL wait lasts up to the switch interval (5 ms), so ONE in a 0.05 s window
            # moves that window's mean ×2 or more, and under a CPU hog per core some windows catch
            # none (measured: busy windows of 32-36 µs beside ones of 47 ms; quiet windows of
            # 6-120 µs in one trial). The median of the windows' means then rests on luck.
            slowed = [m for m in other.window_means_us if m * 1e3 >= DIFFERENT * a]
            quiet_w = base.window_means_us
            spread = max(quiet_w) / min(quiet_w) if quiet_w and min(quiet_w) > 0 else 1.0
            if slowed:
                return Verdict("inconclusive", (
                    f"{head}: the median window moved little, but {len(slowed)} of {len(other.window_means_us)} "
                    f"windows with the busy thread ran ×{DIFFERENT:g} or more slower than the quiet trial (means "
                    + ", ".join(f"{m:,.0f}" for m in other.window_means_us) + f" µs){got}: the busy thread took the "
                    f"GIL in some windows, not most ({_load_text()}). Run the trials again."), rerun_helps=True)
            if spread >= DIFFERENT:
                return Verdict("inconclusive", (
                    f"{head}: but the quiet trial itself varied ×{spread:,.0f} between its windows (means "
                    + ", ".join(f"{m:,.0f}" for m in quiet_w) + f" µs): other programs slowed this machine "
                    f"({_load_text()}), so a difference within ×{SAME:g} of it cannot show that a busy thread does "
                    "not slow round trips. Measure again when the machine is quieter."), rerun_helps=True)
            return Verdict("contradicted", f"{head}: no GIL wait to speak of, although a busy thread ran{got}.")
        if ratio < DIFFERENT and other.busy_cpu_share < BUSY_SHARE:
            return Verdict("inconclusive", (
                f"{head}: not ×{DIFFERENT:g} slower, but the busy thread got only {other.busy_cpu_share:.0%} of a "
                f"core: other programs held the CPUs ({_load_text()}), so it seldom held the GIL. This cannot "
                "tell whether a busy thread slows round trips; measure again when the machine is quieter."))
        return Verdict("inconclusive", f"{head}: between ×{SAME:g} and ×{DIFFERENT:g}, too close to call from "
                                       f"{other.how} each ({_load_text()}); run the trials again.")
    differs = []
    if other.server != base.server:
        differs.append(f"the server runs in a {other.server} instead of a {base.server}")
    if other.switch_s != base.switch_s:
        differs.append(f"the switch interval is {other.switch_s * 1e3:g} ms instead of {base.switch_s * 1e3:g} ms")
    if other.busy != base.busy:
        differs.append("only the first had a busy thread")
    what = "; ".join(differs) or "nothing but the moment they ran"
    if 1 / SAME < ratio < SAME:
        # The fastest windows agree; the trials' overall medians (printed and plotted above the
        # verdict) can still differ many times over when most windows of one trial ran its two
        # ends on two CPUs: say so, or the sentence contradicts the numbers beside it.
        typical = max(other.median_ns, base.median_ns) / max(min(other.median_ns, base.median_ns), 1.0)
        aside = (f" Their overall medians differed ×{typical:,.1f} ({other.median_ns / 1e3:,.0f} and "
                 f"{base.median_ns / 1e3:,.0f} µs), most likely from where the OS ran the two ends in the other "
                 "windows (on two CPUs each wakes the other's) or from other programs; the fastest windows show what "
                 "each costs without that"
                 if typical >= SAME else "")
        return Verdict("confirmed", f"{head}: the same cost within ×{SAME:g} (what differed: {what}).{aside}")
    if not (other.busy or base.busy):
        # No busy thread in either trial: nothing held the GIL for more than a moment, so the
        # question left is what placement costs, and the OS's choice of CPUs decides that, by
        # several times either way (see _PLACEMENT). A difference of microseconds is that, not
        # a GIL wait (up to a switch interval, 5 ms); only a trial whose typical round trip took
        # a GIL wait's order of time (≥ WAIT_NS) was slowed by something this cannot see.
        slow, fast = (other, base) if ratio > 1 else (base, other)
        slow_ns = max(a, b)
        if slow_ns >= WAIT_NS:
            return Verdict("inconclusive", (
                f"{head}: no busy thread ran, yet the {stat} round trip of {slow.label} took {slow_ns / 1e3:,.0f} µs, "
                f"the order of a wait for the GIL (this lesson counts a round trip of {WAIT_NS / 1e3:g} µs or more as "
                f"one): other programs held this machine's CPUs ({_load_text()}). Run "
                "the trials again when it is quieter."), rerun_helps=True)
        if slow.server == "process" and fast.server == "thread":
            why = ("a server in its own process means every round trip wakes a second process, and the operating "
                   f"system decides where and how soon it runs: {_PLACEMENT}")
        else:
            why = (f"the slower trial ({slow.label}) ran while something else did (another thread of this kernel or "
                   f"another program: its slowest round trip took {slow.max_ns / 1e6:,.1f} ms), or the operating "
                   f"system ran its two ends on two CPUs and the other trial's on one: {_PLACEMENT}")
        word = "slower" if ratio > 1 else "faster"
        return Verdict("refined", (
            f"{head}: {word}, by {abs(b - a) / 1e3:,.1f} µs per round trip, where a wait for the GIL lasts up to the "
            f"switch interval ({slow.switch_s * 1e3:g} ms). No busy thread ran, so this is not the GIL: {why} "
            f"({_load_text()}). Run the trials again: where the two ends run can change from one run to the next."),
            rerun_helps=True)
    if ratio >= DIFFERENT or ratio <= 1 / DIFFERENT:
        word = "slower" if ratio > 1 else "faster"
        return Verdict("contradicted", f"{head}: {word}; what differed: {what}.")
    return Verdict("inconclusive", f"{head}: between ×{SAME:g} and ×{DIFFERENT:g}, too close to call from "
                                   f"{other.how} each ({_load_text()}); run the trials again.")


def switch_verdict(default: GilResult, short: GilResult) -> Verdict:
    """Compare two busy-thread trials that differ only in the switch interval.

    A shorter interval makes the busy thread let go of the GIL sooner, so each wait is shorter.
    Status of "a shorter switch interval cuts the waits". Estimator: the median length of the
    round trips that waited (≥ ``WAIT_NS``), the very thing the interval bounds. Not the mean:
    how MANY round trips wait is a race between the two threads that goes either way from one
    run to the next (measured quiet, the same busy thread: every round trip waiting 5 ms in one
    run, one in 400 in the next), so the means of two trials once came out ×1.5 the wrong way.
    """
    ratio = short.mean_ns / default.mean_ns if default.mean_ns > 0 else math.inf
    head = (f"busy thread, switch interval {short.switch_s * 1e3:g} ms vs {default.switch_s * 1e3:g} ms: "
            f"mean {short.mean_ns / 1e3:,.0f} µs vs {default.mean_ns / 1e3:,.0f} µs per round trip; "
            f"{short.waits:,} vs {default.waits:,} round trips waited ≥ {WAIT_NS / 1e3:g} µs")
    if min(short.waits, default.waits) < 5:
        return Verdict("inconclusive", (
            f"{head}\n→ too few waits to compare their length (at least 5 each needed); the busy thread got "
            f"{min(default.busy_cpu_share, short.busy_cpu_share):.0%} of a core ({_load_text()}). Run the trials "
            "again."))
    cut = default.wait_median_ns / short.wait_median_ns if short.wait_median_ns > 0 else math.inf
    head += (f", typically {short.wait_median_ns / 1e6:,.2f} ms vs {default.wait_median_ns / 1e6:,.2f} ms each "
             "(median)")
    if cut >= SAME:
        return Verdict("confirmed", f"{head}\n→ the shorter interval cut each wait ×{cut:.1f}: the busy thread "
                                    "had to let go of the GIL sooner each time"
                       + (f" (the mean moved ×{1 / ratio:.1f})." if ratio > 0 else "."))
    share = min(default.busy_cpu_share, short.busy_cpu_share)
    if share < BUSY_SHARE:
        return Verdict("inconclusive", (
            f"{head}\n→ the waits were about as long either way, but a busy thread got only {share:.0%} of a "
            f"core ({_load_text()}): while it waits for a CPU, the operating system's scheduler, not the switch "
            "interval, decides the waits. Measure again when the machine is quieter."))
    if cut <= 1 / SAME:
        return Verdict("contradicted", (
            f"{head}\n→ each wait ×{1 / cut:.1f} LONGER with the shorter interval ({_load_text()}): the switch "
            "interval did not bound the waits here."))
    return Verdict("inconclusive", (f"{head}\n→ within ×{SAME:g}: no clear effect this run ({_load_text()}); "
                                    f"the two trials ran {short.how} each. Run the trials again."))


# ---- for the notebook: traces, points, figures ------------------------------------------------

def largest_gap(events: Sequence[Any]) -> tuple[float, Any, Any]:
    """The longest pause (ms) between two consecutive events of a timeline, and those two events."""
    evs = sorted(events, key=lambda e: e.t_ns)
    if len(evs) < 2:
        raise ValueError("need at least two events to find a gap")
    gap, a, b = max(((y.t_ns - x.t_ns, x, y) for x, y in zip(evs, evs[1:])), key=lambda g: g[0])
    return gap / 1e6, a, b


def request_points(samples_ns: Sequence[float], series: str) -> list[Any]:
    """One plot point per request (x = request number), for ``plots.plot_points``."""
    from ...measure import Point

    return [Point(i, t, t, t, 1, series) for i, t in enumerate(samples_ns, start=1)]



def sndbuf_timing(address: tuple[str, int], sndbuf: int, *, repeats: int = 5, total: int = 4 * MIB,
                  deadline_s: float = 0.3, budget_s: float | None = None) -> Any:
    """A ``measure.Timing`` of the time to move one MiB into the sink with ``SO_SNDBUF=sndbuf``.

    For ``widgets.SweepPanel`` (``sweep="bufsize"``): each repeat is one ``send_throughput``;
    ``extra`` is not needed, the granted size is the kernel's business (``BufferResult.granted``).
    ``budget_s``: stop adding repeats once this long has passed (at least one transfer), so a
    fast size (about 1 ms per transfer) gets several transfers in the time a stalled one (up to
    ``deadline_s`` and more) gets one.
    """
    _check_count("repeats", repeats, high=1000)
    _check_seconds("deadline_s", deadline_s)
    if budget_s is not None:
        _check_seconds("budget_s", budget_s)
    per_mib = []
    end = time.perf_counter() + (budget_s if budget_s is not None else math.inf)
    for _ in range(repeats):
        r = send_throughput(address, sndbuf, total=total, deadline_s=deadline_s)
        per_mib.append(r.seconds * 1e9 * MIB / max(r.nbytes, 1))
        if time.perf_counter() >= end:
            break
    return summarize(per_mib)


#: The lesson's panel (section 3) and the verdict benchmark measure the curve alike:
SNDBUF_SIZES = (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)
#: ... each transfer cut off after 0.1 s, and per round and size up to 6 transfers within 12 ms:
#: one at a size that stalls (0.1-0.15 s), 4-6 at one that does not (1-3 ms each). The sizes
#: that decide "flat or still faster" are the large ones, whose 10th percentile needs many
#: transfers; a stall shows in the median of the small sizes' 7 or more.
SNDBUF_TRANSFER = {"deadline_s": 0.1, "repeats": 6, "budget_s": 0.012}
#: ... in interleaved rounds over the sizes (forward, backward, ...), so a spell of load lands
#: on every size alike: at least 7, then more until 2 s have passed (at most 21). The time
#: decides when to stop, never the verdict ("until it is decided" would stop on a lucky round);
#: ``spread_target`` is below any real spread, so only the budget ends the rounds. Quiet, 7
#: rounds fill the 2 s (a stalled transfer takes 0.1-0.15 s); when nothing stalls (under a CPU
#: hog per core, some runs: 20+ transfers of 4 KiB without one stall) the rounds take 0.1 s
#: and more of them give a stall that comes and goes more chances to show. Measured here:
#: 2.0-2.4 s in all. Keywords of ``measure.sweep``.
SNDBUF_SWEEP = {"interleave": True, "rounds": 7, "max_rounds": 21, "spread_target": 1e-6, "total_budget_s": 2.0}


def sndbuf_sweep(address: tuple[str, int], sizes: Sequence[int] = SNDBUF_SIZES, **options: Any) -> list[Point]:
    """The curve the panel measures: one ``Point`` per size (time per MiB, ns), ``SNDBUF_SWEEP``
    rounds of ``sndbuf_timing(..., **SNDBUF_TRANSFER)`` into the ``SinkServer`` at ``address``.
    ``options`` override ``SNDBUF_SWEEP`` (e.g. ``on_round``, ``stop``)."""
    return sweep(lambda x: sndbuf_timing(address, int(x), **SNDBUF_TRANSFER), list(sizes),
                 **{**SNDBUF_SWEEP, **options})


def stall_threshold_ms(lows_ms_per_mib: Sequence[float]) -> float:
    """Time per MiB from which a transfer counts as stalled: ``STALL_MS_PER_MIB``, or ``CLIFF``
    times the fastest size's own cost (its 10th percentile) on a machine slower than that."""
    return max(STALL_MS_PER_MIB, CLIFF * min(lows_ms_per_mib))


def sndbuf_stall_threshold(points: Sequence[Any]) -> float:
    """``stall_threshold_ms`` of SO_SNDBUF sweep points (ms per MiB), as their verdict uses it: the
    line to draw on their plot (``panel.plot.add_reference(..., y=...)``)."""
    if not points:
        return STALL_MS_PER_MIB
    return stall_threshold_ms([_own_cost_ns(p) / 1e6 for p in points])


def _own_cost_ns(point: Any) -> float:
    """A sweep point's 10th percentile (its transfers' own cost), or its lower quartile without one."""
    return point.q1_ns if math.isnan(getattr(point, "low_ns", math.nan)) else point.low_ns


def sndbuf_points_verdict(points: Sequence[Any], *, load: Load | None = None) -> Verdict:
    """``sndbuf_curve_verdict`` for sweep points whose ``median_ns`` is the time per MiB (each
    point's 10th percentile ``low_ns`` is its transfers' own cost; ``q1_ns`` when it has none)."""
    pts = sorted(points, key=lambda p: p.x)
    if not pts:
        return Verdict("inconclusive", "no buffer sizes measured yet: press Run")
    doubled = all(_granted(int(p.x)) == 2 * int(p.x) for p in pts)
    low = [_own_cost_ns(p) for p in pts]
    return sndbuf_curve_verdict([int(p.x) for p in pts], [p.median_ns / 1e6 for p in pts],
                                [p.q1_ns / 1e6 for p in pts], [p.q3_ns / 1e6 for p in pts],
                                low=[v / 1e6 for v in low], n=[p.n for p in pts], doubled=doubled, load=load)


def _granted(sndbuf: int) -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def gil_figure(results: Sequence[GilResult], *, ax: Any = None, title: str = "") -> Any:
    """Mean round trip per condition (a dot, log scale) and its median (a mark): the GIL's cost."""
    from ...plots import style_for  # first: it loads matplotlib with ■ held (socketlessons._interrupts)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if ax is None:
        fig = Figure(figsize=(6.4, 0.5 * len(results) + 1.6), layout="constrained")
        FigureCanvasAgg(fig)  # no pyplot: nothing global, nothing shown twice
        ax = fig.add_subplot()
    fig = ax.figure
    labels = [r.label for r in results]
    means = [r.mean_ns / 1e3 for r in results]
    medians = [r.median_ns / 1e3 for r in results]
    # Marks, not bars: on a log axis a bar's length depends on where the axis happens to start, so
    # a x2 difference looked as dramatic as a x56 one. A thin line from median to mean shows the gap.
    ax.hlines(labels, medians, means, color="0.6", linewidth=1)
    ax.plot(means, labels, linestyle="none", marker="o", color=style_for(0)["color"], markersize=8,
            label="mean (every GIL wait counts)")
    ax.plot(medians, labels, linestyle="none", marker="|", color="black", markersize=18, label="median")
    ax.set_xscale("log")
    ax.autoscale_view()
    low, high = ax.get_xlim()
    # 10, 20, 50, 100 ... over a decade or so; over more (20 µs to 20 ms) only 10, 100, 1000 ...:
    # six labels like "5000 10000 20000" on one axis run into each other.
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5) if high / max(low, 1e-9) <= 30 else (1,)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.invert_yaxis()
    ax.set_xlabel("1-byte echo round trip (µs, log scale)")
    title = title or "Does a busy Python thread slow round trips? Mean (dot) and median (mark)"
    fig.suptitle(title, fontsize=11)  # centred on the figure: the long bar labels push the axes right
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)  # below the axes: never over a bar
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig
