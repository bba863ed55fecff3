"""Run the test suite with one CPU-bound process per core running throughout (issue 14).

A classroom host and a CI machine are shared: a suite that passes only when the machine is idle
is a flaky one. This script starts one ``while True: pass`` process per core (each ends by
itself after ``--max-seconds``, and all are stopped when the suite ends), runs pytest with the
given arguments, and prints how long it took with the load average seen::

    .venv/bin/python tests/run_on_a_busy_machine.py            # the whole suite, like make test
    .venv/bin/python tests/run_on_a_busy_machine.py tests/test_widgets.py -x

Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="CPU-bound processes (default: one per core)")
    parser.add_argument("--max-seconds", type=float, default=5400.0, help="each hog ends by itself after this long")
    args, pytest_args = parser.parse_known_args(argv)
    if args.hogs < 0 or not 0 < args.max_seconds <= 6 * 3600:
        parser.error("--hogs must be ≥ 0 and --max-seconds between 0 and 21600")
    hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=args.max_seconds)]) for _ in range(args.hogs)]
    started = time.monotonic()
    try:
        rc = subprocess.call([sys.executable, "-m", "pytest", *pytest_args])
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(10)
    minutes = (time.monotonic() - started) / 60
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"pytest exit status {rc} after {minutes:.1f} min beside {args.hogs} CPU hog(s); "
          f"load average {load:.1f} at the end on {os.cpu_count()} cores")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
