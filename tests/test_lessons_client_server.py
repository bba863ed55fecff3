"""Lessons 01 (client) and 02 (server): their helpers on real loopback sockets, and the
notebooks themselves, executed twice in one kernel and with the exercises solved."""

from __future__ import annotations

import asyncio
import inspect
import pathlib
import socket
import sys

import nbformat
import pytest

from socketlessons.checks import solution
from socketlessons.lessons import client as lc
from socketlessons.lessons import server as ls
from socketlessons.measure import Point, Timing, fit_growth, sweep
from socketlessons.widgets import RunSettings

from .jupyter_harness import NOTEBOOK_DIR, LessonKernel, copy_notebooks

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Windows binds a port in TIME_WAIT without options")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
LESSONS = ["01_client", "02_server"]


# ---- lesson 01 helpers --------------------------------------------------------------------------


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


# ---- lesson 02 helpers --------------------------------------------------------------------------


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


# ---- the notebooks --------------------------------------------------------------------------------


def _cell_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        data = o.get("data", {})
        parts.append(data.get("text/plain", ""))
    return "\n".join(parts)


async def _run_twice(lesson: pathlib.Path, base: pathlib.Path) -> nbformat.NotebookNode:
    async with LessonKernel.started(base / "kernel", lesson.parent) as kernel:
        await kernel.run_lesson(lesson)
        second = await kernel.run_lesson(lesson)
    return second.nb


def _checker_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "\ncheck_" in "\n" + c.source]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", LESSONS)
def test_notebook_runs_twice_in_one_kernel(name, tmp_path):
    cwd = copy_notebooks(tmp_path / "notebooks")
    nb = asyncio.run(_run_twice(cwd / f"{name}.ipynb", tmp_path))
    cells = _checker_cells(nb)
    assert len(cells) == len(EXERCISES[name])
    for i in cells:  # the untouched stubs: a verdict, not an exception
        text = _cell_text(nb.cells[i])
        assert "not yet" in text and "`...` body" in text, f"{name}: cell {i} printed {text!r}"


EXERCISES = {"01_client": ["recv_exactly", "send_all"], "02_server": ["echo_server", "open_server"]}


def _solve(path: pathlib.Path) -> None:
    """Replace each exercise stub of the notebook at ``path`` with the reference solution."""
    nb = nbformat.read(path, as_version=4)
    for name in EXERCISES[path.stem]:
        stubs = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(f"def {name}(")]
        assert len(stubs) == 1, f"{path.stem}: expected one stub cell for {name}"
        stubs[0].source = inspect.getsource(solution(name))
    nbformat.write(nb, path)


async def _run_solved(lesson: pathlib.Path, base: pathlib.Path) -> nbformat.NotebookNode:
    async with LessonKernel.started(base / "kernel", lesson.parent) as kernel:
        run = await kernel.run_lesson(lesson)
    return run.nb


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", LESSONS)
def test_reference_solutions_pass_in_the_notebook(name, tmp_path):
    checker_cells = _checker_cells(nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4))
    assert len(checker_cells) == len(EXERCISES[name])
    cwd = copy_notebooks(tmp_path / "notebooks")
    _solve(cwd / f"{name}.ipynb")
    nb = asyncio.run(_run_solved(cwd / f"{name}.ipynb", tmp_path))
    for i in checker_cells:
        text = _cell_text(nb.cells[i])
        assert "passed" in text, f"{name}: cell {i} with the reference solution printed {text!r}"


def test_listen_with_open_holds_listeners_and_times_a_whole_listen(no_leaks):
    from socketlessons.lessons import server as ls

    with ls.listen_with_open()(3) as op:
        op()
    with pytest.raises(ValueError, match="2000"):
        with ls.listen_with_open()(5000):
            pass
    with pytest.raises(ValueError):
        ls.listen_with_open("192.0.2.1")


def test_listen_verdict_flat_is_confirmed_and_growing_is_not():
    from socketlessons.lessons import server as ls

    v = ls.listen_verdict(_points([1, 8, 64, 256], [8_000, 8_100, 7_900, 8_050]))
    assert v.status == "confirmed" and "256 listeners" in v.text and "7.9 to 8.1 µs" in v.text
    assert ls.listen_verdict(_points([1, 8, 64, 256], [8_000, 64_000, 512_000, 2_048_000])).status == "contradicted"


def test_from_zero_starts_the_time_axis_at_zero():
    from socketlessons.lessons._figures import from_zero

    shown = from_zero(_points([1, 8, 64], [8_000, 8_100, 7_900], series="s"), title="t", xlabel="n",
                      ylabel="µs", fits={"s": fit_growth([1, 8, 64], [8_000, 8_100, 7_900])})
    assert shown.figure.axes[0].get_ylim()[0] == 0
    assert shown._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="run the sweep"):
        from_zero([], title="t", xlabel="n", ylabel="µs")
