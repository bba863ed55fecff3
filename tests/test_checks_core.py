"""The checker machinery itself: verdicts, stubs, exceptions, deadlines."""

from __future__ import annotations

import socket

import pytest

from socketlessons import SilentServer
from socketlessons.checks import (
    CheckResult,
    call,
    checker,
    expect,
    is_stub,
    show_solution,
)

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
