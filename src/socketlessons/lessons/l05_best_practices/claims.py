"""The verdicts lesson 05 prints, as the verdict-reliability benchmark runs them."""

from __future__ import annotations

import asyncio

from ...claims import Claim
from ...measure import Status, sweep
from .demos import GuiDemo, SlowEchoServer, clients_timing, concurrency_verdict, gui_verdict

#: As in the lesson's cells.
GUI_DELAY_S = 0.3
CLIENTS, SERVER_DELAY_S, REPEATS = [1, 2, 4, 8], 0.01, 2


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
    runs = {}
    for label, at_once in (("one after another", False), ("asyncio.gather", True)):
        with SlowEchoServer(delay=SERVER_DELAY_S) as srv:
            runs[label] = sweep(lambda n, a=at_once, s=srv: clients_timing(s.address, n, at_once=a, repeats=REPEATS),
                                CLIENTS, series=label)
    total = {label: points[-1].median_ns / 1e9 for label, points in runs.items()}
    return concurrency_verdict(f"{CLIENTS[-1]} clients", total["one after another"], total["asyncio.gather"],
                               CLIENTS[-1], SERVER_DELAY_S).status


CLAIMS = [
    Claim(lesson="l05_best_practices", name="a blocking GUI callback freezes the kernel; offloading does not",
          truth="confirmed",
          why="the blocking callback returns only after the server's 0.3 s delay, while starting a thread or a "
              "task returns in well under a millisecond",
          run=_blocking_freezes_the_kernel),
    Claim(lesson="l05_best_practices", name="asyncio.gather: 8 clients take about one delay, not 8",
          truth="confirmed",
          why="the server serves connections concurrently, so 8 waits of 10 ms overlap into about one, while "
              "one after another they add up to 80 ms",
          run=_gather_overlaps_the_waits),
]
