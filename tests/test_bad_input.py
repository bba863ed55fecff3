"""Bad input to the public API gets a clear error, never a hang or nonsense.

Introspected, not listed by hand: every callable in ``socketlessons.__all__`` and every one of
its parameters whose default is a number is called with values that make no sense for a size,
a count, a duration or a probability (NaN, ±infinity, a negative number, a string, and a
fraction where the default is a whole number). Each call must raise ``ValueError`` or
``TypeError`` naming the parameter, within a few seconds. A new parameter is covered by default;
the few values that do make sense are listed in ``ALLOWED`` with the reason.
"""

from __future__ import annotations

import inspect
import math
import socket

import pytest

import socketlessons
from socketlessons.background_call import BackgroundCall

#: Arguments that make the rest of a call valid (the parameter under test gets the bad value).
def _op() -> None:
    return None


def _server_fn(listener: socket.socket) -> None:
    return None


REQUIRED = {
    "LivePlot": {"title": "t", "xlabel": "x", "ylabel": "y"},
    "SweepPanel": {"measure": lambda settings: None},
    "time_op": {"op": _op},
    "sweep": {"make_op": lambda x: _op, "xs": [1, 2]},
    "run_load": {"address": ("127.0.0.1", 9)},
    "open_connections": {"address": ("127.0.0.1", 9), "n": 1},
    "start_clients": {"address": ("127.0.0.1", 9), "payloads": [b"x"]},
    "drive": {"address": ("127.0.0.1", 9), "payloads": [b"x"]},
    "serve_in_background": {"fn": _server_fn},
    "sequence_diagram": {"events": []},
    "fit_growth": {"xs": [1, 2, 4, 8, 16], "ys": [1, 2, 4, 8, 16]},
}

#: (callable, parameter, value) that are right as they are, and why.
ALLOWED: dict[tuple[str, str, object], str] = {}

SKIP_CALLABLES = {
    "ServerEvent": "a record of what a server saw, not an input a learner passes",
    "ServerError": "an exception class",
    "LoopbackServer": "the abstract base of the servers (each server is tested)",
    "TracedSocket": "wraps a socket the caller made",
}


def _numeric_parameters() -> list[tuple[str, str, object]]:
    found = []
    for name in socketlessons.__all__:
        obj = getattr(socketlessons, name)
        if not callable(obj) or name in SKIP_CALLABLES:
            continue
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        for p in signature.parameters.values():
            if isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
                for value in _bad_values(p.default):
                    if (name, p.name, value) not in ALLOWED:
                        found.append((name, p.name, value))
    return found


def _bad_values(default: float) -> list[object]:
    values: list[object] = [math.nan, math.inf, -math.inf, -1, "3"]
    if isinstance(default, int):
        values.append(1.5)
    return values


CASES = _numeric_parameters()


def test_the_introspection_finds_the_parameters():
    names = {(c, p) for c, p, _ in CASES}
    assert ("EchoServer", "bufsize") in names and ("run_load", "clients") in names and ("sweep", "repeats") in names


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize(("callable_name", "parameter", "value"), CASES,
                         ids=[f"{c}-{p}-{v!r}" for c, p, v in CASES])
def test_a_bad_number_is_refused_with_the_parameter_named(callable_name, parameter, value):
    fn = getattr(socketlessons, callable_name)
    kwargs = {**REQUIRED.get(callable_name, {}), parameter: value}

    def attempt() -> object:
        result = fn(**kwargs)
        stop = getattr(result, "stop", None)
        if callable(stop):  # a server that started after all: stop it before failing
            stop()
        close = getattr(result, "close", None)
        if callable(close) and not callable(stop):
            close()
        return result

    call = BackgroundCall(attempt, name="bad-input").start()
    assert call.join(10.0), f"{callable_name}({parameter}={value!r}) did not return within 10 s"
    error = call.error
    assert isinstance(error, (ValueError, TypeError)), (
        f"{callable_name}({parameter}={value!r}) returned {call.value!r} instead of refusing it"
        if error is None else f"{callable_name}({parameter}={value!r}) raised {type(error).__name__}: {error}")
    assert parameter in str(error), f"{callable_name}({parameter}={value!r}): the message does not name it: {error}"
    socketlessons.stop_all()
