"""Lesson 08 checkers: each passes its reference and fails, with the right hint, each typical wrong answer.

The wrong answers are caught by timing the write-write-read stall, so those tests need a system
that stalls (Linux loopback does: delayed ACK, measured ~40 ms); elsewhere they skip.
"""

from __future__ import annotations

import socket
import sys

import pytest

from socketlessons.lessons.l08_under_the_hood import (
    check_nodelay_client,
    check_send_request,
)
from socketlessons.lessons.l08_under_the_hood.solutions import (
    nodelay_client,
    send_request,
)

pytestmark = pytest.mark.usefixtures("no_leaks")
stalls = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the delayed-ACK stall is measured on Linux")


def nodelay_client_stub(address):
    """Return a connection without Nagle's stall."""
    ...


def plain_connection(address):
    return socket.create_connection(address, timeout=5)


def wrong_level(address):
    sock = socket.create_connection(address, timeout=5)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.TCP_NODELAY, 1)  # TCP_NODELAY == 1 == SO_DEBUG there
    except OSError:
        pass  # SO_DEBUG may need privileges; either way Nagle stays on
    return sock


def not_connected(address):
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def returns_nothing(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def test_nodelay_client_reference_passes():
    result = check_nodelay_client(nodelay_client)
    assert result.passed, result


def test_nodelay_client_stub():
    assert "`...` body" in check_nodelay_client(nodelay_client_stub).message


@pytest.mark.parametrize(("wrong", "hint"), [
    (plain_connection, "IPPROTO_TCP"),
    (wrong_level, "not SOL_SOCKET"),
    (not_connected, "connect it"),
    (returns_nothing, "return the connected socket"),
])
def test_nodelay_client_wrong_answers(wrong, hint):
    result = check_nodelay_client(wrong)
    assert not result.passed and hint in result.hint, result


def send_request_stub(sock, header, body):
    ...


def two_writes(sock, header, body):
    sock.sendall(header)
    sock.sendall(body)


def switches_nodelay_on(sock, header, body):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(header)
    sock.sendall(body)


def header_and_half_the_body(sock, header, body):
    sock.sendall(header + body[: len(body) // 2])


def test_send_request_reference_passes():
    result = check_send_request(send_request)
    assert result.passed, result


def test_send_request_stub():
    assert "`...` body" in check_send_request(send_request_stub).message


@stalls
def test_send_request_two_writes_stall():
    result = check_send_request(two_writes)
    assert not result.passed and "sendall(header + body)" in result.hint and "ms" in result.message, result


def test_send_request_nodelay_is_the_other_exercise():
    result = check_send_request(switches_nodelay_on)
    assert not result.passed and "one write" in result.hint, result


def test_send_request_incomplete_request_times_out():
    result = check_send_request(header_and_half_the_body)
    assert not result.passed and "still waiting for the rest" in result.message and "every byte" in result.hint, result
