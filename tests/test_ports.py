"""lessons._ports: the addresses a demo talks to without reaching another kernel, on real sockets."""

from __future__ import annotations

import contextlib
import errno
import socket

import pytest

from socketlessons.doctor import ipv6_available
from socketlessons.lessons._ports import (
    _hold,
    closed_port,
    listener_alone_at_its_port,
    port_nobody_uses,
)
from socketlessons.lessons.l02_server import ephemeral_port_range

needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this host")


def test_closed_port_refuses_and_is_held(no_leaks):
    with closed_port() as (host, port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=2).close()
        with socket.socket() as rival, pytest.raises(OSError) as taken:
            rival.bind((host, port))
        assert taken.value.errno == errno.EADDRINUSE


@needs_ipv6
@pytest.mark.parametrize(("host", "other"), [("::1", "127.0.0.1"), ("127.0.0.1", "::1")])
def test_the_other_address_at_the_listeners_port_is_held(host, other, no_leaks):
    """What lessons 05 and 07 rely on: in a classroom, another kernel may listen on the other
    family at the number we got (the classroom test saw it); while we hold it, nobody can."""
    with listener_alone_at_its_port(host, [other]) as server:
        port = server.getsockname()[1]
        family = socket.AF_INET6 if ":" in other else socket.AF_INET
        with socket.socket(family) as rival, pytest.raises(OSError) as taken:
            rival.bind((other, port))
        assert taken.value.errno == errno.EADDRINUSE
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, port), timeout=2).close()
        with socket.create_connection((host, port), timeout=2):
            server.accept()[0].close()


@needs_ipv6
def test_holding_fails_only_when_someone_else_has_the_address(no_leaks):
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as rival, contextlib.ExitStack() as held:
        assert _hold(held, "::1", rival.getsockname()[1]) is False  # taken: draw another port
        with closed_port("::1") as (_, free):
            pass
        assert _hold(held, "::1", free) is True


def test_port_nobody_uses_is_free_and_outside_the_range_port_0_draws_from(no_leaks):
    low, high, _ = ephemeral_port_range()
    host, port = port_nobody_uses()
    assert host == "127.0.0.1" and not low <= port <= high, (port, low, high)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2).close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # connected UDP hears the refusal
        probe.connect((host, port))
        probe.settimeout(2)
        probe.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            probe.recv(16)
