"""Lesson helpers of 05 (practices) and 06 (framing): servers, probes, verdicts, and the notebooks'
printed conclusions following their measurements."""
from __future__ import annotations

import asyncio
import pathlib
import socket
import threading
import time
import warnings

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketlessons.lessons.l05_best_practices import (
    waits_verdict,
    GuiDemo,
    HangingServer,
    SlowEchoServer,
    clients_timing,
    concurrency_verdict,
    fetch_blocking,
    gui_verdict,
    recording_resource_warnings,
    resource_warnings_visible,
    run_async,
    wait_until,
    watch,
)

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize(("serial", "expected"), [(False, 4), (True, 1)])
def test_slow_echo_server_serves_at_once_or_one_by_one(serial, expected):
    with SlowEchoServer(delay=0.05, serial=serial) as server:
        clients_timing(server.address, 4, at_once=True, repeats=1, warmup=0)
        assert server.max_concurrent == expected


@pytest.mark.usefixtures("no_leaks")
def test_clients_one_after_another_never_overlap():
    with SlowEchoServer(delay=0.01) as server:
        timing = clients_timing(server.address, 3, at_once=False, repeats=2, warmup=0)
        assert server.max_concurrent == 1 and timing.n == 2


@pytest.mark.usefixtures("no_leaks")
def test_slow_echo_waits_at_least_its_delay():
    with SlowEchoServer(delay=0.2) as server:
        t0 = time.perf_counter()
        assert fetch_blocking(server.address, b"ping") == b"ping"
        assert time.perf_counter() - t0 >= 0.2  # causal: the reply cannot come before the delay


@pytest.mark.usefixtures("no_leaks")
def test_hanging_server_outlasts_a_half_close():
    with HangingServer() as server, socket.create_connection(server.address, timeout=0.2) as sock:
        sock.shutdown(socket.SHUT_WR)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # a SilentServer would have closed: recv would return b""


@pytest.mark.usefixtures("no_leaks")
def test_serial_server_stops_while_clients_wait_their_turn():
    server = SlowEchoServer(delay=5, serial=True).start()
    socks = [socket.create_connection(server.address, timeout=1) for _ in range(3)]
    for sock in socks:
        sock.sendall(b"x")
    assert wait_until(lambda: server.connections == 3)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 2.0  # woken, not waiting out the 5 s delay
    for sock in socks:
        sock.close()


@pytest.mark.parametrize("bad", [-1, 11])
def test_slow_echo_delay_is_checked(bad):
    with pytest.raises(ValueError, match="delay"):
        SlowEchoServer(delay=bad)


@pytest.mark.usefixtures("no_leaks")
def test_watch_sees_a_call_still_waiting_then_finished():
    server = HangingServer().start()
    sock = socket.create_connection(server.address)
    w = watch(lambda: sock.recv(10), seconds=0.2)
    assert w.still_waiting
    server.stop()
    assert w.join(2.0) and w.result == b"" and w.error is None
    sock.close()


def test_resource_warnings_visible_follows_the_filters():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        assert not resource_warnings_visible()
        warnings.simplefilter("default", ResourceWarning)
        assert resource_warnings_visible()


def test_recording_resource_warnings_catches_an_unclosed_socket():
    with recording_resource_warnings() as seen:
        sock = socket.socket()
        del sock
    assert len(seen) == 1 and "unclosed" in seen[0]
    with recording_resource_warnings() as seen:
        with socket.socket():
            pass
    assert seen == []


def test_run_async_runs_in_its_own_loop_and_is_bounded():
    async def answer():
        await asyncio.sleep(0)
        return 42

    assert run_async(answer) == 42

    async def inside_a_running_loop():
        return run_async(answer)  # would fail with asyncio.run(); works from a helper thread

    assert asyncio.run(inside_a_running_loop()) == 42
    with pytest.raises(TimeoutError, match="did not finish"):
        run_async(lambda: asyncio.sleep(0.3), timeout=0.05)
    # the abandoned loop's thread finishes on its own (a daemon thread; wait so no test counts it)
    assert wait_until(lambda: not any(t.name == "socketlessons-async" for t in threading.enumerate()), 2.0)


@pytest.mark.usefixtures("no_leaks")
def test_gui_demo_blocking_click_waits_for_the_server_offloaded_ones_do_not():
    async def scenario():
        with SlowEchoServer(delay=0.3) as server:
            demo = GuiDemo(server.address)
            for mode in ("blocking", "thread", "asyncio"):
                demo.click(mode)
            assert await demo.finished("thread") and await demo.finished("asyncio")
            return demo

    demo = asyncio.run(scenario())
    assert demo.busy_s["blocking"] >= 0.3  # the callback returned only after the reply
    assert demo.busy_s["thread"] < 0.3 and demo.busy_s["asyncio"] < 0.3
    assert all(demo.reply_s[m] >= 0.3 for m in ("blocking", "thread", "asyncio"))
    assert not demo.errors
    demo.ping_button.click()
    assert demo.pings == 1 and demo.ping_button.description == "ping: 1"


def test_gui_demo_rejects_unknown_modes():
    demo = GuiDemo(("127.0.0.1", 9))
    with pytest.raises(ValueError, match="blocking, thread, asyncio"):
        demo.click("fast")


@pytest.mark.parametrize(("busy", "delay", "word"), [
    ({"blocking": 0.31, "thread": 0.0002, "asyncio": 0.00005}, 0.3, "confirmed"),
    ({"blocking": 0.002, "thread": 0.0002, "asyncio": 0.00005}, 0.0, "inconclusive"),
    ({"blocking": 0.31, "thread": 0.1, "asyncio": 0.00005}, 0.3, "inconclusive"),
    ({"blocking": 0.31, "thread": 0.2, "asyncio": 0.00005}, 0.3, "contradicted"),
    ({"blocking": 0.31}, 0.3, "inconclusive"),
])
def test_gui_verdict_follows_the_numbers(busy, delay, word):
    verdict = gui_verdict(busy, delay)
    assert verdict.status == word
    assert str(verdict).splitlines()[-1].startswith(word)
    assert f"{busy['blocking'] * 1000:8.2f} ms" in str(verdict)


def test_gui_verdict_names_the_slower_offloaded_click():
    text = str(gui_verdict({"blocking": 0.31, "thread": 0.00002, "asyncio": 0.0004}, 0.3))
    assert "0.4 ms (asyncio)" in text and "775x sooner" in text


@pytest.mark.parametrize(("seq", "conc", "status", "phrase"), [
    (0.16, 0.02, "confirmed", "8.0x faster at once"),
    (0.16, 0.09, "refined", "only 1.8x faster"),
    (0.16, 0.15, "contradicted", "no faster (1.1x)"),
])
def test_concurrency_verdict_follows_the_numbers(seq, conc, status, phrase):
    verdict = concurrency_verdict("8 clients", seq, conc, 8, 0.02)
    assert verdict.status == status and phrase in str(verdict)
    assert f"{seq:.3f} s" in str(verdict) and f"{conc:.3f} s" in str(verdict)



def test_concurrency_verdict_does_not_blame_a_server_that_served_all_at_once():
    """Measured at load 20: 8 clients at once took 12-40 ms against a 10 ms delay, all 8 served at once."""
    busy = concurrency_verdict("8 clients", 0.10, 0.055, 8, 0.01, served_at_once=8)
    assert busy.status == "inconclusive" and "served all 8 at once" in str(busy), busy
    assert "45 ms went to connecting" in str(busy) and "load" in str(busy), busy
    partly = concurrency_verdict("8 clients", 0.10, 0.055, 8, 0.01, served_at_once=3)
    assert partly.status == "refined" and "3 in progress at once" in str(partly), partly
    assert concurrency_verdict("8 clients", 0.10, 0.02, 8, 0.01, served_at_once=8).status == "confirmed"
    assert concurrency_verdict("8 clients", 0.10, 0.09, 8, 0.01, served_at_once=8).status == "inconclusive"
    assert concurrency_verdict("8 clients", 0.10, 0.09, 8, 0.01, served_at_once=1).status == "contradicted"

@pytest.mark.parametrize("claim", __import__("socketlessons.lessons.l05_best_practices.claims",
                                             fromlist=["CLAIMS"]).CLAIMS, ids=lambda c: c.name)
@pytest.mark.usefixtures("no_leaks")
def test_claims_return_a_status(claim):
    assert claim.run() in ("confirmed", "refined", "contradicted", "inconclusive")


def run_cells(notebook: str, first: str, last: str, replace: tuple[str, str] | None = None) -> str:
    """Execute the import cell and the cells from the one containing ``first`` to the one
    containing ``last`` in a fresh kernel; return their printed output."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(code) if first in c.source)
    end = next(i for i, c in enumerate(code) if last in c.source and i >= start)
    cells = [code[0], *code[start : end + 1]]
    sources = [c.source for c in cells]
    if replace is not None:
        assert any(replace[0] in s for s in sources), f"{replace[0]!r} not found in the cells"
        sources = [s.replace(*replace) for s in sources]
    sources.append("stop_all()")
    run = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    run.metadata = nb.metadata
    NotebookClient(run, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return "".join(o.get("text", "") for c in run.cells for o in c.get("outputs", []) if o.output_type == "stream")


def _busy_and_verdict(out: str) -> tuple[dict[str, float], str]:
    """The busy times (s) and the verdict line that lesson 05's GUI cell printed."""
    busy = {}
    for line in out.splitlines():
        head, sep, tail = line.partition(": the click kept the kernel busy")
        if sep:
            busy[head.strip()] = float(tail.split("ms")[0]) / 1000
    verdict = next(line for line in out.splitlines() if line.split(":")[0] in ("confirmed", "inconclusive", "contradicted"))
    return busy, verdict


def test_lesson05_gui_conclusion_follows_the_server_delay():
    """Run the GUI cells with a slow and an instant server; compare the two runs with each other
    (never against a fixed speed: a loaded host makes even an instant fetch slow)."""
    runs = {}
    for delay in ("0.3", "0"):
        out = run_cells("05_best_practices.ipynb", "def fetch_blocking", "gui_verdict(",
                        replace=("DELAY_S = 0.3", f"DELAY_S = {delay}"))
        busy, verdict = _busy_and_verdict(out)
        assert set(busy) == {"blocking", "thread", "asyncio"}, out
        # the printed verdict is the one its own numbers give (not written in)
        assert verdict.split(":")[0] == gui_verdict(busy, float(delay)).status, out
        runs[delay] = busy, verdict
    slow, instant = runs["0.3"][0], runs["0"][0]
    assert slow["blocking"] >= 0.3  # causal: the blocking click returned only after the reply
    assert max(slow["thread"], slow["asyncio"]) < slow["blocking"] / 2  # offloading freed the kernel
    assert instant["blocking"] < slow["blocking"]  # no delay, less blocking
    assert runs["0.3"][1].startswith(("confirmed: blocking", "inconclusive")), runs["0.3"][1]


def test_localhost_server_is_what_connecting_to_localhost_reaches(no_leaks):
    from socketlessons.lessons.l05_best_practices import localhost_server

    with localhost_server() as server_sock:
        assert server_sock.getsockname()[0] == "127.0.0.1" and server_sock.gettimeout() is not None
        port = server_sock.getsockname()[1]
        with socket.create_connection(("localhost", port), timeout=2) as client:
            conn, _ = server_sock.accept()
            with conn:
                assert conn.getpeername() == client.getsockname()


@pytest.mark.parametrize(("timeout", "late"), [("0.3", "timeout 0.3 s"), ("0.1", "timeout 0.1 s")])
def test_lesson05_timeout_report_follows_the_timeout(timeout, late):
    out = run_cells("05_best_practices.ipynb", "TIMEOUT_S = 0.3", "socket.timeout is TimeoutError",
                    replace=("TIMEOUT_S = 0.3", f"TIMEOUT_S = {timeout}"))
    waited = float(out.split("recv gave up after ")[1].split(" s")[0])
    assert late in out and waited >= float(timeout), out


@pytest.mark.parametrize(("leaked", "kept", "status", "phrase"), [
    (20, 0, "confirmed", "without with: 20 of 20 sockets left open; with `with`: 0 of 20"),
    (20, 2, "inconclusive", "2 more descriptor(s)"),
    (0, 0, "inconclusive", "only 0 of 20 stayed open"),
    (None, 0, "inconclusive", "does not let Python count"),
])
def test_with_verdict_follows_the_counts(leaked, kept, status, phrase):
    from socketlessons.lessons.l05_best_practices import with_verdict

    verdict = with_verdict(leaked, kept, 20)
    assert verdict.status == status and phrase in str(verdict)


@given(st.floats(0.001, 100), st.floats(0.001, 100), st.integers(1, 1000), st.floats(0.001, 1))
def test_concurrency_verdict_states_only_the_numbers_it_was_given(seq, conc, n, delay):
    verdict = concurrency_verdict(f"{n} clients", seq, conc, n, delay)
    text = str(verdict)
    assert f"took {seq:.3f} s" in text and f"all at once took {conc:.3f} s" in text
    assert f"{seq / conc:.1f}x" in text
    ratio = seq / conc
    assert verdict.status == ("confirmed" if ratio >= max(2.0, n / 4) else "refined" if ratio >= 1.5 else "contradicted")


@given(st.floats(0.0, 10), st.floats(0.0, 10), st.floats(0.0, 10))
def test_gui_verdict_states_only_the_times_it_was_given(blocking, thread, asyncio_s):
    busy = {"blocking": blocking, "thread": thread, "asyncio": asyncio_s}
    verdict = gui_verdict(busy, 0.3)
    for mode, t in busy.items():
        assert f"{mode:>8}: the click kept the kernel busy {t * 1000:8.2f} ms" in str(verdict)
    assert verdict.status in ("confirmed", "inconclusive", "contradicted")
    if verdict.status == "confirmed":
        assert max(thread, asyncio_s) * 10 <= blocking


def _totals(ms_per_n):
    from socketlessons.measure import Point

    return [Point(x=n, median_ns=ms * 1e6, q1_ns=ms * 1e6, q3_ns=ms * 1e6, n=3) for n, ms in ms_per_n.items()]


@pytest.mark.parametrize(("totals", "expected", "status", "phrase"), [
    ({1: 11, 2: 21, 4: 41, 8: 81}, "add up", "confirmed", "the waits add up"),
    ({1: 20, 2: 35, 4: 70, 8: 140}, "add up", "confirmed", "added 17.3 ms, 1.73 of the server's 10-ms delays"),
    ({1: 11, 2: 11.5, 4: 12.5, 8: 14}, "overlap", "confirmed", "each client's own set-up (its connection"),
    ({1: 24, 2: 14, 4: 20, 8: 17}, "overlap", "confirmed", "did not grow with N"),
    ({1: 11, 2: 12, 4: 13, 8: 15}, "add up", "contradicted", "they overlap"),
    ({1: 11, 2: 21, 4: 41, 8: 81}, "overlap", "contradicted", "they add up"),
    ({1: 11, 2: 16, 4: 26, 8: 46}, "overlap", "inconclusive", "larger delay"),  # 0.5 delays per client
])
def test_waits_verdict_follows_the_time_each_added_client_adds(totals, expected, status, phrase):
    v = waits_verdict("w", expected, _totals(totals), 0.01)
    assert v.status == status and phrase in v.text, v


def test_waits_verdict_names_a_point_the_line_smooths_over():
    """Measured beside nine busy kernels: N = 2 took two delays, the others one; the line's slope
    says 'overlap', and the sentence must also say what the plot shows at N = 2."""
    v = waits_verdict("w", "overlap", _totals({1: 12, 2: 19.5, 4: 15, 8: 13}), 0.01)
    assert v.status == "confirmed" and "at N = 2 (19.5 ms) the total was half a delay or more above" in v.text, v
    smooth = waits_verdict("w", "overlap", _totals({1: 11.7, 2: 12, 4: 13, 8: 14.1}), 0.01)
    assert "half a delay" not in smooth.text, smooth


def test_waits_verdict_needs_three_client_counts_and_says_so():
    v = waits_verdict("w", "overlap", _totals({1: 11, 8: 12}), 0.01)
    assert v.status == "inconclusive" and "fewer than 3" in v.text
    with pytest.raises(ValueError, match="expected"):
        waits_verdict("w", "constant", _totals({1: 1, 2: 2, 4: 4}), 0.01)


@given(st.lists(st.floats(1, 500), min_size=4, max_size=4))
def test_waits_verdict_states_only_the_totals_it_was_given(ms):
    v = waits_verdict("w", "overlap", _totals(dict(zip((1, 2, 4, 8), ms))), 0.01)
    assert f"{ms[0]:.1f} to {ms[-1]:.1f} ms" in v.text

