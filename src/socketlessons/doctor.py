"""``doctor()``: can this machine run the lessons? Each check says what to do when it fails.

Checks: Python version, real sockets (JupyterLite/Pyodide has none), IPv4 and IPv6 loopback,
the descriptor limit, the timer's resolution, and the widget packages. Nothing leaves loopback.
"""

from __future__ import annotations

import dataclasses
import html
import platform
import socket
import sys
import time
from typing import Literal

__all__ = ["Check", "DoctorReport", "doctor", "ipv6_available"]

Status = Literal["ok", "warn", "fail"]
_MARK = {"ok": "✔", "warn": "!", "fail": "✘"}


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    advice: str = ""


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings only disable parts of some lessons)."""
        return all(c.status != "fail" for c in self.checks)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def __str__(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"{_MARK[c.status]} {c.name:<18} {c.detail}")
            if c.advice:
                lines.append(f"  {'':<18} → {c.advice}")
        lines.append("All set: the lessons can run here." if self.ok else "Some checks failed: see the advice above.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{_MARK[c.status]}</td><td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}"
            + (f"<br><i>{html.escape(c.advice)}</i>" if c.advice else "")
            + "</td></tr>"
            for c in self.checks
        )
        verdict = "All set: the lessons can run here." if self.ok else "Some checks failed: see the advice."
        return f"<table>{rows}</table><p>{verdict}</p>"

    def __repr__(self) -> str:
        return str(self)


def _round_trip(family: socket.AddressFamily, host: str) -> float:
    """One byte through a fresh loopback connection; return the round-trip time in µs."""
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()[:2], timeout=2) as client:
            server, _ = listener.accept()
            with server:
                server.settimeout(2)
                t0 = time.perf_counter_ns()
                client.sendall(b"x")
                server.sendall(server.recv(1))
                client.recv(1)
                return (time.perf_counter_ns() - t0) / 1000


def ipv6_available() -> bool:
    """True when this machine can bind and connect on ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        _round_trip(socket.AF_INET6, "::1")
    except OSError:
        return False
    return True


def _check_python() -> Check:
    v = sys.version_info
    detail = f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.system() or sys.platform}"
    if v < (3, 10):
        return Check("python", "fail", detail, "the lessons need Python 3.10 or newer")
    return Check("python", "ok", detail)


def _check_sockets() -> Check:
    if sys.platform == "emscripten":
        return Check("real sockets", "fail", "this is JupyterLite / Pyodide: the browser gives Python no sockets",
                     "run the lessons in JupyterLab on your computer, on Binder or on a JupyterHub")
    return Check("real sockets", "ok", "the socket module can open real sockets")


def _check_loopback(family: socket.AddressFamily, host: str, name: str, advice: str) -> Check:
    try:
        rtt = _round_trip(family, host)
    except OSError as exc:
        return Check(name, "warn" if family == socket.AF_INET6 else "fail", f"{host}: {exc}", advice)
    return Check(name, "ok", f"{host} works (one 1-byte round trip: {rtt:.0f} µs)")


def _check_fd_limit() -> Check:
    try:
        import resource
    except ImportError:  # Windows
        return Check("descriptor limit", "ok", "Windows: no per-process descriptor limit to raise")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    show = lambda n: "unlimited" if n == resource.RLIM_INFINITY else f"{n:,}"  # noqa: E731
    detail = f"soft {show(soft)}, hard {show(hard)} (each TCP connection to a helper costs two)"
    if soft != resource.RLIM_INFINITY and soft < 1024:
        return Check("descriptor limit", "warn", detail, "lesson 03's many-connections demo will use fewer clients")
    return Check("descriptor limit", "ok", detail)


def _check_threads() -> Check:
    from .resources import thread_room

    room = thread_room()
    if room.free is None:
        return Check("threads", "ok", room.source)
    detail = f"about {room.free:,} more can start ({room.source} {room.limit:,}, shared by every program here)"
    if room.free < 2_000:
        return Check("threads", "warn", detail,
                     "lesson 03's thread-per-client demos will use fewer connections; a hub should raise pids.max")
    return Check("threads", "ok", detail)


def _check_timer() -> Check:
    info = time.get_clock_info("perf_counter")
    steps = []
    for _ in range(2000):
        t0 = time.perf_counter_ns()
        steps.append(time.perf_counter_ns() - t0)
    smallest = min((d for d in steps if d > 0), default=0)
    detail = f"perf_counter resolution {info.resolution * 1e9:.0f} ns, smallest step seen {smallest} ns"
    if smallest > 10_000:
        return Check("timer", "warn", detail, "timings below ~10 µs will be coarse; the lessons time batches of calls")
    return Check("timer", "ok", detail)


def _check_widgets() -> Check:
    try:
        import ipywidgets
    except ImportError:
        return Check("widgets", "fail", "ipywidgets is not installed", "pip install 'ipywidgets>=8' (make lab does it)")
    try:
        from importlib.metadata import version

        lab_widgets = version("jupyterlab_widgets")
    except Exception:
        return Check("widgets", "warn", f"ipywidgets {ipywidgets.__version__}, but no jupyterlab_widgets",
                     "install jupyterlab_widgets in the environment that runs JupyterLab, then reload the page")
    return Check("widgets", "ok", f"ipywidgets {ipywidgets.__version__}, jupyterlab_widgets {lab_widgets}",
                 "if sliders show as text, reload the page; see README, Troubleshooting")


def doctor() -> DoctorReport:
    """Check this machine for the lessons; display the result in a notebook or print it."""
    checks = [_check_python(), _check_sockets()]
    if checks[-1].status == "ok":
        checks.append(_check_loopback(socket.AF_INET, "127.0.0.1", "IPv4 loopback",
                                      "loopback must work for any lesson: check firewall or sandbox settings"))
        checks.append(_check_loopback(socket.AF_INET6, "::1", "IPv6 loopback",
                                      "IPv6 is off here: lesson 07's IPv6 cells will say so and skip"))
        checks.append(_check_fd_limit())
        checks.append(_check_threads())
    checks.extend([_check_timer(), _check_widgets()])
    return DoctorReport(tuple(checks))
