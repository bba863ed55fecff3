"""Lesson 02 (the TCP server): demonstrations that only it needs, each safe on a shared host.

* ``try_connect``: one connect with a short timeout, recorded (connected / timed out /
  refused) instead of raised: how the backlog is shown.
* ``accept_cost``: what ``accept()`` itself costs when a client is already waiting in the
  backlog (the reference calls accept "O(n)"; its waiting is not work).
* ``listen_with_open`` / ``listen_verdict``: ``socket()+bind()+listen()+close()`` timed with
  more and more listeners already open, and the reference's "bind / listen are O(1)" judged.
* ``ephemeral_port_range``: where the ports of ``bind(port 0)`` come from, per platform.
* ``port_in_time_wait``: a port on 127.0.0.1 whose last connection is in TIME_WAIT because the
  server closed first, its listener gone: binding it again without ``SO_REUSEADDR`` fails with
  "Address already in use" on Linux and macOS. The port came from port 0, so no other program
  is using it: "Address already in use" is reproduced without touching anything else.
* ``time_wait_count``: how many TIME_WAIT connections use a port (Linux ``/proc``; None
  elsewhere).

Used in 02_server and by the lesson 02 checkers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from ...addresses import (
    Address,
    address_in_use_errnos,
    check_loopback_host,
    check_port,
    ephemeral_port_range,
    family_of,
)
from ...measure import Point, Timing, Verdict, compare, fit_growth, summarize

__all__ = [
    "ConnectAttempt",
    "RestartOutcomes",
    "accept_cost",
    "accept_verdict",
    "accept_waits",
    "backlog_report",
    "restart_outcomes",
    "address_in_use_errnos",
    "ephemeral_port_range",
    "listen_verdict",
    "listen_with_open",
    "port_in_time_wait",
    "time_wait_count",
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
    only ``listener.accept()``, then closes both ends. Median and IQR over ``n`` rounds.
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


def listen_with_open(host: str = "127.0.0.1") -> Callable[[int], contextlib.AbstractContextManager[Callable[[], None]]]:
    """For ``measure.sweep`` over n: hold n listening sockets open on ``host`` (port 0 each), and
    time a whole ``socket()+bind((host, 0))+listen()+close()``: the reference's O(1) steps."""
    check_loopback_host(host)
    family = family_of(host)

    def one() -> None:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            sock.listen(1)

    @contextlib.contextmanager
    def make(n: int) -> Iterator[Callable[[], None]]:
        n = int(n)
        if not 0 <= n <= 2000:
            raise ValueError(f"n must be from 0 to 2000 listeners to hold open, got {n!r}")
        with contextlib.ExitStack() as stack:
            for _ in range(n):
                held = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
                held.bind((host, 0))
                held.listen(1)
            yield one

    return make


def listen_verdict(points: Sequence[Point]) -> Verdict:
    """Verdict on "bind() and listen() are O(1)" from a ``listen_with_open`` sweep."""
    growth = fit_growth([max(p.x, 1) for p in points], [p.median_ns for p in points])
    most = max(p.x for p in points)
    low, high = min(p.median_ns for p in points), max(p.median_ns for p in points)
    core = compare(f"bind() + listen() are O(1) (with 1 to {most:,.0f} listeners open)", "constant", growth)
    return Verdict(core.status, f"{core.text} socket()+bind()+listen()+close() took {low / 1000:.1f} "
                                f"to {high / 1000:.1f} µs.")


def port_in_time_wait(host: str = "127.0.0.1", *, reuseaddr: bool = False) -> int:
    """Return a port on ``host`` whose last connection is in TIME_WAIT and whose listener is gone.

    A server on a port from port 0 (with ``SO_REUSEADDR`` if ``reuseaddr``: "the previous run
    of your server") accepts one client and closes the connection first (the side that closes
    first keeps TIME_WAIT, 60 s on Linux, up to 2 × MSL elsewhere); then the listener closes.
    Nothing listens on the port any more, yet on Linux and macOS a plain ``bind()`` to it fails
    with "Address already in use" until TIME_WAIT ends. Setting ``SO_REUSEADDR`` before
    ``bind()`` avoids that; on Linux only if the previous run had set it too (a TIME_WAIT
    connection keeps its socket's option), which is why a server sets it every time it starts.
    """
    host = check_loopback_host(host)
    family = family_of(host)
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        if reuseaddr:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        listener.settimeout(5.0)
        port = listener.getsockname()[1]
        with socket.create_connection((host, port), timeout=5.0) as client:
            conn, _ = listener.accept()
            conn.close()  # the server closes first: TIME_WAIT stays on the server's port
            client.recv(1)  # the FIN arrived (b""); then the client's close completes the exchange
    _wait_for_time_wait(port)
    return port


def _wait_for_time_wait(port: int, deadline_s: float = 0.5) -> None:
    """On Linux, wait (bounded) until /proc shows the TIME_WAIT entry; elsewhere, a short pause."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        count = time_wait_count(port)
        if count is None:
            time.sleep(0.01)
            return
        if count:
            return
        time.sleep(0.005)


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


def accept_verdict(waits: Sequence[Point], cost: Timing) -> Verdict:
    """Verdict on "accept() - O(n) - wait for client" from ``accept_waits`` and ``accept_cost``."""
    wall = [p for p in waits if p.series.startswith("wall")]
    cpu = {p.x: p.median_ns for p in waits if p.series.startswith("CPU")}
    longest = max(wall, key=lambda p: p.x)
    share = cpu.get(longest.x, 0.0) / longest.median_ns
    text = (f"accept() waited {longest.median_ns / 1e9:.3f} s for a client that came after {longest.x:g} s, and the "
            f"waiting thread used {cpu.get(longest.x, 0.0) / 1e6:.2f} ms of CPU ({share:.2%} of the wait); with a "
            f"client already queued, accept() took {cost.median_ns / 1e3:.3g} µs. ")
    if share < 0.05:
        return Verdict("refined", "accept() is 'O(n) - wait for client': refined. " + text +
                       "Its work is O(1); the time it blocks is however long the next client takes to come, "
                       "during which the thread sleeps in the kernel and costs nothing.")
    return Verdict("inconclusive", "accept() is 'O(n) - wait for client': inconclusive. " + text +
                   "The waiting thread used a noticeable share of CPU: was another thread busy? Run it again.")


# ---- the backlog ------------------------------------------------------------------------------


def backlog_report(attempts: Sequence[ConnectAttempt], backlog: int) -> str:
    """One paragraph on what ``attempts`` (connects to a listener that never accepted) show."""
    connected = sum(a.outcome == "connected" for a in attempts)
    others = sorted({a.outcome for a in attempts if a.outcome != "connected"})
    text = (f"With listen({backlog}) and no accept() at all, {connected} of {len(attempts)} clients connected: "
            "the kernel completed their handshakes and queued them for a future accept().")
    if "timed out" in others:
        text += (" The others timed out: with the queue full, this system ignored their handshake (the client "
                 "would retry after a second or more), which is what Linux and macOS do.")
    elif "refused" in others:
        text += " The others were refused at once: with the queue full, this system (like Windows) says no."
    elif others:
        text += f" The others: {', '.join(others)}."
    if connected != backlog and connected:
        text += (f" {connected} is not exactly {backlog}: the backlog is a hint, and each system counts it its "
                 "own way (Linux queues backlog + 1).")
    return text


# ---- restarting a server: SO_REUSEADDR against TIME_WAIT ---------------------------------------


@dataclasses.dataclass
class RestartOutcomes:
    """Whether a restarted server could bind its port while the old connection was in TIME_WAIT."""

    rows: list[tuple[bool, bool, str]]  # (old server had SO_REUSEADDR, new one has it, outcome)

    def outcome(self, old: bool, new: bool) -> str:
        return next(o for a, b, o in self.rows if (a, b) == (old, new))

    def __str__(self) -> str:
        return "\n".join(f"old {'SO_REUSEADDR' if a else 'plain':<12} new {'SO_REUSEADDR' if b else 'plain':<12} {o}"
                         for a, b, o in self.rows)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        yes = lambda f: "SO_REUSEADDR" if f else "no option"  # noqa: E731
        body = "".join(f"<tr><td>{yes(a)}</td><td>{yes(b)}</td><td>{html.escape(o)}</td></tr>" for a, b, o in self.rows)
        return ("<table><tr><th>previous run of the server</th><th>restarted server</th><th>bind() on this "
                f"system</th></tr>{body}</table>")


def restart_outcomes(host: str = "127.0.0.1") -> RestartOutcomes:
    """Try the four combinations of SO_REUSEADDR on the old and the restarted server, for real."""
    host = check_loopback_host(host)
    rows = []
    for old in (False, True):
        for new in (False, True):
            port = port_in_time_wait(host, reuseaddr=old)
            with socket.socket(family_of(host), socket.SOCK_STREAM) as sock:
                try:
                    if new:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((host, port))
                    sock.listen()
                    outcome = "ok"
                except OSError as exc:
                    outcome = f"OSError: {exc.strerror or exc}"
            rows.append((old, new, outcome))
    return RestartOutcomes(rows)
