"""Lesson helpers of 05 (practices) and 06 (framing): servers, probes, verdicts, and the notebooks'
printed conclusions following their measurements."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import struct
import threading
import time
import warnings

import nbformat
import pytest

from socketlessons.framing import encode_frame, encode_request, recv_message, send_message
from socketlessons.lessons.framing import (
    READERS,
    LateReaderServer,
    LineReader,
    ProtocolServer,
    RepeatServer,
    ScriptedServer,
    cut,
    decode_chunks,
    diagram,
    read_line_bytewise,
    reader_verdict,
    reading,
)
from socketlessons.lessons.practices import (
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
from socketlessons.trace import Tracer

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"

# ---- 05: servers -------------------------------------------------------------------------------


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


# ---- 05: watch, warnings, run_async ------------------------------------------------------------


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


# ---- 05: GUI demo and verdicts -----------------------------------------------------------------


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
    ({"blocking": 0.31, "thread": 0.2, "asyncio": 0.00005}, 0.3, "not shown"),
])
def test_gui_verdict_follows_the_numbers(busy, delay, word):
    text = gui_verdict(busy, delay)
    assert text.splitlines()[-1].startswith(word)
    assert f"{busy['blocking'] * 1000:8.2f} ms" in text


@pytest.mark.parametrize(("seq", "conc", "phrase"), [
    (0.16, 0.02, "8.0x faster at once"),
    (0.16, 0.09, "only 1.8x faster"),
    (0.16, 0.15, "no faster"),
])
def test_concurrency_verdict_follows_the_numbers(seq, conc, phrase):
    assert phrase in concurrency_verdict("8 clients", seq, conc, 8, 0.02)


# ---- 06: cutting and servers -------------------------------------------------------------------

CUT_CASES = [
    (b"", "whole", []),
    (b"abc", "whole", [b"abc"]),
    (b"abc", "bytes", [b"a", b"b", b"c"]),
    (b"abcdefg", [1, 2], [b"a", b"bc", b"de", b"fg"]),
    (b"abcdef", [4], [b"abcd", b"ef"]),
]


@pytest.mark.parametrize(("data", "chunks", "pieces"), CUT_CASES)
def test_cut(data, chunks, pieces):
    assert cut(data, chunks) == pieces


def test_random_cut_is_seeded_and_complete():
    data = bytes(range(200))
    assert cut(data, "random", seed=3) == cut(data, "random", seed=3) != cut(data, "random", seed=4)
    assert b"".join(cut(data, "random", seed=3)) == data


@pytest.mark.parametrize("bad", ["halves", [0], [], [1.5]])
def test_cut_names_what_it_accepts(bad):
    with pytest.raises(ValueError):
        cut(b"abc", bad)


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("chunks", ["whole", "bytes", [1, 2, 1, 3, 5]])
def test_scripted_server_sends_the_pieces_then_half_closes(chunks):
    messages = [b"hi", b"", b"framing"]
    stream = b"".join(encode_frame(m) for m in messages)
    with ScriptedServer(stream, chunks=chunks, trace=True) as server, \
            socket.create_connection(server.address, timeout=2) as sock:
        assert [recv_message(sock) for _ in messages] == messages
        assert recv_message(sock) is None  # the half-close: a clean end
    sent = [e.nbytes for e in server.iter_events("send")]
    assert sent == [len(p) for p in cut(stream, chunks)]


def test_scripted_server_refuses_text_and_endless_dribbles():
    with pytest.raises(TypeError, match="encode"):
        ScriptedServer("text")
    with pytest.raises(ValueError, match="pieces"):
        ScriptedServer(b"x" * 5000, chunks="bytes")


@pytest.mark.usefixtures("no_leaks")
def test_late_reader_glues_two_sends_into_one_recv():
    tracer = Tracer()
    with LateReaderServer(delay=0.2, trace=True) as server:
        with tracer.connect(server.address, timeout=2) as sock:
            sock.sendall(b"hello")
            sock.sendall(b"world")
            assert sock.recv(1024) == b"helloworld"
        tracer.merge(server)
    assert [e.done for e in tracer.calls("recv", side="server") if e.done][0] == 10


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("chunks", ["whole", "bytes", "random"])
def test_protocol_server_answers_pipelined_requests(chunks):
    bodies = [encode_request("PING"), encode_request("UPPER", b"abc"), encode_request("NOPE")]
    with ProtocolServer(chunks=chunks) as server, socket.create_connection(server.address, timeout=2) as sock:
        sock.sendall(b"".join(encode_frame(b) for b in bodies))
        answers = [recv_message(sock) for _ in bodies]
        send_message(sock, encode_request("LEN", b"four"))
        assert recv_message(sock) == b"OK 4"
    assert answers[:2] == [b"OK PONG", b"OK ABC"] and answers[2].startswith(b"ERR unknown command NOPE")
    assert server.requests == 4


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("how", READERS)
def test_each_reader_reads_whole_messages_from_the_repeat_server(how):
    for size in (1, 100, 70_000):
        with reading(size, how) as op:
            assert op() == b"x" * size and op() == b"x" * size


@pytest.mark.usefixtures("no_leaks")
def test_repeat_server_refuses_a_bad_request():
    from socketlessons.errors import ServerWarning

    with pytest.warns(ServerWarning, match="bad request"):
        with RepeatServer() as server, socket.create_connection(server.address, timeout=2) as sock:
            sock.sendall(struct.pack("!cI", b"Z", 5))
            assert sock.recv(10) == b""  # the server closed the connection
            assert wait_until(lambda: bool(server.errors))


def test_line_readers_keep_what_follows_the_line():
    a, b = socket.socketpair()
    with a, b:
        b.settimeout(2)
        a.sendall(b"one\ntwo\nthree\n")
        assert read_line_bytewise(b) == b"one"
        reader = LineReader(b)
        assert reader.read_line() == b"two" and reader.read_line() == b"three"
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            reader.read_line()


def test_decode_chunks_both_framings():
    assert decode_chunks([b"a\nb", b"\n"], "line") == [b"a", b"b"]
    assert decode_chunks(cut(encode_frame(b"hey") * 2, "bytes")) == [b"hey", b"hey"]


@pytest.mark.parametrize(("per_byte", "phrase"), [
    ({"recv(1) until newline": 1350.0, "buffered lines": 0.5, "length prefix": 0.5}, "2,700x more per byte"),
    ({"recv(1) until newline": 3.0, "buffered lines": 0.5}, "only 6.0x apart"),
    ({"buffered lines": 0.5}, "inconclusive"),
])
def test_reader_verdict_follows_the_numbers(per_byte, phrase):
    assert phrase in reader_verdict(per_byte, 4096)


def test_diagram_is_a_png_without_configuration_calls():
    from socketlessons.trace import TraceEvent

    events = [TraceEvent(0, "client", "settimeout", None, None), TraceEvent(1000, "client", "sendall", 5, 5),
              TraceEvent(2000, "server", "recv", 1024, 5)]
    image = diagram(events)
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the notebooks' printed conclusions follow their measurements --------------------------------


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
    verdict = next(line for line in out.splitlines() if line.split(":")[0] in ("confirmed", "inconclusive", "not shown this time"))
    return busy, verdict


def test_lesson05_gui_conclusion_follows_the_server_delay():
    """Run the GUI cells with a slow and an instant server; compare the two runs with each other
    (never against a fixed speed: a loaded host makes even an instant fetch slow)."""
    runs = {}
    for delay in ("0.3", "0"):
        out = run_cells("05_best_practices.ipynb", "DELAY_S = 0.3", "gui_verdict(",
                        replace=("DELAY_S = 0.3", f"DELAY_S = {delay}"))
        busy, verdict = _busy_and_verdict(out)
        assert set(busy) == {"blocking", "thread", "asyncio"}, out
        # the printed verdict is the one its own numbers give (not written in)
        assert verdict.split(":")[0] == gui_verdict(busy, float(delay)).splitlines()[-1].split(":")[0], out
        runs[delay] = busy, verdict
    slow, instant = runs["0.3"][0], runs["0"][0]
    assert slow["blocking"] >= 0.3  # causal: the blocking click returned only after the reply
    assert max(slow["thread"], slow["asyncio"]) < slow["blocking"] / 2  # offloading freed the kernel
    assert instant["blocking"] < slow["blocking"]  # no delay, less blocking
    assert runs["0.3"][1].startswith(("confirmed: blocking", "not shown this time")), runs["0.3"][1]


@pytest.mark.parametrize(("timeout", "late"), [("0.3", "timeout 0.3 s"), ("0.1", "timeout 0.1 s")])
def test_lesson05_timeout_report_follows_the_timeout(timeout, late):
    out = run_cells("05_best_practices.ipynb", "TIMEOUT_S = 0.3", "socket.timeout is TimeoutError",
                    replace=("TIMEOUT_S = 0.3", f"TIMEOUT_S = {timeout}"))
    waited = float(out.split("recv gave up after ")[1].split(" s")[0])
    assert late in out and waited >= float(timeout), out


SOLVED = {
    "05_best_practices.ipynb": {"fetch": "import socket\n", "fetch_all": "import asyncio\n"},
    "06_framing.ipynb": {"read_lines": "", "read_message": "import struct\nfrom socketlessons.framing import recv_exactly\n"},
}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook", sorted(SOLVED))
def test_reference_solutions_pass_in_the_notebook(notebook):
    """A learner's answers in the stub cells (here: the references) pass the notebook's checkers."""
    import inspect

    from nbclient import NotebookClient

    from socketlessons.checks import solution

    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    for name, imports in SOLVED[notebook].items():
        stubs = [c for c in nb.cells if c.cell_type == "code"
                 and c.source.removeprefix("async ").startswith(f"def {name}(")]
        assert len(stubs) == 1, f"{notebook}: expected one stub cell for {name}"
        stubs[0].source = imports + inspect.getsource(solution(name))
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    verdicts = [o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if "text/plain" in o.get("data", {}) and ("passed" in o["data"]["text/plain"]
                                                          or "not yet" in o["data"]["text/plain"])]
    assert len(verdicts) == len(SOLVED[notebook]) and all("passed" in v for v in verdicts), verdicts


def test_localhost_server_is_what_connecting_to_localhost_reaches(no_leaks):
    from socketlessons.lessons.practices import localhost_server

    with localhost_server() as server_sock:
        assert server_sock.getsockname()[0] == "127.0.0.1" and server_sock.gettimeout() is not None
        port = server_sock.getsockname()[1]
        with socket.create_connection(("localhost", port), timeout=2) as client:
            conn, _ = server_sock.accept()
            with conn:
                assert conn.getpeername() == client.getsockname()
