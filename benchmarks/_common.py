"""Shared timing and table code for the ``bench_*.py`` scripts.

The machine is shared and noisy, so absolute numbers mean little: only ratios measured in the
same run do. The rules every benchmark follows, and this module makes easy:

* ``interleave()`` runs the cases in rounds (A, B, C, then B, A, C, ...): a burst of load from
  elsewhere hits every case alike instead of all samples of one case, and the order within a
  round is shuffled (seeded) so no case always runs right after the same one;
* ``summarize()`` reports the median and the interquartile range (IQR: spread), never the mean;
* ``paired_ratio()`` divides sample i of A by sample i of B (taken moments apart), so a drift
  in machine load cancels out of the ratio;
* ``verdict()`` judges a median against a target and flags a spread that straddles it;
* ``report()`` prints a markdown table with the machine and the command (and a note when the
  machine was busy), and writes it to ``benchmarks/results/<name>.md``.

A new benchmark, in short::

    samples = interleave({"raw": measure_raw, "helper": measure_helper}, repeats=21, budget_s=10)
    r = paired_ratio(samples["helper"], samples["raw"])
    rows = [row("helper", summarize(samples["helper"]), "µs", r, "≤ 1.1× raw", verdict(r, "≤", 1.1))]
    report("loops", "Title", rows, notes=["what the rows show"])
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["Summary", "interleave", "machine", "paired_ratio", "report", "row", "summarize", "verdict"]

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("what", "median", "IQR", "ratio vs raw (IQR)", "target", "met?")


@dataclasses.dataclass(frozen=True)
class Summary:
    """Median and quartiles of a list of samples."""

    median: float
    q1: float
    q3: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(samples: Sequence[float]) -> Summary:
    """Median, first and third quartile of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("no samples to summarize: did every repeat of the case fail?")
    if len(samples) == 1:
        return Summary(samples[0], samples[0], samples[0], 1)
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return Summary(q2, q1, q3, len(samples))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> Summary:
    """Summary of ``a[i] / b[i]``: the ratio of samples taken in the same round."""
    return summarize([x / y for x, y in zip(a, b)])


def interleave(cases: Mapping[str, Callable[[], float]], repeats: int, budget_s: float,
               seed: int = 2) -> dict[str, list[float]]:
    """Call each case once per round, round after round; return the samples of each case.

    Each callable takes one sample and returns it (a time, a rate: the caller's unit). The
    order within each round is shuffled with a fixed seed: a case's cost may depend on what ran
    just before it (caches, which core a thread last ran on), so that must vary too. Stops
    after ``repeats`` rounds or once ``budget_s`` seconds have passed (after at least three
    rounds), so a loaded machine makes a benchmark noisier, never endless.
    """
    names = list(cases)
    samples: dict[str, list[float]] = {name: [] for name in names}
    deadline = time.monotonic() + budget_s
    rng = random.Random(seed)
    for i in range(repeats):
        if i >= 3 and time.monotonic() > deadline:
            break
        rng.shuffle(names)
        for name in names:
            samples[name].append(cases[name]())
    return samples


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def verdict(s: Summary, op: str, limit: float) -> str:
    """Whether the median meets ``op limit`` (op one of < ≤ > ≥): "yes" or "**no**", plus
    "(IQR crosses)" when the quartiles fall on both sides: too noisy a run to be sure."""
    ok = {"<": operator.lt, "≤": operator.le, ">": operator.gt, "≥": operator.ge}[op]
    text = "yes" if ok(round(s.median, 2), limit) else "**no**"  # judged as printed
    return text + (" (IQR crosses)" if ok(s.q1, limit) != ok(s.q3, limit) else "")


def row(what: str, s: Summary, unit: str, ratio: Summary | None = None, target: str = "",
        met: str = "") -> tuple[str, ...]:
    """One table row: ``what``, median and IQR in ``unit``, ratio (with its IQR), target, verdict."""
    r = f"{ratio.median:.2f} ({ratio.q1:.2f}–{ratio.q3:.2f})" if ratio else ""
    return (what, f"{_fmt(s.median)} {unit}", f"{_fmt(s.q1)}–{_fmt(s.q3)}", r, target, met)


def markdown_table(rows: Sequence[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    """Cores, CPU model, Python, platform and load: enough to tell two result files apart."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.platform()}, load average {load}")


def busy() -> list[str]:
    """A warning when more runnable tasks than cores: the spreads will be wide."""
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1):
        return [f"The machine was busy (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
                "cores): expect wide IQRs; a verdict marked (IQR crosses) needs a quieter rerun."]
    return []


def command() -> str:
    """The command that ran this script, with the path relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(RESULTS.parent.parent)
    except ValueError:
        script = Path(script.name)
    return " ".join(["python", str(script), *sys.argv[1:]])


def report(name: str, title: str, rows: Sequence[Sequence[str]], notes: Sequence[str] = (),
           columns: Sequence[str] = COLUMNS, by_make: bool = True) -> str:
    """Print the table with its context, write it to ``results/<name>.md``, return the text.
    ``by_make=False``: a script that ``make bench`` does not run (the header says so)."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        f"## {title}", "",
        f"Machine: {machine()}.  ",
        f"Command: `{command()}`{' (or `make bench`)' if by_make else ''}, {now}.", "",
        markdown_table(rows, columns), "",
        *(f"- {note}" for note in [*notes, *busy()]),
    ]).rstrip() + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
    return text
