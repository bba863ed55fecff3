"""Run All: how long executing each lesson takes in a fresh kernel, and where the time goes.

Each lesson runs as nbmake runs it (``nbclient.NotebookClient``, a new ``python3`` kernel,
every cell in order, outputs discarded), ``--k`` times, in rounds over the lessons in a
shuffled order (seeded), so a spell of load elsewhere lands on every lesson alike. Every run
is split into the three parts nbclient goes through:

* **start**: the kernel process starts and answers ``kernel_info`` (``async_start_new_kernel``
  and ``async_start_new_kernel_client``);
* **cells**: executing the cells, the part a learner's *Run All* waits for;
* **shutdown**: ``shutdown_request`` until the kernel process has gone (``_async_cleanup_kernel``).

Why the split: a shutdown used to take 2.5-3.5 s instead of 0.1 s now and then. That was
ipykernel's (7.4): its control thread flushes stdout after the ``shutdown_request`` while the
main thread stops the IOPub thread that would complete the flush, so the control thread waits
for its flush timeout until the kernel manager gives up and terminates the process (stack
dumps of slow shutdowns: 4 of 90 with an empty notebook, 8 of 48 after a lesson). A lesson
kernel now waits for its control thread before that stop (``socketlessons._kernel_exit``,
which also skips the interpreter's final garbage collection: 0.11 s per shutdown instead of
0.3-0.4 s). The table still counts slow shutdowns apart, and gives the total both with them
and with each at the usual shutdown time: one of them now is a regression to look into.

Usage: ``python benchmarks/bench_run_all.py [--k 3] [--lessons 00,03]``; about a minute per
round of all lessons.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from _common import report

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: A shutdown slower than this waited for ipykernel's flush (see the module's docstring).
SLOW_SHUTDOWN_S = 1.0
#: nbmake's default cell timeout, so a hung cell ends the run instead of the benchmark.
CELL_TIMEOUT_S = 300

_PARTS = {"async_start_new_kernel": "start", "async_start_new_kernel_client": "start",
          "async_execute_cell": "cells", "_async_cleanup_kernel": "shutdown"}


def _timed_client_class() -> tuple[type[NotebookClient], dict[str, float]]:
    """A ``NotebookClient`` whose steps add their seconds into the returned dict, by part."""
    spent: dict[str, float] = {}

    class TimedClient(NotebookClient):
        pass

    for method, part in _PARTS.items():
        original = getattr(NotebookClient, method)

        def timed(self: Any, *args: Any, _original: Any = original, _part: str = part, **kwargs: Any) -> Any:
            async def run() -> Any:
                t0 = time.perf_counter()
                try:
                    return await _original(self, *args, **kwargs)
                finally:
                    spent[_part] = spent.get(_part, 0.0) + time.perf_counter() - t0
            return run()

        setattr(TimedClient, method, functools.wraps(original)(timed))
    return TimedClient, spent


def run_lesson(path: Path) -> dict[str, float]:
    """Execute one notebook in a fresh kernel; seconds per part and in all."""
    client_class, spent = _timed_client_class()
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    client_class(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                 resources={"metadata": {"path": str(path.parent)}}).execute()
    return {"total": time.perf_counter() - t0, **spent}


def echo_rtt_us(rounds: int = 15, per_round: int = 2000) -> float:
    """This machine's speed at what the lessons do most: the median 1-byte echo round trip (µs)
    between this thread and a raw echo thread on loopback, as ``bench_servers.py``'s "raw echo,
    thread" row measures it. Run All's socket-bound cells scale with it, so a table of lesson
    times means little without it (one VM instance of this course's machine measured 12.1 µs,
    a later one 31 µs, and its Run All took 72 s instead of 42 s). It includes waking the echo
    thread, which an idle VM can make slow: see ``same_thread_rtt_us``."""
    import socket

    from bench_servers import raw_echo, raw_in_thread  # the same raw server as its "raw echo, thread" row

    with raw_in_thread(raw_echo) as address, socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _median_us(lambda: (sock.send(b"x"), sock.recv(1)), rounds, per_round)


def same_thread_rtt_us(rounds: int = 15, per_round: int = 2000) -> float:
    """The socket calls alone: the median time (µs) of a 1-byte round trip over a loopback TCP
    pair driven by ONE thread (send on a, recv on b, send on b, recv on a), so no thread ever
    waits to be woken. ``echo_rtt_us`` includes that wake-up, and on an idle VM the wake-up can
    be most of it: one instance measured 95 µs thread to thread while its Run All took 43 s,
    where an instance at 32 µs took 69 s. Report both; this one follows the CPU."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=5) as a:
        b, _ = listener.accept()
        with b:
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _median_us(lambda: (a.send(b"x"), b.recv(1), b.send(b"x"), a.recv(1)), rounds, per_round)


def _median_us(round_trip: Callable[[], object], rounds: int, per_round: int) -> float:
    """The median over ``rounds`` of the mean time (µs) of ``per_round`` calls of ``round_trip``."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(per_round):
            round_trip()
        times.append((time.perf_counter_ns() - t0) / per_round / 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=3, help="runs of every lesson")
    parser.add_argument("--lessons", default="", help="comma-separated prefixes (00,03); default: all")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    wanted = [p.strip() for p in args.lessons.split(",") if p.strip()]
    lessons = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if not wanted or p.name[:2] in wanted]
    if not lessons:
        sys.exit(f"no lesson notebook matches {args.lessons!r}")
    speed_before, calls_before = echo_rtt_us(), same_thread_rtt_us()
    rng = random.Random(args.seed)
    runs: dict[str, list[dict[str, float]]] = {p.name: [] for p in lessons}
    for k in range(args.k):
        order = lessons[:]
        rng.shuffle(order)
        for path in order:
            runs[path.name].append(run_lesson(path))
        print(f"round {k + 1}/{args.k} done", flush=True)

    speed_after, calls_after = echo_rtt_us(), same_thread_rtt_us()

    def median(name: str, part: str) -> float:
        return statistics.median(r.get(part, 0.0) for r in runs[name])

    rows = [[name.removesuffix(".ipynb"), f"{median(name, 'total'):.1f}", f"{median(name, 'cells'):.1f}",
             f"{median(name, 'start'):.2f}", f"{median(name, 'shutdown'):.2f}",
             f"{min(r['total'] for r in runs[name]):.1f}–{max(r['total'] for r in runs[name]):.1f}"]
            for name in runs]
    totals = [sum(runs[name][k]["total"] for name in runs) for k in range(args.k)]
    slow = [r["shutdown"] for rs in runs.values() for r in rs if r["shutdown"] > SLOW_SHUTDOWN_S]
    # Each round's total with every slow shutdown counted at the median shutdown instead.
    usual = statistics.median(r["shutdown"] for rs in runs.values() for r in rs)
    without = [sum(r["total"] - (r["shutdown"] - usual if r["shutdown"] > SLOW_SHUTDOWN_S else 0.0)
                   for r in (runs[name][k] for name in runs)) for k in range(args.k)]
    rows.append(["**all lessons**", f"**{statistics.median(totals):.1f}**",
                 f"{statistics.median(sum(runs[n][k]['cells'] for n in runs) for k in range(args.k)):.1f}",
                 "", "", f"{min(totals):.1f}–{max(totals):.1f}"])
    notes = [
        f"{args.k} runs of each of {len(lessons)} lessons, in rounds (shuffled order, seed {args.seed}); "
        "medians per lesson, and the range over the runs.",
        "total = start + cells + shutdown + nbclient's own work; cells is what a learner's Run All waits for.",
        f"Slow kernel shutdowns (over {SLOW_SHUTDOWN_S:g} s: ipykernel's flush race, see the script's docstring): "
        f"{len(slow)} of {sum(len(rs) for rs in runs.values())}"
        + (f", {statistics.median(slow):.1f} s each (median)" if slow else "") + ". "
        f"The course's total per round with each of them at the usual {usual:.2f} s: "
        + ", ".join(f"{t:.1f}" for t in without) + f" s (median {statistics.median(without):.1f} s).",
        f"This machine's speed at socket calls: a 1-byte round trip on loopback driven by one thread "
        f"(``same_thread_rtt_us``, the calls alone) {calls_before:.1f} µs before the runs, {calls_after:.1f} µs "
        f"after; thread to thread (``echo_rtt_us``, which adds waking the other thread, slow on an idle VM) "
        f"{speed_before:.1f} µs before, {speed_after:.1f} µs after.",
    ]
    report("run_all", "Run All: each lesson in a fresh kernel, as nbmake runs it", rows, notes=notes, by_make=False,
           columns=("lesson", "total (s)", "cells (s)", "kernel start (s)", "shutdown (s)", "range of totals (s)"))


if __name__ == "__main__":
    main()
