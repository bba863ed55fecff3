"""Lesson 01 checkers: each passes its reference and fails, with the right hint, the stub and
each typical wrong answer (written out below as a learner would write them)."""

from __future__ import annotations

import pytest

from socketlessons.checks import solution
from socketlessons.lessons.l01_client.checks import (
    COUNT_HINT,
    EOF_HINT,
    LOOP_HINT,
    OVERREAD_HINT,
    PARTIAL_SEND_HINT,
    REST_HINT,
    RETURN_HINT,
    SENDALL_HINT,
    SHORT_HINT,
    check_recv_exactly,
    check_send_all,
)

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- recv_exactly -----------------------------------------------------------------------------

def recv_exactly_stub(sock, n):
    """Return exactly n bytes from sock, however they arrive."""
    ...


def single_recv(sock, n):
    return sock.recv(n)


def recv_n_in_loop(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n)  # asks for n every time: reads past the end of this message
        if not chunk:
            raise EOFError
        data += chunk
    return data


def no_eof_check(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))  # b"" forever once the peer closed
    return data


def returns_short(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def forgets_return(sock, n):
    chunks, missing = [], n
    while missing:
        chunk = sock.recv(missing)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)


def test_reference_recv_exactly_passes():
    result = check_recv_exactly(solution("recv_exactly"))
    assert result.passed, str(result)
    assert "EOFError" in result.message


def test_recv_exactly_stub_is_not_yet():
    result = check_recv_exactly(recv_exactly_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize("wrong, hint", [
    (single_recv, LOOP_HINT),
    (recv_n_in_loop, OVERREAD_HINT),
    (no_eof_check, EOF_HINT),
    (returns_short, SHORT_HINT),
    (forgets_return, RETURN_HINT),
])
def test_recv_exactly_wrong_answers_get_their_hint(wrong, hint):
    result = check_recv_exactly(wrong)
    assert not result.passed, str(result)
    assert result.hint == hint, str(result)


# ---- send_all -----------------------------------------------------------------------------------

def send_all_stub(sock, data):
    """Send every byte of data using only sock.send; return how many send() calls it took."""
    ...


def single_send(sock, data):
    sock.send(data)
    return 1


def resends_everything(sock, data):
    sent = calls = 0
    while sent < len(data):
        sent += sock.send(data)  # all of data again, not the rest
        calls += 1
    return calls


def uses_sendall(sock, data):
    sock.sendall(data)
    return 1


def wrong_count(sock, data):
    sent = 0
    while sent < len(data):
        sent += sock.send(data[sent:])
    return sent  # bytes, not calls


def test_reference_send_all_passes():
    result = check_send_all(solution("send_all"))
    assert result.passed, str(result)


def test_send_all_needs_many_calls_for_a_megabyte():
    """The checker's set-up really makes send() take part: the reference needs many calls."""
    from socketlessons.lessons.l01_client.checks import SEND_BIG, _SendOnly, _SlowReader

    peer = _SlowReader(limit=2 * SEND_BIG)
    try:
        peer.client.settimeout(2.0)
        wrapped = _SendOnly(peer.client)
        calls = solution("send_all")(wrapped, b"x" * SEND_BIG)
        assert peer.finish() == b"x" * SEND_BIG
    finally:
        peer.close()
    assert calls == wrapped.calls > 2


def test_send_all_stub_is_not_yet():
    result = check_send_all(send_all_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize("wrong, hint", [
    (single_send, PARTIAL_SEND_HINT),
    (resends_everything, REST_HINT),
    (uses_sendall, SENDALL_HINT),
    (wrong_count, COUNT_HINT),
])
def test_send_all_wrong_answers_get_their_hint(wrong, hint):
    result = check_send_all(wrong)
    assert not result.passed, str(result)
    assert result.hint == hint, str(result)
