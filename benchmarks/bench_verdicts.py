"""How often is each printed verdict right? Every claim of every lesson, K times, quiet and busy.

Every lesson that prints a verdict lists the measurements behind it as ``CLAIMS`` in
``socketlessons/lessons/<lesson>/claims.py`` (``socketlessons.claims.Claim``: the truth on this
kind of machine, why, and ``run()`` that measures once as the lesson does). This script runs each
claim ``--k`` times in each of three conditions and counts the statuses:

* ``quiet``: nothing of ours besides the benchmark (the machine may still be shared: say so);
* ``cpu``: one CPU-bound process per core (``python -c 'while True: pass'``, each ending by
  itself after a deadline, and stopped by this script);
* ``classroom``: ``--kernels`` (8) other Jupyter kernels executing the lessons at the same time,
  each a driver process running copies of the notebooks (nbclient) in a temporary directory,
  round after round, starting at a different lesson; stopped by this script, bounded in time.

Within a condition the claims run in rounds (every claim once per round, shuffled with a fixed
seed), so load that comes and goes hits every claim alike. A claim's ``run()`` gets a deadline
(``--claim-timeout``); one that passes it counts as "timeout", one that raises as "error" (both
are failures of the claim, not verdicts). "wrong" counts verdicts ``Claim.is_right`` rejects;
"inconclusive" is never wrong but is counted against the targets (≤ 5 % quiet, ≤ 20 % busy).

    python benchmarks/bench_verdicts.py                      # K = 10, all three conditions
    python benchmarks/bench_verdicts.py --k 3 --conditions quiet,cpu --lessons l04_udp,l06_framing

Writes ``benchmarks/results/verdicts.md`` (``--output`` to change) with the command, the machine,
the load seen in each condition and the lessons that have no claims.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, command, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STATUSES = ("confirmed", "refined", "inconclusive", "contradicted")
CONDITIONS = ("quiet", "cpu", "classroom")
TARGET_INCONCLUSIVE = {"quiet": 0.05, "cpu": 0.20, "classroom": 0.20}

# ---- the claims --------------------------------------------------------------------------------


def load_claims(only: set[str] | None) -> tuple[list, dict[str, str]]:
    """Every lesson's claims (those in ``only`` if given), and why each other lesson has none."""
    from socketlessons import lessons

    claims, missing = [], {}
    for name in lessons.LESSONS:
        if only and name not in only:
            continue
        module_name = f"{lessons.__name__}.{name}.claims"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing[name] = "no claims module" if exc.name == module_name else f"import failed: {exc}"
            continue
        except Exception as exc:  # a lesson mid-edit must not stop the others' measurement
            missing[name] = f"import failed: {type(exc).__name__}: {exc}"
            continue
        found = list(getattr(module, "CLAIMS", []))
        if not found:
            missing[name] = "claims module with an empty CLAIMS"
        claims.extend(found)
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        name = f"l{notebook.stem}"
        if name not in lessons.LESSONS and (not only or name in only):
            missing[name] = "no lesson package (the notebook has no verdict claims)"
    return claims, missing


@dataclasses.dataclass
class Tally:
    statuses: Counter = dataclasses.field(default_factory=Counter)
    wrong: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)


def run_claim(claim, timeout: float) -> tuple[str, float, str]:
    """Run ``claim.run()`` once in a thread with a deadline: (status, seconds, error text)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["status"] = claim.run()
        except BaseException as exc:  # noqa: BLE001 - reported, never raised
            box["error"] = f"{type(exc).__name__}: {exc}"
            box["trace"] = traceback.format_exc(limit=3)

    t0 = time.perf_counter()
    thread = threading.Thread(target=target, name=f"claim {claim.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    seconds = time.perf_counter() - t0
    if thread.is_alive():
        return "timeout", seconds, f"still running after {timeout:g} s"
    if "error" in box:
        return "error", seconds, str(box["error"])
    status = box.get("status")
    if status not in STATUSES:
        return "error", seconds, f"run() returned {status!r}, not one of {STATUSES}"
    return str(status), seconds, ""


def measure_condition(claims: list, k: int, timeout: float, seed: int) -> dict[int, Tally]:
    tallies = {i: Tally() for i in range(len(claims))}
    rng = random.Random(seed)
    order = list(range(len(claims)))
    for r in range(k):
        rng.shuffle(order)
        for i in order:
            claim = claims[i]
            status, seconds, error = run_claim(claim, timeout)
            t = tallies[i]
            t.statuses[status] += 1
            t.seconds.append(seconds)
            if status in STATUSES and status != "inconclusive" and not claim.is_right(status):  # never wrong
                t.wrong += 1
            if error:
                t.errors.append(error)
        print(f"  round {r + 1}/{k} done", flush=True)
    return tallies


# ---- the load ----------------------------------------------------------------------------------

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"

STUDENT = r'''
import itertools, signal, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

folder, offset, deadline = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # nbclient shuts its kernel down on the way out
books = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
books = books[offset % len(books):] + books[:offset % len(books)]
for book in itertools.cycle(books):
    if time.time() > deadline:
        break
    nb = nbformat.read(book, as_version=4)
    t0 = time.time()
    try:
        NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(folder)}}).execute()
        outcome = "done"
    except Exception as exc:
        outcome = f"{type(exc).__name__}"
    with open(folder / "progress.log", "a") as log:
        log.write(f"{offset} {book.name} {outcome} {time.time() - t0:.1f}\n")
'''


class Load:
    """Start and stop one condition's background load (bounded in time even if we die)."""

    def __init__(self, condition: str, kernels: int, max_seconds: float) -> None:
        self.condition, self.kernels, self.max_seconds = condition, kernels, max_seconds
        self.procs: list[subprocess.Popen] = []
        self.tmp: str | None = None

    def __enter__(self) -> Load:
        if self.condition == "cpu":
            code = HOG.format(seconds=self.max_seconds)
            self.procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)]
            time.sleep(1.0)
        elif self.condition == "classroom":
            self.tmp = tempfile.mkdtemp(prefix="verdicts-classroom-")
            for book in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"):
                shutil.copy(book, self.tmp)
            deadline = time.time() + self.max_seconds
            self.procs = [subprocess.Popen([sys.executable, "-c", STUDENT, self.tmp, str(i), str(deadline)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
                          for i in range(self.kernels)]
            time.sleep(20.0)  # kernels start (~2-5 s each on a busy machine) and begin executing
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        for proc in self.procs:
            try:
                family = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                family = []
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            for p in family:
                try:
                    p.terminate()
                except psutil.Error:
                    pass
        end = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def summary(self) -> str:
        """What the load processes did: how many still ran, and (classroom) the kernels running
        now and the notebook executions they finished."""
        if not self.procs:
            return ""
        text = f"{self.alive()} of {len(self.procs)} load processes still running at the end"
        if self.condition == "classroom" and self.tmp:
            import psutil

            kernels = 0
            for proc in self.procs:
                try:
                    kernels += sum("ipykernel" in " ".join(c.cmdline()) for c in psutil.Process(proc.pid).children(True))
                except psutil.Error:
                    pass
            try:
                lines = Path(self.tmp, "progress.log").read_text().splitlines()
            except OSError:
                lines = []
            done = sum(line.split()[2] == "done" for line in lines if len(line.split()) > 2)
            text += (f", {kernels} Jupyter kernels alive, {len(lines)} notebook executions finished meanwhile "
                     f"({done} without an error from nbclient)")
        return text


# ---- the report --------------------------------------------------------------------------------


def fmt_pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "n/a"


def report(claims: list, results: dict[str, dict[int, Tally]], loads: dict[str, str], missing: dict[str, str],
           k: int, started: str, output: Path, elapsed: float, context: str = "") -> str:
    lines = ["## Verdict reliability: every lesson's claims, quiet and busy (issue 10, item 4)", "",
             f"Machine: {machine()}.  ",
             f"Command: `{command()}`, started {started}, {elapsed / 60:.1f} min in all.  ",
             f"K = {k} runs of every claim in each condition (rounds over all claims, shuffled).", "",
             (context or "Nothing else was started on purpose during this run.") + " Other work on the machine is "
             "noise this script cannot switch off, on top of the load it adds; \"quiet\" means only that the "
             "benchmark added none. The load seen during each condition is in the second table.", ""]
    header = "| lesson | claim | truth | condition | confirmed | refined | inconclusive | contradicted | " \
             "error/timeout | wrong | median s |"
    lines += [header, "|" + "---|" * 11]
    totals: dict[str, Counter] = {}
    for cond, tallies in results.items():
        tot = totals.setdefault(cond, Counter())
        for i, t in tallies.items():
            c = claims[i]
            n_err = t.statuses["error"] + t.statuses["timeout"]
            med = statistics.median(t.seconds) if t.seconds else float("nan")
            wrong = f"**{t.wrong}**" if t.wrong else "0"
            lines.append(f"| {c.lesson} | {c.name} | {c.truth}{' (or ' + ', '.join(sorted(c.acceptable)) + ')' if c.acceptable else ''} "
                         f"| {cond} | {t.statuses['confirmed']} | {t.statuses['refined']} | {t.statuses['inconclusive']} "
                         f"| {t.statuses['contradicted']} | {n_err} | {wrong} | {med:.2f} |")
            tot.update(t.statuses)
            tot["wrong"] += t.wrong
            tot["runs"] += sum(t.statuses.values())
    lines += ["", "| condition | load seen | runs | wrong | inconclusive | target | met? | errors/timeouts |",
              "|---|---|---|---|---|---|---|---|"]
    for cond, tot in totals.items():
        runs = tot["runs"]
        inc = tot["inconclusive"]
        target = TARGET_INCONCLUSIVE[cond]
        met = "yes" if runs and tot["wrong"] == 0 and inc / runs <= target else "**no**"
        lines.append(f"| {cond} | {loads.get(cond, '')} | {runs} | {tot['wrong']} | {inc} ({fmt_pct(inc, runs)}) "
                     f"| 0 wrong, ≤ {target:.0%} inconclusive | {met} | {tot['error'] + tot['timeout']} |")
    errors = [(cond, claims[i], t.errors) for cond, tallies in results.items() for i, t in tallies.items() if t.errors]
    if errors:
        lines += ["", "Errors and timeouts (first of each claim and condition):", ""]
        lines += [f"- {cond}, {c.lesson} / {c.name}: {errs[0]} ({len(errs)}×)" for cond, c, errs in errors]
    if missing:
        lines += ["", "Lessons without claims in this run:", ""]
        lines += [f"- {name}: {why}" for name, why in sorted(missing.items())]
    lines += ["", "Ground truth per claim (`Claim.why`):", ""]
    lines += [f"- {c.lesson} / {c.name}: {c.truth}, because {c.why}" for c in claims]
    text = "\n".join(lines).rstrip() + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=10, help="runs of each claim per condition (≥ 10 for the record)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated: quiet,cpu,classroom")
    ap.add_argument("--lessons", default="", help="comma-separated lesson packages (default: all)")
    ap.add_argument("--kernels", type=int, default=8, help="other kernels in the classroom condition")
    ap.add_argument("--claim-timeout", type=float, default=30.0, help="seconds one run() may take")
    ap.add_argument("--max-seconds", type=float, default=900.0,
                    help="each condition's load processes end by themselves after this long")
    ap.add_argument("--output", type=Path, default=RESULTS / "verdicts.md")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--context", default="", help="what else ran on the machine, for the report's header")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped from outside: still stop the load
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad or not conditions:
        ap.error(f"--conditions must name some of {', '.join(CONDITIONS)}; got {args.conditions!r}")
    if args.k < 1 or args.kernels < 1 or args.claim_timeout <= 0 or args.max_seconds <= 0:
        ap.error("--k, --kernels, --claim-timeout and --max-seconds must be positive")
    if args.k < 10:
        print(f"note: K = {args.k} < 10: a quick look, not the record the issue asks for", flush=True)
    only = {s.strip() for s in args.lessons.split(",") if s.strip()} or None
    claims, missing = load_claims(only)
    if not claims:
        print("no claims found: nothing to measure", file=sys.stderr)
        return 1
    print(f"{len(claims)} claims from {len({c.lesson for c in claims})} lessons; missing: {sorted(missing)}", flush=True)
    from socketlessons.measure import LoadWatch

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    results: dict[str, dict[int, Tally]] = {}
    loads: dict[str, str] = {}
    for n, cond in enumerate(conditions):
        print(f"condition {cond}: starting", flush=True)
        with Load(cond, args.kernels, args.max_seconds) as load, LoadWatch() as watch:
            results[cond] = measure_condition(claims, args.k, args.claim_timeout, args.seed + n)
            extra = load.summary()
        loads[cond] = f"{watch.load}" + (f"; {extra}" if extra else "")
        print(f"condition {cond}: {loads[cond]}", flush=True)
    text = report(claims, results, loads, missing, args.k, started, args.output, time.monotonic() - t0,
                  args.context)
    print(text)
    wrong = sum(t.wrong for tallies in results.values() for t in tallies.values())
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
