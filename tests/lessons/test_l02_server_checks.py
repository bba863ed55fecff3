"""Lesson 02 checkers: each passes its reference and fails, with the right hint, the stub and
each typical wrong answer (written out below as a learner would write them)."""

from __future__ import annotations

import socket
import sys

import pytest

from socketlessons.checks import solution
from socketlessons.lessons.l02_server.checks import (
    CATCH_HINT,
    CLIENTS_HINT,
    CLOSE_HINT,
    EOF_HINT,
    LISTEN_HINT,
    LOOP_HINT,
    LOOPBACK_HINT,
    RETURN_HINT,
    RETURN_SOCK_HINT,
    REUSE_HINT,
    REUSE_ORDER_HINT,
    SENDALL_HINT,
    TIMEOUT_HINT,
    check_echo_server,
    check_open_server,
)

pytestmark = pytest.mark.usefixtures("no_leaks")
posix_only = pytest.mark.skipif(sys.platform == "win32",
                                reason="Windows lets a port in TIME_WAIT be bound again without SO_REUSEADDR")


# ---- echo_server ------------------------------------------------------------------------------

def echo_server_stub(listener, clients, timeout):
    """Serve `clients` clients one after another, echoing each; drop one silent for `timeout` s."""
    ...


def single_recv(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(timeout)
            try:
                conn.sendall(conn.recv(1024))
            except TimeoutError:
                pass


def send_not_sendall(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(timeout)
            try:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.send(data)
            except TimeoutError:
                pass


def send_each_chunk(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(timeout)
            try:
                while data := conn.recv(65536):
                    conn.send(data)  # may take only part of the chunk
            except TimeoutError:
                pass


def no_timeout(listener, clients):
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def never_closes(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        conn.settimeout(timeout)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except TimeoutError:
            pass


def closes_only_on_success(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        conn.settimeout(timeout)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.close()
        except TimeoutError:
            continue  # forgets conn.close() here


def timeout_escapes(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(timeout)
            while data := conn.recv(65536):
                conn.sendall(data)


def spins_on_eof(listener, clients, timeout):
    for _ in range(clients):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(timeout)
            try:
                while True:  # never leaves when recv returns b""
                    conn.sendall(conn.recv(65536))
            except TimeoutError:
                pass


def one_client_only(listener, clients, timeout):
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(timeout)
        while data := conn.recv(65536):
            conn.sendall(data)


def never_returns(listener, clients, timeout):
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(timeout)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except TimeoutError:
                pass


def test_reference_echo_server_passes():
    result = check_echo_server(solution("echo_server"))
    assert result.passed, str(result)


def test_echo_server_stub_is_not_yet():
    result = check_echo_server(echo_server_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize("wrong, hint", [
    (single_recv, LOOP_HINT),
    (send_not_sendall, SENDALL_HINT),
    (send_each_chunk, SENDALL_HINT),
    (never_closes, EOF_HINT),
    (closes_only_on_success, CLOSE_HINT),
    (timeout_escapes, CATCH_HINT),
    (spins_on_eof, EOF_HINT),
    (one_client_only, CLIENTS_HINT),
    (never_returns, RETURN_HINT),
])
def test_echo_server_wrong_answers_get_their_hint(wrong, hint):
    result = check_echo_server(wrong)
    assert not result.passed, str(result)
    assert result.hint == hint, str(result)


def test_a_server_without_timeout_is_caught():
    def no_timeout_3(listener, clients, timeout):
        no_timeout(listener, clients)

    result = check_echo_server(no_timeout_3)
    assert not result.passed and result.hint == TIMEOUT_HINT, str(result)


# ---- open_server ------------------------------------------------------------------------------

def open_server_stub(port):
    """Return a TCP socket listening on 127.0.0.1:port that a restarted server can bind at once."""
    ...


def no_reuseaddr(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def reuseaddr_after_bind(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.listen()
    return sock


def forgets_listen(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def all_interfaces(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))
    sock.listen()
    return sock


def forgets_return(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    sock.close()


def test_reference_open_server_passes():
    result = check_open_server(solution("open_server"))
    assert result.passed, str(result)


def test_open_server_stub_is_not_yet():
    result = check_open_server(open_server_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize("wrong, hint", [
    pytest.param(no_reuseaddr, REUSE_HINT, marks=posix_only),
    pytest.param(reuseaddr_after_bind, REUSE_ORDER_HINT, marks=posix_only),
    (forgets_listen, LISTEN_HINT),
    (all_interfaces, LOOPBACK_HINT),
    (forgets_return, RETURN_SOCK_HINT),
])
def test_open_server_wrong_answers_get_their_hint(wrong, hint):
    result = check_open_server(wrong)
    assert not result.passed, str(result)
    assert result.hint == hint, str(result)
