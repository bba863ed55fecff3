"""The exercise-checking machinery every lesson's checkers share.

An exercise is a function stub in the notebook whose body is ``...``; the next cell calls a
checker with the learner's function. A checker runs the function against adversarial helper
servers or clients (dribbled replies, silence, large payloads, early close) and returns a
``CheckResult`` that displays as a short verdict with one concrete hint. Rules:

* a checker never raises into the notebook: an exception from the learner's code becomes a
  "not yet" naming the exception, with a hint;
* a checker never hangs: the learner's code runs in a worker thread with a deadline; when the
  deadline passes, the checker stops its helper servers (which wakes a blocked ``recv``) and
  says that the function did not return;
* an untouched stub gets its own message ("write the function first"), not a confusing failure;
* reference solutions live in ``socketlessons.solutions`` and are shown on request with
  ``show_solution(name)``; tests run every checker against them (and against the stub and the
  typical wrong answers) so a checker can neither pass a wrong answer nor fail a right one.

Writing a checker::

    @checker("recv_all", solution="recv_all")
    def check_recv_all(recv_all):
        with DribbleServer(piece=3) as server:
            got = call(recv_all, server.address, 10, timeout=3)   # runs with a deadline
            expect(got == b"0123456789", f"expected b'0123456789', got {got!r}",
                   hint="recv returns what has arrived so far: call it in a loop")
        return "your function read all 10 bytes, however they arrived"
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import html
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any, TypeVar

from ..background_call import BackgroundCall

__all__ = ["CheckResult", "DidNotReturn", "NotYet", "call", "checker", "expect", "hint_for", "is_stub",
           "registered_checkers"]

F = TypeVar("F", bound=Callable[..., Any])

#: Default seconds the learner's function may run in one call before "did not return".
DEFAULT_TIMEOUT_S = 5.0

_CHECKERS: dict[str, Callable[..., CheckResult]] = {}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The verdict of a checker: ``passed``, a one-line ``message`` and one ``hint``."""

    exercise: str
    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✅ {self.exercise}: passed. {self.message}"
        text = f"❌ {self.exercise}: not yet. {self.message}"
        return f"{text}\n   Hint: {self.hint}" if self.hint else text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1b7837" if self.passed else "#b2182b"
        head = "✅ passed" if self.passed else "❌ not yet"
        hint = f"<br><b>Hint:</b> {html.escape(self.hint)}" if self.hint and not self.passed else ""
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 8px">'
            f"<b>{html.escape(self.exercise)}: {head}.</b> {html.escape(self.message)}{hint}</div>"
        )


class NotYet(Exception):
    """Raised inside a checker to fail the exercise with a message and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def expect(condition: object, message: str, hint: str = "") -> None:
    """Fail the exercise with ``message`` and ``hint`` unless ``condition`` holds."""
    if not condition:
        raise NotYet(message, hint)


def _stub() -> None: ...


def is_stub(fn: Callable[..., Any]) -> bool:
    """True when ``fn``'s body is only ``...`` (or ``pass``), optionally after a docstring.

    Reads the source (IPython keeps each cell's source, so this works in notebooks); without
    source, falls back to comparing bytecode with an empty function's.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        code = getattr(fn, "__code__", None)
        return isinstance(code, types.CodeType) and code.co_code == _stub.__code__.co_code
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False  # a lambda or something else: not our stub shape
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                           and s.value.value is Ellipsis) for s in body)


class DidNotReturn(Exception):
    """The learner's function was still running at the deadline (``args[0]``: the timeout)."""


def call(fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT_S,
         on_timeout: Callable[[], None] | None = None, **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` in a worker thread, with a deadline.

    Returns what ``fn`` returned; re-raises what it raised. If it has not returned after
    ``timeout`` seconds, ``on_timeout`` runs (typically: stop the helper server, which wakes a
    ``recv`` blocked on it), the worker gets one more second, and the exercise fails with a
    "did not return" message.
    """
    worker = BackgroundCall(lambda: fn(*args, **kwargs), name="socketlessons-exercise").start()
    if not worker.join(timeout):
        if on_timeout is not None:
            on_timeout()
        worker.join(1.0)
        raise DidNotReturn(timeout)
    return worker.outcome()


def hint_for(exc: BaseException) -> str:
    """One hint for an exception the learner's code raised."""
    if isinstance(exc, TypeError) and ("bytes-like" in str(exc) or "str" in str(exc)):
        return "sockets carry bytes: encode text first (b'...' or 'text'.encode()) and decode what you receive"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens at that address: connect to the address the function was given"
    if isinstance(exc, TimeoutError):
        return "a timeout fired: did the function wait for bytes that will never come?"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "the peer closed the connection: check that you stop at the end of the stream (recv returns b'')"
    if isinstance(exc, NotImplementedError):
        return "replace the stub's body with your code"
    return "read the error above, fix the function, and run both cells again"


def checker(exercise: str, *, solution: str | None = None) -> Callable[[F], Callable[..., CheckResult]]:
    """Turn ``body(learner_fn, ...)`` into a checker that returns a ``CheckResult``.

    The body raises ``NotYet`` (via ``expect``) to fail and returns a short success message.
    ``solution`` names the reference in ``socketlessons.solutions`` (for ``show_solution``).
    """

    def decorate(body: F) -> Callable[..., CheckResult]:
        @functools.wraps(body)
        def run_check(fn: Any, *args: Any, **kwargs: Any) -> CheckResult:
            if not callable(fn):
                return CheckResult(exercise, False, f"expected your function, got {type(fn).__name__}",
                                   "pass the function itself, without calling it: check(my_function)")
            if is_stub(fn):
                return CheckResult(exercise, False, "the function still has its `...` body.",
                                   "write the function in the cell above, run that cell, then run this one again")
            try:
                message = body(fn, *args, **kwargs)
            except NotYet as failure:
                return CheckResult(exercise, False, failure.message, failure.hint)
            except DidNotReturn as late:
                return CheckResult(exercise, False, f"your function did not return within {late.args[0]:g} s.",
                                   "something waits forever: a recv with no timeout, or a loop that never "
                                   "sees the end of the stream (recv returns b'' when the peer closes)")
            except Exception as exc:  # the learner's code raised: never a traceback into the cell
                return CheckResult(exercise, False, f"your function raised {type(exc).__name__}: {exc}",
                                   hint_for(exc))
            return CheckResult(exercise, True, message or "")

        run_check.exercise = exercise  # type: ignore[attr-defined]
        run_check.solution = solution  # type: ignore[attr-defined]
        _CHECKERS[exercise] = run_check
        return run_check

    return decorate


def registered_checkers() -> dict[str, Callable[..., CheckResult]]:
    """Every checker defined so far, by exercise name (for tests and the teacher's guide)."""
    return dict(_CHECKERS)
