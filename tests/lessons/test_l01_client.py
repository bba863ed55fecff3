"""Lessons 01 (client) and 02 (server): their helpers on real loopback sockets, and the
notebooks themselves, executed twice in one kernel and with the exercises solved."""
from __future__ import annotations

import socket

import pytest

from socketlessons.lessons.l01_client import demos as lc
from socketlessons.measure import Point


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
def test_with_open_holds_and_tops_up_the_connections():
    from socketlessons import EchoServer

    calls = []
    with EchoServer() as echo:
        with lc.with_open(echo.address, lambda: calls.append(1)) as make:
            with make(5) as op:
                assert _eventually(lambda: echo.connections >= 5)
                op()
            first = list(make.socks)
            with make(8):
                assert make.socks[:5] == first and len(make.socks) == 8  # topped up, not reopened
            with make(2):
                assert len(make.socks) == 2
        assert make.socks == [] and _eventually(lambda: echo.connections == 0)
    assert calls == [1]


def test_with_open_refuses_bad_input():
    with pytest.raises(TypeError, match="op must be"):
        lc.with_open(("127.0.0.1", 1), "not a function")
    with pytest.raises(ValueError, match="n must be"):
        with lc.with_open(("127.0.0.1", 1), lambda: None)(2.5):
            pass


@pytest.mark.usefixtures("no_leaks")
def test_drained_connection_waits_until_every_byte_was_read():
    with lc.DrainedConnection() as conn:
        conn.sendall(b"x" * 1_000_000)
        assert conn.wait_empty(5)
        assert conn.sent == 1_000_000 and conn._read == 1_000_000


def test_drained_connection_refuses_bad_buffers():
    with pytest.raises(ValueError, match="sndbuf"):
        lc.DrainedConnection(sndbuf=10)


def test_sweep_rounds_interleaves_and_keeps_the_low_quantile():
    order = []

    def make(x):
        def op():
            order.append(x)
        op.extra = {"tag": x}
        return op

    points = lc.sweep_rounds(make, [1, 2, 3], budget_s=0.05, min_rounds=4, max_rounds=4)
    assert [p.x for p in points] == [1, 2, 3] and all(p.n == 4 for p in points)
    assert all(p.extra["tag"] == p.x and p.extra["rounds"] == 4 for p in points)
    assert all(p.extra["min"] <= p.extra["low"] <= p.median_ns <= p.q3_ns for p in points)
    # after calibration, rounds alternate forward and backward: 1 2 3, 3 2 1, 1 2 3, 3 2 1
    timed = [x for i, x in enumerate(order) if i == 0 or x != order[i - 1]]
    assert timed[-9:] == [1, 2, 3, 2, 1, 2, 3, 2, 1]  # runs of one x collapsed: 3 3 reads as 3


def test_sweep_rounds_stops_when_enough_and_within_twice_its_budget():
    import time

    seen = []
    points = lc.sweep_rounds(lambda x: (lambda: None), [1, 2], budget_s=5, min_rounds=5,
                             enough=lambda pts: seen.append(len(pts)) or True)
    assert seen and points[0].extra["rounds"] == 5
    t0 = time.perf_counter()
    lc.sweep_rounds(lambda x: (lambda: time.sleep(0.001)), [1], budget_s=0.05, min_rounds=1000, max_rounds=2000)
    assert time.perf_counter() - t0 < 2  # min_rounds yields to twice the budget (0.1 s here)


def _spin(seconds):
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_sweep_rounds_stops_early_once_every_low_quantile_is_pinned_down():
    """Batches that agree (a fixed 100 µs spin) settle after a few dozen rounds; with
    ``settle=None`` the same sweep runs to ``max_rounds``."""
    points = lc.sweep_rounds(lambda x: (lambda: _spin(1e-4 * x)), [1, 2], budget_s=20, max_rounds=400)
    assert 29 <= points[0].extra["rounds"] < 400, points[0].extra["rounds"]
    points = lc.sweep_rounds(lambda x: (lambda: _spin(1e-4 * x)), [1, 2], budget_s=20, max_rounds=60,
                             settle=None)
    assert points[0].extra["rounds"] == 60


def test_sweep_rounds_keeps_measuring_while_the_low_quantile_is_in_doubt():
    """One batch in ten is fast, the rest ten times slower: the 10th percentile sits between the
    two, its interval spans both, and the sweep measures to its limit instead of settling."""
    import itertools

    pattern = itertools.cycle([2e-4] + [2e-3] * 9)
    points = lc.sweep_rounds(lambda x: (lambda: _spin(next(pattern))), [1], budget_s=20, max_rounds=80)
    assert points[0].extra["rounds"] == 80


@pytest.mark.parametrize("kwargs, match", [
    ({"budget_s": 0}, "budget_s"), ({"budget_s": float("nan")}, "budget_s"),
    ({"min_rounds": 2}, "min_rounds"), ({"max_rounds": 3}, "max_rounds"),
    ({"settle": 0}, "settle"), ({"settle": 2}, "settle"), ({"settle": True}, "settle"),
])
def test_sweep_rounds_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lc.sweep_rounds(lambda x: (lambda: None), [1], **kwargs)


def _eventually(cond, deadline_s=2.0):
    import time

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _points(xs, ys, series="", extra=None, low=None):
    """Synthetic points; ``low`` (a list) sets the cost estimate the verdicts read."""
    pts = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        more = dict(extra(x)) if extra else {}
        if low is not None:
            more["low"] = low[i]
        pts.append(Point(x, y, y * 0.95, y * 1.05, 21, series, more))
    return pts


def _noisy(ys, seed=1, amount=0.15):
    import random

    rnd = random.Random(seed)
    return [y * (1 + rnd.uniform(0, amount)) for y in ys]  # noise only adds time


def test_cost_is_the_low_quantile_when_there_is_one():
    p = _points([1], [100], low=[80])[0]
    assert lc.cost(p) == 80 and lc.cost(_points([1], [100])[0]) == 100


def test_connect_verdict_flat_is_confirmed_and_says_its_numbers():
    flat = _points([1, 8, 64, 256], [20_000, 20_100, 19_900, 20_050])
    v = lc.connect_verdict(5_000, 20_000, 12_000, flat)
    assert v.status == "confirmed" and "O(n)" in v.text and "15 µs" in v.text and "1.2×" in v.text
    assert "20 µs with 1 open, 20.1 µs with 256" in v.text and "operating-system kernel" in v.text


def test_connect_verdict_growing_is_refined_with_the_growth_named():
    growing = _points([1, 8, 64, 256], [20_000, 160_000, 1_280_000, 5_120_000])
    v = lc.connect_verdict(5_000, 20_000, 12_000, growing)
    assert v.status == "refined" and "super-linear" not in v.text and "linear" in v.text
    assert "5.12 ms with 256" in v.text


def test_connect_verdict_too_few_points_says_what_would_help_not_run_again():
    v = lc.connect_verdict(5_000, 20_000, 12_000, _points([1, 256], [20_000, 20_000]))
    assert v.status == "inconclusive" and "cannot change" in v.text and "run the cell again" not in v.text


def test_connect_verdict_noisy_blames_the_load_and_suggests_running_again():
    xs = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    wild = [20_000 * f for f in (1, 9, 1, 7, 1, 8, 2, 9, 1)]
    pts = _points(xs, wild, extra=lambda x: {"load": 7.5})
    v = lc.connect_verdict(5_000, 20_000, 12_000, pts)
    assert v.status == "inconclusive" and "load average 7.5" in v.text and "run the cell again" in v.text


def test_socket_verdict_is_computed_from_the_points():
    flat = _points([1, 8, 64, 256], [1_300, 1_310, 1_290, 1_305])
    v = lc.socket_verdict(flat)
    assert v.status == "confirmed" and "256 connections open" in v.text and "1.3 µs with 1 open" in v.text
    growing = _points([1, 8, 64, 256], [1_300, 10_400, 83_200, 332_800])
    v = lc.socket_verdict(growing)
    assert v.status == "contradicted" and "333 µs with 256 open" in v.text and "256×" in v.text


SEND_XS = list(lc.SEND_SIZES)


def test_send_verdict_clean_linear_with_fixed_cost_is_refined_with_its_numbers():
    ys = [800 + 0.25 * x for x in SEND_XS]  # 0.8 µs per call + 0.25 ns per byte
    verdict, measured, growth = lc.send_verdict(_points(SEND_XS, ys))
    assert growth.label == "linear" and verdict.status == "refined"
    assert "804 ns" in measured and "0.25 ns/byte" in measured  # the smallest send: 800 + 16 × 0.25
    assert "3.14 KiB" in verdict.text  # 804 / 0.25 = 3,216 bytes: where the fixed cost stops dominating
    assert "4 GB/s" in verdict.text and "6 sizes from 128 KiB to 4 MiB" in verdict.text


def test_send_verdict_linear_without_a_fixed_cost_is_confirmed():
    verdict, _, _ = lc.send_verdict(_points(SEND_XS, [0.25 * x for x in SEND_XS]))
    assert verdict.status == "confirmed" and "Refined" not in verdict.text


def test_send_verdict_reads_the_low_quantile_not_the_median():
    medians = [1e6] * len(SEND_XS)  # what a busy machine's medians could look like: flat nonsense
    lows = [800 + 0.25 * x for x in SEND_XS]
    assert lc.send_verdict(_points(SEND_XS, medians, low=lows))[0].status == "refined"


def test_send_verdict_noisy_but_linear_is_still_linear():
    ys = _noisy([800 + 0.25 * x for x in SEND_XS])
    verdict, _, growth = lc.send_verdict(_points(SEND_XS, ys))
    assert growth.label == "linear" and verdict.status == "refined"


def test_send_verdict_constant_is_contradicted():
    verdict, _, _ = lc.send_verdict(_points(SEND_XS, [1000] * len(SEND_XS)))
    assert verdict.status == "contradicted" and "did not grow" in verdict.text


def test_send_verdict_super_linear_names_the_cause_that_can_make_it():
    ys = [800 + 1e-3 * x ** 1.5 for x in SEND_XS]
    verdict, _, growth = lc.send_verdict(_points(SEND_XS, ys))
    assert growth.label == "super-linear" and verdict.status == "refined"
    assert "more per byte" in verdict.text and "fixed cost" not in verdict.text


def test_send_verdict_sub_linear_blames_the_fixed_cost():
    ys = [200_000 + 0.25 * x for x in SEND_XS]  # a huge fixed cost bends the fitted range
    verdict, _, growth = lc.send_verdict(_points(SEND_XS, ys))
    assert growth.label == "sub-linear" and verdict.status == "refined" and "fixed cost" in verdict.text


def test_send_verdict_too_few_large_sizes_says_why_and_not_run_again():
    xs = [16, 64, 256, 1024, 4096, 131072, 262144]
    verdict, measured, _ = lc.send_verdict(_points(xs, [800 + 0.25 * x for x in xs]))
    assert verdict.status == "inconclusive" and "only 2 sizes" in verdict.text
    assert "cannot change" in verdict.text and measured == "too few large sizes"


def test_send_verdict_needs_points():
    with pytest.raises(ValueError, match="at least 3"):
        lc.send_verdict(_points([1, 2], [1, 2]))


def test_slope_settled():
    assert lc.slope_settled(_points(SEND_XS, [0.25 * x for x in SEND_XS]))
    assert not lc.slope_settled(_points(SEND_XS, [0.25 * x * (1 + 3 * (i % 2)) for i, x in enumerate(SEND_XS)]))
    assert not lc.slope_settled(_points([16, 131072], [1, 2]))


def _by_buf(per_call_ns=650, payload=65536, noise=None):
    bufs = [16, 256, 4096, 65536]
    ys = [payload / b * per_call_ns + 20_000 for b in bufs]
    return _points(bufs, noise(ys) if noise else ys, extra=lambda b: {"calls": payload // b, "ideal": payload // b})


def test_recv_verdicts_from_synthetic_measurements():
    one = _points([16, 256, 4096, 65536, 1 << 20], [6_400, 6_410, 6_420, 6_400, 6_450])
    full = _points([16, 256, 4096, 65536], [6_400, 6_500, 6_800, 12_000])
    calls, size, measured = lc.recv_verdicts(_by_buf(), one, full)
    assert calls.status == "refined" and "650 ns" in calls.text and "4,096 recv calls" in calls.text
    assert "R² 1.00" in calls.text
    assert size.status == "refined" and "65,536×" in size.text and "bytes it actually returns" in size.text
    assert "6.4 µs at 16 B" in measured
    linear = _points([16, 256, 4096, 65536], [16 * 10, 256 * 10, 4096 * 10, 65536 * 10])
    assert lc.recv_verdicts(_by_buf(), linear)[1].status == "confirmed"


def test_recv_verdicts_calls_not_following_is_inconclusive_and_too_few_says_so():
    one = _points([16, 256, 4096, 65536, 1 << 20], [6_400] * 5)
    scattered = _points([16, 256, 4096, 65536], [20_000, 900_000, 30_000, 800_000],
                        extra=lambda b: {"calls": 65536 // b})
    assert lc.recv_verdicts(scattered, one)[0].status == "inconclusive"
    same = _points([16, 256], [1, 2], extra=lambda b: {"calls": 4})
    v = lc.recv_verdicts(same, one)[0]
    assert v.status == "inconclusive" and "cannot change" in v.text


def test_recv_verdicts_too_few_buffer_sizes_is_inconclusive():
    one = _points([16, 32], [6_400, 6_400])
    v = lc.recv_verdicts(_by_buf(), one)[1]
    assert v.status == "inconclusive" and "only" in v.text and "run the cell again" not in v.text


def test_verdict_table_shows_every_row():
    table = lc.verdict_table([("socket()", "O(1)", "5 µs", "confirmed"),
                              ("recv()", "O(k)", "x", lc.Verdict("refined", "t"))])
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and "refined" in html and "confirmed" in str(table)


def test_every_claim_returns_a_status_and_leaks_nothing(no_leaks):
    from socketlessons.lessons.l01_client.claims import CLAIMS

    assert {c.name for c in CLAIMS} >= {"socket() is O(1)", "send() is O(k)"}
    for claim in CLAIMS:
        assert claim.run() in ("confirmed", "refined", "contradicted", "inconclusive"), claim.name


def test_send_verdict_states_the_numbers_it_was_given():
    """Property: whatever fixed cost and cost per byte the points carry, the verdict prints those."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(fixed=st.floats(100, 50_000), per_byte=st.floats(0.01, 5))
    def check(fixed, per_byte):
        ys = [fixed + per_byte * x for x in SEND_XS]
        verdict, measured, _ = lc.send_verdict(_points(SEND_XS, ys))
        smallest = lc._fmt_ns(fixed + per_byte * SEND_XS[0])
        assert measured.startswith(smallest + " + ")
        if verdict.status == "refined" and "Refined for small k" in verdict.text:
            assert f"a fixed {smallest}" in verdict.text
        big = [i for i, x in enumerate(SEND_XS) if x >= lc.SEND_FIT_FROM]
        fitted = lc.fit_affine([SEND_XS[i] for i in big], [ys[i] for i in big]).per_unit_ns
        if "confirmed for large k" in verdict.text:
            assert f"{fitted:.3g} ns per byte" in verdict.text and f"{1 / fitted:.3g} GB/s" in verdict.text
        else:  # a fixed cost this large bends the fitted range: sub-linear, and the verdict says why
            assert "sub-linear" in verdict.text and smallest in verdict.text

    check()
