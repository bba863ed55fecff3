"""The verdicts lesson 08 prints, as the verdict-reliability benchmark runs them."""

from __future__ import annotations

from ...claims import Claim
from ...measure import LoadWatch, Status
from ...servers import EchoServer, SinkServer
from .demos import (
    GilResult,
    RequestServer,
    gil_rounds,
    gil_verdict,
    nagle_verdict,
    sndbuf_points_verdict,
    sndbuf_sweep,
    switch_verdict,
    time_requests,
)

#: As in section 5's cell: 5 alternating windows of 0.05 s per condition.
GIL_ROUNDS, GIL_WINDOW_S = 5, 0.05


def _nagle_stalls() -> Status:
    """Section 2's cell: 8 write-write-read requests with Nagle on, 8 with TCP_NODELAY."""
    with RequestServer() as server:
        nagle = time_requests(server.address, nodelay=False, n=8)
        nodelay = time_requests(server.address, nodelay=True, n=8)
    return nagle_verdict(nagle, nodelay).status


def _sndbuf_curve() -> Status:
    """Section 3's panel: one interleaved sweep over its sizes into a sink in its own process."""
    with SinkServer(mode="process") as sink, LoadWatch() as watch:
        points = sndbuf_sweep(sink.address)
    return sndbuf_points_verdict(points, load=watch.load).status


def _gil_trials() -> dict[str, GilResult]:
    """Section 5's cell: the five conditions in alternating rounds (``gil_rounds``), by label."""
    with EchoServer() as echo_t, EchoServer(mode="process") as echo_p:
        trials = gil_rounds([
            dict(address=echo_t.address, label="thread server, quiet"),
            dict(address=echo_t.address, label="thread server, busy thread", busy=True),
            dict(address=echo_p.address, label="process server, quiet", server="process"),
            dict(address=echo_p.address, label="process server, busy thread", busy=True, server="process"),
            dict(address=echo_t.address, label="thread server, busy, switch 0.5 ms", busy=True, switch_s=0.0005)])
    return {t.label: t for t in trials}


def _busy_thread_slows(server_mode: str) -> Status:
    t = _gil_trials()
    return gil_verdict(t[f"{server_mode} server, quiet"], t[f"{server_mode} server, busy thread"]).status


def _placement_alone() -> Status:
    t = _gil_trials()
    return gil_verdict(t["thread server, quiet"], t["process server, quiet"]).status


def _shorter_switch_interval_helps() -> Status:
    t = _gil_trials()
    return switch_verdict(t["thread server, busy thread"], t["thread server, busy, switch 0.5 ms"]).status


CLAIMS = [
    Claim(lesson="l08_under_the_hood", name="write-write-read stalls with Nagle on, not with TCP_NODELAY",
          truth="confirmed",
          why="Nagle holds the second small write until the first is ACKed, and the server delays that ACK "
              "(40 ms on Linux) because it has no reply yet; TCP_NODELAY sends at once",
          run=_nagle_stalls),
    Claim(lesson="l08_under_the_hood", name="a bigger SO_SNDBUF moves a MiB faster", truth="refined",
          why="measured on this machine (interleaved sweeps, 7+ transfers per size): at 4-16 KiB transfers stall on "
              "a timer (typically 40-150 ms per MiB), from 64 KiB up none do, and their fastest transfers cost "
              "0.13-0.4 ms per MiB at every size: a cliff, above which more buffer changes little. Under a CPU hog "
              "per core some runs see no stall at all (20+ transfers of 4 KiB at 0.2-1 ms per MiB) and the "
              "typical transfer of every size waits whole scheduler ticks: those runs are inconclusive (a busy machine "
              "cannot show that no size stalls)",
          run=_sndbuf_curve),
    Claim(lesson="l08_under_the_hood", name="a busy Python thread slows a thread server's round trips",
          truth="confirmed",
          why="client and server threads share the kernel's GIL with the busy thread and wait up to the 5 ms "
              "switch interval after each socket call (measured ×6-600 on the mean)",
          run=lambda: _busy_thread_slows("thread")),
    Claim(lesson="l08_under_the_hood", name="a busy Python thread slows round trips to a process server too",
          truth="confirmed",
          why="the server has its own GIL, but the client runs in the kernel beside the busy thread",
          run=lambda: _busy_thread_slows("process")),
    Claim(lesson="l08_under_the_hood", name="with no busy thread, no GIL wait: a process server costs what a thread "
                                            "server costs, or differs by where the OS ran the two ends",
          truth="confirmed", acceptable=frozenset({"refined"}),
          why="both use blocking recv/sendall, which release the GIL, and nothing else holds it for long. What a "
              "round trip costs then depends on the CPUs the operating system picks: pinned to one CPU (taskset -c 0) "
              "either server echoed in 15-16 µs; unpinned, 45-75 µs in most windows, and the process server alone "
              "got the client's CPU (15-18 µs) in 3 of 12; another day 5-7 µs either way with spells of 63-77 µs. "
              "So the two are the same within ×1.5 (confirmed), or several times apart by microseconds, not by "
              "the milliseconds of a GIL wait (refined, with that cause named)",
          run=_placement_alone),
    Claim(lesson="l08_under_the_hood", name="a shorter switch interval cuts the GIL waits", truth="confirmed",
          why="sys.setswitchinterval(0.0005) makes the busy thread let go of the GIL after 0.5 ms instead of 5 ms, "
              "so each wait it causes is shorter (the verdict compares the typical length of the waits; how many "
              "round trips wait is a race that goes either way)",
          run=_shorter_switch_interval_helps),
]
