"""The verdicts lesson 03 prints, as the verdict-reliability benchmark runs them.

Each ``run()`` measures once, exactly as the lesson's cell or panel does (same servers, sizes,
costs, estimator and verdict function), with its own servers, and returns the verdict's status.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from ...claims import Claim
from ...load import run_load
from ...measure import Status
from ...servers._loops import SequentialServer
from . import demos, network
from .runner import aprocess, process

#: The panel's settings in the lesson (cells "Four ways to wait" and "Now make the work CPU-bound"),
#: measuring the lesson's own four loops (copied below as its cells write them).
PANEL_NS = (1, 2, 4, 8, 16)
CPU_NS = (1, 2, 4, 8)
SLEEP_COST_S = 0.005
CPU_COST_S = 0.002
#: The first cells: six clients at once against the seed's loop, 20 ms per request.
QUEUE_CLIENTS, QUEUE_COST_S = 6, 0.020
#: The many-connections cell: each server in its own fresh process (a warm kernel reuses freed
#: memory, so asyncio's resident growth came out 0.1-6.4 KiB per connection and at times none).
IDLE_N = 2_000


def _queue() -> Status:
    with SequentialServer(cost=QUEUE_COST_S) as server:
        result = run_load(server.address, clients=QUEUE_CLIENTS)
    return demos.waiting_verdict(result, QUEUE_COST_S).status


# ---- the lesson's four loops, as its cells write them ------------------------------------------

def sequential_loop(listener: socket.socket) -> None:
    while True:
        client, _addr = listener.accept()
        try:
            while True:
                data = client.recv(1024)
                if not data:
                    break
                client.sendall(process(data))
        finally:
            client.close()


def _serve_one(client: socket.socket) -> None:
    with client:
        while data := client.recv(1024):
            client.sendall(process(data))


def threaded_loop(listener: socket.socket) -> None:
    while True:
        client, _addr = listener.accept()
        threading.Thread(target=_serve_one, args=(client,), daemon=True).start()


def selectors_loop(listener: socket.socket) -> None:
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                sock = key.fileobj
                if sock is listener:
                    client, _addr = listener.accept()
                    sel.register(client, selectors.EVENT_READ)
                elif data := sock.recv(1024):  # type: ignore[union-attr]
                    sock.sendall(process(data))  # type: ignore[union-attr]
                else:
                    sel.unregister(sock)
                    sock.close()  # type: ignore[union-attr]


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(await aprocess(data))
        await writer.drain()
    writer.close()


async def asyncio_loop(listener: socket.socket) -> None:
    server = await asyncio.start_server(_handle, sock=listener)
    async with server:
        await server.serve_forever()


#: The claims the lesson's cell writes for a sleep cost (CPU work: every loop queues).
SLEEP_CLAIMS = {"sequential_loop": "linear", "threaded_loop": "constant", "selectors_loop": "linear",
                "asyncio_loop": "constant"}
LOOPS = (sequential_loop, threaded_loop, selectors_loop, asyncio_loop)


def _growth(loop: Callable[..., Any], work: str, cost: float) -> Status:
    label = loop.__name__
    expected = "linear" if work == "cpu" else SLEEP_CLAIMS[label]
    points = [demos.latency_point(loop, n, cost=cost, work=work, queued=expected == "linear")  # type: ignore[arg-type]
              for n in (CPU_NS if work == "cpu" else PANEL_NS)]
    return demos.growth_verdict(label, points, expected, cost).status


def _timelines() -> Status:
    shown = demos.compare_timelines(("sequential", "threaded"), clients=6, cost=0.020)
    return shown.verdict.status  # type: ignore[attr-defined, no-any-return]


def _idle() -> Status:
    return demos.idle_verdict(demos.idle_costs(IDLE_N, mode="process")).status


def _pairs(xs: list[int]) -> bool:  # the lesson's O(n²) handler
    return any(xs[i] == xs[j] for i in range(len(xs)) for j in range(i))


def _sorted(xs: list[int]) -> bool:  # the lesson's O(n log n) handler
    s = sorted(xs)
    return any(a == b for a, b in zip(s, s[1:]))


def _network() -> Status:
    return network.network_vs_algorithm({"O(n²) pairs": _pairs, "O(n log n) sort": _sorted}, ns=(200, 1000),
                                        plot=False).verdict.status


def _growth_claim(loop: Callable[..., Any], work: str) -> Claim:
    cost = SLEEP_COST_S if work == "sleep" else CPU_COST_S
    label = loop.__name__
    expected = "linear" if work == "cpu" else SLEEP_CLAIMS[label]
    if work == "cpu":
        why = ("Python code holds the GIL (the lock that lets one thread of a process run bytecode at a time), "
               "so N requests of CPU work in one process take N costs whatever the loop")
    elif expected == "linear":
        why = ("one request is served at a time: the reference's loop accepts the next client only after the last "
               "closed; the selectors loop runs process()'s sleep inside the loop")
    else:
        why = "while one request sleeps the others are served, so the last client waits about one cost"
    return Claim(lesson="l03_server_loop", name=f"{label}, {work} work: the last client's wait is {expected} in N",
                 truth="confirmed", why=why, run=lambda: _growth(loop, work, cost))


CLAIMS = [
    Claim(lesson="l03_server_loop", name="the reference's loop: client k waits for the k - 1 before it",
          truth="confirmed", why="the loop serves one client until it closes; each costs 20 ms of sleep",
          run=_queue),
    Claim(lesson="l03_server_loop", name="timelines: sequential 1 at a time, thread per client all at once",
          truth="confirmed", why="counted from the servers' recv/send events, independent of timing",
          run=_timelines, acceptable=frozenset({"refined"})),
    *[_growth_claim(loop, work) for work in ("sleep", "cpu") for loop in LOOPS],
    Claim(lesson="l03_server_loop", name="network I/O dominates, algorithms are secondary",
          truth="refined", why="at 0.1-2 ms of latency the O(n²) handler's ~20-40 ms at n = 1,000 outweighs the "
          "network, at 50 ms the network outweighs the sort's ~0.1 ms: the note holds for some cases, not all",
          run=_network),
    Claim(lesson="l03_server_loop", name="an idle connection costs a thread more memory than a coroutine",
          truth="confirmed", why="each thread-per-client connection holds an OS thread and its touched stack "
          "pages; a coroutine holds a few small Python objects", run=_idle),
]
