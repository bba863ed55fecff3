"""Lesson helpers of 03 (server loop) and 04 (UDP): the claims the lessons print hold on this machine."""
from __future__ import annotations

import asyncio
import socket
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketlessons.lessons.l03_server_loop import demos as loop
from socketlessons.lessons.l03_server_loop import network
from socketlessons.lessons.l03_server_loop.claims import CLAIMS
from socketlessons.lessons.l03_server_loop.runner import LearnerServer, work
from socketlessons.lessons.l05_best_practices import wait_until
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


def _points(series, ys, ns=(1, 2, 4, 8, 16)):
    return [Point(n, y, y, y, 3, series, {"min_ns": y}) for n, y in zip(ns, ys)]


COST = 0.005


@pytest.mark.parametrize("ys, expected, status", [
    ([n * 5e6 for n in (1, 2, 4, 8, 16)], "linear", "confirmed"),               # clean linear
    ([5.1e6] * 5, "constant", "confirmed"),                                      # clean constant
    ([5.1e6] * 5, "linear", "contradicted"),
    ([n * 5e6 for n in (1, 2, 4, 8, 16)], "constant", "contradicted"),
    ([5.3e6, 9e6, 22e6, 38e6, 85e6], "linear", "confirmed"),                     # noisy but linear (R² < 0.97)
    ([5.2e6, 7.9e6, 5.6e6, 9.5e6, 6.1e6], "constant", "confirmed"),              # noisy but flat
    ([5e6, 5e6, 5e6, 40e6, 80e6], "constant", "contradicted"),                   # a cliff (a pool of 4): not flat
    ([5e6, 7.5e6, 12.5e6, 22.5e6, 42.5e6], "constant", "inconclusive"),          # half a cost per client
    ([2e6, 9e6, 30e6, 90e6, 200e6], "linear", "confirmed"),                      # a queue on a busy machine
    ([2e6, 9e6, 30e6, 90e6, 200e6], "constant", "contradicted"),
    # a busy machine slowed every N alike: flat, but N = 16 took as long as 16 queued requests
    ([75e6, 78e6, 80e6, 82e6, 85e6], "linear", "inconclusive"),
])
def test_growth_verdict_on_synthetic_points(ys, expected, status):
    v = loop.growth_verdict("s", _points("s", ys), expected, COST)
    assert v.status == status, v
    assert f"{ys[-1] / 1e6:.1f} ms" in v.text  # it states the number it was given


def test_growth_verdict_says_why_when_it_cannot_judge():
    few = loop.growth_verdict("s", _points("s", [5e6, 10e6], ns=(1, 2)), "linear", COST)
    assert few.status == "inconclusive" and "at least 8" in few.text and "again" not in few.text
    free = loop.growth_verdict("s", _points("s", [1e5] * 5), "linear", 0.0)
    assert free.status == "inconclusive" and "at least 1 ms" in free.text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e4, max_value=1e10), min_size=5, max_size=5))
def test_growth_verdict_states_only_its_own_numbers(ys):
    v = loop.growth_verdict("s", _points("s", ys), "constant", COST)
    assert v.status in ("confirmed", "contradicted", "inconclusive")
    assert f"{ys[-1] / 1e6:.1f} ms" in v.text


def test_fd_limit_is_read_and_never_lowered():
    before = loop.fd_limit()
    if sys.platform == "win32":
        assert before.soft is None and "512" in str(before)
        return
    after = loop.raise_fd_limit(10)  # below the current limit: nothing to do
    assert after.soft == before.soft and "nothing to raise" in str(after)
    assert before.max_connections == (before.soft - 100) // 2


def test_sequential_waiting_grows_with_n_and_others_do_not():
    seq = loop.latency_vs_clients(["sequential", "asyncio"], [1, 8], cost=0.01)  # fastest of up to 5 runs
    by = {(p.series, p.x): p.median_ns for p in seq}
    # the last of 8 waits for the 7 others on the sequential loop: several times N = 1's wait
    assert by[("sequential (reference)", 8)] > 3 * by[("sequential (reference)", 1)]  # 8x on a quiet machine
    # ...and several times the asyncio server's last client at N = 8
    assert by[("sequential (reference)", 8)] > 3 * by[("asyncio", 8)]


def test_waiting_verdict_is_computed_from_the_clients():
    from socketlessons.load import run_load
    from socketlessons.servers._loops import SequentialServer

    with SequentialServer(cost=0.01) as server:
        result = run_load(server.address, 5)
    assert loop.waiting_verdict(result, 0.01).status == "confirmed"
    assert loop.waiting_verdict(result, 0.1).status == "contradicted"  # a claim it does not support


def test_panel_runs_headless_and_a_slider_changes_the_run():
    panel = loop.LoopPanel(clients=8, cost_ms=2)
    assert panel.run(), panel.error
    assert {p.x for p in panel.points} == {1, 2, 4, 8} and len(panel.points) == 16
    assert set(panel.verdicts) == {"sequential (reference)", "thread per client", "selectors loop", "asyncio"}
    assert "At N = 8, the last client waited" in panel.summary()
    panel.clients.value = 2
    assert panel.run()
    assert {p.x for p in panel.points} == {1, 2}
    assert "at least 8" in panel.summary()  # two points: no verdict, and it says so
    assert panel.plot.redraws > 2


def test_panel_stop_ends_the_run_and_says_so():
    panel = loop.LoopPanel(clients=64, cost_ms=5)
    assert panel.start_run()
    assert not panel.start_run() and "already" in panel.status.value  # a second click says so
    panel.stop()
    assert panel._run.wait(60)
    assert "Stopped" in panel.summary()
    assert max((p.x for p in panel.points), default=0) < 64


def test_idle_connections_cost_threads_only_for_thread_per_client():
    a = loop.idle_cost("asyncio", 200, active=3, requests=3)
    t = loop.idle_cost("threaded", 200, active=3, requests=3)
    assert a.held == 200 and t.held == 200
    assert a.active.ok and t.active.ok
    assert t.threads_added >= 190 > a.threads_added  # one OS thread per idle connection vs none



def test_idle_cost_in_a_process_waits_until_the_server_holds_every_connection():
    """In its own process the server is counted by its descriptors (and threads): measured before
    this wait, thread per client came out 0.3 KiB and 0.01 threads per connection, 'contradicted'."""
    a = loop.idle_cost("asyncio", 200, active=3, requests=3, mode="process")
    t = loop.idle_cost("threaded", 200, active=3, requests=3, mode="process")
    assert a.held == 200 and t.held == 200
    assert t.threads_added >= 190 > a.threads_added
    assert t.rss_per_conn > 0

def test_compare_timelines_draws_one_panel_per_server():
    shown = loop.compare_timelines(("sequential", "selectors"), clients=3, cost=0.005)
    assert len(shown.figure.axes) == 2
    assert "at most 1" in shown.figure.axes[0].get_title()
    assert shown._repr_png_().startswith(b"\x89PNG")



# ---- the learner's loops, run by the harness -----------------------------------------------------

def _echo_loop(listener):
    while True:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)


async def _async_loop(listener):
    import asyncio

    async def handle(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("fn", [_echo_loop, _async_loop])
def test_learner_server_runs_a_cell_loop_and_stops_fast(fn):
    import time

    from socketlessons.load import run_load

    server = LearnerServer(fn, name="t-learner").start()
    assert run_load(server.address, 4).ok
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 2.0 and not server.errors


_OPEN_HANDLERS: list[object] = []


async def _handler_that_never_closes(reader, writer):
    _OPEN_HANDLERS.append(writer)
    await asyncio.sleep(3600)  # cancelled by stop(), inside the await: its writer is never closed


async def _async_loop_of_open_clients(listener):
    server = await asyncio.start_server(_handler_that_never_closes, sock=listener)
    async with server:
        await server.serve_forever()


@pytest.mark.usefixtures("no_leaks")
def test_stopping_an_async_loop_closes_the_clients_it_left_open(monkeypatch):
    """Stopped with clients connected, an ``async def`` loop's transports are closed before its
    event loop is (a CI run once saw "unclosed transport" warnings from lesson 03's claims)."""
    import gc
    import sys

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    _OPEN_HANDLERS.clear()
    with LearnerServer(_async_loop_of_open_clients) as server:
        clients = [socket.create_connection(server.address, timeout=5) for _ in range(5)]
        assert wait_until(lambda: len(_OPEN_HANDLERS) == 5, 10), len(_OPEN_HANDLERS)
    _OPEN_HANDLERS.clear()
    for client in clients:
        assert client.recv(1) == b""  # the server closed its end
        client.close()
    gc.collect()
    assert [repr(u.exc_value) for u in unraisable] == []


@pytest.mark.usefixtures("no_leaks")
def test_learner_server_keeps_the_error_that_ended_the_loop():
    def dies(listener):
        conn, _ = listener.accept()
        conn.close()
        raise RuntimeError("boom")

    from socketlessons.load import run_load

    with LearnerServer(dies) as server:
        run_load(server.address, 1, timeout=0.5)
    assert [e.error for e in server.errors] == ["RuntimeError: boom"]


def test_learner_server_and_work_refuse_bad_input():
    with pytest.raises(TypeError, match="loop"):
        LearnerServer(42)
    with pytest.raises(ValueError, match="cost"):
        work.set(cost=-1)
    with pytest.raises(ValueError, match="kind"):
        work.set(kind="spin")


# ---- network or algorithm ------------------------------------------------------------------------

LATS = (0.1, 0.5, 2.0, 10.0, 50.0)
BASE = {lat: lat + 0.1 for lat in LATS}


@pytest.mark.parametrize("work_ms, status, phrase", [
    (0.05, "confirmed", "the network, from 0.1 ms up"),
    (100.0, "contradicted", "the algorithm, at every latency"),
])
def test_network_verdict_on_synthetic_times(work_ms, status, phrase):
    times = {("alg", 100): {lat: b + work_ms for lat, b in BASE.items()}}
    v = network.judge(times, BASE)
    assert v.status == status and phrase in v.text, v


def test_network_verdict_names_the_crossover():
    times = {("cheap", 100): {lat: b + 0.05 for lat, b in BASE.items()},
             ("costly", 1000): {lat: b + 5.0 for lat, b in BASE.items()}}
    v = network.judge(times, BASE)
    assert v.status == "refined"
    assert ("costly, n = 1,000 (5.0 ms of work per request, the request less the no-work one): the algorithm "
            "below 10 ms, the network from 10 ms up") in v.text
    assert network.judge({}, BASE).status == "inconclusive"
    # the work timed on its own is what the sentence quotes, whatever the noisy difference says
    timed = network.judge(times, BASE, {("cheap", 100): 0.047, ("costly", 1000): 4.91})
    assert "costly, n = 1,000 (4.9 ms of work per request, timed on its own)" in timed.text, timed
    assert "cheap, n = 100 (47 µs of work per request, timed on its own)" in timed.text, timed


@pytest.mark.usefixtures("no_leaks")
def test_network_vs_algorithm_measures_real_requests():
    r = network.network_vs_algorithm({"sort": sorted}, ns=(100,), latencies_ms=(0.1, 5.0), plot=False)
    assert set(r.times_ms) == {("sort", 100)}
    assert r.times_ms[("sort", 100)][5.0] >= 5.0  # the relay's sleep never ends early
    assert 0 < r.work_ms[("sort", 100)] < r.times_ms[("sort", 100)][0.1]  # sorting 100 numbers: less than a request
    assert "timed on its own" in r.verdict.text
    with pytest.raises(ValueError, match="n must be"):
        network.network_vs_algorithm({"sort": sorted}, ns=(0,))


# ---- claims ---------------------------------------------------------------------------------------

@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("claim", CLAIMS, ids=[c.name for c in CLAIMS])
def test_each_claim_returns_a_status_and_leaks_nothing(claim):
    assert claim.run() in ("confirmed", "refined", "contradicted", "inconclusive")


@pytest.mark.usefixtures("no_leaks")
def test_idle_panel_measures_both_at_the_same_n_and_refuses_a_second_click():
    panel = loop.IdlePanel(n=200)
    assert panel.start_run()
    assert not panel.start_run() and "already" in panel.status.value
    assert panel._run.wait(120)
    assert [r.held for r in panel.results] == [200, 200]
    assert "at N = 200" in panel.status.value


def test_loop_panel_says_when_a_run_will_not_fit_the_budget():
    panel = loop.LoopPanel(["sequential"], clients=1024, cost_ms=20)
    assert panel.planned_seconds([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]) > loop.RUN_BUDGET_S
    panel.clients.value = 1024
    assert panel.start_run()
    assert "beyond the" in panel.status.value
    panel.stop()
    assert panel._run.wait(60)


def test_the_wait_fit_legend_names_its_model_not_a_formula():
    """The legend of the waits plot says "a queue, +5.00 ms per client", the words the verdict
    uses; a change to plots.fit_label once turned it into "−152 µs + 5.54 ms × x"."""
    from socketlessons.measure import Point
    from socketlessons.plots import fit_label

    pts = [Point(n, n * 5e6, n * 5e6, n * 5e6, 3, "seq") for n in (1, 2, 4, 8)]
    line = loop._fit_line(pts, 0.005)
    assert fit_label(line) == "fit: a queue, +5.00 ms per client", fit_label(line)


def test_growth_verdict_names_the_point_that_drags_its_line():
    """Measured beside busy kernels: fastest runs 2.1, 4.3, 29 and 17 ms at N = 1, 2, 4, 8 (2 ms of
    CPU work): a queue, but the sentence must say that N = 4 lies far off its line."""
    from socketlessons.lessons.l03_server_loop.demos import growth_verdict
    from socketlessons.measure import Point

    def pts(vals):
        return [Point(n, v * 1e6, v * 1e6, v * 1e6, 3, "s", {"min_ns": v * 1e6}) for n, v in vals]

    v = growth_verdict("s", pts([(1, 2.1), (2, 4.3), (4, 29), (8, 17)]), "linear", 0.002)
    assert v.status == "confirmed" and "but N = 4 waited 29.0 ms, far off the line" in v.text, v
    clean = growth_verdict("s", pts([(1, 2.1), (2, 4.2), (4, 8.3), (8, 16.5)]), "linear", 0.002)
    assert "far off" not in clean.text, clean
