"""Lesson helpers of 05 (practices) and 06 (framing): servers, probes, verdicts, and the notebooks'
printed conclusions following their measurements."""
from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketlessons.framing import (
    encode_frame,
    encode_request,
    recv_message,
    send_message,
)
from socketlessons.lessons.l05_best_practices import (
    wait_until,
)
from socketlessons.lessons.l06_framing import (
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
from socketlessons.measure import Point
from socketlessons.trace import Tracer

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


def _points(ns_at: dict[int, float]) -> list[Point]:
    """Sweep points whose every batch took ``ns_at[x]`` (min, low and median alike)."""
    return [Point(x, ns, ns, ns, 5, min_ns=ns, low_ns=ns) for x, ns in ns_at.items()]


SIZES = [16, 64, 256, 1024, 4096]
RECV1 = {k: 2_000 + 700 * k for k in SIZES}  # a system call per byte: 700 ns per byte
BUFFERED = {k: 2_000 + 0.1 * k for k in SIZES}


@pytest.mark.parametrize(("runs", "status", "phrase"), [
    ({"recv(1) until newline": RECV1, "buffered lines": BUFFERED, "length prefix": BUFFERED}, "confirmed",
     "took 1,191x as long as the buffered line reader (700 ns per byte"),
    ({"recv(1) until newline": {k: 6 * v for k, v in BUFFERED.items()}, "buffered lines": BUFFERED}, "inconclusive",
     "only 6.0x as long"),
    ({"recv(1) until newline": BUFFERED, "buffered lines": BUFFERED}, "contradicted", "1.0x as long"),
    ({"buffered lines": BUFFERED}, "inconclusive", "time both"),
    # the fastest reader is the length-prefix one: the ratio is still against the buffered LINE reader
    ({"recv(1) until newline": RECV1, "buffered lines": {k: 40_000 for k in SIZES},
      "length prefix": {k: 2_000 for k in SIZES}}, "confirmed", "took 72x as long as the buffered line reader"),
])
def test_reader_verdict_follows_the_numbers(runs, status, phrase):
    verdict = reader_verdict({how: _points(ns) for how, ns in runs.items()})
    assert verdict.status == status and phrase in str(verdict), str(verdict)


@given(st.floats(1e3, 1e8), st.floats(1e3, 1e8))
def test_reader_verdict_quotes_the_times_it_was_given(slow_ns, fast_ns):
    verdict = reader_verdict({"recv(1) until newline": _points({4096: slow_ns}),
                              "buffered lines": _points({4096: fast_ns})})
    ratio = slow_ns / fast_ns
    assert verdict.ratio == pytest.approx(ratio)
    assert verdict.status == ("confirmed" if ratio >= 10 else "inconclusive" if ratio >= 2 else "contradicted")


@pytest.mark.usefixtures("no_leaks")
def test_claims_return_a_status():
    from socketlessons.lessons.l06_framing.claims import CLAIMS

    for claim in CLAIMS:
        assert claim.run() in ("confirmed", "refined", "contradicted", "inconclusive")


def test_diagram_is_a_png_without_configuration_calls():
    from socketlessons.trace import TraceEvent

    events = [TraceEvent(0, "client", "settimeout", None, None), TraceEvent(1000, "client", "sendall", 5, 5),
              TraceEvent(2000, "server", "recv", 1024, 5)]
    image = diagram(events)
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.usefixtures("no_leaks")
def test_repeat_server_refuses_a_bad_request():
    from socketlessons.errors import ServerWarning

    with pytest.warns(ServerWarning, match="bad request"):
        with RepeatServer() as server, socket.create_connection(server.address, timeout=2) as sock:
            sock.sendall(struct.pack("!cI", b"Z", 5))
            assert sock.recv(10) == b""  # the server closed the connection
            assert wait_until(lambda: bool(server.errors))
