"""Lesson 02 (the TCP server): the harness its cells use, each piece safe on a shared host.

The socket calls the lesson teaches (``bind``, ``listen``, ``accept``, port 0, a server that
closes first and leaves TIME_WAIT, ``setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)``) are written in
the notebook's cells; this module only plays the other side, times and judges:

* ``try_connect``: one connect with a short timeout, recorded (connected / timed out /
  refused) instead of raised: how the backlog is shown; ``backlog_report`` says what a list
  of them shows, from the counts.
* ``time_with_listeners_open(op, opened)``: times the cell's ``op`` (a whole
  ``socket()+bind()+listen()+close()``) while n other listening sockets are open, for each n,
  interleaved; ``listen_verdict`` judges "bind / listen are O(1)" from those points.
* ``accept_waits`` / ``accept_cost`` / ``accept_verdict``: ``accept()`` blocked for a client
  that comes later (wall and CPU time), what ``accept()`` itself costs with a client already
  queued, and the reference's "O(n) - wait for client" judged.
* ``ephemeral_port_range``: where the ports of ``bind(port 0)`` come from, per platform.
* ``time_wait_count``: how many TIME_WAIT connections use a port (Linux ``/proc``; None
  elsewhere).

Used in 02_server and by the lesson 02 checkers.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...addresses import (
    Address,
    address_in_use_errnos,
    check_loopback_host,
    check_port,
    ephemeral_port_range,
    family_of,
)
from ...measure import (
    HEADLINE_MIN_POINTS,
    Load,
    Point,
    Timing,
    Verdict,
    estimates,
    judge_growth,
    summarize,
    sweep,
    time_op,
)
from ...resources import open_descriptors

__all__ = [
    "ConnectAttempt",
    "accept_cost",
    "accept_figure",
    "accept_verdict",
    "accept_waits",
    "address_in_use_errnos",
    "backlog_report",
    "ephemeral_port_range",
    "listen_figure",
    "listen_verdict",
    "time_wait_count",
    "time_with_listeners_open",
    "try_connect",
]


@dataclasses.dataclass
class ConnectAttempt:
    """One client's ``connect``: ``outcome`` is "connected", "timed out" or "refused" (or an error)."""

    sock: socket.socket | None
    outcome: str
    elapsed_s: float

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()

    def __str__(self) -> str:
        return f"{self.outcome} after {self.elapsed_s * 1000:.1f} ms"


def try_connect(address: Address, timeout: float = 0.2) -> ConnectAttempt:
    """Connect to ``address`` with a short ``timeout``; record the outcome instead of raising.

    The socket (if connected) is in the result: close it (``attempt.close()``) when done.
    """
    host = check_loopback_host(address[0])
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    started = time.perf_counter()
    try:
        sock.connect((host, address[1]))
    except TimeoutError:
        sock.close()
        return ConnectAttempt(None, "timed out", time.perf_counter() - started)
    except ConnectionRefusedError:
        sock.close()
        return ConnectAttempt(None, "refused", time.perf_counter() - started)
    except OSError as exc:
        sock.close()
        return ConnectAttempt(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
    return ConnectAttempt(sock, "connected", time.perf_counter() - started)


def accept_cost(n: int = 41, host: str = "127.0.0.1") -> Timing:
    """Per-call time of ``accept()`` when a client is already waiting in the backlog.

    Each round connects one client (the kernel completes the handshake at once), then times
    only ``listener.accept()``, then closes both ends: one sample per round, ``n`` rounds (read
    its ``low_ns``, the 10th percentile, for what the call itself costs).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 5 <= n <= 10_000:
        raise ValueError(f"n must be an int from 5 to 10,000 (rounds), got {n!r}")
    host = check_loopback_host(host)
    samples: list[float] = []
    with socket.socket(family_of(host), socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(8)
        listener.settimeout(5.0)  # a guard only: the client is always there already
        address = listener.getsockname()[:2]
        for _ in range(n):
            with socket.create_connection(address, timeout=5.0):
                t0 = time.perf_counter_ns()
                conn, _ = listener.accept()
                samples.append(time.perf_counter_ns() - t0)
                conn.close()
    return summarize(samples)


#: How many more descriptors than the listeners it holds ``time_with_listeners_open`` leaves
#: free (the timed socket, the kernel's own, a live plot's file): under ``ulimit -n 256`` the
#: sizes that do not fit are skipped, and the verdict says so.
_SPARE_DESCRIPTORS = 48


def _descriptor_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows: no such per-process limit on sockets
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def time_with_listeners_open(op: Callable[[], object], opened: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256), *,
                             host: str = "127.0.0.1", total_budget_s: float = 2.0,
                             on_round: Callable[[list[Point]], object] | None = None) -> list[Point]:
    """Time ``op()`` while n other listening sockets (on ``host``, port 0 each) are open, for each
    n in ``opened``; one ``Point`` per n (x = n, times in ns).

    Interleaved (``measure.sweep(interleave=True)``): each round grows or shrinks one pool of
    listeners to each n in turn (forward, then backward) and times a few batches there, so a
    burst of load from elsewhere lands on every n alike instead of bending the line where it
    hit. Rounds are added while a point's spread is wide, within ``total_budget_s``. Sizes that
    would not fit under this process's descriptor limit are skipped (``extra["skipped"]``).
    """
    if not callable(op):
        raise TypeError(f"op must be a function to time (e.g. one that opens and closes a listener), "
                        f"got {type(op).__name__}")
    sizes = [n for n in opened]
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 2000:
            raise ValueError(f"each entry of opened must be an int from 0 to 2000 listeners, got {n!r}")
    if len(set(sizes)) < 2:
        raise ValueError(f"opened needs at least two different sizes to compare, got {list(opened)!r}")
    host = check_loopback_host(host)
    family = family_of(host)
    limit, in_use = _descriptor_limit(), open_descriptors() or 0
    room = None if limit is None else max(0, limit - in_use - _SPARE_DESCRIPTORS)
    kept = sorted(n for n in set(sizes) if room is None or n <= room)
    skipped = sorted(set(sizes) - set(kept))
    if len(kept) < 2:
        raise ValueError(f"only {room} descriptors are free (ulimit -n is {limit}): too few to hold "
                         f"{skipped[-1]} listeners; raise the limit (ulimit -n 4096) or pass smaller sizes")
    pool: list[socket.socket] = []

    def hold(n: float) -> Timing:
        while len(pool) > n:
            pool.pop().close()
        while len(pool) < n:
            sock = socket.socket(family, socket.SOCK_STREAM)
            pool.append(sock)
            sock.bind((host, 0))
            sock.listen(1)
        return time_op(op, repeats=5, warmup=1, budget_s=0.3, check_busy=False)  # untimed: the pool above

    try:
        points = sweep(hold, kept, series="socket()+bind()+listen()+close()", interleave=True, rounds=3,
                       max_rounds=8, spread_target=0.15, total_budget_s=total_budget_s, on_round=on_round)
    finally:
        for sock in pool:
            sock.close()
    if skipped:
        points = [dataclasses.replace(p, extra={**p.extra, "skipped": skipped, "limit": limit}) for p in points]
    return points


def listen_verdict(points: Sequence[Point], load: Load | None = None) -> Verdict:
    """Verdict on "bind() and listen() are O(1)" from ``time_with_listeners_open`` points.

    The claim is about what the calls themselves cost, so each point's value is the 10th
    percentile of its batches (``estimator="low"``): noise on a busy machine only ever adds
    time (``timeit``'s docs: "the min is the most useful value"), and the low quantile keeps
    that while one lucky batch cannot set it alone. The fit needs ``HEADLINE_MIN_POINTS`` sizes.
    """
    if not points:
        raise ValueError("no points: run time_with_listeners_open first")
    least, most = min(p.x for p in points), max(p.x for p in points)
    claim = f"bind() + listen() are O(1) (with {least:,.0f} to {most:,.0f} other listeners open)"
    verdict = judge_growth(claim, "constant", [dataclasses.replace(p, x=max(p.x, 1)) for p in points],
                           estimator="low", min_points=HEADLINE_MIN_POINTS, load=load)
    lows = estimates(points, "low")
    text = (f"{verdict.text} socket()+bind()+listen()+close() took {min(lows) / 1000:.1f} to {max(lows) / 1000:.1f} µs "
            f"(each point: the 10th percentile of its timed batches, the calls' own cost).")
    skipped = points[0].extra.get("skipped")
    if skipped:
        text += (f" Not measured: {', '.join(map(str, skipped))} listeners; this process may open only "
                 f"{points[0].extra.get('limit')} descriptors (the numbers the operating system gives each open "
                 "socket or file; raise the limit with ulimit -n 4096 before starting Jupyter).")
    return dataclasses.replace(verdict, text=text)


_TIME_WAIT = "06"  # the state column of /proc/net/tcp


def time_wait_count(port: int) -> int | None:
    """TIME_WAIT connections whose local port is ``port`` (Linux ``/proc/net/tcp*``); None elsewhere."""
    check_port(port)
    if not sys.platform.startswith("linux"):
        return None
    count, seen = 0, False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == _TIME_WAIT and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
            seen = True
        except (OSError, ValueError):
            continue
    return count if seen else None


# ---- accept(): waiting is not work -------------------------------------------------------------


def _accept_once(delay: float, host: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``accept()`` whose client connects ``delay`` s later."""
    with socket.socket(family_of(host), socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        listener.settimeout(delay + 5.0)  # a guard: the client comes after `delay`
        address = listener.getsockname()[:2]
        client: list[socket.socket] = []
        timer = threading.Timer(delay, lambda: client.append(socket.create_connection(address, timeout=5.0)))
        timer.start()
        try:
            t0, c0 = time.perf_counter(), time.thread_time()
            conn, _ = listener.accept()
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            conn.close()
        finally:
            timer.join(delay + 5.0)
            for sock in client:
                sock.close()
    return wall, cpu


def accept_waits(delays: Sequence[float] = (0.05, 0.1, 0.2, 0.4), *, host: str = "127.0.0.1",
                 on_point: Callable[[Point], object] | None = None) -> list[Point]:
    """For each delay, time one ``accept()`` whose client connects that much later.

    Returns two series of points (x = the delay in seconds): "wall time in accept()" and "CPU
    time of the waiting thread" (``time.thread_time``), both in ns. ``on_point`` (a live
    plot's ``add``) gets each point as it is measured.
    """
    host = check_loopback_host(host)
    points: list[Point] = []
    for delay in delays:
        if not 0 < delay <= 2:
            raise ValueError(f"each delay must be between 0 and 2 seconds, got {delay!r}")
        wall, cpu = _accept_once(delay, host)
        for series, value in (("wall time in accept()", wall), ("CPU time of the waiting thread", cpu)):
            ns = max(value * 1e9, 1.0)  # a log axis needs > 0; thread_time ticks can read 0
            point = Point(delay, ns, ns, ns, 1, series)
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points


#: A waiting thread that used more than this share of the wait in CPU time was not asleep.
_ASLEEP_SHARE = 0.05


def accept_verdict(waits: Sequence[Point], cost: Timing) -> Verdict:
    """Verdict on "accept() - O(n) - wait for client" from ``accept_waits`` and ``accept_cost``.

    The claim mixes two things that the numbers separate: the *wait* (wall time in a blocked
    ``accept()``, which follows the client's arrival) and the *work* (the thread's CPU time
    while blocked, and ``accept()`` with a client already queued). ``cost`` is judged by its
    10th percentile: it is about what the call itself costs, and noise only adds time.
    """
    wall = sorted((p for p in waits if p.series.startswith("wall")), key=lambda p: p.x)
    cpu = {p.x: p.median_ns for p in waits if p.series.startswith("CPU")}
    if len(wall) < 2 or any(p.x not in cpu for p in wall):
        raise ValueError("accept_verdict needs accept_waits points for at least two delays (wall and CPU series)")
    claim = "accept() is 'O(n) - wait for client'"
    shares = [cpu[p.x] / p.median_ns for p in wall]
    first, last = wall[0], wall[-1]
    own = cost.low_ns
    text = (f"For clients that came after {first.x:g} to {last.x:g} s, accept() blocked {first.median_ns / 1e9:.3f} to "
            f"{last.median_ns / 1e9:.3f} s, while the waiting thread used {min(cpu.values()) / 1e6:.2f} to "
            f"{max(cpu.values()) / 1e6:.2f} ms of CPU (at most {max(shares):.1%} of its wait); with a client already "
            f"queued, accept() itself took {own / 1e3:.3g} µs (10th percentile of {cost.n} rounds).")
    if max(shares) < _ASLEEP_SHARE:
        return Verdict("refined", f"{claim}: refined. {text} The time accept() takes is the wait for the next "
                                  "client, set by the clients, not by the call: the thread sleeps in the operating "
                                  f"system's kernel until a connection is ready, and its CPU time stays below "
                                  f"{_ASLEEP_SHARE:.0%} of the wait at every delay.")
    worst = wall[shares.index(max(shares))]
    return Verdict("contradicted", f"{claim}: contradicted as a wait that costs nothing. {text} While blocked for "
                                   f"{worst.median_ns / 1e9:.3f} s the thread used {max(shares):.1%} of that in CPU "
                                   "time: it was woken again and again instead of sleeping (accept() in a loop with a "
                                   "short timeout, or a non-blocking socket polled) - measuring again will not "
                                   "change that; look at how the listener is set up.")


# ---- the backlog ------------------------------------------------------------------------------


def backlog_report(attempts: Sequence[ConnectAttempt], backlog: int) -> str:
    """One paragraph on what ``attempts`` (connects to a listener that never accepted) show."""
    if not attempts:
        raise ValueError("attempts is empty: pass the ConnectAttempt list of try_connect calls")
    connected = sum(a.outcome == "connected" for a in attempts)
    counts: dict[str, int] = {}
    for a in attempts:
        if a.outcome != "connected":
            counts[a.outcome] = counts.get(a.outcome, 0) + 1
    text = (f"With listen({backlog}) and no accept() at all, {connected} of {len(attempts)} clients connected: "
            "the operating system's kernel completed their handshakes and queued them for a future accept().")
    timed_out = [a for a in attempts if a.outcome == "timed out"]
    if timed_out:
        waited = max(a.elapsed_s for a in timed_out)
        text += (f" {len(timed_out)} timed out after {waited * 1000:.0f} ms: with the queue full, the kernel did not "
                 "answer their handshake at all (a real client would send it again a second or more later).")
    if counts.get("refused"):
        text += (f" {counts['refused']} were refused at once: with the queue full, this system answered their "
                 "handshake with a reset.")
    others = {o: n for o, n in counts.items() if o not in ("timed out", "refused")}
    if others:
        text += " Others: " + ", ".join(f"{n} × {o}" for o, n in others.items()) + "."
    if connected and connected != backlog and connected < len(attempts):
        text += (f" {connected} is not exactly the {backlog} you asked for: the backlog is a hint, and each system "
                 "counts it its own way")
        text += " (Linux queues backlog + 1)." if sys.platform.startswith("linux") and connected == backlog + 1 else "."
    elif connected == len(attempts):
        text += (f" Every client got in: this system queued more than {backlog}; try more clients to see the queue "
                 "fill up.")
    return text


# ---- the figure of the bind()/listen() sweep ----------------------------------------------------


def listen_figure(points: Sequence[Point], *, title: str = "bind() + listen() are O(1): time against listeners "
                  "already open") -> Any:
    """The sweep drawn from zero: the median with its IQR (what a run waited) and the 10th
    percentile (the calls' own cost, which the verdict judges), with the fit of the latter."""
    from ...measure import fit_growth
    from .._figures import from_zero

    if not points:
        raise ValueError("no points to plot: run time_with_listeners_open first")
    own = "10th percentile (own cost, judged)"
    lows = [Point(p.x, p.low_ns, p.low_ns, p.low_ns, p.n, own) for p in points]
    waited = [dataclasses.replace(p, series="median and IQR") for p in points]
    fit = fit_growth([max(p.x, 1) for p in lows], [p.median_ns for p in lows])
    return from_zero([*waited, *lows], title=title, xlabel="listening sockets already open",
                     ylabel="socket()+bind()+listen()+close() (µs)", fits={own: fit})


def accept_figure(waits: Sequence[Point]) -> Any:
    """``accept_waits`` drawn once (log time axis, in ms), with the client's delay as a
    reference line: the wall time sits on it, the CPU time far below."""
    from ...plots import Reference, plot_points
    from .._figures import Shown

    if not waits:
        raise ValueError("no points to plot: run accept_waits first")
    delays = sorted({p.x for p in waits})
    figure = plot_points(waits, title="accept() is 'O(n) - wait for client'? waiting vs working",
                         xlabel="client arrives after (s)", ylabel="time (ms)", logy=True, scale=1e-6,
                         references=[Reference("the client's delay", through=tuple((d, d * 1e3) for d in delays))])
    return Shown(figure)
