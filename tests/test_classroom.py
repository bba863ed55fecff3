"""A classroom on one host: every lesson in many kernels at once, none disturbing another.

A JupyterHub runs 30 students' kernels on one machine; they all start helper servers at the
same time. Here each lesson is executed in ``KERNELS`` separate kernels (8 by default) started
together, the whole class on the same lesson at once (one test per lesson, so a failure names
its lesson). Before the lesson, an instrumentation cell (not part of the lesson) wraps
``socket.socket.listen/connect/connect_ex/accept`` and ``LoopbackServer.start/stop`` in that
kernel to record who listened where, who connected where and whom each listener accepted.

Then, for every lesson:

* it passed in every kernel, and the kernels were separate processes running at the same time;
* no port collision: no two kernels had a helper server on the same address at the same time;
* no cross-talk: every TCP connection a kernel made went to a listener of that same kernel, and
  every connection a kernel accepted came from one of its own client sockets (so each checker
  and each helper server saw only its own learner's traffic);

and at the end the test process is back to its descriptor and thread counts (nothing leaked per
kernel). On POSIX the kernels use the ipc transport (Unix sockets), as `make lab` and the hub
setup do, so no kernel can lose a port race; on Windows (TCP) a kernel that dies binding its
ports ("Address already in use") is started again on new ports and the restarts are counted and
printed, not failed. (JupyterLab's own restarter would retry the same ports: jupyter_client caches
them, ``cache_ports=True``; the real-hub test in ``test_hub.py`` runs the real thing.)

UDP datagrams are not traced (wrapping ``sendto``/``recvfrom`` would slow the lessons' measuring
loops); the UDP lessons' own verdicts check that each echo came back to its sender.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import pathlib
import time

import pytest

from socketlessons.resources import open_descriptors, thread_count

from .conftest import settle
from .jupyter_harness import (
    LessonError,
    LessonKernel,
    copy_notebooks,
    lesson_id,
    lessons,
)

#: Kernels per lesson, and kernels running at once. On 2 cores, 8 keeps the whole course under
#: about 6 minutes; a teacher sizing a hub can raise it (SOCKETLESSONS_CLASSROOM_KERNELS=30).
KERNELS = int(os.environ.get("SOCKETLESSONS_CLASSROOM_KERNELS", "8"))

pytestmark = [pytest.mark.classroom, pytest.mark.slow]

# Runs first in each kernel. Names start with an underscore so no lesson can trip over them.
PROBE_INSTALL = r'''
def _socketlessons_probe_install():
    import os, socket, threading, time
    from socketlessons.servers import _base

    rec = {"pid": os.getpid(), "listen": [], "connect": [], "accept": [], "servers": {}}
    lock = threading.Lock()

    def addr(a):
        return [a[0], a[1]]

    def tcp(sock):
        return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM

    listen, connect, connect_ex, accept = (socket.socket.listen, socket.socket.connect,
                                           socket.socket.connect_ex, socket.socket.accept)

    def p_listen(self, *args):
        listen(self, *args)
        if tcp(self):
            with lock:
                rec["listen"].append(addr(self.getsockname()))

    def note_connect(self, remote):
        if tcp(self):
            try:
                local = addr(self.getsockname())
            except OSError:
                return
            with lock:
                rec["connect"].append([local, addr(remote)])

    def p_connect(self, address):
        try:
            connect(self, address)
        except (BlockingIOError, InterruptedError):  # non-blocking connect (asyncio): in progress
            note_connect(self, address)
            raise
        note_connect(self, address)

    def p_connect_ex(self, address):
        err = connect_ex(self, address)
        if err in (0, 115, 36, 10035):  # 0 or "in progress" (Linux, macOS, Windows)
            note_connect(self, address)
        return err

    def p_accept(self):
        conn, peer = accept(self)
        if tcp(self):
            with lock:
                rec["accept"].append([addr(self.getsockname()), addr(peer)])
        return conn, peer

    start, stop = _base.LoopbackServer.start, _base.LoopbackServer.stop

    def p_start(self):
        result = start(self)
        with lock:
            rec["servers"].setdefault(str(id(self)), {
                "kind": type(self).__name__, "mode": self.mode, "address": addr(self.address),
                "udp": self.family is not None and "UDP" in type(self).__name__,
                "start_ns": time.monotonic_ns(), "stop_ns": None})
        return result

    def p_stop(self):
        stop(self)
        with lock:
            entry = rec["servers"].get(str(id(self)))
            if entry is not None and entry["stop_ns"] is None:
                entry["stop_ns"] = time.monotonic_ns()

    socket.socket.listen, socket.socket.connect = p_listen, p_connect
    socket.socket.connect_ex, socket.socket.accept = p_connect_ex, p_accept
    _base.LoopbackServer.start, _base.LoopbackServer.stop = p_start, p_stop
    return rec

_socketlessons_probe = _socketlessons_probe_install()
del _socketlessons_probe_install
'''

PROBE_DUMP = r'''
import json as _json, time as _time
for _entry in _socketlessons_probe["servers"].values():
    if _entry["stop_ns"] is None:  # still running at the end: alive until now
        _entry["stop_ns"] = _time.monotonic_ns()
print(_json.dumps(_socketlessons_probe))
'''


@dataclasses.dataclass
class Job:
    lesson: str
    copy: int
    error: str | None = None
    probe: dict | None = None
    seconds: float = 0.0
    port_races: int = 0

    @property
    def name(self) -> str:
        return f"{self.lesson} (kernel {self.copy})"


async def run_class(path: pathlib.Path, base: pathlib.Path, kernels: int) -> tuple[list[Job], int]:
    """Run ``kernels`` copies of one lesson at the same time, each in its own kernel and folder;
    return the jobs and the largest number of kernels that were running at once."""
    running = most = 0

    async def one(job: Job) -> Job:
        nonlocal running, most
        where = base / f"{path.stem}-{job.copy}"
        t0 = time.monotonic()
        kernel = None
        try:
            cwd = copy_notebooks(where / "notebooks")  # each student has their own folder
            async with LessonKernel.started(where / "kernel", cwd) as kernel:
                running += 1
                most = max(most, running)
                try:
                    await kernel.run_code(PROBE_INSTALL)
                    try:
                        await kernel.run_lesson(path)
                    except LessonError as exc:
                        job.error = str(exc)
                    job.probe = json.loads(await kernel.run_code(PROBE_DUMP))
                finally:
                    running -= 1
        except Exception as exc:  # a kernel that would not start or died: a failed job
            job.error = job.error or f"{type(exc).__name__}: {exc}"
        finally:
            job.seconds = time.monotonic() - t0
            job.port_races = kernel.port_races if kernel is not None else 0
        return job

    jobs = await asyncio.gather(*(one(Job(path.stem, n)) for n in range(kernels)))
    return list(jobs), most


@pytest.fixture(scope="module")
def baseline() -> tuple[int | None, int]:
    """Descriptors and threads of this process before the first class (checked after the last)."""
    gc.collect()
    return open_descriptors(), thread_count()


def _key(address: list) -> tuple[str, int]:
    """``(host, port)`` with IPv4-mapped IPv6 (``::ffff:127.0.0.1``, a dual-stack socket's view
    of an IPv4 peer) written as plain IPv4, so both sides of one connection compare equal."""
    host = str(address[0])
    if host.lower().startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host, int(address[1]))


WILDCARDS = {"0.0.0.0", "::"}


def _listens_on(listeners: set[tuple[str, int]], remote: tuple[str, int]) -> bool:
    """A listener on the wildcard address (``::``, ``0.0.0.0``) takes any host on its port."""
    return remote in listeners or any(h in WILDCARDS and p == remote[1] for h, p in listeners)


def port_collisions(jobs: list[Job]) -> list[str]:
    """Helper servers of different kernels alive on the same address at the same time."""
    by_address: dict[tuple, list] = {}
    for job in jobs:
        for s in (job.probe or {}).get("servers", {}).values():
            by_address.setdefault((_key(s["address"]), s["udp"]), []).append((s["start_ns"], s["stop_ns"], job.name))
    collisions = []
    for (address, udp), lives in by_address.items():
        lives.sort()
        for (_s1, e1, n1), (s2, _e2, n2) in zip(lives, lives[1:]):
            if s2 < e1 and n1 != n2:
                collisions.append(f"{address} ({'udp' if udp else 'tcp'}): {n1} and {n2}")
    return collisions


def cross_talk(jobs: list[Job]) -> tuple[list[str], int, int]:
    """Connections that went from one kernel to another; and how many connects/accepts were seen."""
    connects = accepts = 0
    problems = []
    for job in jobs:
        probe = job.probe or {"listen": [], "servers": {}, "connect": [], "accept": []}
        listeners = {_key(a) for a in probe["listen"]} | {_key(s["address"]) for s in probe["servers"].values()}
        clients = {_key(local) for local, _remote in probe["connect"]}
        for _local, remote in probe["connect"]:
            connects += 1
            if not _listens_on(listeners, _key(remote)):
                problems.append(f"{job.name} connected to {remote}, which is not one of its own listeners")
        for local, peer in probe["accept"]:
            accepts += 1
            if _key(peer) not in clients:
                problems.append(f"{job.name}: its listener {local} accepted {peer}, not one of its own clients")
    return problems, connects, accepts


@pytest.mark.timeout(max(300, 40 * KERNELS))  # a rehearsal with 30 kernels needs longer
@pytest.mark.parametrize("lesson", lessons(), ids=lesson_id)
def test_a_class_runs_the_lesson_at_once(lesson, baseline, tmp_path, request):
    t0 = time.monotonic()
    jobs, most = asyncio.run(run_class(lesson, tmp_path, KERNELS))
    seconds = time.monotonic() - t0
    races = sum(j.port_races for j in jobs)
    request.node.user_properties += [("seconds", round(seconds, 1)), ("kernel_port_races", races)]
    print(f"{lesson.stem}: {KERNELS} kernels at once in {seconds:.0f} s "
          f"(each {min(j.seconds for j in jobs):.0f}-{max(j.seconds for j in jobs):.0f} s); "
          f"kernel restarts after a port race: {races}")

    failed = [f"{j.name}: {j.error}" for j in jobs if j.error]
    assert not failed, f"{len(failed)} of {KERNELS} kernels failed:\n" + "\n\n".join(failed[:3])
    assert most == KERNELS, f"only {most} of {KERNELS} kernels ran at the same time"
    pids = [j.probe["pid"] for j in jobs]
    assert len(set(pids)) == KERNELS, f"kernels shared a process: {pids}"

    collisions = port_collisions(jobs)
    assert not collisions, "helper servers of different kernels shared an address:\n" + "\n".join(collisions)
    problems, connects, accepts = cross_talk(jobs)
    assert not problems, f"{len(problems)} connections crossed between kernels:\n" + "\n".join(problems[:10])
    servers = sum(len(j.probe["servers"]) for j in jobs)
    request.node.user_properties += [("servers", servers), ("connects", connects), ("accepts", accepts)]


def test_the_probe_sees_what_it_checks():
    """The checks above can fail: connections between two kernels, and two kernels' servers on
    one address at once, are reported; IPv4-mapped and wildcard addresses are understood."""
    a = Job("x", 0, probe={"listen": [["127.0.0.1", 1000]], "servers": {},
                           "connect": [[["127.0.0.1", 5000], ["127.0.0.1", 2000]]],  # to b's listener
                           "accept": [[["127.0.0.1", 1000], ["127.0.0.1", 6000]]]})  # from b's client
    b = Job("x", 1, probe={"listen": [["::", 2000]], "servers": {},
                           "connect": [[["::ffff:127.0.0.1", 6000], ["::ffff:127.0.0.1", 1000]]],
                           "accept": [[["::", 2000], ["::ffff:127.0.0.1", 5000]]]})
    problems, connects, accepts = cross_talk([a, b])
    assert (connects, accepts, len(problems)) == (2, 2, 4), problems
    a.probe["connect"] = [[["127.0.0.1", 5000], ["127.0.0.1", 1000]]]  # each to its own listener
    b.probe["connect"] = [[["::ffff:127.0.0.1", 6000], ["::ffff:127.0.0.1", 2000]]]
    a.probe["accept"] = [[["127.0.0.1", 1000], ["127.0.0.1", 5000]]]
    b.probe["accept"] = [[["::", 2000], ["127.0.0.1", 6000]]]
    assert cross_talk([a, b])[0] == []

    def server(start: int, stop: int) -> dict:
        return {"1": {"address": ["127.0.0.1", 1000], "udp": False, "start_ns": start, "stop_ns": stop}}

    a.probe["servers"], b.probe["servers"] = server(0, 10), server(5, 20)
    assert port_collisions([a, b]) == ["('127.0.0.1', 1000) (tcp): x (kernel 0) and x (kernel 1)"]
    b.probe["servers"] = server(11, 20)  # one after the other: the OS may reuse a port
    assert port_collisions([a, b]) == []


def test_test_process_is_back_to_its_descriptors_and_threads(baseline):
    """Runs after every class: kernel clients, channels and ZMQ contexts were all released."""
    fds, threads = baseline
    gc.collect()
    assert settle(threads) == threads, "threads left behind by the kernel clients"
    if fds is not None:
        assert open_descriptors() == fds, f"descriptors: {fds} before the classes, {open_descriptors()} after"
