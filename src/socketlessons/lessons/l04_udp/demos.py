"""Harness of lesson 04 (UDP): the other side, timing, counting and judging; the socket calls
the lesson teaches (sendto, recvfrom, recvmsg, MSG_TRUNC, connect) are in the notebook's cells.

* ``udp_pair()``: two bound UDP sockets on loopback (a sender and a receiver), closed together.
* ``port_nobody_uses()``: a loopback address with no socket behind it, TCP or UDP, that no
  other program's port-0 socket can be handed meanwhile (for "nobody is listening" demos).
* ``datagram_timer`` / ``datagram_verdict`` / ``datagram_plot``: the reference's "sendto /
  recvfrom are O(k)", timed on a pair in this thread (no server thread, no GIL hand-over),
  judged and drawn from the same estimate.
* ``largest_datagram()``: the biggest payload ``sendto`` accepts here, found by a search (65,507
  over IPv4 on Linux; macOS caps it lower by default, ``net.inet.udp.maxdgram``).
* ``numbered_exchange``: send numbered datagrams through a misbehaving ``UDPEchoServer`` and
  count what came back lost, duplicated and out of order; ``arrival_plot`` draws it.
* ``ping_series`` / ``loss_verdict`` / ``rtt_summary`` / ``PingPanel``: the exercise's pinger,
  for the live RTT plot with a loss-rate slider, and the verdict on the loss it measured.

Used in 04_udp.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...load import percentile
from ...measure import Load, Point, Verdict, fit_affine
from ...servers import UDPEchoServer
from .._figures import Shown
from .._panel import LessonPanel, PanelRun
from .._ports import port_nobody_uses
from ..l01_client.demos import cost as _rounds_cost
from ..l01_client.demos import sweep_rounds

__all__ = ["DATAGRAM_SIZES", "Exchange", "PingPanel", "PingRun", "arrival_plot", "binomial_range", "datagram_plot",
           "DATAGRAM_BUDGET_S", "datagram_timer", "datagram_verdict", "largest_datagram", "loss_verdict",
           "numbered_exchange", "ping_series", "port_nobody_uses", "rtt_summary", "sweep_rounds", "udp_pair"]

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


#: The sizes the lesson sweeps (below the largest datagram, which it adds): 13 sizes over
#: 3.6 decades, so the fit rests on more than a handful of points and the per-byte part has
#: room to show next to the fixed cost.
DATAGRAM_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

#: Below this R² a fixed cost + a cost per byte does not describe the points.
MIN_R2 = 0.9
#: The largest datagram must cost at least this much more than the smallest for "grows with k".
MIN_GROWTH = 1.2


#: Seconds of measuring the sweep may spend (``sweep_rounds`` stops sooner once every size's
#: 10th percentile is pinned down: a tenth of this on a quiet machine).
DATAGRAM_BUDGET_S = 1.0


def _cost(p: Point) -> float:
    # "What sendto + recvfrom itself costs" is a claim about the operation, and noise from other
    # programs only ever adds time: the 10th percentile of the batch times (the minimum's steadier
    # neighbour) estimates it best. timeit's docs say the same of the minimum ("the min is the most
    # useful value"); pyperf and Google Benchmark discuss it too. The sweep is ``sweep_rounds``
    # (lesson 01's). On the virtual machine this was built on, a 64 KiB datagram sometimes cost
    # 1.3-5x its usual time for spells of several milliseconds, with nothing else running; three
    # quick rounds (60 ms in all) let one spell bend the top of the line, and the fit failed
    # (R² 0.83) in 8 sweeps out of 8 one morning. Fifteen or more rounds, spread over more time,
    # give every size batches outside the spells, and its low quantile finds them.
    return _rounds_cost(p) if "low" in p.extra else (p.low_ns if not math.isnan(p.low_ns) else p.median_ns)


def _fastest(p: Point) -> float:
    return float(p.extra["min"]) if "min" in p.extra else p.min_ns


def datagram_verdict(points: Sequence[Point], *, load: Load | None = None) -> Verdict:
    """Verdict on "sendto + recvfrom of k bytes is O(k)" from ``sweep_rounds`` over ``datagram_timer``: an
    affine fit (a fixed cost per datagram + a cost per byte) of each size's 10th percentile."""
    if len(points) < 3:
        raise ValueError(f"points must hold at least 3 datagram sizes, got {len(points)}: sweep over DATAGRAM_SIZES")
    pts = sorted(points, key=lambda p: p.x)
    xs, ys = [p.x for p in pts], [_cost(p) for p in pts]
    claim = "sendto + recvfrom of k bytes is O(k)"
    decades = math.log10(xs[-1] / xs[0]) if xs[0] > 0 else 0.0
    if len(pts) < 6 or decades < 2:
        return Verdict("inconclusive", f"{claim}: inconclusive, only {len(pts)} sizes over {decades:.1f} decades: "
                       "a fit needs at least 6 sizes over 2 decades (sweep over DATAGRAM_SIZES).", reason="too few points")
    fit = fit_affine(xs, ys)
    top, low = xs[-1], xs[0]
    growth = ys[-1] / ys[0] if ys[0] > 0 else math.inf
    what = (f"{top:,.0f} bytes cost {ys[-1] / 1000:.2f} µs, {low:,.0f} bytes {ys[0] / 1000:.2f} µs "
            f"({growth:.1f}×)")
    load_note = ""
    if load is not None and not math.isnan(load.load1):
        load_note = f" The machine was {'busy' if load.busy else 'not especially busy'} ({load})."
    if growth < MIN_GROWTH:
        return Verdict("contradicted", f"{claim}: contradicted, {what}: the time does not grow with k over these "
                       f"sizes.{load_note}", load=load)
    if fit.r2 < MIN_R2 or fit.per_unit_ns <= 0:
        spread = max(p.spread for p in pts)
        return Verdict("inconclusive", f"{claim}: inconclusive, {what}, but a fixed cost + a cost per byte fits "
                       f"the points poorly (R² {fit.r2:.2f}; R², from 0 to 1, is the share of the variation the "
                       f"line explains; the widest spread within one size was {spread:.0%}).{load_note} Other "
                       "programs' bursts change from run to run: running again can settle it.",
                       reason="scatter", rerun_helps=True, load=load)
    def share(x: float) -> str:
        part = fit.per_unit_ns * x / max(fit.predict(x), 1e-9)
        return "under 1%" if part < 0.01 else f"{part:.0%}"

    return Verdict("refined", f"{claim}: refined, {what}. Fitted: a fixed {fit.fixed_ns / 1000:.2f} µs per "
                   f"datagram + {fit.per_unit_ns:.3f} ns per byte (R² {fit.r2:.2f}); the bytes are {share(top)} of "
                   f"the time at {top:,.0f} bytes, {share(low)} at {low:,.0f}. O(k) on top of O(1): send fewer, "
                   f"larger datagrams (well below 1,500 bytes on a real network, as above).{load_note}", load=load)


def datagram_plot(points: Sequence[Point], *, title: str = "") -> Shown:
    """Each size's 10th percentile (what the verdict fits) with a bar from the fastest batch to the
    median, the affine fit over it, on a log k axis and a time axis from zero."""
    from ...plots import _new_figure, fit_label, format_bytes, style_for

    pts = sorted(points, key=lambda p: p.x)
    xs, ys = [p.x for p in pts], [_cost(p) / 1000 for p in pts]
    fig, ax = _new_figure(None)
    st = style_for(0)
    fastest = [_fastest(p) / 1000 for p in pts]
    lo = [max(0.0, y - (f if not math.isnan(f) else y)) for f, y in zip(fastest, ys)]
    hi = [max(0.0, p.median_ns / 1000 - y) for p, y in zip(pts, ys)]
    ax.errorbar(xs, ys, yerr=[lo, hi], color=st["color"], marker=st["marker"], linestyle="none", capsize=3,
                markersize=5, label="10th percentile of batches (bar: fastest to median)")
    if len(pts) >= 2:
        fit = fit_affine(xs, [_cost(p) for p in pts])
        grid = [xs[0] * (xs[-1] / xs[0]) ** (i / 60) for i in range(61)]
        ax.plot(grid, [fit.predict(x) / 1000 for x in grid], color=style_for(1)["color"], linestyle="--",
                label=fit_label(fit, "k"))
    ax.set_xscale("log")
    ticks = [x for x in (16, 256, 4096, 65536) if xs[0] <= x <= xs[-1] * 1.01] if xs else []
    ax.set_xticks(ticks, [format_bytes(t) for t in ticks])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("datagram size k (bytes, log scale)")
    ax.set_ylabel("sendto + recvfrom (µs)")
    ax.set_title(title or "sendto + recvfrom is O(k)? time against the datagram size k", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return Shown(fig)


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
        return len(self.late_positions)

    @property
    def late_positions(self) -> list[int]:
        """The arrival positions (1, 2, ...) of the first copies that came after a higher number."""
        seen: set[int] = set()
        late, highest = [], -1
        for pos, n in enumerate(self.arrivals, start=1):
            if n in seen:
                continue
            seen.add(n)
            if n < highest:
                late.append(pos)
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


def arrival_plot(exchange: Exchange, *, title: str = "") -> Shown:
    """Number of each reply against its arrival position, beside the line that every reply would
    sit on had all come back once and in order; the reordered, duplicated and lost ones marked."""
    from ...plots import _new_figure, style_for

    fig, ax = _new_figure(None, figsize=(6.4, 4.0))
    late = set(exchange.late_positions)
    seen: set[int] = set()
    first, dup, reordered = [], [], []
    for x, n in enumerate(exchange.arrivals, start=1):
        (dup if n in seen else reordered if x in late else first).append((x, n))
        seen.add(n)
    ax.plot([1, exchange.sent], [0, exchange.sent - 1], linestyle=":", color="grey",
            label="all back once, in order (number = position − 1)")
    for points, marker, size, i, label in (
            (first, "o", 3, 0, "reply, in order"),
            (reordered, "^", 6, 3, "reply after a higher number (reordered)"),
            (dup, "s", 5, 1, "second copy (duplicate)")):
        if points:
            ax.plot(*zip(*points), linestyle="none", marker=marker, markersize=size, color=style_for(i)["color"],
                    label=label, **({"markerfacecolor": "none"} if marker == "s" else {}))
    missing = sorted(set(range(exchange.sent)) - seen)
    if missing:
        ax.plot([0.5] * len(missing), missing, linestyle="none", marker="x", color=style_for(2)["color"],
                label="lost (never came back)")
    ax.set_xlabel("arrival position")
    ax.set_ylabel("datagram number")
    ax.set_title(title or str(exchange), fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)  # below the axes: never over a dot
    return Shown(fig)


# ---- a pinger for the live plot ---------------------------------------------------------------


@dataclasses.dataclass
class PingRun:
    """What ``ping_series`` saw: each ping's round trip (s) or None, how long each lost ping was
    waited for before giving up (s), and which lost pings' replies turned up later (late, not lost)."""

    rtts: list[float | None] = dataclasses.field(default_factory=list)
    waited: dict[int, float] = dataclasses.field(default_factory=dict)
    late: set[int] = dataclasses.field(default_factory=set)

    @property
    def lost(self) -> int:
        return self.rtts.count(None)


def ping_series(address: tuple[str, int], count: int = 50, *, timeout: float = 0.05, retries: int = 0,
                on_ping: Callable[[int, float | None, float], None] | None = None,
                stopped: Callable[[], bool] | None = None) -> PingRun:
    """The exercise's pinger (``ping {seq} {attempt}``, a deadline per attempt, retries), which also
    notes late replies to pings it gave up on. ``on_ping(seq, rtt, waited)`` runs after each ping
    (``waited``: seconds from its first send to its answer or to giving up); when ``stopped()``
    turns true (a panel's Stop) no further ping starts."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
        raise ValueError(f"count must be an int from 1 to 10,000 pings, got {count!r}")
    if not 0.001 <= timeout <= 10:
        raise ValueError(f"timeout must be from 0.001 to 10 seconds, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ValueError(f"retries must be an int from 0 to 10, got {retries!r}")
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    run = PingRun()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for seq in range(count):
            if stopped is not None and stopped():
                break
            rtt, first = None, time.perf_counter()
            for attempt in range(1 + retries):
                message = f"ping {seq} {attempt}".encode()
                sent = time.perf_counter()
                sock.sendto(message, address)
                try:
                    while rtt is None:
                        sock.settimeout(max(sent + timeout - time.perf_counter(), 1e-6))
                        data = sock.recvfrom(1024)[0]
                        if data == message:
                            rtt = time.perf_counter() - sent
                        elif (words := data.split()) and len(words) == 3 and words[1].isdigit() \
                                and int(words[1]) in run.waited:
                            run.late.add(int(words[1]))  # a ping given up on was answered after all
                except TimeoutError:
                    continue
                break
            run.rtts.append(rtt)
            waited = time.perf_counter() - first
            if rtt is None:
                run.waited[seq] = waited
            if on_ping is not None:
                on_ping(seq, rtt, waited)
    return run


def binomial_range(n: int, q: float, coverage: float = 0.99) -> tuple[int, int]:
    """The fewest and most lost pings (of ``n``, each lost with probability ``q``) that chance alone
    gives in ``coverage`` of runs: the exact binomial quantiles, not a normal approximation (which
    is poor at small counts and small q)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be a probability from 0 to 1, got {q!r}")
    pmf = [math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(n + 1)]
    tail = (1 - coverage) / 2
    acc, low = 0.0, 0
    for k, pk in enumerate(pmf):
        acc += pk
        if acc > tail:
            low = k
            break
    acc, high = 0.0, n
    for k in range(n, -1, -1):
        acc += pmf[k]
        if acc > tail:
            high = k
            break
    return low, high


def loss_verdict(run: PingRun, loss: float, retries: int) -> Verdict:
    """Verdict on "with loss p per datagram and r retries, a ping is lost with probability p^(1+r)"
    from one run: the lost count against what chance allows (exact binomial ranges), with late
    replies (the server answered, the pinger had given up) named when they explain a surplus."""
    n, lost, late = len(run.rtts), run.lost, len(run.late)
    if n == 0:
        raise ValueError("run has no pings: ping at least once")
    q = loss ** (1 + retries)
    claim = f"loss {loss:.0%} per datagram, {retries} retries: about {q:.1%} of pings lost"
    low99, high99 = binomial_range(n, q, 0.99)
    low999, high999 = binomial_range(n, q, 0.999)
    head = f"{claim}: {{}}, {lost} of {n} lost ({lost / n:.0%}); chance alone gives {low99} to {high99} lost in 99 runs of 100"
    if low99 <= lost <= high99:
        tail = f" ({late} of the lost pings' replies came after the timeout)." if late else "."
        # "confirmed" next to 32 % against an expected 20 % reads as wrong unless it says why
        return Verdict("confirmed", head.format("confirmed") + ": a count that chance alone gives" + tail)
    if late and low99 <= lost - late <= high99:
        return Verdict("refined", head.format("refined") + f". But {late} of the lost pings were answered after "
                       "their timeout (the reply came, late: a busy machine delays replies); without them "
                       f"{lost - late} lost, inside that range. A longer timeout counts fewer slow replies as lost.")
    if low999 <= lost - late <= high999:
        return Verdict("inconclusive", head.format("inconclusive") + f" ({low999} to {high999} in 999 of 1,000): "
                       "an unusual run, which chance does produce now and then. Run again: each run draws new "
                       "losses.", reason="chance", rerun_helps=True)
    why = "more" if lost - late > high999 else "fewer"
    return Verdict("contradicted", head.format("contradicted") + f", and chance alone gives {why} than "
                   f"{high999 if why == 'more' else low999} lost pings less than once in 1,000 runs "
                   f"({late} replies came late). Does the loss setting match the server the pings went to?")


def rtt_summary(rtts: Sequence[float | None]) -> str:
    """Loss rate and RTT statistics (min, median, p99, max) in one line."""
    got = [r for r in rtts if r is not None]
    if not rtts:
        return "no pings"
    loss = (len(rtts) - len(got)) / len(rtts)  # not 1 - got/n: 1 - 37/40 prints 7 % where 3/40 prints 8 %
    if not got:
        return f"{len(rtts)} pings, all lost (loss 100 %)"
    ms = [r * 1000 for r in got]
    return (f"{len(rtts)} pings, {len(rtts) - len(got)} lost (loss {loss:.0%}); RTT of the answered ones: "
            f"min {min(ms):.3f} ms, median {percentile(ms, 50):.3f} ms, p99 {percentile(ms, 99):.3f} ms "
            f"(99 % were faster), max {max(ms):.3f} ms")


ANSWERED, LOST = "answered: round trip", "lost: waited before giving up"


class PingPanel(LessonPanel):
    """A loss-rate slider, a retries slider, Run, and a live plot: each answered ping's round trip,
    each lost one at the time it was waited for before the pinger gave up."""

    RUN_TIMEOUT_S = 120.0
    #: Five times the server's largest jitter (5 ms): a reply comes later only when the machine
    #: held it up (the verdict names those). Every lost attempt costs one timeout, so it sets the
    #: run's length: at 50 % loss with 2 retries, 40 pings take about 1 s (2 s with 50 ms).
    TIMEOUT_S = 0.025

    def __init__(self, *, loss: float = 0.2, count: int = 40, timeout: float = TIMEOUT_S, retries: int = 0,
                 jitter: float = 0.005) -> None:
        from ..._interrupts import import_held
        from ...plots import LivePlot

        widgets = import_held("ipywidgets")  # ■ during a first import would break it for the kernel

        style = {"description_width": "7em"}
        self.loss = widgets.FloatSlider(value=loss, min=0.0, max=0.9, step=0.05, description="loss rate",
                                        continuous_update=False, readout_format=".0%", style=style)
        self.retries = widgets.IntSlider(value=retries, min=0, max=3, description="retries",
                                         continuous_update=False, style=style)
        self.count, self.timeout, self.jitter = count, timeout, jitter
        self.button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = self._make_stop_button()  # hidden until a run starts
        self.status = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.plot = LivePlot(f"UDP ping, {timeout * 1000:.0f} ms timeout: round trip, or time waited if lost",
                             "ping number", "milliseconds", output=self.output, scale=1e-6, min_interval_s=1.0,
                             ymin=0)
        # The line the text names: a lost ping sits at (1 + retries) timeouts, an answered one below one.
        self.plot.add_reference(f"timeout {timeout * 1000:g} ms", y=timeout * 1000)
        self.box = widgets.VBox([self.loss, self.retries, widgets.HBox([self.button, self.stop_button]),
                                 self.status, self.output])
        self.rtts: list[float | None] = []
        self.result = PingRun()
        self.verdict: Verdict | None = None
        self.summary = "not run yet"
        self.error = ""
        self.server: UDPEchoServer | None = None
        self._run = PanelRun()
        self.button.on_click(lambda _b: self.start_run())
        self.plot.redraw()

    def start_run(self) -> bool:
        if not self._run.running:
            self.error = ""
        return self._begin(self._worker, f"Pinging {self.count} times at {self.loss.value:.0%} loss, "
                                         f"{self.retries.value} retries …")

    def snapshot(self) -> Any:
        """The current figure as a static PNG (``IPython.display.Image``), kept in a saved notebook."""
        return self.plot.snapshot()

    def _worker(self) -> None:
        import html

        def on_ping(seq: int, rtt: float | None, waited: float) -> None:
            y = (rtt if rtt is not None else waited) * 1e9
            self.plot.add(Point(seq, y, y, y, 1, ANSWERED if rtt is not None else LOST))

        try:
            self.plot.clear()
            loss, retries = self.loss.value, self.retries.value
            # The title names the run's settings, so a snapshot saved with the notebook says what it shows.
            self.plot.title = (f"UDP ping at {loss:.0%} loss, {retries} retr{'y' if retries == 1 else 'ies'}, "
                               f"{self.timeout * 1000:g} ms timeout\nround trip, or time waited if lost")
            for ref in [r for r in self.plot.references if r.label.startswith("given up")]:
                self.plot.remove_reference(ref.label)
            if retries:  # where a lost ping lands: every attempt waited one timeout
                self.plot.add_reference(f"given up: {1 + retries} × {self.timeout * 1000:g} ms",
                                        y=(1 + retries) * self.timeout * 1000, linestyle="--")
            self.server = UDPEchoServer(loss=loss, jitter=self.jitter, name="lesson04-ping-panel").start()
            try:
                self.result = ping_series(self.server.address, self.count, timeout=self.timeout, retries=retries,
                                          on_ping=on_ping, stopped=lambda: self._run.stopped)
            finally:
                self.server.stop()
            self.rtts = self.result.rtts
            self.verdict = loss_verdict(self.result, loss, retries)
            self.summary = f"{rtt_summary(self.rtts)}. {self.verdict}"
            if self._run.stopped:
                self.summary = f"{self._stop_note()} {len(self.rtts)} of {self.count} pings ran. {self.summary}"
            self.status.value = html.escape(self.summary)
        except Exception as exc:
            self.error = self.summary = f"The run failed: {type(exc).__name__}: {exc}"
            self.status.value = html.escape(self.summary)
        finally:
            self.plot.finish()
