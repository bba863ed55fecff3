"""Lesson 06 checkers: each passes its reference and fails, with the right hint, each typical wrong answer."""

from __future__ import annotations

import struct
import sys

import pytest

from socketlessons.checks import show_solution
from socketlessons.framing import recv_exactly
from socketlessons.lessons.l06_framing.checks import (
    CARRY_HINT,
    EMPTY_LINE_HINT,
    GLUED_HINT,
    GLUED_LINES_HINT,
    HEADER_PIECES_HINT,
    LINES_EOF_HINT,
    check_read_lines,
    check_read_message,
)
from socketlessons.lessons.l06_framing.solutions import read_lines, read_message

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- read_lines: the typical wrong answers, written out -------------------------------------------

def read_lines_stub(sock):
    """Every newline-terminated message until the peer closes."""
    ...


def one_recv_is_one_line(sock):
    lines = []
    while chunk := sock.recv(4096):
        lines.append(chunk.rstrip(b"\n"))
    return lines


def splits_each_recv_alone(sock):
    lines = []
    while chunk := sock.recv(4096):
        lines.extend(chunk.split(b"\n")[:-1] if chunk.endswith(b"\n") else chunk.split(b"\n"))
    return lines


def drops_empty_lines(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return [line for line in data.split(b"\n") if line]


def keeps_a_cut_off_line(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    *lines, rest = data.split(b"\n")
    return lines + [rest] if rest else lines


def single_recv_of_1024(sock):
    return sock.recv(1024).split(b"\n")[:-1]


def test_read_lines_reference_passes():
    result = check_read_lines(read_lines)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), [
    (one_recv_is_one_line, GLUED_LINES_HINT),
    (splits_each_recv_alone, CARRY_HINT),
    (drops_empty_lines, EMPTY_LINE_HINT),
    (keeps_a_cut_off_line, LINES_EOF_HINT),
    (single_recv_of_1024, GLUED_LINES_HINT),
])
def test_read_lines_wrong_answers_fail_with_their_hint(wrong, hint):
    result = check_read_lines(wrong)
    assert not result.passed
    assert result.hint == hint, result


def test_read_lines_stub_is_named():
    result = check_read_lines(read_lines_stub)
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
    assert show_solution("read_lines") is not None and show_solution("read_message") is not None
