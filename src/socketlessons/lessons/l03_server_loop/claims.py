"""The verdicts lesson 03 prints, as the verdict-reliability benchmark runs them.

Each ``run()`` measures once, exactly as the lesson's cell or panel does (same servers, sizes,
costs, estimator and verdict function), with its own servers, and returns the verdict's status.
"""

from __future__ import annotations

from ...claims import Claim
from ...load import run_load
from ...measure import Status
from ...servers._loops import LOOP_SERVERS, SequentialServer
from . import demos, network

#: The panel's settings in the lesson (cells "Four ways to wait" and "Now make the work CPU-bound").
PANEL_NS = (1, 2, 4, 8, 16)
SLEEP_COST_S = 0.005
CPU_COST_S = 0.002
#: The first cells: six clients at once against the seed's loop, 20 ms per request.
QUEUE_CLIENTS, QUEUE_COST_S = 6, 0.020
#: The many-connections cell.
IDLE_N = 2_000


def _queue() -> Status:
    with SequentialServer(cost=QUEUE_COST_S) as server:
        result = run_load(server.address, clients=QUEUE_CLIENTS)
    return demos.waiting_verdict(result, QUEUE_COST_S).status


def _growth(kind: str, work: str, cost: float) -> Status:
    label = LOOP_SERVERS[kind].label
    points = [demos.latency_point(kind, n, cost=cost, work=work) for n in PANEL_NS]  # type: ignore[arg-type]
    return demos.growth_verdict(label, points, demos.expected_growth(work)[label], cost).status  # type: ignore[arg-type]


def _timelines() -> Status:
    shown = demos.compare_timelines(("sequential", "threaded"), clients=6, cost=0.020)
    return shown.verdict.status  # type: ignore[attr-defined, no-any-return]


def _idle() -> Status:
    return demos.idle_verdict(demos.idle_costs(IDLE_N)).status


def _pairs(xs: list[int]) -> bool:  # the lesson's O(n²) handler
    return any(xs[i] == xs[j] for i in range(len(xs)) for j in range(i))


def _sorted(xs: list[int]) -> bool:  # the lesson's O(n log n) handler
    s = sorted(xs)
    return any(a == b for a, b in zip(s, s[1:]))


def _network() -> Status:
    return network.network_vs_algorithm({"O(n²) pairs": _pairs, "O(n log n) sort": _sorted}, ns=(200, 1000),
                                        plot=False).verdict.status


def _growth_claim(kind: str, work: str) -> Claim:
    cost = SLEEP_COST_S if work == "sleep" else CPU_COST_S
    label = LOOP_SERVERS[kind].label
    expected = demos.expected_growth(work)[label]  # type: ignore[arg-type]
    if work == "cpu":
        why = ("Python code holds the GIL (the lock that lets one thread of a process run bytecode at a time), "
               "so N requests of CPU work in one process take N costs whatever the loop")
    elif kind == "sequential":
        why = "the loop accepts the next client only after the previous one closed: the last waits N costs"
    else:
        why = "while one request sleeps the others are served, so the last client waits about one cost"
    return Claim(lesson="l03_server_loop", name=f"{label}, {work} work: the last client's wait is {expected} in N",
                 truth="confirmed", why=why, run=lambda: _growth(kind, work, cost))


CLAIMS = [
    Claim(lesson="l03_server_loop", name="the seed's loop: client k waits for the k - 1 before it",
          truth="confirmed", why="the loop serves one client until it closes; each costs 20 ms of sleep",
          run=_queue),
    Claim(lesson="l03_server_loop", name="timelines: sequential 1 at a time, thread per client all at once",
          truth="confirmed", why="counted from the servers' recv/send events, independent of timing",
          run=_timelines, acceptable=frozenset({"refined"})),
    *[_growth_claim(kind, work) for work in ("sleep", "cpu") for kind in LOOP_SERVERS],
    Claim(lesson="l03_server_loop", name="network I/O dominates, algorithms are secondary",
          truth="refined", why="at 0.1-2 ms of latency the O(n²) handler's ~20-40 ms at n = 1,000 outweighs the "
          "network, at 50 ms the network outweighs the sort's ~0.1 ms: the note holds for some cases, not all",
          run=_network),
    Claim(lesson="l03_server_loop", name="an idle connection costs a thread more memory than a coroutine",
          truth="confirmed", why="each thread-per-client connection holds an OS thread and its touched stack "
          "pages; a coroutine holds a few small Python objects", run=_idle),
]
