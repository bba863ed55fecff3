"""Lessons 01 (client) and 02 (server): their helpers on real loopback sockets, and the
notebooks themselves, executed twice in one kernel and with the exercises solved."""
from __future__ import annotations

import socket
import sys

import pytest

from socketlessons.lessons.l02_server import demos as ls
from socketlessons.measure import Point, Timing

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Windows binds a port in TIME_WAIT without options")


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _points(xs, ys, series="", extra=None):
    return [Point(x, y, y, y, 5, series, dict(extra(x)) if extra else {}) for x, y in zip(xs, ys)]


@pytest.mark.usefixtures("no_leaks")
def test_backlog_connects_before_accept_and_keeps_the_data():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        attempts = [ls.try_connect(listener.getsockname(), timeout=0.2) for _ in range(5)]
        try:
            connected = [a for a in attempts if a.outcome == "connected"]
            assert 1 <= len(connected) < 5, [str(a) for a in attempts]
            assert all(a.outcome in ("connected", "timed out", "refused") for a in attempts)
            connected[0].sock.sendall(b"early")
            listener.settimeout(2)
            conn, _ = listener.accept()
            with conn:
                assert conn.recv(100) == b"early"
            report = ls.backlog_report(attempts, 2)
            assert f"{len(connected)} of 5 clients connected" in report
        finally:
            for a in attempts:
                a.close()


def test_try_connect_records_a_refusal():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, not listening
        attempt = ls.try_connect(probe.getsockname(), timeout=0.5)
    assert attempt.outcome == "refused" and attempt.sock is None


def test_accept_cost_is_microseconds_not_a_wait():
    timing = ls.accept_cost(11)
    assert isinstance(timing, Timing) and timing.n == 11
    assert timing.median_ns < 50e6  # no waiting inside: far below the 50 ms a wait would show


def test_accept_waits_wait_without_working():
    points = ls.accept_waits([0.05, 0.15])
    wall = [p for p in points if p.series.startswith("wall")]
    cpu = [p for p in points if p.series.startswith("CPU")]
    assert [p.x for p in wall] == [0.05, 0.15] and len(cpu) == 2
    assert wall[1].median_ns >= 0.14e9 and wall[1].median_ns > wall[0].median_ns
    assert all(c.median_ns < w.median_ns / 5 for c, w in zip(cpu, wall))
    verdict = ls.accept_verdict(points, ls.accept_cost(5))
    assert verdict.status in ("refined", "inconclusive")
    assert ("O(1)" in verdict.text) if verdict.status == "refined" else ("again" in verdict.text)


def test_accept_waits_refuses_long_delays():
    with pytest.raises(ValueError, match="between 0 and 2"):
        ls.accept_waits([5])


def test_ephemeral_range_is_sane_and_port_zero_uses_it_on_linux():
    low, high, where = ls.ephemeral_port_range()
    assert 1024 <= low < high <= 65535 and where
    if sys.platform.startswith("linux") and "read from" in where:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            assert low <= s.getsockname()[1] <= high


@posix_only
def test_a_port_in_time_wait_needs_reuseaddr_on_both_runs():
    port = ls.port_in_time_wait()
    with socket.socket() as s, pytest.raises(OSError) as info:
        s.bind(("127.0.0.1", port))
    assert info.value.errno in ls.address_in_use_errnos()
    port = ls.port_in_time_wait(reuseaddr=True)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


@linux_only
def test_time_wait_is_visible_in_proc():
    port = ls.port_in_time_wait()
    assert ls.time_wait_count(port) >= 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert ls.time_wait_count(s.getsockname()[1]) == 0


@posix_only
def test_restart_outcomes_tries_the_four_combinations():
    outcomes = ls.restart_outcomes()
    assert len(outcomes.rows) == 4
    assert outcomes.outcome(True, True) == "ok"
    assert "Address already in use" in outcomes.outcome(False, False)
    assert "<table>" in outcomes._repr_html_()


def test_listen_with_open_holds_listeners_and_times_a_whole_listen(no_leaks):
    from socketlessons.lessons.l02_server import demos as ls

    with ls.listen_with_open()(3) as op:
        op()
    with pytest.raises(ValueError, match="2000"):
        with ls.listen_with_open()(5000):
            pass
    with pytest.raises(ValueError):
        ls.listen_with_open("192.0.2.1")


def test_listen_verdict_flat_is_confirmed_and_growing_is_not():
    from socketlessons.lessons.l02_server import demos as ls

    v = ls.listen_verdict(_points([1, 8, 64, 256], [8_000, 8_100, 7_900, 8_050]))
    assert v.status == "confirmed" and "256 listeners" in v.text and "7.9 to 8.1 µs" in v.text
    assert ls.listen_verdict(_points([1, 8, 64, 256], [8_000, 64_000, 512_000, 2_048_000])).status == "contradicted"

