"""The four server loops of lesson 03 under N concurrent clients, and many idle connections (issue 5).

Two questions:

1. Latency and throughput against N: the sequential loop (the reference's), thread-per-client,
   ``selectors`` and ``asyncio``, each in a child process (``mode="process"``: the load
   clients in this process do not share its GIL), at N = 1, 10, 100 and 1,000 clients, each
   sending 5 requests of 64 bytes. Two processing costs: none (pure echo) and a 1 ms wait per
   request (``work="sleep"``: a database call, say). Rounds are interleaved (every server at
   every N, then again), and each cell is the median over the rounds of that round's median,
   p99 and "last client" latency and requests per second.
2. Idle connections: how many concurrent connections the asyncio server holds from ONE process
   (server and clients in the same process, as in a kernel: two descriptors per connection),
   with the memory each costs and the p99 echo latency of 20 active clients meanwhile; and the
   thread-per-client server at the same N. Target: at least 9,000 held, p99 < 50 ms.

Run: ``python benchmarks/bench_loops.py`` (or ``make bench``). Loopback only; under 3 minutes.
Writes ``benchmarks/results/loops.md``.
"""

from __future__ import annotations

import datetime
import statistics
import sys
import time

from _common import RESULTS, command, machine, markdown_table

from socketlessons.lessons.l03_server_loop import idle_cost, raise_fd_limit
from socketlessons.load import run_load
from socketlessons.servers._loops import LOOP_SERVERS

NS = (1, 10, 100, 1_000)
REQUESTS = 5
COSTS = (0.0, 0.001)
ROUNDS = 3
#: Past this many seconds, stop adding rounds (at least one is always complete).
BUDGET_S = 100.0
ACTIVE = 20
TARGET_HELD = 9_000
TARGET_P99_MS = 50.0


def loop_table() -> tuple[list[tuple[str, ...]], list[str]]:
    samples: dict[tuple[float, str, int], list[tuple[float, float, float, float, bool]]] = {}
    t0 = time.monotonic()
    servers = {(cost, kind): cls(cost=cost, mode="process").start()
               for cost in COSTS for kind, cls in LOOP_SERVERS.items()}
    try:
        for rnd in range(ROUNDS):
            if rnd and time.monotonic() - t0 > BUDGET_S:
                break
            for cost in COSTS:
                for n in NS:
                    kinds = list(LOOP_SERVERS)
                    kinds = kinds[rnd % len(kinds):] + kinds[: rnd % len(kinds)]  # rotate who goes first
                    for kind in kinds:
                        r = run_load(servers[cost, kind].address, n, requests=REQUESTS, timeout=60)
                        samples.setdefault((cost, kind, n), []).append(
                            (r.latency_ms(50), r.latency_ms(99), r.latency_ms(100), r.requests_per_s, r.ok))
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for cost in COSTS:
        for n in NS:
            for kind, cls in LOOP_SERVERS.items():
                s = samples[cost, kind, n]
                med = statistics.median
                rows.append((f"{cost * 1000:g} ms", f"{n:,}", cls.label, f"{med(x[0] for x in s):.3g} ms",
                             f"{med(x[1] for x in s):.3g} ms", f"{med(x[2] for x in s):.3g} ms",
                             f"{med(x[3] for x in s):,.0f}", "yes" if all(x[4] for x in s) else "**no**"))
    rounds = len(next(iter(samples.values())))
    notes = [f"{rounds} interleaved rounds in {time.monotonic() - t0:.0f} s; each cell is the median over rounds.",
             f"Each of N clients connects, then all send {REQUESTS} requests of 64 B one after another; latency "
             "is request sent to whole reply back, measured by the client (one asyncio thread in this process).",
             "The sequential loop serves a client's 5 requests before accepting the next client: its median stays "
             "low while the last client (max) waits for all N - 1 others, so max grows linearly with N.",
             "A 1 ms wait per request caps the sequential loop near 1,000 requests/s whatever N; the others "
             "overlap the waits, so their requests/s grows with N until the Python process saturates."]
    return rows, notes


def idle_table() -> tuple[list[tuple[str, ...]], list[str], bool]:
    limit = raise_fd_limit(20_000)
    if limit.soft is None:
        return [], ["no descriptor limit to read on this platform"], False
    n = min((limit.soft - 400) // 2 - ACTIVE, 9_990)
    rows, held_ok = [], False
    for kind in ("asyncio", "threaded"):
        r = idle_cost(kind, n, active=ACTIVE, requests=50, timeout=120)
        p99 = r.p99_ms
        if kind == "asyncio":
            held_ok = r.held >= TARGET_HELD and p99 < TARGET_P99_MS and r.failed == 0
        rows.append((LOOP_SERVERS[kind].label, f"{r.held:,} / {n:,}", f"{r.rss_per_conn / 1024:.1f} KiB",
                     f"{r.threads_added / max(r.held, 1):.2f}", f"{r.open_s:.2f} s",
                     f"{r.active.latency_ms(50):.2f} ms" if r.active else "-", f"{p99:.2f} ms",
                     ("yes" if held_ok else "**no**") if kind == "asyncio" else "(no target)"))
    notes = [f"{limit}", f"Idle connections wanted: (soft limit - 400) / 2 - {ACTIVE} active = {n:,}; server and "
             "clients in this one process (thread mode), as in a notebook kernel.",
             "Memory: growth of this process's resident set per held connection, client socket included (the "
             "same for both rows); threads: OS threads added per connection.",
             f"Target (asyncio row): held ≥ {TARGET_HELD:,} with p99 < {TARGET_P99_MS:g} ms for {ACTIVE} active "
             "clients × 50 requests while the idle ones stay open."]
    return rows, notes, held_ok


def main() -> int:
    t0 = time.monotonic()
    loops, loop_notes = loop_table() if "--idle-only" not in sys.argv else ([], [])
    idle, idle_notes, ok = idle_table()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        "## Server loops under N clients (lesson 03)", "",
        f"Machine: {machine()}.  ",
        f"Command: `{command()}` (or `make bench`), {now}, {time.monotonic() - t0:.0f} s in all.", "",
        markdown_table(loops, ("cost/request", "N", "server", "median", "p99", "max (last client)", "requests/s",
                               "all answered?")), "",
        *(f"- {note}" for note in loop_notes), "",
        "## Many idle connections: coroutines vs threads", "",
        markdown_table(idle, ("server", "held / wanted", "memory per conn", "threads per conn", "open time",
                              f"median ({ACTIVE} active)", f"p99 ({ACTIVE} active)", "target met?")), "",
        *(f"- {note}" for note in idle_notes),
    ]).rstrip() + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loops.md").write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
