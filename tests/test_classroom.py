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
import gc
import json
import os
import pathlib
import time

import pytest

from socketlessons.resources import open_descriptors, thread_count

from .classroom_probe import PROBE_DUMP, PROBE_INSTALL, Job, cross_talk, port_collisions
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
    # A connection from a child process the kernel started (lesson 09's curl) is its own traffic;
    # the same peer without a known child is not.
    a.probe["accept"].append([["127.0.0.1", 1000], ["127.0.0.1", 7000], 4242])
    assert cross_talk([a, b])[0] == []
    a.probe["accept"][-1][2] = None
    assert len(cross_talk([a, b])[0]) == 1

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
