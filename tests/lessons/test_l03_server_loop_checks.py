"""Lesson 03 checkers: each passes its reference and fails, with the right hint, each typical wrong answer."""

from __future__ import annotations

import threading

import pytest

from socketlessons.lessons.l03_server_loop import (
    check_echo_until_eof,
    check_serve_concurrently,
)
from socketlessons.lessons.l03_server_loop.solutions import (
    echo_until_eof,
    serve_concurrently,
)

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- echo_until_eof ----------------------------------------------------------------------------

def echo_stub(conn):
    """Echo until the client closes."""
    ...


def no_eof_check(conn):
    with conn:
        while True:
            data = conn.recv(1024)
            conn.sendall(data)  # b"" forever once the client closed: never returns


def single_recv(conn):
    with conn:
        conn.sendall(conn.recv(1024))


def never_closes(conn):
    try:
        while data := conn.recv(1024):
            conn.sendall(data)
    except ConnectionError:
        pass


def raises_on_reset(conn):
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)


def closes_only_on_eof(conn):
    try:
        while data := conn.recv(1024):
            conn.sendall(data)
        conn.close()
    except ConnectionError:
        pass  # ...but leaks the socket of a client that reset


def sends_something_else(conn):
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data.upper())


def test_echo_reference_passes():
    result = check_echo_until_eof(echo_until_eof)
    assert result.passed, result


@pytest.mark.parametrize("wrong, message, hint", [
    (echo_stub, "`...` body", "write the function"),
    (no_eof_check, "did not return", "recv returns b''"),
    (single_recv, "1 came back", "in a loop"),
    (never_closes, "still open", "close the connection"),
    (raises_on_reset, "disconnected early", "catch ConnectionError"),
    (closes_only_on_eof, "without closing", "close the connection"),
    (sends_something_else, "got back", "exactly the bytes"),
])
def test_echo_wrong_answers_fail_with_their_hint(wrong, message, hint):
    result = check_echo_until_eof(wrong)
    assert not result.passed
    assert message in result.message, result
    assert hint in result.hint, result


# ---- serve_concurrently ------------------------------------------------------------------------

def serve_stub(listener, handle_client):
    """Serve clients at the same time."""
    ...


def sequential(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        handle_client(conn)


def target_called_inline(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle_client(conn)).start()


def joins_each_thread(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        t = threading.Thread(target=handle_client, args=(conn,))
        t.start()
        t.join()


def accepts_once(listener, handle_client):
    conn, _ = listener.accept()
    threading.Thread(target=handle_client, args=(conn,)).start()


def forgets_args(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        try:
            threading.Thread(target=handle_client).start()
        finally:
            conn.close()


def never_accepts(listener, handle_client):
    return None


def test_serve_reference_passes():
    result = check_serve_concurrently(serve_concurrently)
    assert result.passed, result
    assert "at once" in result.message


@pytest.mark.parametrize("wrong, message, hint", [
    (serve_stub, "`...` body", "write the function"),
    (sequential, "one at a time", "start a thread per client"),
    (target_called_inline, "one at a time", "target=handle_client(conn)"),
    (joins_each_thread, "one at a time", "do not wait for it"),
    (accepts_once, "only 1 of 6", "accept in a loop"),
    (forgets_args, "raised TypeError", "args=(conn,)"),
    (never_accepts, "none of the 6", "accept in a loop"),
])
def test_serve_wrong_answers_fail_with_their_hint(wrong, message, hint):
    result = check_serve_concurrently(wrong)
    assert not result.passed
    assert message in result.message, result
    assert hint in result.hint, result


def test_checkers_never_raise_on_garbage():
    assert not check_serve_concurrently(42).passed
    assert not check_echo_until_eof(lambda conn: 1 / 0).passed
