"""trace: a known exchange, traced on both sides, has the expected calls and byte totals."""

from __future__ import annotations

import socket

import pytest

from socketlessons import EchoServer, SinkServer
from socketlessons.measure import Point, summarize
from socketlessons.plots import sequence_diagram
from socketlessons.trace import TracedSocket, TraceEvent, Tracer, totals

MIB = 2**20


@pytest.fixture(scope="module", autouse=True)
def _fonts_loaded():
    """matplotlib keeps each font file it has used open (its font cache): render once before
    the leak-checked tests, so those descriptors are not counted as leaks."""
    from socketlessons.plots import LivePlot, sequence_diagram, to_png
    from socketlessons.trace import TraceEvent

    plot = LivePlot("t", "payload size (bytes)", "µs", logx=True, logy=True)
    plot.add(Point.from_timing(1, summarize([1.0])))
    plot.add(Point.from_timing(1024, summarize([2.0])))
    plot.finish()
    to_png(sequence_diagram([TraceEvent(0, "client", "send", 1, 1)]))


def test_one_sendall_of_a_mebibyte_arrives_as_many_recvs(no_leaks):
    tracer = Tracer()
    with SinkServer(trace=True, bufsize=64 * 1024) as server:
        with tracer.connect(server.address) as sock:
            sock.sendall(b"x" * MIB)
            sock.shutdown(socket.SHUT_WR)
            count = sock.recv(8)
    timeline = tracer.merge(server)
    assert int.from_bytes(count, "big") == MIB
    client_ops = [e.op for e in timeline if e.side == "client"]
    assert client_ops == ["settimeout", "connect", "sendall", "shutdown", "recv", "close"]
    assert tracer.calls("sendall", "client")[0].done == MIB
    recvs = tracer.calls("recv", "server")
    data_recvs = [e for e in recvs if e.done]
    assert tracer.total("recv", "server") == MIB
    assert len(data_recvs) >= 16  # at most 64 KiB per recv: the stream is cut anew by the receiver
    assert all(0 < e.done <= 64 * 1024 for e in data_recvs)
    assert tracer.total("sendall", "server") == 8 == tracer.total("recv", "client")
    assert [e.t_ns for e in timeline] == sorted(e.t_ns for e in timeline)
    # one clock: the server's first recv returns after the client's connect did
    assert data_recvs[0].t_ns > tracer.calls("connect", "client")[0].t_ns


def test_merging_twice_adds_nothing_new(no_leaks):
    tracer = Tracer()
    with EchoServer(trace=True) as server, tracer.connect(server.address) as sock:
        sock.sendall(b"hello")
        assert sock.recv(1024) == b"hello"
    first = len(tracer.merge(server))
    assert len(tracer.merge(server)) == first
    assert tracer.summary()[("server", "recv")][1] == 5
    assert tracer.summary()[("client", "recv")] == (1, 5)


def test_merging_an_untraced_server_says_how_to_fix_it(no_leaks):
    with EchoServer() as server:
        with pytest.raises(ValueError, match="trace=True"):
            Tracer().merge(server)


def test_errors_and_eof_are_recorded_and_reraised(no_leaks):
    tracer = Tracer()
    with EchoServer() as server, tracer.connect(server.address, timeout=0.05) as sock:
        with pytest.raises(TimeoutError):
            sock.recv(10)
        with pytest.raises(TypeError):
            sock.sendall("text, not bytes")  # type: ignore[arg-type]
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
    recv_timeout, recv_eof = tracer.calls("recv")
    assert recv_timeout.result.startswith("TimeoutError") and recv_timeout.done is None
    assert recv_eof.result == "EOF" and recv_eof.done == 0
    bad = tracer.calls("sendall")[0]
    assert bad.asked is None and bad.result.startswith("TypeError")


def test_server_side_wrapping_and_accept_and_udp():
    tracer = Tracer()
    with socket.socket() as raw_listener:
        listener = TracedSocket(raw_listener, tracer, side="server")
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with tracer.connect(listener.getsockname()) as client:
            conn, _ = listener.accept()
            with conn:
                client.send(b"abc")
                buf = bytearray(16)
                assert conn.recv_into(buf) == 3
    assert [e.op for e in tracer.timeline() if e.side == "server"][:3] == ["bind", "listen", "accept"]
    assert tracer.calls("recv_into", "server")[0].asked == 16
    assert tracer.calls("send", "client")[0].done == 3
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        ta, tb = TracedSocket(a, tracer), TracedSocket(b, tracer, "server")
        tb.bind(("127.0.0.1", 0))
        ta.sendto(b"ping", tb.getsockname())
        data, _ = tb.recvfrom(2)  # a too-small buffer truncates a datagram (Linux)
    assert tracer.calls("sendto")[0].done == 4
    assert tracer.calls("recvfrom")[0].asked == 2 and tracer.calls("recvfrom")[0].result.startswith("from 127.0.0.1:")


def test_table_text_and_html_and_diagram(no_leaks):
    tracer = Tracer()
    with EchoServer(trace=True) as server, tracer.connect(server.address) as sock:
        sock.sendall(b"hi")
        sock.recv(64)
    tracer.merge(server)
    table = tracer.table(limit=3)
    text = str(table)
    assert text.splitlines()[0].split() == ["t", "(µs)", "side", "call", "asked", "done", "result"]
    assert "more calls" in text and "<table>" in table._repr_html_()
    fig = sequence_diagram(tracer.timeline())
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "sendall(2 B)" in labels and "recv(64) → 2 B" in labels


def test_totals_and_type_checks():
    events = [TraceEvent(1, "client", "recv", 10, 4), TraceEvent(2, "client", "recv", 10, 6)]
    assert totals(events, "recv") == 10 and totals(events, "recv", "server") == 0
    with socket.socket() as s, pytest.raises(TypeError, match="Tracer"):
        TracedSocket(s, object())  # type: ignore[arg-type]


def test_merge_waits_for_the_server_to_record_the_end_of_each_connection():
    """A handler records a call after it returns: a server whose thread runs late (a busy host)
    has its reply and close in its list only later. merge() waits for them, bounded."""
    import threading
    import time

    from socketlessons.servers._base import ServerEvent

    class LateServer:
        trace = True

        def __init__(self):
            self.events = [ServerEvent(time.perf_counter_ns(), "accept", 1, 0, "127.0.0.1:1")]

        def late(self):
            time.sleep(0.03)
            self.events.append(ServerEvent(time.perf_counter_ns(), "send", 1, 3))
            time.sleep(0.03)
            self.events.append(ServerEvent(time.perf_counter_ns(), "close", 1, 5, "sent 3"))

    server = LateServer()
    writer = threading.Thread(target=server.late)
    writer.start()
    ops = [e.op for e in Tracer().merge(server)]
    writer.join()
    assert ops == ["accept", "sendall", "close"], ops
    # a connection that stays open costs at most the quiet wait, never a hang
    still_open = LateServer()
    t0 = time.monotonic()
    assert [e.op for e in Tracer().merge(still_open)] == ["accept"]
    assert time.monotonic() - t0 < 2
