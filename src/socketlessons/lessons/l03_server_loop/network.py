"""The seed's last claim, measured: "Network I/O dominates — algorithms are secondary" (lesson 03).

The algorithms are the learner's (two functions in a cell); this module is the harness:

* ``algorithm_server(fn)``: a thread-per-client server whose request is a number n; it builds n
  distinct items (shuffled, the same every time), runs ``fn(items)`` and answers one byte;
* ``delay_relay(backend, delay_s)``: a relay (a thread per direction) in front of it that forwards requests at
  once and holds every reply for ``delay_s`` seconds: an added network round trip, without root
  or traffic shaping (``time.sleep`` never ends early, so the added latency is at least that);
* ``network_vs_algorithm(algorithms, ns, latencies_ms)``: time one request through the relay for
  every algorithm, n and latency (latencies interleaved, minimum of 3 requests: the cost itself),
  and the same for a handler that does nothing (the network part), and return the points, a figure
  and a verdict that says, from those numbers, where the network dominates and where the
  algorithm does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...measure import Verdict
from ...servers._loops import ThreadedServer
from .runner import LearnerServer

__all__ = ["NetworkVsAlgorithm", "algorithm_server", "delay_relay", "network_vs_algorithm", "work_time_ms"]

#: Added round-trip latencies of the lesson (ms): loopback to an intercontinental link.
LATENCIES_MS = (0.1, 0.5, 2.0, 10.0, 50.0)
#: Requests per point: at least 3, more (up to 9) while the two fastest differ by more than 15 %;
#: the minimum is kept (noise only adds time: the estimator for "what the request itself costs").
REQUESTS, MAX_REQUESTS = 3, 9


def _settled(samples: list[float]) -> bool:
    low = sorted(samples)[:2]
    return len(samples) >= REQUESTS and low[1] <= 1.15 * low[0]
MAX_N = 5_000


@functools.lru_cache(maxsize=16)
def _shuffled(n: int) -> tuple[int, ...]:
    xs = list(range(n))
    random.Random(n).shuffle(xs)
    return tuple(xs)


def items(n: int) -> list[int]:
    """n distinct numbers in a shuffled order, the same for the same n (made once: the shuffle
    would otherwise be part of every request's time)."""
    return list(_shuffled(n))


def algorithm_server(fn: Callable[[list[int]], Any], *, name: str | None = None) -> ThreadedServer:
    """A server answering a request ``b"<n>"`` with one byte, after ``fn(items(n))``."""
    if not callable(fn):
        raise TypeError(f"fn must be a function taking a list, got {type(fn).__name__}")

    def handle(data: bytes) -> bytes:
        n = int(data)
        if not 0 < n <= MAX_N:
            raise ValueError(f"n must be between 1 and {MAX_N:,}, got {n}")
        return b"1" if fn(items(n)) else b"0"

    return ThreadedServer(process=handle, name=name)


def delay_relay(backend: tuple[str, int], delay_s: float, *, name: str | None = None) -> LearnerServer:
    """A relay to ``backend`` that holds each reply ``delay_s`` seconds (0 to 1)."""
    if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or not 0 <= delay_s <= 1:
        raise ValueError(f"delay_s must be between 0 and 1 second, got {delay_s!r}")

    def pipe(src: socket.socket, dst: socket.socket, delay: float, last: bool) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)  # ~0.1 ms resolution; an event loop's timers round up to 1 ms
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            if last:  # the reply direction ends last: close both
                src.close()
                dst.close()

    def relay(listener: socket.socket) -> None:
        while True:
            client, _ = listener.accept()
            try:
                back = socket.create_connection(backend, timeout=5)
            except OSError:
                client.close()
                continue
            back.settimeout(None)
            for s in (client, back):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pipe, args=(client, back, 0.0, False), daemon=True).start()
            threading.Thread(target=pipe, args=(back, client, delay_s, True), daemon=True).start()

    relay.__name__ = f"relay (+{delay_s * 1000:g} ms)"
    return LearnerServer(relay, name=name, label=relay.__name__)


@dataclasses.dataclass
class NetworkVsAlgorithm:
    """Per (algorithm, n): added latency (ms) -> fastest time per request (ms); ``baseline``: the
    same request to a handler that does no work (the network part: added latency plus hops)."""

    times_ms: dict[tuple[str, int], dict[float, float]]
    baseline_ms: dict[float, float]
    verdict: Verdict
    figure: Any = None
    #: Per (algorithm, n): the algorithm's own time per request (ms), timed in this process.
    work_ms: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)

    def _repr_png_(self) -> bytes | None:
        from ...plots import to_png

        return to_png(self.figure) if self.figure is not None else None


def _time_request(sock: socket.socket, n: int) -> float:
    t0 = time.perf_counter_ns()
    sock.sendall(b"%d" % n)
    if not sock.recv(16):
        raise ConnectionError("the relay closed the connection")
    return (time.perf_counter_ns() - t0) / 1e6


def crossover(times: dict[float, float], baseline: dict[float, float]) -> float | None:
    """The smallest added latency at which the network part (the no-work request's time) is at
    least half of the request's time."""
    for lat in sorted(times):
        if lat in baseline and baseline[lat] >= times[lat] / 2:
            return lat
    return None


def _no_work(xs: list[int]) -> bool:
    return False


def work_time_ms(fn: Callable[[list[int]], Any], n: int, *, repeats: int = 3) -> float:
    """The algorithm's own time for one request of size n (ms): ``fn(items(n))`` timed in this
    process, the fastest of ``repeats`` (noise only adds time). Subtracting the no-work request's
    time from a request's time says the same thing only on paper: at 0.1 ms of added latency it
    is the difference of two noisy round trips, measured against two different servers."""
    xs = items(n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(list(xs))
        best = min(best, (time.perf_counter_ns() - t0) / 1e6)
    return best


def judge(times_ms: dict[tuple[str, int], dict[float, float]], baseline_ms: dict[float, float],
          work_ms: dict[tuple[str, int], float] | None = None) -> Verdict:
    """Where does the network dominate (the same request with no work takes at least half as
    long), and where the algorithm? Stated per algorithm and n, from the measured times.
    ``work_ms``: each algorithm's own time per request (``work_time_ms``); without it, the
    request's time less the no-work request's at the lowest latency."""
    claim = "network I/O dominates, algorithms are secondary"
    if not times_ms or len(baseline_ms) < 2 or any(len(t) < 2 for t in times_ms.values()):
        return Verdict("inconclusive", f"{claim}: inconclusive, need at least two latencies per series")
    lines, everywhere, nowhere = [], True, True
    for (alg, n), times in sorted(times_ms.items()):
        low, high = min(times), max(times)
        if work_ms is not None and (alg, n) in work_ms:
            work, how = work_ms[(alg, n)], "timed on its own"
        else:
            work, how = max(times[low] - baseline_ms.get(low, low), 0.0), "the request less the no-work one"
        cross = crossover(times, baseline_ms)
        amount = f"{work * 1000:.0f} µs" if work < 0.1 else f"{work:.1f} ms"
        head = f"{alg}, n = {n:,} ({amount} of work per request, {how})"
        if cross == low:
            lines.append(f"{head}: the network, from {low:g} ms up (every latency measured)")
            nowhere = False
        elif cross is None:
            lines.append(f"{head}: the algorithm, at every latency measured (up to {high:g} ms)")
            everywhere = False
        else:
            lines.append(f"{head}: the algorithm below {cross:g} ms, the network from {cross:g} ms up")
            everywhere = nowhere = False
    body = "Who sets at least half of the time per request? " + "; ".join(lines)
    if everywhere:
        return Verdict("confirmed", f"{body}. '{claim}': confirmed for every case measured.")
    if nowhere:
        return Verdict("contradicted", f"{body}. '{claim}': contradicted, the work outweighs every latency measured.")
    return Verdict("refined", f"{body}. '{claim}': refined, true where the network part (the no-work request's "
                              "time: the added latency plus the hops through relay and server) is at least the work "
                              "per request, false where the work is larger.")


def _measure(fn: Callable[[list[int]], Any], name: str, ns: Sequence[int], latencies_ms: Sequence[float]
             ) -> dict[int, dict[float, float]]:
    out: dict[int, dict[float, float]] = {}
    with algorithm_server(fn, name=f"lesson03-algorithm-{name}") as backend:
        relays = {lat: delay_relay(backend.address, lat / 1000, name=f"lesson03-relay-{lat:g}").start()
                  for lat in latencies_ms}
        try:
            socks = {lat: socket.create_connection(r.address, timeout=10) for lat, r in relays.items()}
            try:
                for n in ns:
                    samples: dict[float, list[float]] = {lat: [] for lat in socks}
                    for _ in range(MAX_REQUESTS):  # rounds over the latencies not settled yet (interleaved)
                        open_ = [lat for lat, ts in samples.items() if not _settled(ts)]
                        if not open_:
                            break
                        for lat in open_:
                            samples[lat].append(_time_request(socks[lat], n))
                    out[n] = {lat: min(ts) for lat, ts in samples.items()}
            finally:
                for sock in socks.values():
                    sock.close()
        finally:
            for r in relays.values():
                r.stop()
    if backend.errors:
        raise RuntimeError(f"{name} raised in the server: {backend.errors[0].error}")
    return out


def network_vs_algorithm(algorithms: dict[str, Callable[[list[int]], Any]], ns: Sequence[int] = (200, 1000),
                         latencies_ms: Sequence[float] = LATENCIES_MS, *, plot: bool = True) -> NetworkVsAlgorithm:
    """Time a request through a delaying relay, for every algorithm, n and added latency, and the
    same request to a handler that does nothing (the network part)."""
    for n in ns:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_N:
            raise ValueError(f"each n must be an int between 1 and {MAX_N:,}, got {n!r}")
    if not algorithms or not all(callable(f) for f in algorithms.values()):
        raise TypeError("algorithms must map a name to a function taking a list")
    baseline = _measure(_no_work, "none", [max(ns)], latencies_ms)[max(ns)]
    times = {(alg, n): t for alg, fn in algorithms.items() for n, t in _measure(fn, alg, ns, latencies_ms).items()}
    work = {(alg, n): work_time_ms(fn, n) for alg, fn in algorithms.items() for n in ns}
    result = NetworkVsAlgorithm(times, baseline, judge(times, baseline, work), work_ms=work)
    if plot:
        result.figure = _figure(times, baseline)
    return result


def _figure(times: dict[tuple[str, int], dict[float, float]], baseline: dict[float, float]) -> Any:
    from ...plots import _new_figure, style_for

    from matplotlib.ticker import FixedLocator, FuncFormatter

    fig, ax = _new_figure(None, figsize=(7.6, 3.8))
    lats = sorted(baseline)
    ax.plot(lats, [baseline[x] for x in lats], color="0.2", linestyle=":", linewidth=2.5, zorder=5,
            label="no work: the network alone")  # on top: a cheap algorithm's line lies right under it
    for i, ((alg, n), t) in enumerate(sorted(times.items())):
        xs = sorted(t)
        ax.plot(xs, [t[x] for x in xs], label=f"{alg}, n = {n:,}", **style_for(i))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("added network round-trip latency (ms)")
    ax.set_ylabel("time per request (ms, fastest)")
    ax.set_title("Network or algorithm: which one sets the time per request?")
    from matplotlib.ticker import LogLocator, NullFormatter, NullLocator

    ax.xaxis.set_major_locator(FixedLocator(lats))  # ticks at the latencies measured, not only 0.1, 1, 10
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 0.2, 0.5, 1, 2, 5 … ms
    ax.yaxis.set_minor_formatter(NullFormatter())
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the data, never over it
    return fig
