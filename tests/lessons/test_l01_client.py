"""Lessons 01 (client) and 02 (server): their helpers on real loopback sockets, and the
notebooks themselves, executed twice in one kernel and with the exercises solved."""
from __future__ import annotations

import socket

import pytest

from socketlessons.lessons.l01_client import demos as lc
from socketlessons.measure import Point, sweep
from socketlessons.widgets import RunSettings


@pytest.mark.usefixtures("no_leaks")
def test_send_takes_part_when_nobody_reads():
    with lc.never_accepting_listener(rcvbuf=8192) as address:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            sock.connect(address)  # completes although nobody accepts: the backlog
            sock.settimeout(0.5)
            took = sock.send(b"x" * 1_000_000)
            assert 0 < took < 1_000_000
            with pytest.raises(TimeoutError):
                sock.sendall(b"x" * 1_000_000)


@pytest.mark.usefixtures("no_leaks")
def test_never_accepting_listener_never_answers():
    with lc.never_accepting_listener() as address, socket.create_connection(address, timeout=0.2) as sock:
        sock.sendall(b"anyone there?")
        with pytest.raises(TimeoutError):
            sock.recv(1)


@pytest.mark.usefixtures("no_leaks")
def test_source_server_sends_what_was_asked_for():
    with lc.SourceServer() as source, socket.create_connection(source.address, timeout=5) as sock:
        for n in (0, 1, 100_000, 3 * 1024 * 1024 + 1):
            sock.sendall(lc.SourceServer.COUNT.pack(n))
            got = 0
            while got < n:
                chunk = sock.recv(1 << 20)
                assert chunk
                got += len(chunk)
            assert got == n
        sock.settimeout(0.1)
        with pytest.raises(TimeoutError):  # nothing more than asked for
            sock.recv(1)


@pytest.mark.usefixtures("no_leaks")
def test_recv_timer_counts_calls_of_a_fixed_payload():
    with lc.SourceServer() as source:
        measure = lc.recv_timer(source.address)
        points = sweep(lambda b: measure(RunSettings(b, 4096, b"", b, "x")), [16, 4096], repeats=5, budget_s=0.2)
    assert points[0].extra["calls"] == 256 and points[0].extra["ideal"] == 256
    assert 1 <= points[1].extra["calls"] <= 4 and points[1].extra["ideal"] == 1


@pytest.mark.usefixtures("no_leaks")
def test_panel_measurements_outlive_stop_all():
    """Run All ends with stop_all(); pressing Run on a panel afterwards must still measure."""
    import socketlessons

    with lc.SourceServer() as source, socketlessons.SinkServer() as sink:
        socketlessons.stop_all()
        recv_points = sweep(lambda b: lc.recv_timer(source)(RunSettings(b, 4096, b"", b, "x")), [4096],
                            repeats=3, budget_s=0.2)
        send_points = sweep(lambda k: lc.send_timer(sink)(RunSettings(k, 0, b"x" * k, k, "x")), [64],
                            repeats=3, budget_s=0.2)
        assert source.running and sink.running
    assert recv_points[0].extra["calls"] >= 1 and send_points[0].median_ns > 0


@pytest.mark.usefixtures("no_leaks")
def test_connect_with_open_holds_the_connections():
    from socketlessons import EchoServer

    with EchoServer() as echo:
        with lc.connect_with_open(echo.address)(5) as op:
            assert echo.connections >= 5 or _eventually(lambda: echo.connections >= 5)
            op()
        assert _eventually(lambda: echo.connections == 0)


@pytest.mark.usefixtures("no_leaks")
def test_socket_with_open_holds_the_connections():
    from socketlessons import EchoServer

    with EchoServer() as echo:
        with lc.socket_with_open(echo.address)(5) as op:
            assert _eventually(lambda: echo.connections >= 5)
            op()
        assert _eventually(lambda: echo.connections == 0)


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("full", [False, True])
def test_one_recv_timer_runs_on_a_pair_in_this_thread(full):
    points = sweep(lc.one_recv_timer(full=full), [16, 4096], repeats=3, budget_s=0.1)
    assert [p.x for p in points] == [16, 4096] and all(p.median_ns > 0 for p in points)


def test_one_recv_timer_refuses_a_full_buffer_too_big_to_fit():
    with pytest.raises(ValueError, match="bufsize"):
        with lc.one_recv_timer(full=True)(1 << 20):
            pass


def _eventually(cond, deadline_s=2.0):
    import time

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _points(xs, ys, series="", extra=None):
    return [Point(x, y, y, y, 5, series, dict(extra(x)) if extra else {}) for x, y in zip(xs, ys)]


def test_connect_verdict_flat_is_confirmed_and_growing_is_not():
    flat = _points([1, 8, 64, 256], [20_000, 20_100, 19_900, 20_050])
    v = lc.connect_verdict(5_000, 20_000, 12_000, flat)
    assert v.status == "confirmed" and "O(n)" in v.text and "15 µs" in v.text
    growing = _points([1, 8, 64, 256], [20_000, 160_000, 1_280_000, 5_120_000])
    assert lc.connect_verdict(5_000, 20_000, 12_000, growing).status != "confirmed"


def test_socket_verdict_is_computed_from_the_points():
    flat = _points([1, 8, 64, 256], [1_300, 1_310, 1_290, 1_305])
    v = lc.socket_verdict(flat)
    assert v.status == "confirmed" and "256 connections open" in v.text
    growing = _points([1, 8, 64, 256], [1_300, 10_400, 83_200, 332_800])
    assert lc.socket_verdict(growing).status == "contradicted"


def test_send_verdict_separates_fixed_cost_and_slope():
    xs = [2**i for i in range(4, 25)]
    ys = [800 + 0.25 * x for x in xs]  # 0.8 µs per call + 0.25 ns per byte
    verdict, measured, growth = lc.send_verdict(_points(xs, ys))
    assert growth.label == "linear" and verdict.status == "refined"
    assert "804 ns" in measured and "0.25 ns/byte" in measured  # the smallest send: 800 + 16 × 0.25
    assert "3.14 KiB" in verdict.text  # 804 / 0.25 = 3,216 bytes: where the fixed cost stops dominating


def test_send_verdict_needs_points():
    with pytest.raises(ValueError, match="at least 3"):
        lc.send_verdict(_points([1, 2], [1, 2]))


def test_recv_verdicts_from_synthetic_measurements():
    payload = 65536
    by_buf = _points([16, 256, 4096, 65536], [payload / b * 650 + 20_000 for b in [16, 256, 4096, 65536]],
                     extra=lambda b: {"calls": payload // b, "ideal": payload // b})
    one = _points([16, 256, 4096, 65536, 1 << 20], [6_400, 6_410, 6_420, 6_400, 6_450])
    full = _points([16, 256, 4096, 65536], [6_400, 6_500, 6_800, 12_000])
    calls, size, measured = lc.recv_verdicts(by_buf, one, full)
    assert calls.status == "refined" and "650 ns" in calls.text
    assert size.status == "refined" and "65,536×" in size.text and "bytes it actually returns" in size.text
    assert "6.4 µs at 16 B" in measured
    linear = _points([16, 256, 4096, 65536], [16 * 10, 256 * 10, 4096 * 10, 65536 * 10])
    assert lc.recv_verdicts(by_buf, linear)[1].status == "confirmed"


def test_verdict_table_shows_every_row():
    table = lc.verdict_table([("socket()", "O(1)", "5 µs", "confirmed"),
                              ("recv()", "O(k)", "x", lc.Verdict("refined", "t"))])
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and "refined" in html and "confirmed" in str(table)

