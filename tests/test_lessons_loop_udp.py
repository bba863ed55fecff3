"""Lesson helpers of 03 (server loop) and 04 (UDP): the claims the lessons print hold on this machine."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from socketlessons import UDPEchoServer
from socketlessons.lessons import loop, udp
from socketlessons.measure import Point
from socketlessons.servers._base import ServerEvent

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.fixture(scope="module", autouse=True)
def _panel_worker_warm():
    """The shared panel worker thread lives as long as the process, and matplotlib keeps the
    font files it rendered with open per thread: start and use it before the leak checks."""
    udp.PingPanel(loss=0.0, count=1).run()
    loop.LoopPanel(clients=4, cost_ms=0).run()  # log axes and fits: the fonts of mathtext too


@pytest.fixture(autouse=True)
def _panel_worker_alive():
    """The shared panel worker retires after a few idle seconds and starts again on the next run:
    wake it before each test's leak check looks at the threads, so a restart during a slow run
    is not counted as a thread left behind (autouse: it runs before ``no_leaks``)."""
    from socketlessons.widgets import submit_to_panel_worker

    ran = threading.Event()
    submit_to_panel_worker(ran.set)
    assert ran.wait(30), "the panel worker did not run a no-op within 30 s"
    yield


# ---- 03: pure helpers ------------------------------------------------------------------------

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


# ---- 03: measured claims ---------------------------------------------------------------------

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


# ---- 04: the UDP claims hold here -------------------------------------------------------------

def test_small_buffer_truncates_and_the_rest_is_lost():
    t = udp.truncation_probe(size=100, bufsize=10)
    if sys.platform == "win32":
        assert t.got is None and "OSError" in t.error
    else:
        assert t.got == 10 and not t.rest_arrived
        assert "90 bytes are lost" in str(t)


@pytest.mark.skipif(not hasattr(socket.socket, "recvmsg"), reason="no recvmsg on this platform")
def test_recvmsg_reports_msg_trunc():
    text = udp.msg_trunc_probe(size=100, bufsize=10)
    assert "MSG_TRUNC is set" in text
    if sys.platform.startswith("linux"):
        assert "returned 100" in text


@pytest.mark.skipif(sys.platform != "linux", reason="other systems may cap datagrams lower (macOS: 9216)")
def test_largest_ipv4_datagram_is_65507_and_one_more_raises():
    limit, error = udp.largest_datagram("127.0.0.1")
    assert limit == 65_507
    assert "Message too long" in error
    with udp.udp_pair() as (tx, rx):
        with pytest.raises(OSError, match="too long"):
            tx.sendto(b"x" * 65_508, rx.getsockname())


def test_datagram_boundaries_are_kept():
    with udp.udp_pair() as (tx, rx):
        for m in (b"one", b"two", b"three"):
            tx.sendto(m, rx.getsockname())
        assert [rx.recvfrom(1024)[0] for _ in range(3)] == [b"one", b"two", b"three"]


def test_exchange_counts_match_what_the_server_did():
    with UDPEchoServer(loss=0.2, duplicate=0.2, jitter=0.005, seed=11) as server:
        ex = udp.numbered_exchange(server.address, 60, wait=0.2)
    assert ex.lost == server.dropped > 0
    assert ex.duplicates == server.duplicated > 0
    assert udp.arrival_plot(ex)._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize("arrivals, lost, dups, late", [
    ((0, 1, 2), 0, 0, 0), ((1, 0, 2), 0, 0, 1), ((0, 0, 2), 1, 1, 0), ((2, 1, 0, 0), 0, 1, 2),
])
def test_exchange_arithmetic(arrivals, lost, dups, late):
    ex = udp.Exchange(3, arrivals)
    assert (ex.lost, ex.duplicates, ex.reordered) == (lost, dups, late)


def test_rtt_summary():
    assert "loss 50%" in udp.rtt_summary([0.001, None])
    assert "all lost" in udp.rtt_summary([None, None])


def test_ping_panel_measures_the_loss_it_was_given():
    panel = udp.PingPanel(loss=0.0, count=20, timeout=0.05)
    assert panel.run()
    assert panel.rtts.count(None) == 0
    panel.loss.value = 0.9
    assert panel.run()
    assert panel.rtts.count(None) > 5  # 90 % loss, no retries: most pings lost
    assert "you measured" in panel.summary
    assert panel.snapshot().data.startswith(b"\x89PNG")


def test_datagram_timer_sends_and_receives_k_bytes():
    with udp.datagram_timer()(4096) as op:
        op()  # a datagram that did not come back would raise TimeoutError here
    with pytest.raises(ValueError, match="65,507"):
        with udp.datagram_timer()(70_000):
            pass


def _line(xs, fixed, per_byte, series="udp"):
    return [Point(x, fixed + per_byte * x, fixed + per_byte * x, fixed + per_byte * x, 5, series, {}) for x in xs]


def test_datagram_verdict_names_the_fixed_and_per_byte_costs():
    xs = [16, 128, 1024, 8192, 65507]
    v = udp.datagram_verdict(_line(xs, 5_000, 0.03))
    assert v.status == "refined" and "5.00 µs" in v.text and "0.030 ns per byte" in v.text
    assert udp.datagram_verdict(_line(xs, 5_000, 0.0)).status == "contradicted"
    noisy = [Point(x, y, y, y, 5, "udp", {}) for x, y in zip(xs, [9_000, 2_000, 8_000, 1_000, 9_500])]
    assert udp.datagram_verdict(noisy).status == "inconclusive"
    with pytest.raises(ValueError):
        udp.datagram_verdict(_line(xs[:2], 5_000, 0.03))


def test_chance_range_narrows_with_more_pings():
    assert udp.chance_range(0.2, 60) == "With 60 pings, chance alone gives about 10% to 30% (in 95 % of runs)."
    assert udp.chance_range(0.2, 6000) == "With 6000 pings, chance alone gives about 19% to 21% (in 95 % of runs)."
    assert "about 0% to 0%" in udp.chance_range(0.0, 60)
