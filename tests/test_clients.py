"""Helper clients (drive) and the learner's server run in the background (serve_in_background)."""

from __future__ import annotations

import os
import socket
import time

import pytest

import socketlessons
from socketlessons import DribbleServer, EchoServer, LoopbackOnlyError, SilentServer
from socketlessons.clients import (
    BackgroundServer,
    drive,
    serve_in_background,
    start_clients,
)

pytestmark = pytest.mark.usefixtures("no_leaks")


def echo_n(listener: socket.socket, n: int) -> str:
    """A correct sequential echo server for n clients."""
    for _ in range(n):
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    return "done"


# ---- drive ----------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_drive_records_each_clients_echo(concurrency):
    payloads = [b"hello", b"", os.urandom(3 * 1024 * 1024), b"last"]
    with EchoServer() as server:
        records = drive(server.address, payloads, concurrency=concurrency)
    assert [r.index for r in records] == [0, 1, 2, 3]
    for rec, payload in zip(records, payloads):
        assert rec.received == payload and rec.complete, rec.summary()
        assert rec.connect_ns is not None and rec.connect_ns > 0
        assert rec.total_ns is not None and rec.total_ns >= rec.connect_ns


def test_drive_sends_in_pieces_with_pauses():
    with EchoServer(trace=True) as server:
        [rec] = drive(server.address, [b"abcdefghij"], piece=3, pause=0.02)
    assert rec.received == b"abcdefghij" and rec.complete
    recvs = [e.nbytes for e in server.iter_events("recv") if e.nbytes]
    assert len(recvs) == 4 and sum(recvs) == 10  # 3 + 3 + 3 + 1: the pauses kept the pieces apart


def test_drive_reads_a_dribbled_reply_whole():
    # 50 ms between pieces: a client that the busy scheduler runs late finds pieces glued (CI
    # with a CPU hog per core saw fewer than 5 recv calls with 1 ms); more than one call is what
    # shows that drive() kept reading, and the bytes must come whole either way.
    with DribbleServer(piece=2, pause=0.05) as server:
        [rec] = drive(server.address, b"0123456789")
    assert rec.received == b"0123456789" and rec.recv_calls >= 2


def test_a_silent_server_makes_a_client_give_up_at_its_timeout():
    with SilentServer() as server:
        started = time.monotonic()
        [rec] = drive(server.address, [b"hi"], shut_write=False, timeout=0.3)
        elapsed = time.monotonic() - started
    assert not rec.eof and "TimeoutError" in rec.error and rec.received == b""
    assert 0.25 <= elapsed < 3


def test_reply_bytes_stops_reading_without_an_end_of_stream():
    with EchoServer() as server:
        [rec] = drive(server.address, [b"abcdef"], shut_write=False, reply_bytes=6, timeout=2)
    assert rec.received == b"abcdef" and not rec.eof and not rec.error


def test_refused_connection_is_recorded_not_raised():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()  # bound but not listening: connect is refused
        [rec] = drive(address, [b"x"], timeout=1)
    assert "ConnectionRefusedError" in rec.error and rec.connect_ns is None


def test_start_clients_waits_for_its_delay():
    with EchoServer() as server:
        run = start_clients(server.address, [b"a", b"b"], delay=0.2)
        assert not run.done
        started = time.perf_counter_ns()
        records = run.wait()
    assert run.done and [r.received for r in records] == [b"a", b"b"]
    assert records[0].started_ns - started > 0.1e9


@pytest.mark.parametrize("bad, error, match", [
    ("hello", TypeError, "encode"),
    ([b"ok", "text"], TypeError, r"payloads\[1\]"),
    ([b"x"] * 3000, ValueError, "at most"),
])
def test_drive_rejects_bad_payloads(bad, error, match):
    with pytest.raises(error, match=match):
        drive(("127.0.0.1", 9), bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"concurrency": 0}, "concurrency"),
    ({"piece": 0}, "piece"),
    ({"pause": -1}, "pause"),
    ({"timeout": 0}, "timeout"),
    ({"reply_bytes": -1}, "reply_bytes"),
])
def test_drive_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        drive(("127.0.0.1", 9), [b"x"], **kwargs)


def test_drive_refuses_non_loopback_hosts():
    with pytest.raises(LoopbackOnlyError):
        drive(("192.0.2.1", 80), [b"x"])


# ---- serve_in_background ----------------------------------------------------------------------


def test_a_correct_server_serves_every_client_and_returns():
    with serve_in_background(echo_n, 3) as server:
        records = drive(server.address, [b"one", b"two" * 100_000, b""])
        assert server.wait(5) == "done"
    assert [r.received for r in records] == [b"one", b"two" * 100_000, b""]
    assert all(r.complete for r in records)
    assert server.left_open == 0 and len(server.accepted) == 3 and not server.timed_out
    assert [e.op for e in server.iter_events()].count("accept") == 3


def test_the_cell_is_not_blocked_while_the_server_waits_in_accept():
    started = time.monotonic()
    server = serve_in_background(echo_n, 1)
    assert time.monotonic() - started < 1 and not server.returned
    server.stop()
    assert server.returned and not server.running
    assert server.error is None  # the OSError from waking accept() is ours, not the learner's


def test_the_deadline_stops_a_server_that_never_returns():
    def forever(listener):
        while True:
            conn, _ = listener.accept()
            conn.recv(1024)  # never closes, never answers

    with serve_in_background(forever, deadline=0.4) as server:
        [rec] = drive(server.address, [b"hi"], timeout=3)
        time.sleep(0.1)
        assert server.returned and server.timed_out
        with pytest.raises(TimeoutError, match="deadline"):
            server.wait(1)
    assert rec.received == b"" and rec.eof  # the shutdown at the deadline ended the client's wait


def test_stop_ends_a_loop_that_spins_on_end_of_stream():
    def spins(listener):
        conn, _ = listener.accept()
        while True:  # never checks for b"": spins once the client is done
            conn.sendall(conn.recv(1024))

    with serve_in_background(spins, deadline=0.3) as server:
        [rec] = drive(server.address, [b"hi"], timeout=2)
        time.sleep(0.5)
        assert server.returned and server.timed_out
    assert rec.received == b"hi"


def test_connections_left_open_are_counted_and_closed_at_stop():
    def leaky(listener):
        conn, _ = listener.accept()
        conn.sendall(conn.recv(1024))  # forgets conn.close()

    with serve_in_background(leaky) as server:
        [rec] = drive(server.address, [b"hi"], timeout=0.5)
        server.wait(2)
        assert server.left_open == 1
    assert rec.received == b"hi" and not rec.eof  # no close: the client never saw the end
    assert server.accepted[0].fileno() == -1  # closed by stop(): no ResourceWarning


def test_conn_timeout_is_applied_to_accepted_connections():
    def timeout_of(listener):
        conn, _ = listener.accept()
        with conn:
            return conn.gettimeout()

    with serve_in_background(timeout_of, conn_timeout=1.5) as server:
        drive(server.address, [b""], timeout=1)
        assert server.wait(2) == 1.5


def test_the_learners_exception_is_raised_at_the_end_of_the_with_block():
    def broken(listener):
        raise ValueError("my bug")

    with pytest.raises(ValueError, match="my bug"):
        with serve_in_background(broken) as server:
            server._returned.wait(2)


def test_an_exception_seen_through_wait_is_not_raised_twice():
    def broken(listener):
        raise ValueError("my bug")

    with serve_in_background(broken) as server:
        with pytest.raises(ValueError):
            server.wait(2)


def test_a_rerun_under_the_same_name_replaces_the_earlier_server():
    first = serve_in_background(echo_n, 1)
    second = serve_in_background(echo_n, 1)
    assert not first.running and second.running
    assert socketlessons.running_servers() == [second]
    socketlessons.stop_all()
    assert not second.running


def test_passing_the_result_instead_of_the_function_is_refused():
    with pytest.raises(TypeError, match="not called"):
        BackgroundServer(None)  # type: ignore[arg-type]


def test_repeated_start_stop_leaves_nothing_behind():
    for _ in range(30):
        with serve_in_background(echo_n, 1) as server:
            drive(server.address, [b"x"])


def test_sndbuf_is_inherited_by_accepted_connections():
    def sndbuf_of(listener):
        conn, _ = listener.accept()
        with conn:
            return conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    with serve_in_background(sndbuf_of) as default_server:
        drive(default_server.address, [b""], timeout=1)
        default = default_server.wait(2)
    with serve_in_background(sndbuf_of, sndbuf=4096) as small_server:
        drive(small_server.address, [b""], timeout=1)
        small = small_server.wait(2)
    assert small < default  # the kernel may round (Linux doubles it), but it is smaller


def test_sndbuf_must_be_sensible():
    with pytest.raises(ValueError, match="sndbuf"):
        BackgroundServer(echo_n, (1,), sndbuf=10)
