"""Run the whole test suite the way ``make test`` does, optionally beside CPU hogs (``make test-busy``).

Two stages, and both always run:

1. every test except the classroom and browser ones, on two pytest-xdist workers. Most tests wait
   on sockets, kernels and timeouts they set on purpose, so two at a time nearly halve the time.
2. the classroom tests (many kernels at once, a real JupyterHub) and the browser tests, one at a
   time. They are load tests themselves, and their deadlines are sized for a busy host, not for
   a host that also runs another worker's tests.

``--hogs N`` starts N ``while True: pass`` processes for the whole run, each ending by itself
after ``--max-seconds`` and all stopped when the suite ends. A classroom host and a CI machine are
shared, and a suite that passes only on an idle machine is a flaky one::

    .venv/bin/python tests/run_suite.py                  # make test
    .venv/bin/python tests/run_suite.py --busy           # make test-busy: one hog per core
    .venv/bin/python tests/run_suite.py --busy -- tests/test_widgets.py -x   # one pytest run

Arguments after ``--`` replace the two stages with one plain pytest run. The exit status is
pytest's, or the first stage's failure if a stage failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
SERIAL = "classroom or browser"
#: Two workers: this machine's two cores, and few enough that a laptop with many cores runs the
#: suite under about the load it was sized for.
WORKERS = 2
#: ``--dist loadgroup``: tests marked with one ``xdist_group`` run on one worker, one after another
#: (the checkers' repeat tests, tests/lessons/_repeat.py); all others are spread as usual.
STAGES = [["-n", str(WORKERS), "--dist", "loadgroup", "-m", f"not ({SERIAL})"], ["-m", SERIAL]]


def run_stages(stages: list[list[str]]) -> int:
    """Run pytest once per stage; return 0, or the first failing stage's exit status."""
    status = 0
    for number, args in enumerate(stages, 1):
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "pytest", *args])
        print(f"stage {number} of {len(stages)} (pytest {' '.join(args)}): exit status {rc} "
              f"after {(time.monotonic() - started) / 60:.1f} min", flush=True)
        status = status or rc
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=0, help="CPU-bound processes beside the suite (default: none)")
    parser.add_argument("--busy", action="store_true", help="one CPU-bound process per core (make test-busy)")
    parser.add_argument("--max-seconds", type=float, default=5400.0, help="each hog ends by itself after this long")
    parser.add_argument("pytest_args", nargs="*", help="after --: one pytest run with these arguments instead")
    args = parser.parse_args(argv)
    if args.hogs < 0 or not 0 < args.max_seconds <= 6 * 3600:
        parser.error("--hogs must be ≥ 0 and --max-seconds between 0 and 21600")
    if args.busy:
        args.hogs = os.cpu_count() or 1
    stages = [args.pytest_args] if args.pytest_args else STAGES
    hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=args.max_seconds)]) for _ in range(args.hogs)]
    started = time.monotonic()
    try:
        rc = run_stages(stages)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(10)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"the suite's exit status {rc} after {(time.monotonic() - started) / 60:.1f} min beside "
          f"{args.hogs} CPU hog(s); load average {load:.1f} at the end on {os.cpu_count()} cores")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
