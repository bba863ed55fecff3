"""Lesson helpers of 03 (server loop) and 04 (UDP): the claims the lessons print hold on this machine."""
from __future__ import annotations

import sys

import pytest

from socketlessons.lessons.l03_server_loop import demos as loop
from socketlessons.measure import Point
from socketlessons.servers._base import ServerEvent


@pytest.mark.parametrize("spans, want", [
    ([], 0), ([(0, 10)], 1), ([(0, 10), (10, 20)], 1), ([(0, 10), (5, 15)], 2),
    ([(0, 10), (1, 9), (2, 8), (20, 30)], 3), ([(0, 100), (10, 20), (30, 40)], 2),
])
def test_max_concurrency(spans, want):
    assert loop.max_concurrency(spans) == want


def test_service_intervals_from_events():
    ev = [ServerEvent(1, "accept", 1), ServerEvent(2, "recv", 1), ServerEvent(5, "send", 1),
          ServerEvent(6, "recv", 1), ServerEvent(9, "send", 1), ServerEvent(3, "recv", 2)]
    assert loop.service_intervals(ev) == {1: (2, 9)}  # conn 2 never got a reply


def test_growth_verdicts_name_linear_and_constant():
    pts = [Point(n, n * 1e6, n * 1e6, n * 1e6, 5, "seq") for n in (1, 2, 4, 8, 16)]
    pts += [Point(n, 2e6, 2e6, 2e6, 5, "flat") for n in (1, 2, 4, 8, 16)]
    out = loop.growth_verdicts(pts, {"seq": "linear", "flat": "constant"})
    assert "confirmed" in out["seq"][1] and "confirmed" in out["flat"][1]
    wrong = loop.growth_verdicts(pts, {"seq": "constant"})
    assert "contradicted" in wrong["seq"][1]


def test_fd_limit_is_read_and_never_lowered():
    before = loop.fd_limit()
    if sys.platform == "win32":
        assert before.soft is None and "512" in str(before)
        return
    after = loop.raise_fd_limit(10)  # below the current limit: nothing to do
    assert after.soft == before.soft and "nothing to raise" in str(after)
    assert before.max_connections == (before.soft - 100) // 2


def test_sequential_waiting_grows_with_n_and_others_do_not():
    seq = loop.latency_vs_clients(["sequential", "asyncio"], [1, 8], cost=0.01, repeats=1)
    by = {(p.series, p.x): p.median_ns for p in seq}
    # the last of 8 waits for the 7 others on the sequential loop: several times N = 1's wait
    assert by[("sequential (seed)", 8)] > 3 * by[("sequential (seed)", 1)]  # 8x on a quiet machine
    # ...and several times the asyncio server's last client at N = 8
    assert by[("sequential (seed)", 8)] > 3 * by[("asyncio", 8)]


def test_waiting_verdict_is_computed_from_the_clients():
    from socketlessons.load import run_load
    from socketlessons.servers._loops import SequentialServer

    with SequentialServer(cost=0.01) as server:
        result = run_load(server.address, 5)
    assert "confirmed" in loop.waiting_verdict(result, 0.01)
    assert "not the expected" in loop.waiting_verdict(result, 0.1)  # a claim it does not support


def test_panel_runs_headless_and_a_slider_changes_the_run():
    panel = loop.LoopPanel(clients=4, cost_ms=2)
    assert panel.run(), panel.error
    first = {p.x for p in panel.points}
    assert first == {1, 2, 4} and len(panel.points) == 12
    assert set(panel.verdicts) == {"sequential (seed)", "thread per client", "selectors loop", "asyncio"}
    assert "At N = 4, the last client waited: sequential (seed)" in panel.summary()
    panel.clients.value = 2
    assert panel.run()
    assert {p.x for p in panel.points} == {1, 2}
    assert "run with N up to at least 4" in panel.summary()  # two points: no fit, and it says so
    assert panel.plot.redraws > 2


def test_idle_connections_cost_threads_only_for_thread_per_client():
    a = loop.idle_cost("asyncio", 200, active=3, requests=3)
    t = loop.idle_cost("threaded", 200, active=3, requests=3)
    assert a.held == 200 and t.held == 200
    assert a.active.ok and t.active.ok
    assert t.threads_added >= 190 > a.threads_added  # one OS thread per idle connection vs none


def test_compare_timelines_draws_one_panel_per_server():
    shown = loop.compare_timelines(("sequential", "selectors"), clients=3, cost=0.005)
    assert len(shown.figure.axes) == 2
    assert "at most 1" in shown.figure.axes[0].get_title()
    assert shown._repr_png_().startswith(b"\x89PNG")

