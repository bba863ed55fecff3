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
* nothing escapes: ``SystemExit`` or ``KeyboardInterrupt`` raised by the learner's function, an
  exception whose ``str()`` fails, an ``async def`` or a generator where a plain function is
  expected each become a "not yet" with a hint. Pressing ■ (interrupt) on the checker cell still
  interrupts: the check wakes what the learner's function is blocked on and re-raises;
* an error of the checker's own code is never reported as "your function raised";
* after a body has passed, the checker itself looks for what no single test sees: sockets left
  unclosed (a ``ResourceWarning``, or more sockets open than before), CPU burnt like a busy loop
  during the learner's calls, and ``socket.setdefaulttimeout`` changed for the whole kernel;
* reference solutions live in each lesson's package (``lessons/lNN_*/solutions.py``) and are shown on request with
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
import gc
import html
import inspect
import socket
import textwrap
import threading
import time
import types
from collections.abc import Callable
from typing import Any, TypeVar

from ..background_call import BackgroundCall
from ..resources import recording_resource_warnings

__all__ = ["BUSY_HINT", "CallersSocket", "CheckResult", "DidNotReturn", "GLOBAL_TIMEOUT_HINT", "LEAK_HINT",
           "LEARNER_THREAD", "NotYet", "call", "checker", "expect", "hint_for", "in_learners_code", "is_stub",
           "registered_checkers", "safe_str"]

F = TypeVar("F", bound=Callable[..., Any])

#: Default seconds the learner's function may run in one call before "did not return".
DEFAULT_TIMEOUT_S = 5.0

_CHECKERS: dict[str, Callable[..., CheckResult]] = {}

LEAK_HINT = ("close every socket you open, on every path: `with socket.socket(...) as s:` (or "
             "try/finally) closes it even when a call in between raises")
BUSY_HINT = ("block instead of spinning: a blocking recv()/accept() (or selectors/select with a timeout) "
             "sleeps until data arrives; a loop that polls a non-blocking socket burns a whole core")
GLOBAL_TIMEOUT_HINT = ("socket.setdefaulttimeout() changes every socket of the whole kernel, including "
                       "other people's code: call settimeout() on your own socket instead")
STR_HINT = "the exception your function raised could not even be printed: raise a built-in exception with a plain message"
EXIT_HINT = ("a function should return a value or raise an ordinary exception; SystemExit (sys.exit(), exit()) "
             "and KeyboardInterrupt would stop the whole program")
ASYNC_DEF_HINT = ("this exercise wants a plain function (def, not async def): calling an async def only creates "
                  "a coroutine and runs none of its code")
GENERATOR_HINT = ("your function contains `yield`, so calling it returns a generator and runs none of its code: "
                  "use `return`")

#: Busy-loop thresholds: a learner's call counts as spinning when, over calls that waited at
#: least BUSY_MIN_WALL_S in total, its thread used at least BUSY_MIN_CPU_S of CPU and at least
#: BUSY_CPU_SHARE of the wall time. A blocking socket call sleeps (about 1 % CPU); a spinner on
#: an idle core uses 100 %, but at load 9 on 2 cores a spinner polling a non-blocking connect
#: was measured at 11 % (0.056 s of CPU in 0.53 s), while at load 23 a correct reader taking 7
#: bytes per recv used 9 % (0.04 s in 0.40 s). A correct answer must never fail, so the bar sits
#: just above that: 10 % and 0.05 s (at that load; see BUSY_SHARE_OF_AVAILABLE). Checkers whose
#: peer can count the learner's calls (lessons 01 and 03 count recv/send/accept calls that found
#: nothing to do) catch spinning at any load.
#: The count sees only the learner's function as run by ``call()``: a checker that runs the
#: learner's server in a thread of its own should run it through ``call()`` in that thread.
BUSY_MIN_WALL_S = 0.1  # a spinner needs no long wait to show: 0.05 s of CPU is the real bar
BUSY_MIN_CPU_S = 0.05
BUSY_CPU_SHARE = 0.10
#: ... but only where the machine is that busy. A correct answer's CPU is its work (system
#: calls), fixed, and on a slower virtual machine it grows: a correct echo server moving 4 MiB in
#: 1 KiB pieces used 0.09-0.10 s of CPU in 0.9 s (11 %) on a VM whose loopback round trip took
#: 32 µs instead of 12, quiet, and failed 5 times in 6. A spinner takes whatever CPU it can get:
#: about cores / load of a core, less what the checker's own threads take of the GIL. So the bar
#: is 30 % of that share, never under BUSY_CPU_SHARE: 30 % on a quiet machine (where a spinner
#: takes most of a core), and from load 6 on 2 cores BUSY_CPU_SHARE, as before.
BUSY_SHARE_OF_AVAILABLE = 0.3


def busy_cpu_share_bar() -> float:
    """The CPU share of wall time from which a learner's waiting counts as a busy loop, now."""
    from ..measure import machine_load

    load = machine_load()
    if not load.load1 > 0:  # unknown (nan) or an idle machine: a spinner gets a whole core
        return BUSY_SHARE_OF_AVAILABLE
    return max(BUSY_CPU_SHARE, BUSY_SHARE_OF_AVAILABLE * min(1.0, load.cores / load.load1))


@dataclasses.dataclass
class _Tally:
    """CPU and wall seconds of the learner's calls during one check."""

    cpu_s: float = 0.0
    wall_s: float = 0.0


_TALLIES: list[_Tally] = []


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a description when the exception's ``__str__`` itself fails."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a learner's __str__ can raise anything
        return f"<a {type(exc).__name__} whose message cannot be printed>"


class _LearnerRaised(Exception):
    """The learner's function raised something that must not propagate (SystemExit, KeyboardInterrupt)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(type(exc).__name__)
        self.exc = exc


def _mark_learners(exc: BaseException) -> None:
    try:
        exc._socketlessons_from_learner = True  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception class with __slots__
        pass


def _from_learner(exc: BaseException) -> bool:
    return bool(getattr(exc, "_socketlessons_from_learner", False))


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
            return f"✅ {self.exercise}: passed — {self.message}"
        # A dash, not a full stop: messages begin with a lowercase word or a code name.
        text = f"❌ {self.exercise}: not yet — {self.message}"
        return f"{text}\n   Hint: {self.hint}" if self.hint else text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1b7837" if self.passed else "#b2182b"
        head = "✅ passed" if self.passed else "❌ not yet"
        hint = f"<br><b>Hint:</b> {html.escape(self.hint)}" if self.hint and not self.passed else ""
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 8px">'
            f"<b>{html.escape(self.exercise)}: {head}</b> — {html.escape(self.message)}{hint}</div>"
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


#: The name of the thread that runs the learner's function (``call``).
LEARNER_THREAD = "socketlessons-exercise"


def in_learners_code() -> bool:
    """Is the current thread the one running the learner's function? A checker's wrapped socket
    uses it to tell the learner closing the socket it was given from the checker closing its own."""
    return threading.current_thread().name == LEARNER_THREAD


class CallersSocket(socket.socket):
    """A real socket handed to the learner's function that is the CALLER's to close: a
    ``close()`` or ``shutdown()`` from the learner's code (a ``with sock:`` block, say) is
    recorded in ``closed_by_learner`` and ignored, so the check goes on and then names it; the
    checker's own calls go through."""

    closed_by_learner = False

    def close(self) -> None:
        if in_learners_code():
            self.closed_by_learner = True
            return
        super().close()

    def shutdown(self, how: int) -> None:
        if in_learners_code():
            self.closed_by_learner = True
            return
        super().shutdown(how)


def call(fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT_S,
         on_timeout: Callable[[], None] | None = None, count_cpu: bool = True, **kwargs: Any) -> Any:
    """Call the learner's ``fn(*args, **kwargs)`` in a worker thread, with a deadline.

    Returns what ``fn`` returned; re-raises what it raised (marked as the learner's, so the
    checker never blames its own errors on the learner). If it has not returned after
    ``timeout`` seconds, ``on_timeout`` runs (typically: stop the helper server, which wakes a
    ``recv`` blocked on it), the worker gets one more second, and the exercise fails with a
    "did not return" message. An interrupt (■) while waiting runs ``on_timeout`` too, so no
    thread of the learner's is left blocked, and is re-raised. The CPU time of the learner's
    thread is added to the running check's tally (the busy-loop check), unless ``count_cpu`` is
    false: for a call whose CPU is real work (a big payload read one byte per recv), where the
    checker looks for spinning another way (counting the calls).
    """
    tally = _TALLIES[-1] if _TALLIES else _Tally()

    def timed() -> Any:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if count_cpu:
                tally.cpu_s += time.thread_time() - cpu0
                tally.wall_s += time.perf_counter() - wall0

    worker = BackgroundCall(timed, name=LEARNER_THREAD).start()
    try:
        finished = worker.join(timeout)
    except KeyboardInterrupt:  # ■ pressed on the checker's cell: wake the learner's thread, then stop
        if on_timeout is not None:
            on_timeout()
        worker.join(1.0)
        raise
    if not finished:
        if on_timeout is not None:
            on_timeout()
        worker.join(1.0)
        raise DidNotReturn(timeout)
    error = worker.error
    if error is not None:
        _mark_learners(error)
        if not isinstance(error, Exception):  # SystemExit, KeyboardInterrupt, GeneratorExit from their code
            raise _LearnerRaised(error)
    return worker.outcome()


def hint_for(exc: BaseException) -> str:
    """One hint for an exception the learner's code raised."""
    if isinstance(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
        return EXIT_HINT
    if isinstance(exc, TypeError) and ("bytes-like" in safe_str(exc) or "str" in safe_str(exc)):
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
    ``solution`` names the reference in the lesson's ``solutions`` module (for ``show_solution``;
    an ``async def`` reference means the exercise expects an ``async def``).
    """

    def decorate(body: F) -> Callable[..., CheckResult]:
        @functools.wraps(body)
        def run_check(fn: Any, *args: Any, **kwargs: Any) -> CheckResult:
            refused = _refuse_shape(fn, solution)
            if refused is not None:
                message, hint = refused
                return CheckResult(exercise, False, message, hint)
            default_timeout = socket.getdefaulttimeout()
            tally = _Tally()
            _TALLIES.append(tally)
            try:
                with recording_resource_warnings() as unclosed:
                    sockets_before = _open_sockets()
                    message = body(fn, *args, **kwargs)
                    leaked = _sockets_left_open(sockets_before)
            except NotYet as failure:
                return CheckResult(exercise, False, failure.message, failure.hint)
            except DidNotReturn as late:
                return CheckResult(exercise, False, f"your function did not return within {late.args[0]:g} s.",
                                   "something waits forever: a recv with no timeout, or a loop that never "
                                   "sees the end of the stream (recv returns b'' when the peer closes)")
            except _LearnerRaised as raised:
                return CheckResult(exercise, False, f"your function raised {type(raised.exc).__name__}"
                                   f"{_detail(raised.exc)}", hint_for(raised.exc))
            except Exception as exc:  # never a traceback into the cell
                if _from_learner(exc):
                    text = safe_str(exc)
                    return CheckResult(exercise, False, f"your function raised {type(exc).__name__}{_detail(exc)}",
                                       STR_HINT if text.startswith("<a ") and text.endswith("be printed>")
                                       else hint_for(exc))
                return CheckResult(exercise, False, f"the check stopped with {type(exc).__name__}{_detail(exc)} "
                                   "in the checker's own code, not in your function.",
                                   "this is most likely a bug in the checker: run the check again, and if it "
                                   "repeats, tell your teacher (show this message)")
            finally:
                _TALLIES.remove(tally)
                changed_default = socket.getdefaulttimeout() != default_timeout
                socket.setdefaulttimeout(default_timeout)  # undo it for the rest of the kernel
            if unclosed or leaked:
                what = f"{leaked} socket(s) still open after your function returned" if leaked else \
                    f"a socket was never closed ({unclosed[0]})"
                return CheckResult(exercise, False, f"your function works, but {what}.", LEAK_HINT)
            if tally.wall_s >= BUSY_MIN_WALL_S and tally.cpu_s >= BUSY_MIN_CPU_S \
                    and tally.cpu_s >= busy_cpu_share_bar() * tally.wall_s:
                return CheckResult(exercise, False, f"your function works, but it used {tally.cpu_s:.2f} s of CPU "
                                   f"in {tally.wall_s:.2f} s of waiting ({tally.cpu_s / tally.wall_s:.0%} of a "
                                   "core), the sign of a busy loop.", BUSY_HINT)
            if changed_default:
                return CheckResult(exercise, False, f"your function works, but it changed socket.getdefaulttimeout() "
                                   f"from {default_timeout!r} for the whole kernel (now undone).",
                                   GLOBAL_TIMEOUT_HINT)
            return CheckResult(exercise, True, message or "")

        run_check.exercise = exercise  # type: ignore[attr-defined]
        run_check.solution = solution  # type: ignore[attr-defined]
        _CHECKERS[exercise] = run_check
        return run_check

    return decorate


def _detail(exc: BaseException) -> str:
    text = safe_str(exc)
    return f": {text}" if text else ""


def _refuse_shape(fn: Any, solution_name: str | None) -> tuple[str, str] | None:
    """A (message, hint) when ``fn`` cannot be the function the exercise asks for."""
    if not callable(fn):
        return (f"expected your function, got {type(fn).__name__}",
                "pass the function itself, without calling it: check(my_function)")
    if is_stub(fn):
        return ("the function still has its `...` body.",
                "write the function in the cell above, run that cell, then run this one again")
    wants_async = False
    if solution_name is not None:
        from ._solutions import solution

        try:
            wants_async = inspect.iscoroutinefunction(solution(solution_name))
        except KeyError:
            pass
    if inspect.iscoroutinefunction(fn) and not wants_async:
        return "your function is an `async def`.", ASYNC_DEF_HINT
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        return "your function is a generator (it contains `yield`).", GENERATOR_HINT
    return None


def _open_sockets() -> int | None:
    """Internet sockets this process holds open now (descriptors when sockets cannot be listed)."""
    try:
        import psutil

        proc = psutil.Process()
        listing = proc.net_connections if hasattr(proc, "net_connections") else proc.connections
        return len(listing(kind="inet"))
    except Exception:  # noqa: BLE001 - psutil missing or not allowed here
        from ..resources import open_descriptors

        return open_descriptors()


def _sockets_left_open(before: int | None, settle_s: float = 1.0) -> int:
    """How many more sockets are open than ``before``, after collecting garbage and giving
    sockets that are closing on their own (a helper server's last connection) a moment."""
    if before is None:
        return 0
    deadline = time.monotonic() + settle_s
    while True:
        gc.collect()
        now = _open_sockets()
        if now is None or now <= before:
            return 0
        if time.monotonic() >= deadline:
            return now - before
        time.sleep(0.02)


def registered_checkers() -> dict[str, Callable[..., CheckResult]]:
    """Every checker defined so far, by exercise name (for tests and the teacher's guide)."""
    return dict(_CHECKERS)
