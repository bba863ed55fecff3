"""Exercise checkers' shared core; each lesson's checkers live in its package
(``socketlessons/lessons/lNN_*/checks.py``).

In a notebook::

    from socketlessons.lessons.l01_client import check_recv_exactly
    check_recv_exactly(recv_exactly)  # ✅ passed … / ❌ not yet … Hint: …
    show_solution("recv_exactly")     # the reference solution, when you want it
"""

from ._core import (
    BUSY_HINT,
    GLOBAL_TIMEOUT_HINT,
    LEAK_HINT,
    CheckResult,
    DidNotReturn,
    NotYet,
    call,
    checker,
    expect,
    hint_for,
    is_stub,
    registered_checkers,
    safe_str,
)
from ._solutions import show_solution, solution

__all__ = ["BUSY_HINT", "GLOBAL_TIMEOUT_HINT", "LEAK_HINT", "CheckResult", "DidNotReturn", "NotYet", "call",
           "checker", "expect", "hint_for", "is_stub", "registered_checkers", "safe_str", "show_solution",
           "solution"]
