"""Helpers of lesson 04 (UDP): probes of what this platform does, misbehaviour counted, a live pinger.

* ``udp_pair()``: two bound UDP sockets on loopback (a sender and a receiver), closed together.
* ``port_nobody_uses()``: a loopback address with no socket behind it, TCP or UDP, that no
  other kernel's port-0 helper can be handed meanwhile (for "nobody is listening" demos).
* ``truncation_probe`` / ``msg_trunc_probe``: what happens when a datagram is bigger than the
  buffer given to ``recvfrom``. Linux and macOS truncate and drop the rest; Windows raises
  ``OSError`` (WSAEMSGSIZE) instead. ``recvmsg`` reports the cut with ``MSG_TRUNC`` in its
  flags where it exists (not on Windows); Linux also returns the real size when ``MSG_TRUNC``
  is passed as a flag to ``recv_into``.
* ``datagram_timer`` / ``datagram_verdict``: the reference's "sendto / recvfrom are O(k)",
  timed on a pair in this thread (no server thread, no GIL hand-over) and given a verdict.
* ``largest_datagram()``: the biggest payload ``sendto`` accepts here (65,507 over IPv4 on
  Linux; macOS caps it lower by default, ``net.inet.udp.maxdgram``) and the error one byte more gives.
* ``numbered_exchange``: send numbered datagrams through a misbehaving ``UDPEchoServer`` and
  count what came back lost, duplicated and out of order; ``arrival_plot`` draws it.
* ``ping_series`` / ``rtt_summary`` / ``PingPanel``: a pinger for the live RTT plot, with a
  loss-rate slider (after the learner has written their own in the exercise).

Used in 04_udp.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...load import percentile
from ...measure import Point, Verdict, fit_affine
from ...servers import UDPEchoServer
from .._panel import LessonPanel, PanelRun
from .._ports import port_nobody_uses

__all__ = ["Exchange", "PingPanel", "Truncation", "arrival_plot", "datagram_timer", "datagram_verdict",
           "chance_range", "largest_datagram", "msg_trunc_probe", "port_nobody_uses",
           "numbered_exchange", "ping_series", "rtt_summary", "truncation_probe", "udp_pair"]

#: How long a probe waits for a datagram on loopback before calling it lost.
PROBE_WAIT_S = 0.5


@contextlib.contextmanager
def udp_pair(host: str = "127.0.0.1") -> Iterator[tuple[socket.socket, socket.socket]]:
    """``(sender, receiver)``: two UDP sockets bound on loopback; the receiver has a timeout."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    tx, rx = socket.socket(family, socket.SOCK_DGRAM), socket.socket(family, socket.SOCK_DGRAM)
    with tx, rx:
        tx.bind((host, 0))
        rx.bind((host, 0))
        rx.settimeout(PROBE_WAIT_S)
        yield tx, rx


#: The largest UDP payload over IPv4 (65,535 - 8-byte UDP header - 20-byte IPv4 header).
MAX_IPV4_PAYLOAD = 65_507


def datagram_timer(host: str = "127.0.0.1") -> Callable[[int], Any]:
    """For ``measure.sweep`` over k: one ``sendto`` of k bytes and the ``recvfrom(k)`` that takes
    it, on a ``udp_pair`` in the calling thread (nothing else runs between the two calls)."""

    @contextlib.contextmanager
    def make(k: int) -> Iterator[Callable[[], None]]:
        k = int(k)
        if not 1 <= k <= MAX_IPV4_PAYLOAD:
            raise ValueError(f"k must be from 1 to {MAX_IPV4_PAYLOAD:,} bytes (one datagram), got {k!r}")
        with udp_pair(host) as (tx, rx):
            payload, dest = b"x" * k, rx.getsockname()

            def op() -> None:
                tx.sendto(payload, dest)
                rx.recvfrom(k)

            yield op

    return make


def datagram_verdict(points: Sequence[Point]) -> Verdict:
    """Verdict on "sendto / recvfrom are O(k)" from a sweep of ``datagram_timer``: a fixed cost
    per datagram plus a cost per byte (an affine fit), computed from the points."""
    if len(points) < 3:
        raise ValueError("need at least 3 datagram sizes: sweep over more sizes")
    xs, ys = [p.x for p in points], [p.median_ns for p in points]
    fit = fit_affine(xs, ys)
    top = max(xs)
    share = fit.per_unit_ns * top / max(fit.predict(top), 1e-9)
    what = (f"fixed {fit.fixed_ns / 1000:.2f} µs per datagram + {fit.per_unit_ns:.3f} ns per byte "
            f"(R² {fit.r2:.2f}); at {top:,.0f} bytes the bytes are {share:.0%} of the time")
    claim = "sendto + recvfrom of k bytes is O(k)"
    if fit.r2 < 0.8:
        return Verdict("inconclusive", f"{claim}: inconclusive, {what}: the points scatter too much. Run again.")
    if fit.per_unit_ns <= 0:
        return Verdict("contradicted", f"{claim}: contradicted, {what}: no cost per byte at all.")
    return Verdict("refined", f"{claim}: refined, {what}. O(k) on top of a fixed cost per datagram: "
                              "send fewer, larger datagrams (below the size limit).")


@dataclasses.dataclass(frozen=True)
class Truncation:
    """What one ``recvfrom(bufsize)`` did with a ``size``-byte datagram."""

    size: int
    bufsize: int
    got: int | None  # bytes returned (None: it raised)
    error: str  # the exception, if it raised (Windows)
    rest_arrived: bool  # did a second recvfrom return the rest? (never: a datagram is all or nothing)

    def __str__(self) -> str:
        if self.got is None:
            return (f"recvfrom({self.bufsize}) of a {self.size}-byte datagram raised {self.error}: this platform "
                    "(Windows) refuses to truncate silently; the datagram is still gone.")
        rest = "the rest arrived later (unexpected!)" if self.rest_arrived else \
            f"the other {self.size - self.got} bytes are lost: the next recvfrom found nothing"
        return f"recvfrom({self.bufsize}) of a {self.size}-byte datagram returned {self.got} bytes; {rest}."


def truncation_probe(size: int = 100, bufsize: int = 10) -> Truncation:
    """Send one ``size``-byte datagram, read it with a ``bufsize`` buffer, look for the rest."""
    with udp_pair() as (tx, rx):
        tx.sendto(b"x" * size, rx.getsockname())
        try:
            data, _ = rx.recvfrom(bufsize)
        except OSError as exc:  # Windows: WSAEMSGSIZE (10040)
            return Truncation(size, bufsize, None, f"{type(exc).__name__}: {exc}", False)
        rx.settimeout(0.05)
        try:
            rx.recvfrom(size)
            rest = True
        except (TimeoutError, BlockingIOError):
            rest = False
    return Truncation(size, bufsize, len(data), "", rest)


def msg_trunc_probe(size: int = 100, bufsize: int = 10) -> str:
    """How this platform tells you a datagram was cut: ``recvmsg`` flags and ``MSG_TRUNC``."""
    if not hasattr(socket.socket, "recvmsg") or not hasattr(socket, "MSG_TRUNC"):
        return ("this platform has no recvmsg()/MSG_TRUNC (Windows): recvfrom raises OSError (WSAEMSGSIZE) "
                "for an oversized datagram instead, so you learn about it from the exception.")
    lines = []
    with udp_pair() as (tx, rx):
        tx.sendto(b"m" * size, rx.getsockname())
        data, _anc, flags, _addr = rx.recvmsg(bufsize)
        cut = bool(flags & socket.MSG_TRUNC)
        lines.append(f"recvmsg({bufsize}) returned {len(data)} bytes with flags {flags:#x}: MSG_TRUNC is "
                     + ("set: the datagram was longer than the buffer" if cut else "NOT set"))
        if sys.platform.startswith("linux"):
            tx.sendto(b"m" * size, rx.getsockname())
            buf = bytearray(bufsize)
            real = rx.recv_into(buf, bufsize, socket.MSG_TRUNC)
            lines.append(f"recv_into(buf, {bufsize}, MSG_TRUNC) on Linux returned {real}: the datagram's real "
                         f"size, though only {bufsize} bytes were kept")
    return "\n".join(lines)


def largest_datagram(host: str = "127.0.0.1", hi: int = 65_535) -> tuple[int, str]:
    """The largest payload ``sendto`` accepts on this machine, and the error of one byte more."""
    with udp_pair(host) as (tx, rx):
        for sock in (tx, rx):  # make room: the default buffer could be smaller than the datagram
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF if sock is tx else socket.SO_RCVBUF, 1 << 20)
        lo = 0
        while lo < hi:  # binary search for the last size that sends
            mid = (lo + hi + 1) // 2
            try:
                tx.sendto(b"\0" * mid, rx.getsockname())
                lo = mid
            except OSError:
                hi = mid - 1
        try:
            tx.sendto(b"\0" * (lo + 1), rx.getsockname())
            error = "(no error: the search stopped at its upper bound)"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
    return lo, error


# ---- loss, duplication and reordering, counted ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exchange:
    """Numbered datagrams sent through a server, and the order in which replies came back."""

    sent: int
    arrivals: tuple[int, ...]  # the numbers, in arrival order

    @property
    def lost(self) -> int:
        return self.sent - len(set(self.arrivals))

    @property
    def duplicates(self) -> int:
        return len(self.arrivals) - len(set(self.arrivals))

    @property
    def reordered(self) -> int:
        """Arrivals whose number is lower than one that arrived before them (first copies only)."""
        seen: set[int] = set()
        late, highest = 0, -1
        for n in self.arrivals:
            if n in seen:
                continue
            seen.add(n)
            if n < highest:
                late += 1
            highest = max(highest, n)
        return late

    def __str__(self) -> str:
        return (f"sent {self.sent}, received {len(self.arrivals)}: {self.lost} lost, {self.duplicates} duplicated, "
                f"{self.reordered} arrived after a later one")


def numbered_exchange(address: tuple[str, int], count: int = 50, *, gap: float = 0.001,
                      wait: float = 0.3) -> Exchange:
    """Send ``count`` datagrams "0", "1", ... to ``address``; collect replies until ``wait`` s of silence."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    arrivals: list[int] = []
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for n in range(count):
            sock.sendto(str(n).encode(), address)
            end = time.perf_counter() + gap
            while time.perf_counter() < end:  # collect what is already back while pacing the sends
                with contextlib.suppress(BlockingIOError):
                    arrivals.append(int(sock.recvfrom(64)[0]))
        sock.settimeout(wait)
        with contextlib.suppress(TimeoutError):
            while len(arrivals) < 4 * count:
                arrivals.append(int(sock.recvfrom(64)[0]))
    return Exchange(count, tuple(arrivals))


class Shown:
    """A figure that displays itself as a PNG in a notebook; ``.figure`` is it."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure

    def _repr_png_(self) -> bytes:
        from ...plots import to_png

        return to_png(self.figure)


def arrival_plot(exchange: Exchange, *, title: str = "") -> Shown:
    """Number of each reply against its arrival position: a clean diagonal means in order, none lost."""
    from ...plots import _new_figure, style_for

    fig, ax = _new_figure(None, figsize=(6.4, 3.4))
    xs = list(range(1, len(exchange.arrivals) + 1))
    seen: set[int] = set()
    dup_x, dup_y = [], []
    for x, n in zip(xs, exchange.arrivals):
        if n in seen:
            dup_x.append(x)
            dup_y.append(n)
        seen.add(n)
    ax.plot(xs, exchange.arrivals, linestyle="none", marker="o", markersize=3, color=style_for(0)["color"],
            label="reply (first copy)")
    if dup_x:
        ax.plot(dup_x, dup_y, linestyle="none", marker="s", markersize=5, markerfacecolor="none",
                color=style_for(1)["color"], label="duplicate")
    missing = sorted(set(range(exchange.sent)) - seen)
    if missing:
        ax.plot([0.5] * len(missing), missing, linestyle="none", marker="x", color=style_for(2)["color"],
                label="lost (never came back)")
    ax.set_xlabel("arrival position")
    ax.set_ylabel("datagram number")
    ax.set_title(title or str(exchange), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return Shown(fig)


# ---- a pinger for the live plot ---------------------------------------------------------------


def ping_series(address: tuple[str, int], count: int = 50, *, timeout: float = 0.05, retries: int = 0,
                on_ping: Callable[[int, float | None], None] | None = None) -> list[float | None]:
    """Ping ``count`` times (numbered, with ``timeout`` and ``retries``); RTT in seconds or None.

    ``on_ping(seq, rtt)`` runs after each ping (a live plot's ``add``).
    """
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    rtts: list[float | None] = []
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for seq in range(count):
            rtt = None
            for _ in range(1 + retries):
                message = f"ping {seq}".encode()
                sent = time.perf_counter()
                sock.sendto(message, address)
                try:
                    while True:
                        sock.settimeout(max(sent + timeout - time.perf_counter(), 1e-6))
                        if sock.recvfrom(1024)[0] == message:
                            rtt = time.perf_counter() - sent
                            break
                except TimeoutError:
                    continue
                break
            rtts.append(rtt)
            if on_ping is not None:
                on_ping(seq, rtt)
    return rtts


def chance_range(expected: float, n: int) -> str:
    """What luck alone allows: the loss rate of ``n`` pings falls within about two standard
    deviations of ``expected`` (binomial) 95 % of the time; a small run wanders far."""
    spread = 2 * math.sqrt(expected * (1 - expected) / n) if n else 1.0
    low, high = max(0.0, expected - spread), min(1.0, expected + spread)
    return f"With {n} pings, chance alone gives about {low:.0%} to {high:.0%} (in 95 % of runs)."


def rtt_summary(rtts: Sequence[float | None]) -> str:
    """Loss rate and RTT statistics (min, median, p99, max) in one line."""
    got = [r for r in rtts if r is not None]
    if not rtts:
        return "no pings"
    loss = 1 - len(got) / len(rtts)
    if not got:
        return f"{len(rtts)} pings, all lost (loss 100 %)"
    ms = [r * 1000 for r in got]
    return (f"{len(rtts)} pings, {len(rtts) - len(got)} lost (loss {loss:.0%}); RTT min {min(ms):.3f} ms, "
            f"median {percentile(ms, 50):.3f} ms, p99 {percentile(ms, 99):.3f} ms, max {max(ms):.3f} ms")


class PingPanel(LessonPanel):
    """A loss-rate slider, Run, and a live plot of each ping's RTT (lost pings drawn at the timeout)."""

    RUN_TIMEOUT_S = 120.0

    def __init__(self, *, loss: float = 0.2, count: int = 60, timeout: float = 0.02, retries: int = 0,
                 jitter: float = 0.005) -> None:
        import ipywidgets as widgets

        from ...plots import LivePlot

        style = {"description_width": "7em"}
        self.loss = widgets.FloatSlider(value=loss, min=0.0, max=0.9, step=0.05, description="loss rate",
                                        continuous_update=False, readout_format=".0%", style=style)
        self.retries = widgets.IntSlider(value=retries, min=0, max=3, description="retries",
                                         continuous_update=False, style=style)
        self.count, self.timeout, self.jitter = count, timeout, jitter
        self.button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.status = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.plot = LivePlot("UDP ping: round trip per ping (lost ones at the timeout line)", "ping number",
                             "round trip (ms)", output=self.output, scale=1e-6, min_interval_s=0.2, ymin=0)
        self.box = widgets.VBox([self.loss, self.retries, self.button, self.status, self.output])
        self.rtts: list[float | None] = []
        self.summary = "not run yet"
        self.server: UDPEchoServer | None = None
        self._run = PanelRun()
        self.button.on_click(lambda _b: self.start_run())
        self.plot.redraw()

    def start_run(self) -> bool:
        if self._run.running:
            return False
        self.button.disabled = True
        self.status.value = f"Pinging {self.count} times at {self.loss.value:.0%} loss …"
        return self._run.start(self._worker)

    def snapshot(self) -> Any:
        """The current figure as a static PNG (``IPython.display.Image``), kept in a saved notebook."""
        return self.plot.snapshot()

    def _worker(self) -> None:
        import html

        def on_ping(seq: int, rtt: float | None) -> None:
            y = (rtt if rtt is not None else self.timeout) * 1e9
            self.plot.add(Point(seq, y, y, y, 1, "answered" if rtt is not None else "lost (timed out)"))

        try:
            self.plot.clear()
            self.server = UDPEchoServer(loss=self.loss.value, jitter=self.jitter, name="lesson04-ping-panel").start()
            try:
                self.rtts = ping_series(self.server.address, self.count, timeout=self.timeout,
                                        retries=self.retries.value, on_ping=on_ping)
            finally:
                self.server.stop()
            measured = self.rtts.count(None) / len(self.rtts)
            expected = self.loss.value ** (1 + self.retries.value)
            self.summary = (
                f"{rtt_summary(self.rtts)}. Set loss per datagram {self.loss.value:.0%}, so with "
                f"{self.retries.value} retries about {expected:.0%} of pings should be lost; you measured "
                f"{measured:.0%}. {chance_range(expected, len(self.rtts))}")
            self.status.value = html.escape(self.summary)
        except Exception as exc:
            self.summary = f"The run failed: {type(exc).__name__}: {exc}"
            self.status.value = html.escape(self.summary)
        finally:
            self.plot.finish()
            self.button.disabled = False
