"""When the operating system refuses a thread: helpers say so once, turn the connection away,
and keep serving; lessons take only a share of the machine's threads.

The refusal is real, not mocked: ``threading.stack_size`` is set to 128 TiB, more address space
than a 64-bit process has, so the operating system cannot map the next thread's stack and
``Thread.start`` raises "can't start new thread", as it does when a host runs out of threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from socketlessons import EchoServer
from socketlessons.errors import ServerWarning
from socketlessons.lessons.l03_server_loop import demos as loop
from socketlessons.load import run_load
from socketlessons.resources import thread_room
from socketlessons.servers._loops import ThreadedServer

pytestmark = pytest.mark.usefixtures("no_leaks")

NO_ROOM = 1 << 47  # bytes of stack: beyond a 64-bit process's 128 TiB of user address space


@contextlib.contextmanager
def no_thread_to_spare() -> Iterator[None]:
    """New threads fail to start inside the block (threads already running are not touched)."""
    threading.stack_size(NO_ROOM)
    try:
        probe = threading.Thread(target=lambda: None)
        try:
            probe.start()
        except RuntimeError:
            pass
        else:
            probe.join()
            pytest.skip("this system started a thread with a 128 TiB stack; cannot make it refuse one")
        yield
    finally:
        threading.stack_size(0)


def _answered(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=2) as client:
        client.sendall(b"ping")
        try:
            return client.recv(16)
        except ConnectionResetError:
            return b""


@pytest.mark.parametrize("make", [EchoServer, ThreadedServer], ids=["echo", "thread-per-client"])
def test_a_refused_thread_turns_the_connection_away_once_reported_and_serving_goes_on(make):
    with pytest.warns(ServerWarning, match="refused a thread") as shown, make() as server:
        with no_thread_to_spare():
            turned = [_answered(server.address) for _ in range(3)]
            deadline = time.monotonic() + 2
            while server.turned_away < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert turned == [b"", b"", b""] and server.turned_away == 3
        assert len(server.errors) == 1, [e.error for e in server.errors]  # one report, not one per client
        assert "refused a thread" in server.errors[0].error and "thread_room" in server.errors[0].error
        assert _answered(server.address).lower() == b"ping"  # threads are back: served again
    assert len(shown) == 1  # the learner's cell shows one warning, not one per connection


def test_load_says_what_to_do_when_its_thread_cannot_start():
    with EchoServer() as server, no_thread_to_spare():
        with pytest.raises(RuntimeError, match="no thread to spare.*shut down kernels"):
            run_load(server.address, 2, timeout=5)


@pytest.mark.skipif(thread_room().free is None, reason="thread limits are only read on Linux")
def test_thread_room_names_the_tightest_limit_and_what_is_left():
    room = thread_room()
    assert 0 < room.free < room.limit and room.source
    assert f"{room.free:,}" in str(room)


@pytest.mark.skipif(thread_room().free is None, reason="thread limits are only read on Linux")
def test_a_lesson_takes_only_a_share_of_the_free_threads():
    wanted = thread_room().free  # all of them: far more than a share
    allowed, why = loop.threads_to_spare(wanted)
    assert allowed < wanted and allowed >= 100
    assert f"1/{loop.THREAD_SHARE}" in why and f"{wanted:,} asked" in why
    assert loop.threads_to_spare(10) == (10, "")


def test_idle_cost_of_thread_per_client_stays_within_its_share():
    allowed, _ = loop.threads_to_spare(100_000)
    cost = loop.idle_cost("threaded", 100_000, active=0, timeout=30) if allowed <= 1_000 else None
    if cost is None:
        pytest.skip(f"this machine could spare {allowed:,} threads: too many to open here quickly")
    assert cost.wanted == allowed and cost.held == allowed and "asked" in str(cost)
