"""BackgroundCall: the one "run it in a thread, wait with a deadline" every helper uses."""

from __future__ import annotations

import socket

import pytest

from socketlessons.background_call import BackgroundCall


def test_value_and_timing_come_back():
    call = BackgroundCall(lambda: 6 * 7, name="t-value").start()
    assert call.join(2.0) and call.outcome() == 42 and call.error is None
    assert 0 <= call.elapsed_s < 2.0


def test_an_exception_is_raised_in_the_callers_thread_not_printed(capsys):
    def boom():
        raise ValueError("from the helper thread")

    call = BackgroundCall(boom, name="t-error").start()
    assert call.join(2.0)
    assert isinstance(call.error, ValueError)
    with pytest.raises(ValueError, match="from the helper thread"):
        call.outcome()
    assert capsys.readouterr() == ("", "")


def test_a_call_that_waits_forever_is_reported_then_woken(no_leaks):
    a, b = socket.socketpair()
    with a, b:
        call = BackgroundCall(lambda: a.recv(10), name="t-wait").start()
        assert call.join(0.1) is False and call.still_running
        with pytest.raises(RuntimeError, match="still running"):
            call.outcome()
        b.sendall(b"wake")  # what a caller does: wake what it waits on, then join again
        assert call.join(2.0) and call.outcome() == b"wake"
    assert not call.thread.is_alive() and call.thread.daemon


def test_base_exceptions_are_kept_too():
    call = BackgroundCall(lambda: (_ for _ in ()).throw(KeyboardInterrupt), name="t-base").start()
    assert call.join(2.0)
    assert isinstance(call.error, KeyboardInterrupt)
