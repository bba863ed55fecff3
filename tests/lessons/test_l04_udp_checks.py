"""Lesson 04 checker: it passes the reference pinger and fails, with the right hint, each typical wrong one."""

from __future__ import annotations

import time

import pytest

from socketlessons.lessons.l04_udp import check_ping
from socketlessons.lessons.l04_udp.solutions import ping

pytestmark = pytest.mark.usefixtures("no_leaks")


def ping_stub(sock, address, count=10, timeout=0.05, retries=2):
    """Ping with timeouts and retries."""
    ...


def no_timeout(sock, address, count=10, timeout=0.05, retries=2):
    rtts = []
    for seq in range(count):
        t0 = time.perf_counter()
        sock.sendto(f"ping {seq}".encode(), address)
        sock.recvfrom(1024)  # waits forever for a lost reply
        rtts.append(time.perf_counter() - t0)
    return rtts


def no_retries(sock, address, count=10, timeout=0.05, retries=2):
    sock.settimeout(timeout)
    rtts = []
    for seq in range(count):
        msg = f"ping {seq}".encode()
        t0 = time.perf_counter()
        sock.sendto(msg, address)
        rtt = None
        try:
            while True:
                data, _ = sock.recvfrom(1024)
                if data == msg:
                    rtt = time.perf_counter() - t0
                    break
        except TimeoutError:
            pass
        rtts.append(rtt)
    return rtts


def no_sequence_check(sock, address, count=10, timeout=0.05, retries=2):
    sock.settimeout(timeout)
    rtts = []
    for seq in range(count):
        rtt = None
        for _ in range(1 + retries):
            t0 = time.perf_counter()
            sock.sendto(f"ping {seq}".encode(), address)
            try:
                sock.recvfrom(1024)  # any reply will do: a duplicate or a late one too
                rtt = time.perf_counter() - t0
                break
            except TimeoutError:
                continue
        rtts.append(rtt)
    return rtts


def returns_loss_count(sock, address, count=10, timeout=0.05, retries=2):
    return sum(r is None for r in ping(sock, address, count, timeout, retries))


def milliseconds(sock, address, count=10, timeout=0.05, retries=2):
    return [None if r is None else r * 1000 for r in ping(sock, address, count, timeout, retries)]


def test_reference_passes():
    result = check_ping(ping)
    assert result.passed, result


@pytest.mark.parametrize("wrong, message, hint", [
    (ping_stub, "`...` body", "write the function"),
    (no_timeout, "waited forever", "settimeout"),
    (no_retries, "no retries", "send it again"),
    (no_sequence_check, "duplicates", "ping's number"),
    (returns_loss_count, "expected a list", "one entry per ping"),
    (milliseconds, "are they in seconds", "perf_counter"),
])
def test_wrong_answers_fail_with_their_hint(wrong, message, hint):
    result = check_ping(wrong)
    assert not result.passed
    assert message in result.message, result
    assert hint in result.hint, result
