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

from ..load import IdleConnections, LoadResult, open_connections, percentile, run_load
from ..measure import Growth, Point, compare, fit_growth
from ..servers._base import ServerEvent
from ..servers._loops import LOOP_SERVERS, LoopServer, Work

__all__ = ["FdLimit", "IdleCost", "fd_limit", "growth_verdicts", "idle_cost", "latency_point",
           "latency_vs_clients", "max_concurrency", "os_threads", "platform_note", "raise_fd_limit", "rss_bytes", "service_intervals",
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
    from ..plots import _new_figure, style_for

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
                  requests: int = 1, timeout: float = 60.0) -> Point:
    """Start a ``kind`` server, run ``clients`` concurrent clients, return their latency as a Point.

    The Point's x is the number of clients, its median and quartiles are over every request's
    latency, and ``extra`` holds the p99 and max (ms), requests per second and the LoadResult.
    """
    with _server(kind, cost, work) as server:
        result = run_load(server.address, clients, requests=requests, size=size, timeout=timeout)
    lat = result.latencies_ns
    return Point(clients, percentile(lat, 50), percentile(lat, 25), percentile(lat, 75), len(lat),
                 LOOP_SERVERS[kind].label,
                 {"p99_ms": result.latency_ms(99), "max_ms": result.latency_ms(100),
                  "rps": result.requests_per_s, "ok": result.ok, "result": result})


def latency_vs_clients(kinds: Sequence[str], clients: Sequence[int], *, cost: float = 0.002, work: Work = "sleep",
                       size: int = 64, requests: int = 1,
                       on_point: Callable[[Point], None] | None = None) -> list[Point]:
    """``latency_point`` for every server kind and every N (N in the outer loop, so the plot
    fills evenly); ``on_point`` receives each point as it is measured (``LivePlot.add``)."""
    points = []
    for n in clients:
        for kind in kinds:
            point = latency_point(kind, n, cost=cost, work=work, size=size, requests=requests)
            points.append(point)
            if on_point is not None:
                on_point(point)
    return points


def growth_verdicts(points: Sequence[Point], expected: dict[str, str]) -> dict[str, tuple[Growth, str]]:
    """Fit each series' median latency against N and hold it against the expected growth.

    ``expected`` maps a series (server label) to "linear", "constant", ... Returns, per series,
    the fit and a one-line verdict computed from the measured points.
    """
    out = {}
    for series, label in expected.items():
        pts = [p for p in points if p.series == series and p.median_ns > 0]
        if not pts:
            continue
        growth = fit_growth([p.x for p in pts], [p.median_ns for p in pts])
        out[series] = (growth, str(compare(f"{series}: latency vs N is {label}", label, growth)))
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
    if limit.soft is None or limit.soft >= wanted:
        return limit
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

    @property
    def p99_ms(self) -> float:
        return self.active.latency_ms(99) if self.active else float("nan")

    def __str__(self) -> str:
        text = (f"{LOOP_SERVERS[self.kind].label}: held {self.held:,}/{self.wanted:,} idle connections "
                f"(opened in {self.open_s:.2f} s), {self.rss_per_conn / 1024:.1f} KiB and "
                f"{self.threads_added / max(self.held, 1):.2f} threads per connection")
        if self.active:
            text += (f"; {len(self.active.clients)} active clients meanwhile: median "
                     f"{self.active.latency_ms(50):.2f} ms, p99 {self.p99_ms:.2f} ms")
        return text + (f"; {self.failed} failed" if self.failed else "")


def idle_cost(kind: str, n: int, *, active: int = 10, requests: int = 20, timeout: float = 60.0,
              mode: str = "thread") -> IdleCost:
    """Open ``n`` idle connections to a fresh ``kind`` server, then run ``active`` clients.

    Memory is the resident-set growth of the server's process per held connection: in thread
    mode that is this kernel (so it includes the idle clients' sockets, which cost the same for
    every server); in ``mode="process"`` it is the server's own process only.
    """
    gc.collect()
    with _server(kind, 0.0, "sleep", mode=mode) as server:  # type: ignore[arg-type]
        pid = server._process.process.pid if mode == "process" else None
        time.sleep(0.05)
        rss0, threads0 = rss_bytes(pid), os_threads(pid)
        idle: IdleConnections = open_connections(server.address, n, timeout=timeout)
        with idle:
            deadline = time.monotonic() + 5.0  # the server may still be accepting the last ones
            while mode == "thread" and server.connections < len(idle) and time.monotonic() < deadline:
                time.sleep(0.01)
            rss1, threads1 = rss_bytes(pid), os_threads(pid)
            held = server.connections if mode == "thread" else len(idle)
            result = run_load(server.address, active, requests=requests, timeout=timeout) if active else None
    return IdleCost(kind, n, held, idle.failed, (rss1 - rss0) / max(held, 1), threads1 - threads0,
                    idle.seconds, result)


def platform_note() -> str:
    """One line on what this platform does with many sockets."""
    if sys.platform == "win32":
        return "Windows: no RLIMIT_NOFILE; select() is limited to 512 sockets, asyncio's Proactor loop is not."
    if sys.platform == "darwin":
        return "macOS: the default soft limit is 256; kern.maxfilesperproc caps how far it can be raised."
    return "Linux: the soft limit can be raised up to the hard limit without privileges."
