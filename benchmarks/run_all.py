"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``).

Each script prints its markdown table and writes it to ``benchmarks/results/<name>.md``
(``bench_servers.py`` -> ``servers.md``). Each runs in a fresh Python process, so one
benchmark's servers and threads cannot slow the next, and under a deadline, so a hung benchmark
cannot hold the machine. Exit status 1 if any script failed.

Usage: ``python benchmarks/run_all.py [NAME ...]`` (e.g. ``servers``: only ``bench_servers.py``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Per script; each is meant to finish in under two minutes on a loaded 2-core machine.
TIMEOUT_S = 300


def main(names: list[str]) -> int:
    # The verdict-reliability and hub benchmarks take 15-20 minutes each, Run All a minute per
    # round of the lessons: run them by name.
    scripts = [s for s in sorted(HERE.glob("bench_*.py"))
               if names or s.stem not in ("bench_verdicts", "bench_hub", "bench_run_all")]
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
        if not scripts:
            print(f"no benchmarks/bench_<name>.py for {names}", file=sys.stderr)
            return 2
    failed = []
    for script in scripts:
        print(f"==> {script.name}", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, timeout=TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            rc = f"no result within {TIMEOUT_S} s"
        status = "ok" if rc == 0 else f"FAILED ({rc})"
        print(f"==> {script.name}: {status} in {time.monotonic() - t0:.0f} s\n", flush=True)
        if rc != 0:
            failed.append(script.name)
    print(f"Tables written to benchmarks/results/. Failed: {', '.join(failed) or 'none'}.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
