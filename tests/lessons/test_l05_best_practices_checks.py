"""Lesson 05 checkers: each passes its reference and fails, with the right hint, each typical wrong answer."""

from __future__ import annotations

import asyncio
import socket

import pytest

from socketlessons.checks import show_solution
from socketlessons.lessons.l05_best_practices.checks import (
    ASYNC_CLOSE_HINT,
    ASYNC_HINT,
    ASYNC_TIMEOUT_HINT,
    CLOSE_HINT,
    GATHER_HINT,
    LOOP_HINT,
    PROPAGATE_HINT,
    SHUT_HINT,
    TIMEOUT_HINT,
    check_fetch,
    check_fetch_all,
)
from socketlessons.lessons.l05_best_practices.solutions import fetch, fetch_all

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- fetch: the typical wrong answers, written out ------------------------------------------------

def fetch_stub(address, request, timeout):
    """Send request, return the whole reply; never hang, always close."""
    ...


def single_recv(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(1024)


def no_timeout(address, request, timeout):
    with socket.create_connection(address) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply


def never_closes(address, request, timeout):
    sock = socket.create_connection(address, timeout=timeout)
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := sock.recv(1024):
        reply += chunk
    return reply


def closes_only_on_success(address, request, timeout):
    sock = socket.create_connection(address, timeout=timeout)
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := sock.recv(1024):  # a timeout raises here and skips close()
        reply += chunk
    sock.close()
    return reply


def no_half_close(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply


def swallows_the_timeout(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := sock.recv(1024):
                reply += chunk
        except socket.timeout:
            pass
        return reply


def test_fetch_reference_passes():
    result = check_fetch(fetch)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), [
    (single_recv, LOOP_HINT),
    (no_timeout, TIMEOUT_HINT),
    (never_closes, CLOSE_HINT),
    (closes_only_on_success, CLOSE_HINT),
    (no_half_close, SHUT_HINT),
    (swallows_the_timeout, PROPAGATE_HINT),
])
def test_fetch_wrong_answers_fail_with_their_hint(wrong, hint):
    result = check_fetch(wrong)
    assert not result.passed
    assert result.hint == hint, result


def test_fetch_stub_is_named():
    result = check_fetch(fetch_stub)
    assert not result.passed and "`...` body" in result.message


# ---- fetch_all -------------------------------------------------------------------------------------

async def fetch_all_stub(address, requests, timeout):
    """All requests at once."""
    ...


async def one_after_another(address, requests, timeout):
    replies = []
    for request in requests:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request)
            replies.append(await asyncio.wait_for(reader.readexactly(len(request)), timeout))
        finally:
            writer.close()
            await writer.wait_closed()
    return replies


def plain_def(address, requests, timeout):
    replies = []
    for request in requests:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            replies.append(sock.recv(1024))
    return replies


async def _one(address, request):
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        return await reader.readexactly(len(request))
    finally:
        writer.close()
        await writer.wait_closed()


async def as_completed_order(address, requests, timeout):
    tasks = [asyncio.ensure_future(_one(address, r)) for r in reversed(requests)]
    return [await t for t in tasks]  # reversed: the wrong order


async def no_async_timeout(address, requests, timeout):
    return await asyncio.gather(*(_one(address, r) for r in requests))


async def leaves_writers_open(address, requests, timeout):
    async def one(request):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request)
        return await reader.readexactly(len(request))

    return await asyncio.wait_for(asyncio.gather(*(one(r) for r in requests)), timeout)


def test_fetch_all_reference_passes():
    result = check_fetch_all(fetch_all)
    assert result.passed, result
    assert "connections at once" in result.message


@pytest.mark.parametrize(("wrong", "hint"), [
    (one_after_another, GATHER_HINT),
    (plain_def, ASYNC_HINT),
    (no_async_timeout, ASYNC_TIMEOUT_HINT),
    (leaves_writers_open, ASYNC_CLOSE_HINT),
])
def test_fetch_all_wrong_answers_fail_with_their_hint(wrong, hint):
    result = check_fetch_all(wrong)
    assert not result.passed
    assert result.hint == hint, result


def test_fetch_all_wrong_order_is_named():
    result = check_fetch_all(as_completed_order)
    assert not result.passed and "order" in result.message


def test_fetch_all_stub_is_named():
    result = check_fetch_all(fetch_all_stub)
    assert not result.passed and "`...` body" in result.message


def test_solutions_can_be_shown():
    assert show_solution("fetch") is not None and show_solution("fetch_all") is not None
