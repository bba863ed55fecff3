"""The measured claims of the course, as the verdict-reliability benchmark runs them.

Each lesson that prints a verdict lists the measurements behind it in ``lessons/<lesson>/claims.py``
as ``CLAIMS: list[Claim]``. A claim knows what the truth is on an ordinary machine (and why), and
how to measure it once the way the lesson's cell or panel does, returning the verdict's status.
``benchmarks/bench_verdicts.py`` runs every claim K times, quiet and on a busy machine, and
counts how often the verdict was right.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from .measure import Status

__all__ = ["Claim", "all_claims"]


@dataclass(frozen=True)
class Claim:
    """One verdict-producing measurement of a lesson.

    Attributes:
        lesson: the lesson package's name (``"l01_client"``).
        name: a short name of the claim ("send() is O(k)").
        truth: the status a correct verdict has on this kind of machine.
        why: why that is the truth (the mechanism), in one sentence.
        run: measures once, as the lesson does, and returns the verdict's status. It starts and
            stops its own servers and must stay within a few seconds.
        acceptable: other statuses that are also right (e.g. "refined" where a fixed cost may or
            may not show in the sizes measured); "inconclusive" is never wrong but is counted.
    """

    lesson: str
    name: str
    truth: Status
    why: str
    run: Callable[[], Status]
    acceptable: frozenset[str] = frozenset()

    def is_right(self, status: str) -> bool:
        """True when ``status`` is the truth or one of the acceptable alternatives."""
        return status == self.truth or status in self.acceptable


def all_claims() -> list[Claim]:
    """Every lesson's claims, in course order (lessons without a ``claims`` module have none)."""
    from . import lessons

    found: list[Claim] = []
    for name in lessons.LESSONS:
        try:
            module = importlib.import_module(f"{lessons.__name__}.{name}.claims")
        except ModuleNotFoundError as exc:
            if exc.name != f"{lessons.__name__}.{name}.claims":
                raise
            continue
        found.extend(module.CLAIMS)
    return found
