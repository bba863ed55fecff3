"""The server-loop family of lesson 03 under load: correct answers, and who overlaps whom.

Overlap is measured from the servers' own traced events (first request in, last reply out, per
connection), never against a wall-clock bound: the sequential loop serves at most one client at
a time, the three others serve many at once when the processing cost is a wait.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from socketlessons.lessons.l03_server_loop import max_concurrency, service_intervals
from socketlessons.load import run_load
from socketlessons.servers._loops import (
    LOOP_SERVERS,
    AsyncioServer,
    SelectorServer,
    SequentialServer,
    ThreadedServer,
    spend,
)

pytestmark = pytest.mark.usefixtures("no_leaks")

KINDS = list(LOOP_SERVERS)
CONCURRENT = [k for k in KINDS if k != "sequential"]


def upper(data: bytes) -> bytes:
    return data.upper()


def boom(data: bytes) -> bytes:
    if data.startswith(b"boom"):
        raise ValueError("process failed on purpose")
    return data


@pytest.mark.parametrize("kind", KINDS)
def test_every_client_gets_its_own_answer(kind):
    with LOOP_SERVERS[kind]() as server:
        result = run_load(server.address, 50, requests=5, size=100, timeout=60)
    assert result.ok, result.summary()
    assert result.completed == 250 and result.wrong == 0
    assert server.requests == 250 and server.accepted == 50


@pytest.mark.parametrize("kind", KINDS)
def test_process_function_is_pluggable(kind):
    with LOOP_SERVERS[kind](process=upper) as server:
        result = run_load(server.address, 5, requests=2, expect=upper)
    assert result.ok, result.summary()


def test_sequential_serves_one_client_at_a_time():
    with SequentialServer(cost=0.01, trace=True) as server:
        result = run_load(server.address, 8, requests=2)
    assert result.ok
    spans = service_intervals(server.events)
    assert len(spans) == 8
    assert max_concurrency(spans.values()) == 1
    # accept order is service order: each client starts after the previous one finished
    ordered = sorted(spans.values())
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ordered, ordered[1:]))
    # and the clients saw it: the first replies came back one after another, spread out
    firsts = sorted(c.done_ns[0] for c in result.clients)
    assert firsts == sorted(set(firsts))


@pytest.mark.parametrize("kind", CONCURRENT)
def test_concurrent_servers_overlap_clients(kind):
    with LOOP_SERVERS[kind](cost=0.05, trace=True) as server:
        result = run_load(server.address, 8, requests=2)
    assert result.ok
    spans = service_intervals(server.events)
    assert len(spans) == 8
    assert max_concurrency(spans.values()) >= 4  # all 8 at once here; 4 leaves room for a slow CI


@pytest.mark.parametrize("kind", ["selectors", "asyncio"])
def test_cpu_cost_stalls_a_single_threaded_loop(kind):
    """A 'cpu' cost cannot overlap on one thread: requests are processed one after another."""
    with LOOP_SERVERS[kind](cost=0.02, work="cpu", trace=True) as server:
        result = run_load(server.address, 6)
    assert result.ok
    recvs = [e.t_ns for e in server.iter_events("recv")]
    sends = [e.t_ns for e in server.iter_events("send")]
    # each reply goes out before the next request is taken up
    assert max_concurrency(list(zip(sorted(recvs), sorted(sends)))) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_eof_ends_the_conversation_and_the_server_closes(kind):
    with LOOP_SERVERS[kind]() as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"hello")
            assert sock.recv(100) == b"hello"
            sock.shutdown(socket.SHUT_WR)  # EOF: recv returns b"" on the server
            assert sock.recv(100) == b""  # the server closed its side in return
        deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_that_disconnects_early_does_not_stop_the_server(kind):
    with LOOP_SERVERS[kind](cost=0.02) as server:
        rude = socket.create_connection(server.address, timeout=5)
        rude.sendall(b"answer me, if you can")
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        rude.close()  # reset, before the reply
        result = run_load(server.address, 5, requests=2)
    assert result.ok, result.summary()
    assert not server.errors


def test_sequential_server_is_stuck_behind_a_client_that_never_sends():
    """The trap of the seed's loop: one idle client freezes everyone else."""
    with SequentialServer() as server:
        with socket.create_connection(server.address, timeout=5):
            time.sleep(0.05)  # it is accepted and now served (waited on) first
            result = run_load(server.address, 3, timeout=0.5)
        assert result.completed == 0 and result.timed_out
    with ThreadedServer() as server:
        with socket.create_connection(server.address, timeout=5):
            time.sleep(0.05)
            assert run_load(server.address, 3, timeout=5).ok


@pytest.mark.parametrize("kind", KINDS)
def test_process_error_is_kept_and_server_keeps_serving(kind):
    with pytest.warns(Warning, match="process failed on purpose"):
        with LOOP_SERVERS[kind](process=boom) as server:
            with socket.create_connection(server.address, timeout=5) as sock:
                sock.sendall(b"boom!")
                assert sock.recv(10) == b""  # that connection is closed
            assert run_load(server.address, 3).ok
    assert server.errors


@pytest.mark.parametrize("kind", KINDS)
def test_stop_is_fast_with_clients_mid_request(kind):
    server = LOOP_SERVERS[kind](cost=5.0).start()
    socks = [socket.create_connection(server.address, timeout=5) for _ in range(3)]
    try:
        for s in socks:
            s.sendall(b"slow please")
        time.sleep(0.1)
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 1.5  # a cost of 5 s is cut short, not waited out
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("kind", KINDS)
def test_same_name_replaces_and_start_stop_cycles_leak_nothing(kind):
    for _ in range(20):
        server = LOOP_SERVERS[kind](name=f"test-{kind}").start()
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
    server.stop()


@pytest.mark.parametrize("kind", ["threaded", "asyncio"])
def test_process_mode(kind):
    with LOOP_SERVERS[kind](mode="process", process=upper) as server:
        assert run_load(server.address, 10, requests=3, expect=upper).ok


@pytest.mark.parametrize("bad, match", [
    ({"cost": -1}, "cost"), ({"cost": 11}, "cost"), ({"work": "gpu"}, "work"),
    ({"bufsize": 0}, "bufsize"), ({"max_connections": 0}, "max_connections"),
])
def test_bad_settings_say_what_to_do(bad, match):
    with pytest.raises(ValueError, match=match):
        SelectorServer(**bad)


def test_process_must_be_callable_and_picklable_in_process_mode():
    with pytest.raises(TypeError, match="function"):
        AsyncioServer(process="echo")
    with pytest.raises(TypeError, match="lambda"):
        AsyncioServer(mode="process", process=lambda d: d)


def test_max_connections_refuses_the_extra_ones():
    with ThreadedServer(max_connections=2) as server:
        socks = [socket.create_connection(server.address, timeout=5) for _ in range(3)]
        try:
            assert socks[2].recv(1) == b""  # closed by the server at once
            assert server.refused == 1
        finally:
            for s in socks:
                s.close()


def test_spend_cpu_really_computes_and_sleep_does_not():
    t0 = time.process_time()
    spend(0.05, "cpu")
    cpu = time.process_time() - t0
    t0 = time.process_time()
    spend(0.05, "sleep")
    slept = time.process_time() - t0
    assert cpu > slept


@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_NOFILE on Windows")
@pytest.mark.parametrize("kind", ["threaded", "selectors", "asyncio"])  # the sequential one accepts one at a time
def test_out_of_descriptors_is_kept_and_the_server_survives(kind):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with pytest.warns(Warning, match="descriptor limit"):
        with LOOP_SERVERS[kind]() as server:
            assert run_load(server.address, 1, timeout=10).ok  # serving (its selector/loop is made)
            # The clients' sockets exist before the limit drops below any free descriptor, so
            # connecting needs no new descriptor here, and the server's accept() must fail.
            clients = [socket.socket(server.family, socket.SOCK_STREAM) for _ in range(3)]
            try:
                lowest_free = os.dup(0)  # the limit caps descriptor numbers: below the lowest free
                os.close(lowest_free)  # one, no new descriptor can be made
                resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
                try:
                    for c in clients:
                        c.settimeout(5)
                        c.connect(server.address)  # completes in the backlog, without accept()
                    deadline = time.monotonic() + 10
                    while not any("accept" in e.error for e in server.errors):
                        assert time.monotonic() < deadline, f"no accept error kept: {server.errors}"
                        time.sleep(0.01)
                finally:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            finally:
                for c in clients:
                    c.close()
            assert run_load(server.address, 3, timeout=10).ok  # still serving once descriptors are free
