"""Lesson 06 checkers: each passes its reference and fails, with the right hint, each typical wrong answer."""

from __future__ import annotations

import struct
import sys

import pytest

from socketlessons.checks import show_solution
from socketlessons.checks.lesson06 import (
    EOF_HINT,
    GLUED_HINT,
    HEADER_PIECES_HINT,
    LOOP_HINT,
    OVERREAD_HINT,
    check_read_message,
    check_recv_exactly,
)
from socketlessons.solutions.lesson06 import read_message, recv_exactly

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- recv_exactly: the typical wrong answers, written out -------------------------------------------

def recv_exactly_stub(sock, n):
    """Return exactly n bytes from sock."""
    ...


def single_recv(sock, n):
    return sock.recv(n)


def asks_too_much(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(1024)
        if not chunk:
            raise EOFError
        data += chunk
    return data


def spins_at_the_end(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))  # b"" forever once the peer has closed
    return data


def returns_short(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_recv_exactly_reference_passes():
    result = check_recv_exactly(recv_exactly)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), [
    (single_recv, LOOP_HINT),
    (asks_too_much, OVERREAD_HINT),
    (spins_at_the_end, EOF_HINT),
    (returns_short, EOF_HINT),
])
def test_recv_exactly_wrong_answers_fail_with_their_hint(wrong, hint):
    result = check_recv_exactly(wrong)
    assert not result.passed
    assert result.hint == hint, result


def test_recv_exactly_stub_is_named():
    result = check_recv_exactly(recv_exactly_stub)
    assert not result.passed and "`...` body" in result.message


# ---- read_message --------------------------------------------------------------------------------

def read_message_stub(sock):
    """Read one length-prefixed message."""
    ...


def single_recvs(sock):
    (n,) = struct.unpack("!I", sock.recv(4))
    return sock.recv(n)


def one_recv_is_one_message(sock):
    return sock.recv(65536)[4:]


def native_byte_order(sock):
    (n,) = struct.unpack("I", recv_exactly(sock, 4))
    return recv_exactly(sock, n)


def test_read_message_reference_passes():
    result = check_read_message(read_message)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), [
    (single_recvs, HEADER_PIECES_HINT),
    (one_recv_is_one_message, GLUED_HINT),
])
def test_read_message_wrong_answers_fail_with_their_hint(wrong, hint):
    result = check_read_message(wrong)
    assert not result.passed
    assert result.hint == hint, result


@pytest.mark.skipif(sys.byteorder != "little", reason="native and network order agree on big-endian machines")
def test_read_message_native_byte_order_is_diagnosed():
    result = check_read_message(native_byte_order)
    assert not result.passed
    assert "'!I'" in result.hint and "83,886,080" in result.hint, result


def test_read_message_stub_is_named():
    result = check_read_message(read_message_stub)
    assert not result.passed and "`...` body" in result.message


def test_solutions_can_be_shown():
    assert show_solution("recv_exactly") is not None and show_solution("read_message") is not None
