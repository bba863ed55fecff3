"""Exercise checkers: one module per lesson (``checks.lesson01`` …) on a shared core.

In a notebook::

    from socketlessons.lessons.l01_client import check_recv_all
    check_recv_all(recv_all)          # ✅ passed … / ❌ not yet … Hint: …
    show_solution("recv_all")         # the reference solution, when you want it
"""

from ._core import (
           CheckResult,
           DidNotReturn,
           NotYet,
           call,
           checker,
           expect,
           hint_for,
           is_stub,
           registered_checkers,
)
from ._solutions import show_solution, solution

__all__ = ["CheckResult", "DidNotReturn", "NotYet", "call", "checker", "expect", "hint_for", "is_stub",
           "registered_checkers", "show_solution", "solution"]
