"""A class on a real JupyterHub: how long it takes and what one student costs.

Runs ``tests/test_hub.py`` (a real hub with ``docs/hub/jupyterhub_config.py``, students who log
in, pull the lessons with nbgitpuller, run lessons 00, 03 and 09 in their kernels at the same
time and re-pull) for each class size, and tabulates its report line: servers ready, login and
pull, each lesson for the whole class at once, the re-pull, and the peak resident memory per
student (server + kernel, sampled every second). Writes ``benchmarks/results/hub.md``.

Usage: ``python benchmarks/bench_hub.py [STUDENTS ...]`` (default: 10 30). Needs
configurable-http-proxy (``make test`` installs it from npm). Each size is bounded (20 min).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hub.md"
TIMEOUT_S = 1200
REPORT = re.compile(r"^(\d+) students: .*$", re.MULTILINE)


def run(students: int) -> tuple[str, float]:
    env = {**os.environ, "SOCKETLESSONS_HUB_STUDENTS": str(students), "SOCKETLESSONS_REQUIRE_HUB": "1"}
    load_before = psutil.getloadavg()[0]
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pytest", "tests/test_hub.py", "-k", "real_hub", "-s", "-q",
                          "-p", "no:cacheprovider", "--timeout", str(TIMEOUT_S)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT_S + 120)
    seconds = time.monotonic() - t0
    found = REPORT.search(out.stdout)
    if out.returncode != 0 or not found:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise SystemExit(f"the hub test with {students} students failed:\n{tail}")
    return f"{found[0]} (whole test {seconds:.0f} s; load average {load_before:.1f} before)", seconds


def main(sizes: list[int]) -> int:
    rows = [run(n)[0] for n in sizes]
    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, {platform.system()}"
    text = "\n".join([
        "# A class on a real JupyterHub",
        "",
        f"`python benchmarks/bench_hub.py {' '.join(map(str, sizes))}` on {machine}. The machine was shared with",
        "other work while this ran (see the load average): read the times as an upper bound for a",
        "dedicated host of the same size.",
        "",
        *[f"- {row}" for row in rows],
        "",
    ])
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or [10, 30]))
