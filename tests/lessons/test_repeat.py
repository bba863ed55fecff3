"""The repeat helper of the "20 runs out of 20" tests reports every run, in order, and a checker
whose verdict flips between runs shows up as two outcomes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from ._repeat import FromTable, repeated_verdicts

pytestmark = pytest.mark.usefixtures("no_leaks")
_RUNS_HERE = [0]


@dataclass
class _Verdict:
    passed: bool
    hint: str

    def __str__(self) -> str:
        return f"{'passed' if self.passed else 'failed'} in process {os.getpid()}"


def test_the_runs_happen_in_other_processes():
    ((passed, _, text),), = repeated_verdicts([(always_passes, answer, 1)])
    assert passed and text.startswith("passed in process ") and text != f"passed in process {os.getpid()}"


def flips_every_other_run(fn):
    """A checker that cannot make up its mind: what the repeat tests exist to catch."""
    _RUNS_HERE[0] += 1
    return _Verdict(_RUNS_HERE[0] % 2 == 0, "" if _RUNS_HERE[0] % 2 == 0 else "a hint")


def always_passes(fn):
    return _Verdict(fn() == 42, "")


def answer():
    return 42


TABLE = [(always_passes, lambda: 42)]


def test_every_run_is_reported_in_order_and_a_flip_shows():
    steady, flipping, made = repeated_verdicts([(always_passes, answer, 7), (flips_every_other_run, answer, 6),
                                                (always_passes, FromTable(__name__, "TABLE", 0), 3)])
    assert [ok for ok, _, _ in steady] == [True] * 7 and [ok for ok, _, _ in made] == [True] * 3
    assert {(ok, hint) for ok, hint, _ in flipping} == {(False, "a hint"), (True, "")}


def test_a_function_that_cannot_be_sent_is_named():
    with pytest.raises(TypeError, match="FromTable"):
        repeated_verdicts([(always_passes, lambda: 42, 1)])
