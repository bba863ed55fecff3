"""The verdicts lesson 05 prints, as the verdict-reliability benchmark runs them."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

from ...claims import Claim
from ...measure import Status, sweep
from ...resources import open_descriptors
from ...servers import EchoServer
from .demos import (
    GuiDemo,
    SlowEchoServer,
    clients_timing,
    concurrency_verdict,
    gui_verdict,
    waits_verdict,
    with_verdict,
)

#: As in the lesson's cells.
GUI_DELAY_S = 0.3
CLIENTS, SERVER_DELAY_S, REPEATS = [1, 2, 4, 8], 0.01, 3


CALLS = 20


def _with_closes_every_socket() -> Status:
    """Section 1's two loops, once: 20 failing calls without and with ``with``."""
    with EchoServer(mode="process") as echo:
        def ask_badly(text: object) -> bytes:
            sock = socket.create_connection(echo.address, timeout=2)
            sock.sendall(text)  # type: ignore[arg-type]  # a str raises TypeError here...
            reply = sock.recv(1024)
            sock.close()  # ...so this line never runs
            return reply

        def ask_well(text: object) -> bytes:
            with socket.create_connection(echo.address, timeout=2) as sock:
                sock.sendall(text)  # type: ignore[arg-type]
                return sock.recv(1024)

        counts = []
        for ask in (ask_badly, ask_well):
            before, failures = open_descriptors(), []
            for _ in range(CALLS):
                try:
                    ask("not bytes")
                except TypeError as exc:
                    failures.append(exc)
            after = open_descriptors()
            counts.append(None if before is None or after is None else after - before)
            with warnings.catch_warnings():  # the unclosed sockets are freed here, not in a later test;
                warnings.simplefilter("ignore", ResourceWarning)  # their warning is the lesson's, not ours
                failures.clear()
                gc.collect()
        return with_verdict(counts[0], counts[1], CALLS).status


def _blocking_freezes_the_kernel() -> Status:
    """Section 4's three clicks, once: blocking, thread, asyncio against a 0.3 s server."""
    async def clicks() -> Status:
        with SlowEchoServer(delay=GUI_DELAY_S) as slow:
            demo = GuiDemo(slow.address)
            for mode in ("blocking", "thread", "asyncio"):
                demo.click(mode)
            for mode in ("thread", "asyncio"):
                await demo.finished(mode)
            return gui_verdict(demo.busy_s, GUI_DELAY_S).status

    return asyncio.run(clicks())


def _gather_overlaps_the_waits() -> Status:
    """Section 6's sweep for the two series its verdict compares, at the lesson's sizes."""
    runs, served = {}, {}
    for label, at_once in (("one after another", False), ("asyncio.gather", True)):
        with SlowEchoServer(delay=SERVER_DELAY_S) as srv:
            runs[label] = sweep(lambda n, a=at_once, s=srv: clients_timing(s.address, n, at_once=a, repeats=REPEATS),
                                CLIENTS, series=label)
        served[label] = srv.max_concurrent
    total = {label: points[-1].median_ns / 1e9 for label, points in runs.items()}
    return concurrency_verdict(f"{CLIENTS[-1]} clients", total["one after another"], total["asyncio.gather"],
                               CLIENTS[-1], SERVER_DELAY_S, served_at_once=served["asyncio.gather"]).status


def _each_way(label: str, serial: bool, at_once: bool, expected: str) -> Status:
    """Section 6's sweep for one series, and its waits verdict, as the cell runs them."""
    with SlowEchoServer(delay=SERVER_DELAY_S, serial=serial) as srv:
        points = sweep(lambda n: clients_timing(srv.address, n, at_once=at_once, repeats=REPEATS), CLIENTS,
                       series=label)
    return waits_verdict(label, expected, points, SERVER_DELAY_S).status


CLAIMS = [
    Claim(lesson="l05_best_practices", name="with closes every socket; without it an error keeps it open",
          truth="confirmed",
          why="a saved exception keeps its traceback, whose frame holds the socket; a with block closes it as "
              "the exception leaves the block",
          run=_with_closes_every_socket),
    Claim(lesson="l05_best_practices", name="a blocking GUI callback freezes the kernel; offloading does not",
          truth="confirmed",
          why="the blocking callback returns only after the server's 0.3 s delay, while starting a thread or a "
              "task returns in well under a millisecond",
          run=_blocking_freezes_the_kernel),
    Claim(lesson="l05_best_practices", name="asyncio.gather: 8 clients take a few delays at most, not 8",
          truth="confirmed",
          why="the server serves connections concurrently, so 8 waits of 10 ms overlap into one or a few, while "
              "one after another they add up to 80 ms",
          run=_gather_overlaps_the_waits),
    Claim(lesson="l05_best_practices", name="one after another, each added client adds one server delay",
          truth="confirmed",
          why="each client waits for the one before it, so N clients wait N delays (measured at load 3-4.6: "
              "1.06-1.77 delays per added client; the part above 1 is each connection's own cost)",
          run=lambda: _each_way("one after another", False, False, "add up")),
    Claim(lesson="l05_best_practices", name="asyncio.gather: each added client adds far less than one delay",
          truth="confirmed",
          why="the waits overlap; what each client still adds is its own connection and handshake "
              "(measured at load 3-4.6: -0.14 to 0.18 delays per added client)",
          run=lambda: _each_way("asyncio.gather", False, True, "overlap")),
    Claim(lesson="l05_best_practices", name="gather against a synchronous server: each added client adds one delay",
          truth="confirmed",
          why="the server serves one connection at a time, so the clients' waits add up again (measured at "
              "load 3-4.6: 1.06-1.43 delays per added client)",
          run=lambda: _each_way("gather, synchronous server", True, True, "add up")),
]
