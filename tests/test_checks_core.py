"""The checker machinery itself: verdicts, stubs, exceptions, deadlines."""

from __future__ import annotations

import socket

import pytest

from socketlessons import SilentServer
from socketlessons.checks import (
    BUSY_HINT,
    GLOBAL_TIMEOUT_HINT,
    LEAK_HINT,
    CheckResult,
    call,
    checker,
    expect,
    is_stub,
    show_solution,
)
from socketlessons.checks._core import ASYNC_DEF_HINT, EXIT_HINT, GENERATOR_HINT, STR_HINT

pytestmark = pytest.mark.usefixtures("no_leaks")


@checker("double")
def check_double(fn):
    got = call(fn, 21, timeout=1)
    expect(got == 42, f"expected 42, got {got!r}", hint="multiply by two")
    return "21 doubled is 42"


def stub(x): ...


def stub_with_docstring(x):
    """Double x."""
    ...


def test_reference_passes():
    result = check_double(lambda x: 2 * x)
    assert result.passed and bool(result) and "42" in str(result) and "passed" in result._repr_html_()


def test_wrong_answer_fails_with_hint():
    result = check_double(lambda x: x + 2)
    assert not result.passed
    assert result.message == "expected 42, got 23" and result.hint == "multiply by two"
    assert "Hint: multiply by two" in str(result)


@pytest.mark.parametrize("fn", [stub, stub_with_docstring])
def test_untouched_stub_is_named_as_such(fn):
    assert is_stub(fn)
    result = check_double(fn)
    assert not result.passed and "`...` body" in result.message


def test_a_real_function_is_not_a_stub():
    def real(x):
        return None

    assert not is_stub(real) and not is_stub(lambda x: x)


def test_exception_in_learner_code_becomes_a_verdict():
    result = check_double(lambda x: b"a" + "b")
    assert not result.passed and "TypeError" in result.message and "bytes" in result.hint


def test_passing_the_result_instead_of_the_function():
    result = check_double(42)
    assert not result.passed and "without calling it" in result.hint


def test_a_hanging_function_is_stopped_by_the_deadline():
    @checker("hang")
    def check_hang(fn):
        with SilentServer() as server:
            call(fn, server.address, timeout=0.3, on_timeout=server.stop)
        return "unreachable"

    def waits_forever(address):
        with socket.create_connection(address) as sock:
            return sock.recv(10)  # the silent server never answers; stop() wakes it

    result = check_hang(waits_forever)
    assert not result.passed and "did not return within 0.3 s" in result.message


def test_checkresult_is_falsy_when_failed():
    assert not CheckResult("x", False, "m")


def test_unknown_solution_lists_known_ones():
    with pytest.raises(KeyError, match="no solution named"):
        show_solution("no-such-exercise")


# ---- nothing escapes a checker -------------------------------------------------------------------


def _exits(x):
    raise SystemExit(3)


def _interrupts(x):
    raise KeyboardInterrupt


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


def _raises_unprintable(x):
    raise _Unprintable


async def _async_double(x):
    return 2 * x


def _generator_double(x):
    yield 2 * x


@pytest.mark.parametrize(("fn", "message", "hint"), [
    (_exits, "SystemExit: 3", EXIT_HINT),
    (_interrupts, "KeyboardInterrupt", EXIT_HINT),
    (_raises_unprintable, "cannot be printed", STR_HINT),
    (_async_double, "async def", ASYNC_DEF_HINT),
    (_generator_double, "generator", GENERATOR_HINT),
])
def test_what_would_escape_becomes_a_not_yet(fn, message, hint):
    result = check_double(fn)
    assert not result.passed and message in result.message and result.hint == hint, str(result)


def test_an_async_def_is_welcome_where_the_reference_is_one():
    from socketlessons.lessons.l05_best_practices.checks import check_fetch_all  # its reference is async

    result = check_fetch_all(_async_double)
    assert "async def" not in result.message, str(result)


def test_the_checkers_own_error_is_not_blamed_on_the_learner():
    @checker("broken")
    def check_broken(fn):
        call(fn, 1, timeout=1)
        return {}["missing"]  # a bug in the checker, after the learner's call returned

    result = check_broken(lambda x: x)
    assert not result.passed and "checker's own code" in result.message and "your function raised" not in result.message


@pytest.mark.skipif(not hasattr(__import__("signal"), "pthread_kill"), reason="POSIX signals (Windows has no SIGINT to send)")
def test_an_interrupt_of_the_check_still_interrupts_and_wakes_the_learners_thread():
    """■ on the checker's cell: KeyboardInterrupt reaches the caller, and the learner's thread,
    blocked in recv on a silent server, is woken by on_timeout (no thread left behind)."""
    import os
    import signal
    import threading
    import time

    @checker("interrupted")
    def check_interrupted(fn):
        with SilentServer() as server:
            call(fn, server.address, timeout=30, on_timeout=server.stop)
        return "unreachable"

    def waits(address):
        with socket.create_connection(address) as sock:
            return sock.recv(10)

    # A real SIGINT, as Jupyter's interrupt sends (_thread.interrupt_main would not break the wait).
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        check_interrupted(waits)
    timer.join()
    assert time.monotonic() - started < 10, "the interrupt waited for the 30 s deadline"
    # and the learner's thread is gone: no_leaks checks threads


# ---- what no single test of a body sees: leaks, busy loops, the kernel-wide default timeout ------


@checker("echo_once")
def check_echo_once(fn):
    from socketlessons import EchoServer

    with EchoServer() as server:
        got = call(fn, server.address, b"ping", timeout=3)
    expect(got == b"ping", f"expected b'ping', got {got!r}", hint="send, then recv")
    return "echoed"


def _echo_once(address, data):
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(data)
        return sock.recv(len(data))


_KEPT: list[socket.socket] = []


def _echo_once_never_closed(address, data):
    sock = socket.create_connection(address, timeout=2)
    sock.sendall(data)
    return sock.recv(len(data))  # the socket is garbage now: a ResourceWarning when collected


def _echo_once_kept_open(address, data):
    sock = socket.create_connection(address, timeout=2)
    _KEPT.append(sock)  # still referenced: no ResourceWarning, but one more socket open
    sock.sendall(data)
    return sock.recv(len(data))


def _echo_once_spinning(address, data):
    import time

    with socket.create_connection(address, timeout=2) as sock:
        sock.setblocking(False)
        sock.sendall(data)
        end = time.monotonic() + 0.6
        got = b""
        while time.monotonic() < end:  # polls a non-blocking socket: a busy loop
            try:
                got += sock.recv(len(data))
            except BlockingIOError:
                continue
        return got


def _echo_once_global_timeout(address, data):
    socket.setdefaulttimeout(2)  # for the whole kernel
    with socket.create_connection(address) as sock:
        sock.sendall(data)
        return sock.recv(len(data))


def test_a_correct_function_passes_the_extra_checks():
    assert check_echo_once(_echo_once).passed


@pytest.mark.parametrize("fn", [_echo_once_never_closed, _echo_once_kept_open])
def test_a_socket_left_open_fails_with_the_leak_hint(fn):
    try:
        result = check_echo_once(fn)
    finally:
        while _KEPT:
            _KEPT.pop().close()
    assert not result.passed and result.hint == LEAK_HINT, str(result)


def test_a_busy_loop_fails_with_the_busy_hint():
    result = check_echo_once(_echo_once_spinning)
    assert not result.passed and result.hint == BUSY_HINT, str(result)


def test_a_changed_default_timeout_fails_and_is_undone():
    before = socket.getdefaulttimeout()
    result = check_echo_once(_echo_once_global_timeout)
    assert not result.passed and result.hint == GLOBAL_TIMEOUT_HINT, str(result)
    assert socket.getdefaulttimeout() == before
