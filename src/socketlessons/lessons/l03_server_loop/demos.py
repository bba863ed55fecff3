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
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...load import IdleConnections, LoadResult, open_connections, percentile, run_load
from ...measure import Affine, Point, Verdict, machine_load
from ...resources import thread_room
from ...servers._base import ServerEvent
from ...servers._loops import LOOP_SERVERS, Work
from .._panel import LessonPanel, PanelRun

__all__ = ["FdLimit", "IdleCost", "IdlePanel", "compare_timelines", "waiting_verdict", "growth_verdict", "idle_costs", "idle_verdict", "timeline_verdict", "load_note", "RUN_BUDGET_S", "fd_limit", "growth_verdicts", "idle_cost", "latency_point",
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


def _label(kind: str | Callable[..., Any]) -> str:
    if callable(kind):
        return getattr(kind, "__name__", "your loop")
    try:
        return LOOP_SERVERS[kind].label
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(LOOP_SERVERS)} or your loop function, got {kind!r}") from None


def _server(kind: str | Callable[..., Any], cost: float, work: Work, **kwargs: Any) -> Any:
    """A built-in loop server, or a ``LearnerServer`` running a loop function from a cell (its
    ``process()`` spends the same cost)."""
    label = _label(kind)
    if callable(kind):
        from .runner import LearnerServer, work as cell_work

        cell_work.set(cost=cost, kind=work)
        return LearnerServer(kind, name=f"lesson03-{label}", label=label)
    return LOOP_SERVERS[kind](cost=cost, work=work, name=f"lesson03-{kind}", **kwargs)


def latency_point(kind: str | Callable[..., Any], clients: int, *, cost: float = 0.002, work: Work = "sleep", size: int = 64,
                  requests: int = 1, repeats: int = 5, timeout: float = 60.0, queued: bool | None = None,
                  stopped: Callable[[], bool] | None = None) -> Point:
    """Start a ``kind`` server, run ``clients`` concurrent clients up to ``repeats`` times; return a Point.

    The Point's x is N; its y is the wait of the LAST client to get its reply (the largest
    latency of a run: "the last waits for all the others"), the smallest over the repeats, with
    a bar up to their median (``extra["median_last_ns"]``, what a user typically waits). The
    smallest (also ``extra["min_ns"]``) is the estimator the verdict uses, because noise from a busy machine only ever adds
    time (a sleep never ends early), so the minimum is the run least disturbed by others (the
    argument of ``timeit``'s docs: "the min is the most useful value"; pyperf and Google
    Benchmark make the same point about noise). Repeats stop early once the minimum is settled
    (``_settled``): a busy machine gets more runs, a quiet one fewer.
    ``extra`` also holds the median and p99 of every request's latency (ms), requests per
    second, and the last ``LoadResult``.
    """
    lasts: list[float] = []
    everything: list[int] = []
    rates: list[float] = []
    ok = True
    # The least any run can take: one cost, or N costs where the claim is that clients queue
    # (only used to stop repeating early; the verdict never assumes it).
    # ``queued``: the claim is that the clients queue (default: CPU work, or the sequential server).
    if queued is None:
        queued = work == "cpu" or kind == "sequential"
    floor = cost * (clients if queued else 1)
    with _server(kind, cost, work) as server:
        for i in range(max(1, repeats)):
            if i and stopped is not None and stopped():  # a panel's Stop: keep the runs done so far
                break
            result = run_load(server.address, clients, requests=requests, size=size, timeout=timeout)
            lat = result.latencies_ns
            ok = ok and result.ok
            if lat:
                # from the first request sent to the last reply: the clients send together, and
                # a send timestamp taken late (the load thread waiting for the GIL while the
                # server computes) would shorten a client's own latency, never this span
                lasts.append(result.seconds * 1e9)
                everything += lat
                rates.append(result.requests_per_s)
            if _settled(lasts, floor):
                break
    if not lasts:
        raise RuntimeError(f"no client of {_label(kind)} got a reply: {result.summary()}")
    # y (and the bar's low end) is the fastest run, the estimator the verdict uses, so the plot
    # shows what is judged; the bar reaches up to the median run (what a user typically waits).
    return Point(clients, min(lasts), min(lasts), percentile(lasts, 50), len(lasts), _label(kind),
                 {"median_ms": percentile(everything, 50) / 1e6, "p99_ms": percentile(everything, 99) / 1e6,
                  "rps": percentile(rates, 50), "ok": ok, "result": result, "min_ns": min(lasts),
                  "median_last_ns": percentile(lasts, 50)}, min_ns=min(lasts))


def _settled(lasts: Sequence[float], floor: float) -> bool:
    """Enough runs for the minimum: one within 20 % (+ 0.3 ms) of the ``floor`` (seconds: no run
    can be faster), or three runs whose two smallest agree within 10 %. Two disturbed runs can
    agree with each other, so agreement alone needs a third."""
    if not lasts:
        return False
    if floor > 0 and min(lasts) <= 1.2 * floor * 1e9 + 0.3e6:
        return True
    low = sorted(lasts)[:2]
    return len(lasts) >= 3 and low[1] <= 1.1 * low[0]


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


#: Below this processing cost the loop's own work (accept, a thread, a few syscalls: tens of µs
#: per client) is a large part of each wait, and neither model below describes the line.
MIN_COST_FOR_VERDICT_S = 0.001
#: The two models, as the step per extra client (least squares of the fastest wait against N),
#: in costs: clients served at once add little (thread start-up, a busy machine's scheduling:
#: at most ~0.15 of a 5 ms cost per client seen at load 17), queued ones add at least one cost
#: each (a sleep never ends early; a busy machine only adds to it, so no upper bound).
FLAT_STEP, QUEUE_STEP = 0.25, 0.7


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / sxx


def _step(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of y against x on linear scales (the wait added per extra client)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def load_note() -> str:
    """The machine's load average against its cores, for an "inconclusive" that names the load."""
    try:
        import os

        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):  # Windows has no load average
        return ""
    return f"load average {load:.1f} on {cores} cores"


def _model(step_in_costs: float) -> str:
    return "constant" if step_in_costs <= FLAT_STEP else "linear" if step_in_costs >= QUEUE_STEP else ""


def growth_verdict(series: str, points: Sequence[Point], expected: str, cost_s: float) -> Verdict:
    """Judge one server's "last client's wait against N": flat (≈ one cost) or a queue (N costs)?

    The two claims of the lesson are two models, not a free-form fit: a server that serves
    clients at once keeps the last one's wait near one cost, the seed's loop makes each extra
    client add one more cost. The step per extra client (least squares over the fastest run at
    each N: noise only adds time) is held against both, in costs; the verdict also states the
    wait at the largest N. Needs N over at least three doublings.
    """
    if expected not in ("constant", "linear"):
        raise ValueError(f"expected must be 'constant' or 'linear', got {expected!r}")
    pts = sorted((p for p in points if p.series == series and p.median_ns > 0), key=lambda p: p.x)
    claim = f"{series}: the last client's wait is {'flat in N' if expected == 'constant' else 'linear in N'}"
    if len({p.x for p in pts}) < 3 or pts[-1].x / pts[0].x < 8:
        top = pts[-1].x if pts else 0
        return Verdict("inconclusive", f"{claim}: inconclusive, N went only up to {top:g}: pick N up to at least 8 "
                                       "(three doublings) for a trend")
    if cost_s < MIN_COST_FOR_VERDICT_S:
        return Verdict("inconclusive", f"{claim}: inconclusive, a cost of {cost_s * 1000:g} ms per request is "
                                       "smaller than what serving a client costs anyway: pick at least "
                                       f"{MIN_COST_FOR_VERDICT_S * 1000:g} ms")
    ys = [p.extra.get("min_ns", p.median_ns) if p.extra else p.median_ns for p in pts]
    step = _step([p.x for p in pts], ys) / (cost_s * 1e9)
    top = pts[-1].x
    numbers = (f"each extra client added {step * cost_s * 1000:.2f} ms ≈ {step:.2f} × the {cost_s * 1000:g} ms "
               f"cost; at N = {top:g} the last client waited {ys[-1] / 1e6:.1f} ms (fastest run)")
    measured = _model(step)
    why = f"; {load_note()} during the run" if load_note() else ""
    if not measured:
        return Verdict("inconclusive", f"{claim}: inconclusive, {numbers}: between serving at once (0) and "
                                       f"queueing (1 cost per client){why}; a larger cost makes the fixed overheads "
                                       "matter less")
    if measured == expected:
        extra = ""
        if measured == "linear" and step > 1.5:
            extra = (" (more than one cost per client: on a busy machine each request also waits for a CPU"
                     f"{why.replace('; ', ', ')})")
        else:
            # Name a point that lies far off the fitted line (beside busy kernels: the selectors
            # loop's fastest runs 2.1, 4.3, 29 and 17 ms at N = 1, 2, 4, 8, "confirmed" under a
            # line that missed all four), rather than a blanket note on every verdict.
            xs = [p.x for p in pts]
            step_ns = step * cost_s * 1e9
            base_ns = sum(ys) / len(ys) - step_ns * sum(xs) / len(xs)
            def miss(x: float, y: float) -> float:
                line_ns = base_ns + step_ns * x
                return abs(y - line_ns) / max(line_ns, 1.0)

            worst = max(zip(xs, ys), key=lambda xy: miss(*xy))  # the one point that drags the line
            if miss(*worst) > 0.5:
                extra = (f" (but N = {worst[0]:g} waited {worst[1] / 1e6:.1f} ms, far off the line through the "
                         "points: most likely a disturbed run"
                         + (f", {why.removeprefix('; ')}" if why and machine_load().busy else "") + ")")
        return Verdict("confirmed", f"{claim}: confirmed, {numbers}{extra}")
    if measured == "linear":
        return Verdict("contradicted", f"{claim}: contradicted, {numbers}: the clients were served one after "
                                       "another")
    queue_ns = QUEUE_STEP * top * cost_s * 1e9
    if ys[-1] >= queue_ns:
        # Noise only adds time, so a flat line can clear a queue only if the largest N finished
        # sooner than N queued requests can. Here it did not: the line is flat because the
        # smallest N were slowed as much (seen once in 390 classroom runs, threads doing CPU work).
        queued_ms = top * cost_s * 1000
        return Verdict("inconclusive", f"{claim}: inconclusive, {numbers}, {ys[-1] / 1e6 / queued_ms:.2f}× the "
                                       f"{queued_ms:g} ms that {top:g} requests one after another take, so they may "
                                       f"have queued; the line is flat only because N = {pts[0].x:g} waited "
                                       f"{ys[0] / 1e6:.1f} ms too, for a {cost_s * 1000:g} ms request{why}; run it "
                                       "again when the machine is quieter")
    return Verdict("contradicted", f"{claim}: contradicted, {numbers}: the clients were served at once")


def growth_verdicts(points: Sequence[Point], expected: dict[str, str], cost_s: float = 0.005
                    ) -> dict[str, Verdict]:
    """``growth_verdict`` for every series in ``expected`` (server label -> "linear"/"constant")."""
    return {series: growth_verdict(series, points, label, cost_s) for series, label in expected.items()
            if any(p.series == series for p in points)}


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


def _descriptors(pid: int | None) -> int | None:
    """Open descriptors (handles on Windows) of process ``pid``, or None where psutil cannot count them."""
    import psutil

    proc = psutil.Process(pid)
    count = getattr(proc, "num_fds", None) or getattr(proc, "num_handles", None)
    try:
        return int(count()) if count else None
    except psutil.Error:  # pragma: no cover - a process we may not inspect
        return None


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
    if mode == "thread":  # the memory measured is this kernel's: free its garbage first
        gc.collect()  # (60 ms with matplotlib loaded; a server in its own process has none of it)
    with _server(kind, 0.0, "sleep", mode=mode) as server:  # type: ignore[arg-type]
        pid = server._process.process.pid if mode == "process" else None
        time.sleep(0.05)
        rss0, threads0, fds0 = rss_bytes(pid), os_threads(pid), _descriptors(pid)
        idle: IdleConnections = open_connections(server.address, n, timeout=timeout)
        with idle:
            # the server may still be accepting the last ones (a thread each: about 1 ms apiece);
            # in its own process, count what it holds: one descriptor per accepted connection
            # (and a thread each for thread-per-client)
            deadline = time.monotonic() + min(timeout, 5.0 + n / 200)
            while time.monotonic() < deadline:
                if mode == "thread":
                    if server.connections >= len(idle):
                        break
                elif (fds0 is None or _descriptors(pid) - fds0 >= len(idle)) and \
                        (kind != "threaded" or os_threads(pid) - threads0 >= len(idle)):
                    break
                time.sleep(0.01)
            rss1, threads1 = rss_bytes(pid), os_threads(pid)
            if mode == "thread":
                held = server.connections
            else:
                fds1 = _descriptors(pid)
                held = len(idle) if fds0 is None or fds1 is None else min(len(idle), max(fds1 - fds0, 0))
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

    def __init__(self, kinds: Sequence[str | Callable[..., Any]] = tuple(LOOP_SERVERS), *, clients: int = 16,
                 cost_ms: float = 5, work: Work = "sleep", size: int = 64,
                 expect: dict[str, str] | None = None) -> None:
        """``kinds``: built-in servers by name, or your own loop functions (run by ``LearnerServer``;
        their ``process()`` spends the panel's cost). ``expect`` maps a loop's name to the claim for
        sleep work ("linear" or "constant"); CPU work is claimed linear for every loop of this one
        process."""
        from ..._interrupts import import_held

        widgets = import_held("ipywidgets")  # ■ during a first import would break it for the kernel

        from ...plots import LivePlot
        from ...widgets import SizeSlider, powers_of_two

        self.kinds = list(kinds)
        for kind in self.kinds:
            _label(kind)  # a clear ValueError for an unknown name
        self.expect = dict(expect or {})
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
                             logx=True, logy=True, output=self.output, scale=1e-6, min_interval_s=1.0)
        self.box = widgets.VBox([self.clients, self.cost, self.work, self.size,
                                 widgets.HBox([self.button, self.progress]), self.status, self.output])
        self.points: list[Point] = []
        self.verdicts: dict[str, Verdict] = {}
        self.error = ""
        self.note = ""
        self._run = PanelRun()
        self.stop_button = self._make_stop_button()  # LessonPanel's: hidden until a run starts
        self.box.children = (*self.box.children[:4], widgets.HBox([self.button, self.stop_button, self.progress]),
                             *self.box.children[5:])
        self.button.on_click(lambda _b: self.start_run())
        self.plot.redraw()

    def expected(self, work: Work) -> dict[str, str]:
        """The claim per series for this kind of work (series without a claim get no verdict)."""
        out = {}
        for kind in self.kinds:
            label = _label(kind)
            if work == "cpu":
                out[label] = "linear"
            elif not callable(kind):
                out[label] = expected_growth(work)[label]
            elif label in self.expect:
                out[label] = self.expect[label]
        return out

    def _queued(self, kind: str | Callable[..., Any], work: Work) -> bool:
        return self.expected(work).get(_label(kind)) == "linear"

    def planned_seconds(self, ns: Sequence[int]) -> float:
        """A lower bound of the run's measuring time: one run of a loop whose clients queue takes
        N costs, of the others about one; at least two runs per point."""
        cost, work = self.cost.value / 1000, self.work.value
        return 2 * cost * sum(sum(ns) if self._queued(k, work) else len(ns) for k in self.kinds)

    def start_run(self) -> bool:
        if self._run.running:
            return self._begin(lambda: None, "")  # says "already in progress", changes nothing
        ns = [n for n in self.clients.sizes if n <= self.clients.value]
        self.progress.max, self.progress.value = len(ns) * len(self.kinds), 0
        planned = self.planned_seconds(ns)
        text = f"Measuring {len(self.kinds)} servers at N = {', '.join(map(str, ns))}"
        if planned > RUN_BUDGET_S:
            text += (f": at least {planned:.0f} s, beyond the {RUN_BUDGET_S:g} s a run may take, so it will stop "
                     "at the first point that does not fit (fewer clients or a smaller cost fit)")
        return self._begin(lambda: self._worker(ns), text + " …", max_run_s=RUN_BUDGET_S + 10)

    def summary(self) -> str:
        """The verdicts of the last run, one per line (plain text)."""
        if self.error:
            return f"The run failed: {self.error}"
        lines = [str(v) for v in self.verdicts.values()] or ["No verdict: run with N up to at least 8."]
        return "\n".join([self.note, *lines, self.head_to_head()]).strip()

    def head_to_head(self) -> str:
        """The last client's wait of every server at the largest N measured, side by side: the
        plainest comparison, readable even when a busy machine makes the fits inconclusive."""
        if not self.points:
            return ""
        top = max(p.x for p in self.points)
        # The fastest run, as the verdicts and the plotted points: the medians of a few runs on a
        # busy machine made "3.0x" of a CPU-bound run whose loops all queued alike (1.0x fastest).
        waits = {p.series: p.median_ns / 1e6 for p in self.points if p.x == top}
        seq_label = next((_label(k) for k in self.kinds if k == "sequential" or "sequential" in _label(k)), "")
        seq = waits.get(seq_label)
        text = (f"At N = {top:.0f}, the last client waited (fastest run, as the verdicts): "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in waits.items()))
        others = [v for k, v in waits.items() if k != seq_label]
        if seq is not None and others and min(others) > 0:
            fastest = min((v, k) for k, v in waits.items() if k != seq_label)
            text += f"; the sequential loop {seq / fastest[0]:.1f}× the fastest of the others ({fastest[1]})"
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
            self.points.append(p)
            self.progress.value += 1
            self.plot.add(p)

        deadline = time.monotonic() + RUN_BUDGET_S
        self.points, self.verdicts, self.note = [], {}, ""
        claims = self.expected(work)
        try:
            self.error = ""
            for n in ns:
                for kind in self.kinds:
                    done = max((p.x for p in self.points), default=0)
                    need = cost * (n if self._queued(kind, work) else 1)  # one run of this point, at least
                    if self._run.stopped:
                        self.note = f"Stopped after N = {done:g}: the verdicts below use the points measured."
                        raise _Stopped
                    if time.monotonic() + need > deadline:
                        self.note = (f"Stopped at the {RUN_BUDGET_S:g} s budget after N = {done:g}: one run of "
                                     f"{_label(kind)} at N = {n} takes at least {need:.1f} s. The verdicts below "
                                     "use the points measured.")
                        raise _Stopped
                    on_point(latency_point(kind, n, cost=cost, work=work, size=size, queued=claims.get(_label(kind))
                                           == "linear", timeout=min(60.0, max(5.0, 3 * n * cost + 5)),
                                           stopped=lambda: self._run.stopped or time.monotonic() > deadline))
        except _Stopped:
            pass
        except Exception as exc:  # a message in the panel, never a traceback in some cell
            self.error = f"{type(exc).__name__}: {exc}"
        try:
            if not self.error:
                self.verdicts = growth_verdicts(self.points, claims, cost)
                for series in self.verdicts:
                    line = _fit_line([p for p in self.points if p.series == series], cost)
                    if line is not None:
                        self.plot.fits[series] = line  # drawn once, by finish() below
            self.status.value = "<br>".join(html.escape(line) for line in self.summary().splitlines())
        finally:
            self.plot.finish()


#: The longest a LoopPanel run measures (N = 1,024 at 20 ms for the sequential loop alone would
#: take minutes); it stops there, says so, and judges the points it has.
RUN_BUDGET_S = 20.0


class _Stopped(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class StepLine(Affine):
    """The verdict's model drawn on the plot: the fastest wait ≈ fixed + step × N (a curve on the
    log-log axes), named by the model it matches."""

    model: str = ""

    def predict(self, x: float) -> float:
        return max(super().predict(x), 1e3)  # a log axis cannot show zero or less

    def formula(self, var: str = "x") -> str:  # str() and the legend (plots.fit_label) both read this
        return f"{self.model}, +{self.per_unit_ns / 1e6:.2f} ms per client"


def _fit_line(pts: Sequence[Point], cost_s: float) -> StepLine | None:
    """The least-squares line through the fastest wait against N (the verdict's step), for the plot."""
    pts = [p for p in pts if p.median_ns > 0]
    if len({p.x for p in pts}) < 3 or cost_s <= 0:
        return None
    xs = [p.x for p in pts]
    ys = [p.extra.get("min_ns", p.median_ns) if p.extra else p.median_ns for p in pts]
    step = _step(xs, ys)
    fixed = sum(ys) / len(ys) - step * sum(xs) / len(xs)
    model = {"constant": "flat", "linear": "a queue"}.get(_model(step / (cost_s * 1e9)), "neither")
    return StepLine(fixed, step, math.nan, model)


# ---- small pieces the notebook shows ---------------------------------------------------------


class Shown:
    """A figure that displays itself as a PNG in a notebook (no pyplot needed); ``.figure`` is it."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure

    def _repr_png_(self) -> bytes:
        from ...plots import to_png

        return to_png(self.figure)


def timeline_verdict(at_once: dict[str, int], clients: int) -> Verdict:
    """The claim of the two timelines: the seed's loop serves one client at a time, a thread per
    client serves all of them at once. Counted from the servers' own recv/send events (overlap
    of service intervals), so it does not depend on how long anything took."""
    seq, thr = LOOP_SERVERS["sequential"].label, LOOP_SERVERS["threaded"].label
    numbers = ", ".join(f"{k}: at most {v} of {clients} served at once" for k, v in at_once.items())
    claim = "the reference's loop serves one client at a time; a thread per client serves them all at once"
    if seq not in at_once or thr not in at_once:
        return Verdict("inconclusive", f"{numbers}: inconclusive, the claim needs both the sequential and the "
                                       "thread-per-client server")
    if at_once[seq] == 1 and at_once[thr] == clients:
        return Verdict("confirmed", f"{numbers}: confirmed, {claim}")
    if at_once[seq] > 1:
        return Verdict("contradicted", f"{numbers}: contradicted, the sequential loop overlapped clients")
    return Verdict("refined", f"{numbers}: refined, the thread-per-client server overlapped {at_once[thr]} "
                              f"of {clients}: some requests ended before the last thread started")


def compare_timelines(kinds: Sequence[str] = ("sequential", "threaded"), *, clients: int = 6,
                      cost: float = 0.02) -> Any:
    """Run ``clients`` at once against each traced server; one Gantt panel per server.

    The returned figure has ``.at_once`` (per server, the most clients served at once) and
    ``.verdict`` (``timeline_verdict``).
    """
    from ...plots import _new_figure

    fig, ax0 = _new_figure(None, figsize=(6.4, 2.2 * len(kinds)))
    fig.delaxes(ax0)
    axes = fig.subplots(len(kinds), 1, sharex=True, squeeze=False)[:, 0]
    at_once: dict[str, int] = {}
    for ax, kind in zip(axes, kinds):
        with _server(kind, cost, "sleep", trace=True) as server:
            run_load(server.address, clients, timeout=30)
        spans = service_intervals(server.events)
        at_once[LOOP_SERVERS[kind].label] = max_concurrency(spans.values())
        service_timeline(server.events, ax=ax, title=f"{LOOP_SERVERS[kind].label}: at most "
                                                     f"{at_once[LOOP_SERVERS[kind].label]} client(s) served at once")
    for ax in axes[:-1]:
        ax.set_xlabel("")
    shown = Shown(fig)
    shown.at_once = at_once  # type: ignore[attr-defined]
    shown.verdict = timeline_verdict(at_once, clients)  # type: ignore[attr-defined]
    return shown


#: Descriptors ``idle_costs`` leaves free in the kernel for everything but the idle clients.
DESCRIPTOR_RESERVE = 64


def idle_costs(n: int, kinds: Sequence[str] = ("asyncio", "threaded"), **kwargs: Any) -> list[IdleCost]:
    """``idle_cost`` for each server at the SAME number of connections: the smaller of ``n`` and
    the threads this lesson may take (thread-per-client needs one per connection), so that the
    memory per connection is compared like for like."""
    allowed, capped = threads_to_spare(n) if "threaded" in kinds else (n, "")
    # The idle clients' sockets are this kernel's descriptors: leave room for everything else
    # (a kernel out of descriptors cannot even read /proc). ulimit -n 256 leaves about 130.
    from ...resources import descriptors_left

    room, note = descriptors_left(), ""
    if room is not None and allowed > room - DESCRIPTOR_RESERVE:
        allowed = max(room - DESCRIPTOR_RESERVE, 0)
        note = (f"held to {allowed:,}: only {room:,} descriptors were left under this kernel's limit (ulimit -n); "
                "start JupyterLab after `ulimit -n 8192` for the full 2,000")
    costs = [idle_cost(kind, allowed, **kwargs) for kind in kinds]
    # the thread share's cap on the thread-per-client line only (it needs the threads; asyncio holds
    # the same N so that the two compare like for like): "held 813/813" alone hid that 2,000 were asked
    return [dataclasses.replace(c, note="; ".join(x for x in (c.note, capped if c.kind == "threaded" else "", note)
                                                   if x)) for c in costs]


def idle_verdict(costs: Sequence[IdleCost]) -> Verdict:
    """"An idle connection costs a thread-per-client server more memory than asyncio", from the
    resident-memory growth per held connection of each (same N; a ratio, so whatever the two
    share, such as the idle clients' own sockets, cancels out of the claim's direction)."""
    by = {c.kind: c for c in costs}
    claim = "an idle connection costs a thread per client more memory than a coroutine"
    if "asyncio" not in by or "threaded" not in by:
        return Verdict("inconclusive", f"{claim}: inconclusive, needs both the asyncio and the threaded server")
    a, t = by["asyncio"], by["threaded"]
    if min(a.held, t.held) < 100 or abs(a.held - t.held) > 0.02 * max(a.held, t.held):  # per connection: 2 % is alike
        return Verdict("inconclusive", f"{claim}: inconclusive, held {a.held:,} and {t.held:,} connections: "
                                       "compare at the same N of at least 100")
    n_text = f"{a.held:,}" if a.held == t.held else f"{a.held:,} and {t.held:,}"
    numbers = (f"at N = {n_text}: asyncio {a.rss_per_conn / 1024:.1f} KiB and {max(a.threads_added, 0) / a.held:.2f} "
               f"threads per connection, thread per client {t.rss_per_conn / 1024:.1f} KiB and "
               f"{max(t.threads_added, 0) / t.held:.2f} threads")
    if a.rss_per_conn <= 0:
        return Verdict("inconclusive", f"{numbers}: inconclusive, asyncio's memory did not grow measurably; "
                                       "use more connections")
    ratio = t.rss_per_conn / a.rss_per_conn
    if ratio >= 1.5:
        return Verdict("confirmed", f"{numbers} ({ratio:.1f}×): confirmed, {claim}")
    if ratio <= 1.0:
        return Verdict("contradicted", f"{numbers} ({ratio:.1f}×): contradicted, the threads cost no more memory")
    return Verdict("inconclusive", f"{numbers} ({ratio:.1f}×): inconclusive, too close to call from resident "
                                   "memory, which the allocator rounds in pages: use more connections")


def waiting_verdict(result: LoadResult, cost: float) -> Verdict:
    """Does client k wait for the k-1 before it? Fit first-reply time against arrival rank.

    The per-client step of a straight line through the sorted waits is held against the cost:
    one cost per client (0.7 to 1.5 costs) is the seed's loop serving one at a time; under half
    a cost means clients overlapped. A sleep never ends early, so the step cannot fall below
    the cost by noise; a busy machine can only lengthen it (and says so with the load).
    """
    from ...measure import fit_affine

    waits = sorted(result.first_reply_ms())
    claim = "the last of N waits for all N - 1 others"
    if len(waits) < 3:
        return Verdict("inconclusive", f"{claim}: inconclusive, only {len(waits)} client(s) got a reply: need at "
                                       "least 3 to see a trend")
    fit = fit_affine(list(range(1, len(waits) + 1)), waits)
    step, want = fit.per_unit_ns, cost * 1000  # both in ms here
    numbers = (f"each client in the queue waited {step:.1f} ms more than the one before it (processing cost "
               f"{want:g} ms; R² {fit.r2:.2f}, the share of the spread the straight line explains)")
    if 0.7 * want <= step <= 1.5 * want:
        return Verdict("confirmed", f"{numbers}: confirmed, {claim}")
    if step < 0.5 * want:
        return Verdict("contradicted", f"{numbers}: contradicted, clients were served at the same time")
    if step > 1.5 * want:
        why = f" ({load_note()})" if load_note() else ""
        return Verdict("inconclusive", f"{numbers}: inconclusive, more than one cost per client: something "
                                       f"besides the queue took time{why}; run the cell again")
    return Verdict("inconclusive", f"{numbers}: inconclusive, between overlapping (0) and queueing (1 cost)")


class IdlePanel(LessonPanel):
    """Hold N idle connections to the asyncio and thread-per-client servers; report the cost."""

    def __init__(self, n: int = 2000, kinds: Sequence[str] = ("asyncio", "threaded")) -> None:
        from ..._interrupts import import_held

        widgets = import_held("ipywidgets")  # ■ during a first import would break it for the kernel

        limit = fd_limit().max_connections or 9_000
        self.kinds = list(kinds)
        self.n = widgets.IntSlider(value=min(n, limit), min=100, max=max(100, min(limit, 9_900)), step=100,
                                   description="connections", continuous_update=False,
                                   style={"description_width": "8em"})
        self.button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = self._make_stop_button()
        self.status = widgets.HTML()
        self.results: list[IdleCost] = []
        self.error = ""
        self.box = widgets.VBox([self.n, widgets.HBox([self.button, self.stop_button]), self.status])
        self._run = PanelRun()
        self.button.on_click(lambda _b: self.start_run())

    def start_run(self) -> bool:
        n = self.n.value
        allowed, why = threads_to_spare(n) if "threaded" in self.kinds else (n, "")
        text = f"Opening {allowed:,} connections to each server"
        if allowed < n:
            text += f" ({why})"
        return self._begin(self._worker, text + " …")

    def _worker(self) -> None:
        import html

        self.results, self.error = [], ""
        try:
            allowed, _ = threads_to_spare(self.n.value) if "threaded" in self.kinds else (self.n.value, "")
            for kind in self.kinds:  # Stop takes effect between the servers (each is bounded by its timeout)
                if self._run.stopped:
                    break
                self.results.append(idle_cost(kind, allowed, timeout=30.0))
            lines = [str(r) for r in self.results]
            lines.append(self._stop_note() or str(idle_verdict(self.results)))
            self.status.value = "<br>".join(html.escape(line) for line in lines)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = html.escape(f"The run failed: {self.error}")
