"""Lesson 07 checkers: each passes its reference and fails, with the right hint, each typical wrong answer."""

from __future__ import annotations

import socket

import pytest

from socketlessons.lessons.l07_ipv6_and_versions import check_ask, check_connect_first
from socketlessons.lessons.l07_ipv6_and_versions.solutions import ask, connect_first

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- connect_first ---------------------------------------------------------------------------

def connect_first_stub(infos, timeout=2.0):
    """Connect to the first address that works."""
    ...


def only_the_first(infos, timeout=2.0):
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.connect(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def always_af_inet(infos, timeout=2.0):
    last = None
    for _family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(socket.AF_INET, type_, proto)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except TypeError:
            sock.close()
            raise
    raise last


def returns_none_when_all_fail(infos, timeout=2.0):
    for family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError:
            sock.close()
    return None


def leaks_failed_sockets(infos, timeout=2.0):
    last = None
    for family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last = exc  # the failed socket is dropped without close()
    raise last


def test_connect_first_reference_passes():
    result = check_connect_first(connect_first)
    assert result.passed, result


def test_connect_first_stub():
    result = check_connect_first(connect_first_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize(("wrong", "hint"), [
    (only_the_first, "loop over every getaddrinfo result"),
    (returns_none_when_all_fail, "raise the last error"),
    (leaks_failed_sockets, "close the socket of each failed attempt"),
])
def test_connect_first_wrong_answers(wrong, hint):
    result = check_connect_first(wrong)
    assert not result.passed and hint in result.hint, result


def test_connect_first_af_inet_only_fails_where_ipv6_exists():
    from socketlessons.doctor import ipv6_available

    if not ipv6_available():
        pytest.skip("no IPv6 on this host: the checker tests IPv4 only and cannot tell")
    result = check_connect_first(always_af_inet)
    assert not result.passed and "socket.socket(family, type, proto)" in result.hint, result


# ---- ask -------------------------------------------------------------------------------------

def ask_stub(address, text):
    ...


def sends_str(address, text):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text + "\n")
        return sock.recv(1024).decode()


def returns_bytes(address, text):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            reply += sock.recv(1024)
        return reply[:-1]


def keeps_newline(address, text):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            reply += sock.recv(1024)
        return reply.decode()


def single_recv(address, text):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text.encode() + b"\n")
        return sock.recv(1024).decode("utf-8", errors="replace").removesuffix("\n")


def decodes_each_chunk(address, text):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text.encode() + b"\n")
        reply = ""
        while not reply.endswith("\n"):
            reply += sock.recv(1024).decode("utf-8")
        return reply[:-1]


def ascii_only(address, text):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text.encode("ascii") + b"\n")
        return sock.recv(1024).decode("ascii")[:-1]


def test_ask_reference_passes():
    result = check_ask(ask)
    assert result.passed, result


def test_ask_stub():
    assert "`...` body" in check_ask(ask_stub).message


@pytest.mark.parametrize(("wrong", "hint"), [
    (sends_str, "sockets carry bytes"),
    (returns_bytes, "decode what you received"),
    (keeps_newline, "strip the final"),
    (single_recv, "loop until the reply ends"),
    (decodes_each_chunk, "decode once"),
])
def test_ask_wrong_answers(wrong, hint):
    result = check_ask(wrong)
    assert not result.passed and hint in result.hint, result


def test_ask_ascii_encoding_is_caught():
    result = check_ask(ascii_only)
    assert not result.passed and "UnicodeEncodeError" in result.message and "utf-8" in result.hint, result
