"""A classroom on one host: every lesson in many kernels at once, none disturbing another.

A JupyterHub runs 30 students' kernels on one machine; they all start helper servers at the
same time. Here every lesson is executed in ``KERNELS`` separate kernels (8 by default), through a
pool that keeps ``KERNELS`` kernels busy at once, with the jobs ordered so that the copies of
each lesson start together. Before the lesson, an instrumentation cell (not part of the lesson)
wraps ``socket.socket.listen/connect/connect_ex/accept`` and ``LoopbackServer.start/stop`` in
that kernel to record who listened where, who connected where and whom each listener accepted.

Then:

* every lesson passed in every kernel;
* no port collision: no two kernels had a helper server on the same address at the same time;
* no cross-talk: every TCP connection a kernel made went to a listener of that same kernel, and
  every connection a kernel accepted came from one of its own client sockets (so each checker
  and each helper server saw only its own learner's traffic);
* the test process is back to its descriptor and thread counts: nothing leaked per kernel.

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
from .jupyter_harness import LessonError, LessonKernel, copy_notebooks, lessons

#: Kernels per lesson, and kernels running at once. On 2 cores, 8 keeps the whole course under
#: about 6 minutes; a teacher sizing a hub can raise it (SOCKETLESSONS_CLASSROOM_KERNELS=30).
KERNELS = int(os.environ.get("SOCKETLESSONS_CLASSROOM_KERNELS", "8"))

pytestmark = [pytest.mark.classroom, pytest.mark.slow, pytest.mark.timeout(900)]

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

    @property
    def name(self) -> str:
        return f"{self.lesson} (kernel {self.copy})"


@dataclasses.dataclass
class Classroom:
    jobs: list[Job]
    most_at_once: int
    seconds: float
    fds_before: int | None
    fds_after: int | None
    threads_before: int
    threads_after: int


async def run_classroom(base: pathlib.Path, paths: list[pathlib.Path], kernels: int) -> tuple[list[Job], int]:
    """Run ``kernels`` copies of each lesson, ``kernels`` at a time; return the jobs and the
    largest number that were running at once."""
    pool = asyncio.Semaphore(kernels)
    running = most = 0

    async def one(job: Job, path: pathlib.Path, where: pathlib.Path) -> Job:
        nonlocal running, most
        async with pool:
            running += 1
            most = max(most, running)
            t0 = time.monotonic()
            try:
                cwd = copy_notebooks(where / "notebooks")  # each student has their own folder
                async with LessonKernel.started(where / "kernel", cwd) as kernel:
                    await kernel.run_code(PROBE_INSTALL)
                    try:
                        await kernel.run_lesson(path)
                    except LessonError as exc:
                        job.error = str(exc)
                    job.probe = json.loads(await kernel.run_code(PROBE_DUMP))
            except Exception as exc:  # a kernel that would not start or died: a failed job
                job.error = job.error or f"{type(exc).__name__}: {exc}"
            finally:
                job.seconds = time.monotonic() - t0
                running -= 1
        return job

    tasks = []
    for path in paths:  # copies of one lesson are queued together, so they run together
        for n in range(kernels):
            job = Job(path.stem, n)
            tasks.append(one(job, path, base / f"{path.stem}-{n}"))
    jobs = await asyncio.gather(*tasks)
    return list(jobs), most


@pytest.fixture(scope="module")
def classroom(tmp_path_factory) -> Classroom:
    paths = lessons()
    assert paths, "no lessons found in notebooks/"
    base = tmp_path_factory.mktemp("classroom")
    gc.collect()
    fds, threads = open_descriptors(), thread_count()
    t0 = time.monotonic()
    jobs, most = asyncio.run(run_classroom(base, paths, KERNELS))
    seconds = time.monotonic() - t0
    gc.collect()
    return Classroom(jobs, most, seconds, fds, open_descriptors(), threads, settle(threads))


def test_every_lesson_passes_in_every_kernel(classroom, record_property):
    failed = [f"{j.name}: {j.error}" for j in classroom.jobs if j.error]
    assert not failed, f"{len(failed)} of {len(classroom.jobs)} lesson runs failed:\n" + "\n\n".join(failed[:3])
    assert classroom.most_at_once == min(KERNELS, len(classroom.jobs)), "kernels did not run at the same time"
    per_lesson: dict[str, list[float]] = {}
    for job in classroom.jobs:
        per_lesson.setdefault(job.lesson, []).append(round(job.seconds, 1))
    record_property("classroom_seconds", round(classroom.seconds, 1))
    record_property("seconds_per_lesson_run", per_lesson)


def _probes(classroom: Classroom) -> list[tuple[Job, dict]]:
    probes = [(j, j.probe) for j in classroom.jobs if j.probe is not None]
    assert len(probes) == len(classroom.jobs), "some kernels returned no record (see the first test)"
    return probes


def _key(address: list) -> tuple[str, int]:
    return (str(address[0]), int(address[1]))


def test_each_kernel_is_a_separate_process(classroom):
    pids = [p["pid"] for _, p in _probes(classroom)]
    # Jobs that ran at the same time must have had different processes; the OS may reuse a pid
    # later, so compare within each lesson's batch, which ran together.
    for lesson in {j.lesson for j in classroom.jobs}:
        batch = [p["pid"] for j, p in _probes(classroom) if j.lesson == lesson]
        assert len(set(batch)) == len(batch), f"{lesson}: kernels shared a process: {batch}"
    assert len(pids) == len(classroom.jobs)


def test_no_two_kernels_served_on_the_same_address_at_once(classroom):
    servers = [
        (job.name, _key(s["address"]), s["udp"], s["start_ns"], s["stop_ns"])
        for job, probe in _probes(classroom)
        for s in probe["servers"].values()
    ]
    assert servers, "no helper server was recorded: the probe is not seeing the lessons"
    by_address: dict[tuple, list] = {}
    for name, address, udp, start, stop in servers:
        by_address.setdefault((address, udp), []).append((start, stop, name))
    collisions = []
    for (address, udp), lives in by_address.items():
        lives.sort()
        for (s1, e1, n1), (s2, _e2, n2) in zip(lives, lives[1:]):
            if s2 < e1 and n1 != n2:
                collisions.append(f"{address} ({'udp' if udp else 'tcp'}): {n1} and {n2}")
    assert not collisions, "helper servers of different kernels shared an address:\n" + "\n".join(collisions)


def test_no_cross_talk_between_kernels(classroom):
    connects = accepts = 0
    problems = []
    for job, probe in _probes(classroom):
        listeners = {_key(a) for a in probe["listen"]}
        listeners |= {_key(s["address"]) for s in probe["servers"].values()}
        clients = {_key(local) for local, _remote in probe["connect"]}
        for _local, remote in probe["connect"]:
            connects += 1
            if _key(remote) not in listeners:
                problems.append(f"{job.name} connected to {remote}, which is not one of its own listeners")
        for local, peer in probe["accept"]:
            accepts += 1
            if _key(peer) not in clients:
                problems.append(f"{job.name}: its listener {local} accepted {peer}, not one of its own clients")
    assert connects and accepts, "no connection was recorded: the probe is not seeing the lessons"
    assert not problems, f"{len(problems)} connections crossed between kernels:\n" + "\n".join(problems[:10])


def test_test_process_is_back_to_its_descriptors_and_threads(classroom):
    assert classroom.threads_after == classroom.threads_before, "threads left behind by the kernel clients"
    if classroom.fds_before is not None:
        assert classroom.fds_after == classroom.fds_before, (
            f"descriptors: {classroom.fds_before} before, {classroom.fds_after} after "
            f"{len(classroom.jobs)} kernels: something is not closed per kernel"
        )
