"""Lesson 00 · Welcome (``notebooks/00_welcome.ipynb``): everything specific to that lesson.

Its one verdict ("sendall() is O(k)") is measured with the same harness as lesson 01's, so the
two lessons cannot disagree about how it is judged: interleaved rounds, the 10th percentile of
the batch times, a bounded adaptive budget (``socketlessons.lessons.l01_client.demos``).

- ``claims``: that verdict, for the verdict-reliability benchmark;
- ``solutions``: none (lesson 00 has no exercise).

Its tests are ``tests/lessons/test_l00_welcome*.py``.
"""

from ..l01_client.demos import (
    SEND_BUDGET_S,
    SEND_FIT_FROM,
    SEND_SIZES,
    DrainedConnection,
    plot_rounds,
    send_verdict,
    show_rounds,
    slope_settled,
    sweep_rounds,
)

__all__ = ["SEND_BUDGET_S", "SEND_FIT_FROM", "SEND_SIZES", "DrainedConnection", "plot_rounds", "send_verdict",
           "show_rounds", "slope_settled", "sweep_rounds"]
