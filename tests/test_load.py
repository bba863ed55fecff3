"""Load clients: N at once from one thread, per-request latency, bounded in count and time."""

from __future__ import annotations

import threading

import pytest

from socketlessons import EchoServer, SilentServer
from socketlessons.load import (
    MAX_CLIENTS,
    make_payload,
    open_connections,
    percentile,
    run_load,
)
from socketlessons.resources import open_descriptors, thread_count
from socketlessons.servers._loops import AsyncioServer

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_a_thousand_clients_from_one_thread():
    peak, done = [0], threading.Event()

    def watch() -> None:  # samples the thread count while the load runs
        while not done.wait(0.005):
            peak[0] = max(peak[0], thread_count())

    with AsyncioServer() as server:  # one thread itself: any extra thread is the load's
        base = thread_count()
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            result = run_load(server.address, 1000, requests=2, timeout=60)
        finally:
            done.set()
            watcher.join()
    assert result.ok, result.summary()
    assert result.completed == 2000 and len(result.latencies_ns) == 2000
    assert all(c.connect_ns is not None and c.connect_ns > 0 for c in result.clients)
    assert all(lat > 0 for lat in result.latencies_ns)
    assert server.peak_connections > 1
    assert peak[0] - base <= 2  # the watcher and ONE load thread, not a thousand
    assert result.requests_per_s > 0


def test_replies_are_checked_byte_for_byte():
    with EchoServer() as server:
        result = run_load(server.address, 3, expect=lambda data: data[::-1])
    assert result.wrong == 3 and not result.ok  # the echo is not reversed


def test_payloads_are_unique_and_exact_size():
    payloads = {make_payload(c, r, 32) for c in range(10) for r in range(10)}
    assert len(payloads) == 100 and {len(p) for p in payloads} == {32}


def test_deadline_bounds_a_run_against_a_silent_server():
    with SilentServer() as server:
        result = run_load(server.address, 20, timeout=0.3)
    assert result.timed_out and result.completed == 0
    assert len(result.failed) == 20 and "deadline" in result.failed[0].error
    assert not result.latencies_ns  # an unanswered request has no latency


def test_refused_connections_are_reported_not_raised():
    with EchoServer() as server:
        address = server.address
    result = run_load(address, 5, timeout=5)
    assert not result.ok and all("Refused" in c.error for c in result.clients)


def test_open_connections_holds_them_and_closes_them():
    before = open_descriptors()
    with EchoServer() as server:
        with open_connections(server.address, 300) as idle:
            assert len(idle) == 300 and idle.failed == 0
            if before is not None:
                assert open_descriptors() >= before + 300
        assert len(idle) == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"clients": 0}, "clients"), ({"clients": MAX_CLIENTS + 1}, "clients"),
    ({"size": 8}, "size"), ({"timeout": 0}, "timeout"), ({"requests": -1}, "requests"),
])
def test_bad_arguments_say_what_to_do(kwargs, match):
    args = {"clients": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_load(("127.0.0.1", 9), **args)


def test_non_loopback_address_is_refused():
    with pytest.raises(ValueError, match="loopback"):
        run_load(("10.0.0.1", 80), 1)
    with pytest.raises(TypeError, match="server.address"):
        run_load("127.0.0.1:80", 1)


@pytest.mark.parametrize("values, q, want", [([1, 2, 3, 4, 5], 50, 3), ([1, 2, 3, 4, 5], 100, 5),
                                             ([1, 2, 3, 4, 5], 0, 1), ([10, 20], 50, 15)])
def test_percentile(values, q, want):
    assert percentile(values, q) == want
