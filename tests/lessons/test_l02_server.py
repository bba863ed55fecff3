"""Lesson 02 (the TCP server): its harness on real loopback sockets, its verdicts on synthetic
points (each outcome, and the sentences against the numbers), its claims, and the socket code
its cells teach (TIME_WAIT and SO_REUSEADDR), run from the notebook itself."""
from __future__ import annotations

import re
import socket
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketlessons.lessons.l02_server import claims
from socketlessons.lessons.l02_server import demos as ls
from socketlessons.measure import HEADLINE_MIN_POINTS, Load, Point, Timing, summarize

from ._cells import cell_with, code_cells

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Windows binds a port in TIME_WAIT without options")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def _points(xs, lows, series="socket()+bind()+listen()+close()", extra=None):
    """Sweep points built by hand: the median 10 % above the 10th percentile, as measured."""
    return [Point(x, y * 1.1, y, y * 1.2, 15, series, dict(extra or {}), "", y * 0.98, y) for x, y in zip(xs, lows)]


# ---- the backlog ------------------------------------------------------------------------------

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


def _attempt(outcome, ms):
    return ls.ConnectAttempt(None, outcome, ms / 1000)


def test_backlog_report_says_what_the_counts_show():
    three_of_five = [_attempt("connected", 0.1)] * 3 + [_attempt("timed out", 203)] * 2
    text = ls.backlog_report(three_of_five, 2)
    assert "3 of 5 clients connected" in text and "2 timed out after 203 ms" in text
    assert "not exactly the 2" in text
    refused = ls.backlog_report([_attempt("connected", 0.1)] * 2 + [_attempt("refused", 0.2)] * 3, 2)
    assert "3 were refused at once" in refused and "not exactly" not in refused and "timed out" not in refused
    everyone = ls.backlog_report([_attempt("connected", 0.1)] * 5, 2)
    assert "Every client got in" in everyone
    with pytest.raises(ValueError, match="attempts"):
        ls.backlog_report([], 2)


@settings(max_examples=60, deadline=None)
@given(connected=st.integers(0, 8), timed_out=st.integers(0, 8), refused=st.integers(0, 8),
       backlog=st.integers(0, 16), ms=st.integers(1, 5000))
def test_backlog_report_states_only_the_numbers_it_was_given(connected, timed_out, refused, backlog, ms):
    attempts = ([_attempt("connected", 0.1)] * connected + [_attempt("timed out", ms)] * timed_out
                + [_attempt("refused", 0.3)] * refused)
    if not attempts:
        return
    text = ls.backlog_report(attempts, backlog)
    given_numbers = {connected, timed_out, refused, backlog, len(attempts), ms, 1}  # 1: "a second or more"
    stated = {int(n) for n in re.findall(r"(?<![\w.])\d+(?![\w.])", text)}
    assert stated <= given_numbers, (stated - given_numbers, text)


# ---- accept(): waiting is not work ------------------------------------------------------------

def test_accept_cost_is_microseconds_not_a_wait():
    timing = ls.accept_cost(11)
    assert isinstance(timing, Timing) and timing.n == 11
    assert timing.low_ns < 50e6  # no waiting inside: far below the 50 ms a wait would show


def test_accept_waits_wait_without_working():
    points = ls.accept_waits([0.05, 0.15])
    wall = [p for p in points if p.series.startswith("wall")]
    cpu = [p for p in points if p.series.startswith("CPU")]
    assert [p.x for p in wall] == [0.05, 0.15] and len(cpu) == 2
    assert wall[1].median_ns >= 0.14e9 and wall[1].median_ns > wall[0].median_ns
    assert all(c.median_ns < w.median_ns / 5 for c, w in zip(cpu, wall))


def test_accept_waits_refuses_long_delays():
    with pytest.raises(ValueError, match="between 0 and 2"):
        ls.accept_waits([5])


def _waits(delays, cpu_ms):
    out = []
    for d, c in zip(delays, cpu_ms):
        out.append(Point(d, d * 1e9 + 2e6, d * 1e9, d * 1e9, 1, "wall time in accept()"))
        out.append(Point(d, c * 1e6, c * 1e6, c * 1e6, 1, "CPU time of the waiting thread"))
    return out


def test_accept_verdict_refined_when_the_thread_slept():
    cost = summarize([4000.0] * 10 + [9000.0])
    v = ls.accept_verdict(_waits([0.05, 0.1, 0.2, 0.4], [0.03, 0.04, 0.05, 0.04]), cost)
    assert v.status == "refined"
    assert "0.05 to 0.4 s" in v.text and "0.052 to 0.402 s" in v.text and "0.03 to 0.05 ms" in v.text
    assert "4 µs" in v.text and "11 rounds" in v.text and "again" not in v.text


def test_accept_verdict_contradicted_when_the_thread_worked_while_waiting():
    cost = summarize([4000.0] * 11)
    v = ls.accept_verdict(_waits([0.05, 0.4], [0.05, 120.0]), cost)
    assert v.status == "contradicted" and "29.9%" in v.text and "0.402 s" in v.text
    assert "measuring again will not change that" in v.text


def test_accept_verdict_needs_two_delays():
    with pytest.raises(ValueError, match="two delays"):
        ls.accept_verdict(_waits([0.1], [0.05]), summarize([4000.0] * 5))


# ---- bind() + listen(): O(1) ------------------------------------------------------------------

def _open_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()


@pytest.mark.usefixtures("no_leaks")
def test_time_with_listeners_open_times_each_size_and_closes_its_pool():
    points = ls.time_with_listeners_open(_open_listener, [0, 4, 32], total_budget_s=0.5)
    assert [p.x for p in points] == [0, 4, 32]
    assert all(p.low_ns > 0 and p.n >= 3 for p in points)


def test_time_with_listeners_open_refuses_bad_input():
    with pytest.raises(TypeError, match="op must be a function"):
        ls.time_with_listeners_open(None)
    with pytest.raises(ValueError, match="2000"):
        ls.time_with_listeners_open(_open_listener, [1, 5000])
    with pytest.raises(ValueError, match="two different sizes"):
        ls.time_with_listeners_open(_open_listener, [8, 8])
    with pytest.raises(ValueError):
        ls.time_with_listeners_open(_open_listener, host="192.0.2.1")


def test_listen_verdict_flat_is_confirmed_with_its_own_numbers():
    v = ls.listen_verdict(_points(SIZES, [3500, 3550, 3480, 3520, 3510, 3490, 3530, 3505, 3560]))
    assert v.status == "confirmed", v.text
    assert "1 to 256 other listeners" in v.text and "3.5 to 3.6 µs" in v.text


def test_listen_verdict_growing_is_contradicted():
    v = ls.listen_verdict(_points(SIZES, [3500 * x for x in SIZES]))
    assert v.status == "contradicted", v.text


def test_listen_verdict_noisy_but_flat_is_still_flat():
    noisy = [3500, 3900, 3400, 3800, 3450, 3950, 3500, 3850, 3550]  # ±10 % scatter, no trend
    v = ls.listen_verdict(_points(SIZES, noisy))
    assert v.status == "confirmed" and "3.4 to 4.0 µs" in v.text, v.text


def test_listen_verdict_cliff_is_not_confirmed():
    cliff = [3500] * 5 + [35000] * 4
    v = ls.listen_verdict(_points(SIZES, cliff))
    assert v.status == "contradicted" and "jumps" in v.text and "3.5 to 35.0 µs" in v.text, v.text


def test_listen_verdict_too_few_sizes_says_so_without_run_again():
    v = ls.listen_verdict(_points(SIZES[:HEADLINE_MIN_POINTS - 1], [3500] * (HEADLINE_MIN_POINTS - 1)))
    assert v.status == "inconclusive" and "running again with the same sizes cannot change" in v.text, v.text


def test_listen_verdict_names_the_sizes_skipped_under_a_low_descriptor_limit():
    pts = _points(SIZES[:7], [3500] * 7, extra={"skipped": [128, 256], "limit": 256})
    v = ls.listen_verdict(pts, Load(0.5, 2))
    assert "Not measured: 128, 256 listeners" in v.text and "only 256 descriptors" in v.text


def test_listen_figure_draws_both_estimators():
    shown = ls.listen_figure(_points(SIZES, [3500] * 9))
    labels = [t.get_text() for t in shown.figure.axes[0].get_legend().get_texts()]
    assert any("10th percentile" in t for t in labels) and any("median" in t for t in labels)
    assert shown._repr_png_().startswith(b"\x89PNG")


# ---- port 0, TIME_WAIT and SO_REUSEADDR, as the notebook's cells teach them ---------------------

def test_ephemeral_range_is_sane_and_port_zero_uses_it_on_linux():
    low, high, where = ls.ephemeral_port_range()
    assert 1024 <= low < high <= 65535 and where
    if sys.platform.startswith("linux") and "read from" in where:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            assert low <= s.getsockname()[1] <= high


def _lesson_functions():
    """``run_and_stop`` and ``restart``, exactly as the notebook's cells define them."""
    cells = code_cells("02_server.ipynb")
    namespace = {"socket": socket}
    exec(cell_with(cells, "def run_and_stop("), namespace)
    exec(cell_with(cells, "def restart("), namespace)
    return namespace["run_and_stop"], namespace["restart"]


@posix_only
@pytest.mark.usefixtures("no_leaks")
def test_the_lessons_restart_needs_reuseaddr_on_both_runs():
    run_and_stop, restart = _lesson_functions()
    assert restart(run_and_stop(reuse=False), reuse=False).startswith("bind() failed")
    assert restart(run_and_stop(reuse=True), reuse=True).startswith("bound")
    if sys.platform.startswith("linux"):  # the TIME_WAIT connection keeps the old run's option
        assert restart(run_and_stop(reuse=False), reuse=True).startswith("bind() failed")


@posix_only
@pytest.mark.usefixtures("no_leaks")
def test_the_restart_cell_shows_the_effect_of_editing_the_reuseaddr_line(capsys):
    run_and_stop, _ = _lesson_functions()
    cell = cell_with(code_cells("02_server.ipynb"), "restarted.setsockopt(")
    exec(cell, {"socket": socket, "run_and_stop": run_and_stop})
    assert "restarted server: listening on port" in capsys.readouterr().out
    edited = "\n".join(("# " + line) if "setsockopt" in line else line for line in cell.splitlines())
    exec(edited, {"socket": socket, "run_and_stop": run_and_stop})  # the learner's edit: the line commented out
    assert "Address already in use" in capsys.readouterr().out


@linux_only
def test_time_wait_is_visible_in_proc_after_the_lessons_run():
    run_and_stop, _ = _lesson_functions()
    port = run_and_stop(reuse=False)
    assert ls.time_wait_count(port) >= 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert ls.time_wait_count(s.getsockname()[1]) == 0


def test_the_lesson_shows_the_reuseaddr_line_in_a_cell():
    cells = code_cells("02_server.ipynb")
    line = "setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)"
    assert sum(line in c for c in cells) >= 2
    assert not any("restart_outcomes" in c or "port_in_time_wait" in c for c in cells)


# ---- the claims the verdict benchmark runs ----------------------------------------------------

@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.name)
def test_each_claim_runs_once_and_returns_a_status(claim):
    assert claim.lesson == "l02_server" and claim.why
    status = claim.run()
    assert status in ("confirmed", "refined", "contradicted", "inconclusive")


def test_accept_figure_draws_the_delay_as_a_reference_line():
    shown = ls.accept_figure(_waits([0.05, 0.4], [0.03, 0.04]))
    ax = shown.figure.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "the client's delay" in labels and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="accept_waits"):
        ls.accept_figure([])


@settings(max_examples=40, deadline=None)
@given(lows=st.lists(st.floats(1_000, 1e6), min_size=HEADLINE_MIN_POINTS, max_size=9))
def test_listen_verdict_quotes_the_range_it_was_given(lows):
    v = ls.listen_verdict(_points(SIZES[:len(lows)], lows))
    assert f"took {min(lows) / 1000:.1f} to {max(lows) / 1000:.1f} µs" in v.text, v.text
    assert f"with 1 to {SIZES[len(lows) - 1]} other listeners open" in v.text


@settings(max_examples=40, deadline=None)
@given(cpu_ms=st.lists(st.floats(0.001, 300), min_size=2, max_size=4), cost_ns=st.floats(500, 1e6))
def test_accept_verdict_quotes_its_numbers_and_judges_by_the_share(cpu_ms, cost_ns):
    delays = [0.05, 0.1, 0.2, 0.4][:len(cpu_ms)]
    cost = summarize([cost_ns] * 7)
    v = ls.accept_verdict(_waits(delays, cpu_ms), cost)
    share = max(c * 1e6 / (d * 1e9 + 2e6) for c, d in zip(cpu_ms, delays))
    assert v.status == ("refined" if share < 0.05 else "contradicted"), v.text
    assert f"{min(cpu_ms):.2f} to {max(cpu_ms):.2f} ms of CPU" in v.text and f"{share:.1%}" in v.text
    assert f"{cost_ns / 1e3:.3g} µs (10th percentile of 7 rounds)" in v.text
