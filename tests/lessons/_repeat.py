"""Run a checker many times on the same function, a few runs at once, for the "20 runs out of 20"
tests.

A checker run mostly waits (for a reply, for a timeout it set on purpose): one takes 0.5-2 s of
wall time and a tenth of that in CPU. Run one after another, the nine lessons' repeat tests took
about 14 minutes of a 40-minute suite. Here the runs are split into chunks handed to two
processes at once. Each process runs one check at a time, because a checker's leak check counts
the whole process's descriptors and threads, so two checks must never share a process.

Running two at a time also keeps the machine busy while each verdict is made: the
timing-sensitive mutants (busy loops judged by their share of CPU, timeouts against a peer's
pause) must keep their verdict under that load too. How much load is the limit: with two repeat
tests at once (six checks) beside a browser test on 2 cores, lesson 02's busy-polling mutant got
too little CPU to be caught and its one-recv mutant saw two pieces merged. So the nine repeat
tests share one xdist group (``@pytest.mark.xdist_group("checker-repeats")``, with ``--dist
loadgroup`` in tests/run_suite.py): one runs at a time, beside at most one other test.
"""

from __future__ import annotations

import importlib
import multiprocessing
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Processes at once: two halve a 20-run test on 2 cores. With a CPU hog per core and another
#: test beside them, a busy-loop mutant still gets about a third of a core, far above the 12 %
#: share that the shared busy-CPU check calls busy.
WORKERS = 2
#: Runs per task handed to a process (20 runs make 4 tasks, so they spread over the processes).
CHUNK = 5
#: Bound on one chunk's wait. A chunk takes 5-40 s quiet; more means a hang, not a slow machine.
CHUNK_TIMEOUT_S = 600

Outcome = tuple[bool, str, str]
"""One run: whether it passed, its hint, and the whole verdict as printed (for messages)."""


@dataclass(frozen=True)
class FromTable:
    """The function at ``<module>.<table>[index][position]``, looked up in the process that runs it.

    For functions made by a factory (closures), which cannot be sent to another process by name:
    the process imports the test module, which makes them again, and takes the one at ``index``.
    """

    module: str
    table: str
    index: int
    position: int = 1

    def resolve(self) -> Any:
        return getattr(importlib.import_module(self.module), self.table)[self.index][self.position]


def _runs(check: Callable[[Any], Any], fn: Any, runs: int) -> list[Outcome]:
    if isinstance(fn, FromTable):
        fn = fn.resolve()
    outcomes = []
    for _ in range(runs):
        result = check(fn)
        outcomes.append((bool(result.passed), result.hint, str(result)))
    return outcomes


def repeated_verdicts(cases: Sequence[tuple[Callable[[Any], Any], Any, int]],
                      *, workers: int = WORKERS) -> list[list[Outcome]]:
    """Run ``check(fn)`` ``runs`` times for each ``(check, fn, runs)`` of ``cases``; return every
    run's outcome, case by case, in order.

    ``check`` and ``fn`` must be module-level functions (they are sent to the processes by name),
    or ``fn`` a :class:`FromTable` for a function made by a factory.
    The processes are started fresh (``spawn``: nothing of the test process's servers or threads
    is copied into them) and are killed if a wait runs out or the test is interrupted.
    """
    tasks = [(index, check, fn, min(CHUNK, runs - start))
             for index, (check, fn, runs) in enumerate(cases) for start in range(0, runs, CHUNK)]
    for check, fn, _ in cases:
        try:
            pickle.dumps((check, fn))
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise TypeError(f"cannot send {fn!r} to another process ({error}): give a module-level "
                            "function, or FromTable(module, table, index) for one made by a factory") from None
    results: list[list[Outcome]] = [[] for _ in cases]
    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
    try:
        pending = [(index, pool.apply_async(_runs, (check, fn, runs))) for index, check, fn, runs in tasks]
        for index, outcome in pending:
            results[index].extend(outcome.get(CHUNK_TIMEOUT_S))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results
