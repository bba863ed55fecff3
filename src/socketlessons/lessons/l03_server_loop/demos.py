"""Helpers of lesson 03 (the server loop): who was served when, latency against N, many connections.

* ``service_intervals(events)`` and ``max_concurrency(intervals)`` turn a traced server's
  events into "client k was being served from t1 to t2" and "at most m clients at once": the
  sequential loop serves one at a time (m = 1), the others overlap. Measured, not assumed.
* ``latency_point`` / ``latency_vs_clients`` run N load clients against one of the four loop
  servers and turn the latencies into ``measure.Point``s for a ``LivePlot``;
  ``growth_verdicts`` names how each server's latency grows with N.
* ``fd_limit`` / ``raise_fd_limit``: how many descriptors this process may open (two per
  in-kernel connection: the client's and the server's).
* ``idle_cost``: hold n idle connections to a server, then time a few active clients: memory
  and latency per connection, threads vs coroutines.
* ``service_timeline``: a Gantt chart of the intervals, one row per client.

Used in 03_server_loop.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...load import IdleConnections, LoadResult, open_connections, percentile, run_load
from ...measure import Growth, Point, compare, fit_growth
from ...resources import thread_room
from ...servers._base import ServerEvent
from ...servers._loops import LOOP_SERVERS, LoopServer, Work
from .._panel import LessonPanel, PanelRun

__all__ = ["FdLimit", "IdleCost", "IdlePanel", "compare_timelines", "waiting_verdict", "fd_limit", "growth_verdicts", "idle_cost", "latency_point",
           "LoopPanel", "expected_growth", "latency_vs_clients", "max_concurrency", "os_threads", "platform_note", "raise_fd_limit", "rss_bytes", "service_intervals",
           "service_timeline"]

# ---- who was served when ----------------------------------------------------------------------


def service_intervals(events: Iterable[ServerEvent]) -> dict[int, tuple[int, int]]:
    """Per connection, from its first request's arrival (``recv``) to its last reply (``send``).

    Needs a server started with ``trace=True``. Connections that never got a reply are left out.
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for e in events:
        if e.op == "recv":
            first.setdefault(e.conn, e.t_ns)
        elif e.op == "send":
            last[e.conn] = e.t_ns
    return {c: (first[c], last[c]) for c in first if c in last and last[c] >= first[c]}


def max_concurrency(intervals: Iterable[tuple[int, int]]) -> int:
    """The largest number of intervals open at the same moment (an interval ending exactly where
    another starts does not overlap it)."""
    spans = list(intervals)
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])  # ends sort before starts
    best = cur = 0
    for _, step in edges:
        cur += step
        best = max(best, cur)
    return best


def service_timeline(events: Iterable[ServerEvent], *, ax: Any = None, title: str = "") -> Any:
    """Gantt chart: one bar per client, from its first request to its last reply (ms)."""
    from ...plots import _new_figure, style_for

    spans = sorted(service_intervals(events).items(), key=lambda kv: kv[1][0])
    fig, ax = _new_figure(ax, figsize=(6.4, 3.2))
    ax.clear()
    t0 = min((s for _, (s, _) in spans), default=0)
    colour = style_for(0)["color"]
    for row, (conn, (start, end)) in enumerate(spans, start=1):
        ax.barh(row, max((end - start) / 1e6, 0.05), left=(start - t0) / 1e6, color=colour, height=0.7)
    ax.set_xlabel("time since the first request arrived (ms)")
    ax.set_ylabel("client (in order served)")
    ax.set_title(title or f"Who was served when: at most {max_concurrency([s for _, s in spans])} at once")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# ---- latency against the number of clients ---------------------------------------------------


def _server(kind: str, cost: float, work: Work, **kwargs: Any) -> LoopServer:
    try:
        cls = LOOP_SERVERS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(LOOP_SERVERS)}, got {kind!r}") from None
    return cls(cost=cost, work=work, name=f"lesson03-{kind}", **kwargs)


def latency_point(kind: str, clients: int, *, cost: float = 0.002, work: Work = "sleep", size: int = 64,
                  requests: int = 1, repeats: int = 3, timeout: float = 60.0) -> Point:
    """Start a ``kind`` server, run ``clients`` concurrent clients ``repeats`` times; return a Point.

    The Point's x is N; its y is the wait of the LAST client to get its reply (the largest
    latency of a run: "the last waits for all the others"), median and quartiles over the
    repeats. ``extra`` holds the median and p99 of every request's latency (ms), requests per
    second, and the last ``LoadResult``.
    """
    lasts: list[float] = []
    everything: list[int] = []
    rates: list[float] = []
    ok = True
    with _server(kind, cost, work) as server:
        for _ in range(max(1, repeats)):
            result = run_load(server.address, clients, requests=requests, size=size, timeout=timeout)
            lat = result.latencies_ns
            ok = ok and result.ok
            if lat:
                lasts.append(max(lat))
                everything += lat
                rates.append(result.requests_per_s)
    if not lasts:
        raise RuntimeError(f"no client of {LOOP_SERVERS[kind].label} got a reply: {result.summary()}")
    return Point(clients, percentile(lasts, 50), percentile(lasts, 25), percentile(lasts, 75), len(lasts),
                 LOOP_SERVERS[kind].label,
                 {"median_ms": percentile(everything, 50) / 1e6, "p99_ms": percentile(everything, 99) / 1e6,
                  "rps": percentile(rates, 50), "ok": ok, "result": result})


def latency_vs_clients(kinds: Sequence[str], clients: Sequence[int], *, cost: float = 0.002, work: Work = "sleep",
                       size: int = 64, requests: int = 1, repeats: int = 5,
                       on_point: Callable[[Point], None] | None = None) -> list[Point]:
    """``latency_point`` for every server kind and every N (N in the outer loop, so the plot
    fills evenly); ``on_point`` receives each point as it is measured (``LivePlot.add``)."""
    points = []
    for n in clients:
        for kind in kinds:
            point = latency_point(kind, n, cost=cost, work=work, size=size, requests=requests, repeats=repeats)
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points


def growth_verdicts(points: Sequence[Point], expected: dict[str, str]) -> dict[str, tuple[Growth, str]]:
    """Fit each series' y (the last client's wait) against N and hold it against the expected growth.

    ``expected`` maps a series (server label) to "linear", "constant", ... Returns, per series,
    the fit and a one-line verdict computed from the measured points.
    """
    out = {}
    for series, label in expected.items():
        pts = [p for p in points if p.series == series and p.median_ns > 0]
        if not pts:
            continue
        growth = fit_growth([p.x for p in pts], [p.median_ns for p in pts])
        out[series] = (growth, str(compare(f"{series}: the last client's wait vs N is {label}", label, growth)))
    return out


# ---- descriptors and many connections --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FdLimit:
    """This process's descriptor limits (``None``: the platform has no such limit to read)."""

    soft: int | None
    hard: int | None
    note: str

    @property
    def max_connections(self) -> int | None:
        """In-kernel connections that fit: two descriptors each, minus a reserve of 100."""
        return None if self.soft is None else max(0, (self.soft - 100) // 2)

    def __str__(self) -> str:
        if self.soft is None:
            return self.note
        hard = "unlimited" if self.hard is None else f"{self.hard:,}"
        return (f"descriptor limit: soft {self.soft:,}, hard {hard} -> about {self.max_connections:,} "
                f"in-kernel connections (two descriptors each). {self.note}").strip()


def fd_limit() -> FdLimit:
    """Read the descriptor limit (``RLIMIT_NOFILE`` on Linux and macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return FdLimit(None, None, "Windows has no per-process descriptor limit like RLIMIT_NOFILE: sockets are "
                                   "handles (millions allowed); asyncio's default Proactor loop is not limited, but "
                                   "select()-based code (selectors.DefaultSelector there) handles at most 512.")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FdLimit(soft, None if hard == resource.RLIM_INFINITY else hard, "")


def raise_fd_limit(wanted: int) -> FdLimit:
    """Raise the soft descriptor limit towards ``wanted`` as far as the hard limit allows.

    Only the soft limit can be raised without privileges; macOS also caps it at
    ``kern.maxfilesperproc`` (about 10,240 by default), so an error there leaves it as it was.
    """
    limit = fd_limit()
    if limit.soft is None:
        return limit
    if limit.soft >= wanted:
        return dataclasses.replace(limit, note=f"Already at least {wanted:,}: nothing to raise.")
    import resource

    target = wanted if limit.hard is None else min(wanted, limit.hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, limit.hard if limit.hard is not None
                                                    else resource.RLIM_INFINITY))
    except (ValueError, OSError) as exc:
        return dataclasses.replace(fd_limit(), note=f"could not raise it to {target:,}: {exc}")
    now = fd_limit()
    note = f"raised from {limit.soft:,}" if now.soft != limit.soft else ""
    if now.soft is not None and now.soft < wanted:
        note += f"; the hard limit stops it below the {wanted:,} wanted"
    return dataclasses.replace(now, note=note.strip("; "))


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of this process (or ``pid``), in bytes (psutil)."""
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def os_threads(pid: int | None = None) -> int:
    """Operating-system threads of this process (or ``pid``)."""
    import psutil

    return int(psutil.Process(pid).num_threads())


@dataclasses.dataclass(frozen=True)
class IdleCost:
    """What holding ``held`` idle connections cost a server, and how fast it still answered."""

    kind: str
    wanted: int
    held: int
    failed: int
    rss_per_conn: float  # bytes, whole process, client and server side included
    threads_added: int
    open_s: float
    active: LoadResult | None
    note: str = ""  # why fewer connections than asked for were opened, if so

    @property
    def p99_ms(self) -> float:
        return self.active.latency_ms(99) if self.active else float("nan")

    def __str__(self) -> str:
        text = (f"{LOOP_SERVERS[self.kind].label}: held {self.held:,}/{self.wanted:,} idle connections "
                f"(opened in {self.open_s:.2f} s), {self.rss_per_conn / 1024:.1f} KiB and "
                f"{max(self.threads_added, 0) / max(self.held, 1):.2f} threads per connection")
        if self.held < self.wanted - self.failed:
            text += (f" (the server had not accepted the other {self.wanted - self.failed - self.held:,} yet when "
                     "the wait ran out: a busy machine; the active clients queue behind them)")
        if self.active:
            text += (f"; {len(self.active.clients)} active clients meanwhile: median "
                     f"{self.active.latency_ms(50):.2f} ms, p99 {self.p99_ms:.2f} ms")
        text += f"; {self.failed} failed" if self.failed else ""
        return text + (f" ({self.note})" if self.note else "")


#: The share of the machine's free threads one lesson demo may take. Threads come from a pool
#: every kernel on the host shares (kernel.pid_max, a container's pids.max): the classroom test
#: with 30 kernels of 2,000 threads each ran a 32,768-thread host dry.
THREAD_SHARE = 40


def threads_to_spare(wanted: int) -> tuple[int, str]:
    """How many of ``wanted`` threads a demo may start here, and why fewer, if fewer."""
    room = thread_room()
    if room.free is None:
        return wanted, ""
    allowed = max(100, room.free // THREAD_SHARE)
    if wanted <= allowed:
        return wanted, ""
    return allowed, (f"{allowed:,} of the {wanted:,} asked: each connection is an operating-system "
                     f"thread, from one pool the whole machine shares ({room.source} {room.limit:,}, "
                     f"{room.free:,} free); a lesson takes at most 1/{THREAD_SHARE} of it, so a class "
                     "on one host cannot run it dry")


def idle_cost(kind: str, n: int, *, active: int = 10, requests: int = 20, timeout: float = 60.0,
              mode: str = "thread") -> IdleCost:
    """Open ``n`` idle connections to a fresh ``kind`` server, then run ``active`` clients.

    Memory is the resident-set growth of the server's process per held connection: in thread
    mode that is this kernel (so it includes the idle clients' sockets, which cost the same for
    every server); in ``mode="process"`` it is the server's own process only.
    """
    note = ""
    if kind == "threaded":  # in process mode too: the pool is the machine's
        n, note = threads_to_spare(n)
    gc.collect()
    with _server(kind, 0.0, "sleep", mode=mode) as server:  # type: ignore[arg-type]
        pid = server._process.process.pid if mode == "process" else None
        time.sleep(0.05)
        rss0, threads0 = rss_bytes(pid), os_threads(pid)
        idle: IdleConnections = open_connections(server.address, n, timeout=timeout)
        with idle:
            # the server may still be accepting the last ones (a thread each: about 1 ms apiece)
            deadline = time.monotonic() + min(timeout, 5.0 + n / 200)
            while mode == "thread" and server.connections < len(idle) and time.monotonic() < deadline:
                time.sleep(0.01)
            rss1, threads1 = rss_bytes(pid), os_threads(pid)
            held = server.connections if mode == "thread" else len(idle)
            result = run_load(server.address, active, requests=requests, timeout=timeout) if active else None
    return IdleCost(kind, n, held, idle.failed, (rss1 - rss0) / max(held, 1), threads1 - threads0,
                    idle.seconds, result, note)


def platform_note() -> str:
    """One line on what this platform does with many sockets."""
    if sys.platform == "win32":
        return "Windows: no RLIMIT_NOFILE; select() is limited to 512 sockets, asyncio's Proactor loop is not."
    if sys.platform == "darwin":
        return "macOS: the default soft limit is 256; kern.maxfilesperproc caps how far it can be raised."
    return "Linux: the soft limit can be raised up to the hard limit without privileges."


# ---- the panel: latency against N for the four servers, live ---------------------------------

def expected_growth(work: Work = "sleep") -> dict[str, str]:
    """The claim per server: the sequential loop's waiting grows linearly with N; the others stay
    flat while the cost is a wait, but a CPU cost serialises everyone in one Python process."""
    labels = {kind: cls.label for kind, cls in LOOP_SERVERS.items()}
    if work == "cpu":
        return {label: "linear" for label in labels.values()}
    return {label: ("linear" if kind == "sequential" else "constant") for kind, label in labels.items()}


class LoopPanel(LessonPanel):
    """Widgets for N (clients), processing cost, kind of work and payload; Run; a live plot.

    Each run measures every server at every N up to the slider (powers of two), one point at a
    time in a worker thread, draws them as they come, then prints the growth of each server's
    last-client wait against N with a verdict computed from those points. ``run()`` blocks
    (headless use); the Run button does not.
    """

    def __init__(self, kinds: Sequence[str] = tuple(LOOP_SERVERS), *, clients: int = 16, cost_ms: float = 5,
                 work: Work = "sleep", size: int = 64) -> None:
        import ipywidgets as widgets

        from ...plots import LivePlot
        from ...widgets import SizeSlider, powers_of_two

        self.kinds = list(kinds)
        style = {"description_width": "8em"}
        self.clients = SizeSlider(powers_of_two(1, 1024), name="clients", unit="", value=clients,
                                  description="clients up to", style=style)
        self.cost = widgets.SelectionSlider(options=[0, 0.5, 1, 2, 5, 10, 20], value=cost_ms,
                                            description="cost (ms)", continuous_update=False, style=style)
        self.work = widgets.ToggleButtons(options=["sleep", "cpu"], value=work, description="work", style=style)
        self.size = SizeSlider(powers_of_two(16, 64 * 1024), name="payload", value=size, description="payload",
                               style=style)
        self.button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.progress = widgets.IntProgress(min=0, max=1, value=0)
        self.status = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(min_height="300px"))
        self.plot = LivePlot("The last client's wait against the number of clients N", "clients N",
                             "wait of the last client (ms)",
                             logx=True, logy=True, output=self.output, scale=1e-6, min_interval_s=0.3)
        self.box = widgets.VBox([self.clients, self.cost, self.work, self.size,
                                 widgets.HBox([self.button, self.progress]), self.status, self.output])
        self.points: list[Point] = []
        self.verdicts: dict[str, tuple[Growth, str]] = {}
        self.error = ""
        self._run = PanelRun()
        self.button.on_click(lambda _b: self.start_run())
        self.plot.redraw()

    def start_run(self) -> bool:
        if self._run.running:
            self.status.value = "A run is in progress: wait for it to finish."
            return False
        ns = [n for n in self.clients.sizes if n <= self.clients.value]
        self.progress.max, self.progress.value = len(ns) * len(self.kinds), 0
        self.button.disabled = True
        self.status.value = f"Measuring {len(self.kinds)} servers at N = {', '.join(map(str, ns))} …"
        return self._run.start(lambda: self._worker(ns))

    def summary(self) -> str:
        """The verdicts of the last run, one per line (plain text)."""
        if self.error:
            return f"The run failed: {self.error}"
        lines = [text for _, text in self.verdicts.values()] or ["No fit yet: run with N up to at least 4."]
        return "\n".join(lines + [self.head_to_head()]).strip()

    def head_to_head(self) -> str:
        """The last client's wait of every server at the largest N measured, side by side: the
        plainest comparison, readable even when a busy machine makes the fits inconclusive."""
        if not self.points:
            return ""
        top = max(p.x for p in self.points)
        waits = {p.series: p.median_ns / 1e6 for p in self.points if p.x == top}
        seq = waits.get(LOOP_SERVERS["sequential"].label)
        text = f"At N = {top:.0f}, the last client waited: " + ", ".join(f"{k} {v:.1f} ms" for k, v in waits.items())
        others = [v for k, v in waits.items() if k != LOOP_SERVERS["sequential"].label]
        if seq is not None and others and max(others) > 0:
            text += f"; the sequential loop {seq / max(others):.1f}× the slowest of the others"
        return text + "."

    def snapshot(self) -> Any:
        """The current figure as a static PNG (``IPython.display.Image``), kept in a saved notebook."""
        return self.plot.snapshot()

    def _worker(self, ns: list[int]) -> None:
        import html

        cost, work, size = self.cost.value / 1000, self.work.value, self.size.value
        self.plot.title = (f"Wait of the last of N clients ({self.cost.value:g} ms of {work} per request, "
                           f"{size} B): who grows?")
        self.plot.clear()

        def on_point(p: Point) -> None:
            self.progress.value += 1
            self.plot.add(p)

        try:
            self.error = ""
            self.points = latency_vs_clients(self.kinds, ns, cost=cost, work=work, size=size, on_point=on_point)
            expected = {LOOP_SERVERS[k].label: expected_growth(work)[LOOP_SERVERS[k].label] for k in self.kinds}
            self.verdicts = growth_verdicts(self.points, expected) if len(ns) >= 3 else {}
            for series, (growth, _) in self.verdicts.items():
                self.plot.add_fit(series, growth)
            lines = [text for _, text in self.verdicts.values()] or ["Pick N up to at least 4 for a fit."]
            lines.append(self.head_to_head())
            self.status.value = "<br>".join(html.escape(line) for line in lines)
        except Exception as exc:  # a message in the panel, never a traceback in some cell
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = html.escape(f"The run failed: {self.error}")
        finally:
            self.plot.finish()
            self.button.disabled = False


# ---- small pieces the notebook shows ---------------------------------------------------------


class Shown:
    """A figure that displays itself as a PNG in a notebook (no pyplot needed); ``.figure`` is it."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure

    def _repr_png_(self) -> bytes:
        from ...plots import to_png

        return to_png(self.figure)


def compare_timelines(kinds: Sequence[str] = ("sequential", "threaded"), *, clients: int = 6,
                      cost: float = 0.02) -> Any:
    """Run ``clients`` at once against each traced server; one Gantt panel per server."""
    from ...plots import _new_figure

    fig, ax0 = _new_figure(None, figsize=(6.4, 2.2 * len(kinds)))
    fig.delaxes(ax0)
    axes = fig.subplots(len(kinds), 1, sharex=True, squeeze=False)[:, 0]
    for ax, kind in zip(axes, kinds):
        with _server(kind, cost, "sleep", trace=True) as server:
            run_load(server.address, clients, timeout=30)
        spans = service_intervals(server.events)
        service_timeline(server.events, ax=ax, title=f"{LOOP_SERVERS[kind].label}: at most "
                                                     f"{max_concurrency(spans.values())} client(s) served at once")
    for ax in axes[:-1]:
        ax.set_xlabel("")
    return Shown(fig)


def waiting_verdict(result: LoadResult, cost: float) -> str:
    """Does client k wait for the k-1 before it? Fit first-reply latency against arrival rank."""
    from ...measure import fit_affine

    waits = sorted(result.first_reply_ms())
    if len(waits) < 3:
        return "need at least 3 clients to see a trend"
    fit = fit_affine(list(range(1, len(waits) + 1)), waits)
    per_client, want = fit.per_unit_ns, cost * 1000  # both in ms here
    ok = 0.7 * want <= per_client <= 1.5 * want
    return (f"each client in the queue waited {per_client:.1f} ms more than the one before it "
            f"(processing cost {want:g} ms, R² {fit.r2:.2f}): "
            + ("confirmed: the last of N waits for all N - 1 others" if ok else
               "not the expected ≈ cost per client: re-run, or look at the plot"))


class IdlePanel(LessonPanel):
    """Hold N idle connections to the asyncio and thread-per-client servers; report the cost."""

    def __init__(self, n: int = 2000, kinds: Sequence[str] = ("asyncio", "threaded")) -> None:
        import ipywidgets as widgets

        limit = fd_limit().max_connections or 9_000
        self.kinds = list(kinds)
        self.n = widgets.IntSlider(value=min(n, limit), min=100, max=max(100, min(limit, 9_900)), step=100,
                                   description="connections", continuous_update=False,
                                   style={"description_width": "8em"})
        self.button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.status = widgets.HTML()
        self.results: list[IdleCost] = []
        self.box = widgets.VBox([self.n, self.button, self.status])
        self._run = PanelRun()
        self.button.on_click(lambda _b: self.start_run())

    def start_run(self) -> bool:
        if self._run.running:
            return False
        self.button.disabled = True
        self.status.value = f"Opening {self.n.value:,} connections to each server …"
        return self._run.start(self._worker)

    def _worker(self) -> None:
        import html

        try:
            self.results = [idle_cost(kind, self.n.value) for kind in self.kinds]
            self.status.value = "<br>".join(html.escape(str(r)) for r in self.results)
        except Exception as exc:
            self.status.value = html.escape(f"The run failed: {type(exc).__name__}: {exc}")
        finally:
            self.button.disabled = False
