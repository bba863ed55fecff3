"""Lesson 05 checkers, mutation-tested: the reference passes; one mutant per class of beginner
mistake fails with the hint about ITS bug; correct alternatives written differently pass."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time

import pytest

from socketlessons.checks import BUSY_HINT, GLOBAL_TIMEOUT_HINT, show_solution
from socketlessons.lessons.l05_best_practices import checks as l05
from socketlessons.lessons.l05_best_practices.checks import (
    ASYNC_CLOSE_HINT,
    ASYNC_HINT,
    ASYNC_PROPAGATE_HINT,
    ASYNC_STATE_HINT,
    ASYNC_STRIP_HINT,
    ASYNC_TIMEOUT_HINT,
    CLOSE_HINT,
    COUNT_HINT,
    GATHER_HINT,
    LOOP_HINT,
    ORDER_HINT,
    PARTIAL_HINT,
    PARTIAL_REPLY_HINT,
    PROPAGATE_HINT,
    READ_HINT,
    SENDALL_HINT,
    SHUT_HINT,
    STATE_HINT,
    STRIP_HINT,
    TIMEOUT_HINT,
    check_fetch,
    check_fetch_all,
)
from socketlessons.lessons.l05_best_practices.solutions import fetch, fetch_all

from ._repeat import repeated_verdicts

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- fetch: mutants of the reference, one per class of mistake ------------------------------------

def fetch_stub(address, request, timeout):
    """Send request, return the whole reply; never hang, always close."""
    ...


def single_recv(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(1024)


def bounded_by_count(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        for _ in range(5):  # "the reply is never more than 5 pieces"
            reply += sock.recv(4096)
        return reply


def bounded_by_request_length(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < len(request):  # assumes the reply is as long as the request
            reply += sock.recv(4096)
        return reply


def strips_the_reply(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        return reply.strip()


def ignores_send_result(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.send(request)  # may send only part
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        return reply


_pending = bytearray()


def module_level_buffer(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(4096):
            _pending.extend(chunk)  # never emptied: the next call starts with these bytes
        return bytes(_pending)


def mutable_default(address, request, timeout, chunks=[]):  # noqa: B006 - the mistake under test
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def no_timeout(address, request, timeout):
    with socket.create_connection(address) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply


def timeout_in_milliseconds(address, request, timeout):
    with socket.create_connection(address, timeout=timeout * 1000) as sock:  # "timeout is in ms"
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply


def global_default_timeout(address, request, timeout):
    socket.setdefaulttimeout(timeout)  # changes every socket of the kernel
    with socket.create_connection(address) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply


def never_closes(address, request, timeout):
    sock = socket.create_connection(address, timeout=timeout)
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := sock.recv(1024):
        reply += chunk
    return reply


def closes_only_on_success(address, request, timeout):
    sock = socket.create_connection(address, timeout=timeout)
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := sock.recv(1024):  # a timeout raises here and skips close()
        reply += chunk
    sock.close()
    return reply


def closes_only_on_timeout(address, request, timeout):
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply  # the happy path forgets close()
    except TimeoutError:
        sock.close()
        raise


def no_half_close(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(1024):
            reply += chunk
        return reply


def swallows_the_timeout(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := sock.recv(1024):
                reply += chunk
        except socket.timeout:
            pass
        return reply


def swallows_everything(address, request, timeout):
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            return b"".join(iter(lambda: sock.recv(1024), b""))
    except Exception:
        return None


def busy_polling(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
        reply, deadline = b"", time.monotonic() + timeout
        while True:
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("no reply") from None
                continue  # spin: try again at once
            if not chunk:
                return reply
            reply, deadline = reply + chunk, time.monotonic() + timeout


def returns_the_reply_so_far_on_timeout(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                if reply:
                    return reply  # a pause after some bytes taken for the end of the reply
                raise
            if not chunk:
                return reply
            reply += chunk


FETCH_MUTANTS = [
    (single_recv, LOOP_HINT),
    (bounded_by_count, COUNT_HINT),
    (bounded_by_request_length, COUNT_HINT),
    (strips_the_reply, STRIP_HINT),
    (ignores_send_result, SENDALL_HINT),
    (module_level_buffer, STATE_HINT),
    (mutable_default, STATE_HINT),
    (no_timeout, TIMEOUT_HINT),
    (timeout_in_milliseconds, TIMEOUT_HINT),
    (global_default_timeout, GLOBAL_TIMEOUT_HINT),
    (never_closes, CLOSE_HINT),
    (closes_only_on_success, CLOSE_HINT),
    (closes_only_on_timeout, CLOSE_HINT),
    (no_half_close, SHUT_HINT),
    (swallows_the_timeout, PROPAGATE_HINT),
    (swallows_everything, PROPAGATE_HINT),
    (busy_polling, BUSY_HINT),
    (returns_the_reply_so_far_on_timeout, PARTIAL_REPLY_HINT),
]


# ---- fetch: correct alternatives written differently from the reference ----------------------------

def with_makefile(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as f:
            return f.read()  # reads until EOF; the socket's timeout still applies


def with_recv_into(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply, buf = bytearray(), bytearray(1024)
        while n := sock.recv_into(buf):
            reply += buf[:n]
        return bytes(reply)


def by_hand_with_try_finally(address, request, timeout):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        view = memoryview(request)
        while view:
            view = view[sock.send(view):]  # send() and its return value, by hand
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if chunk == b"":
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def byte_by_byte(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while byte := sock.recv(1):
            reply += byte
        return bytes(reply)


def one_deadline_for_the_call(address, request, timeout):
    deadline = time.monotonic() + timeout  # the whole call gets `timeout` seconds, not each wait
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete reply within {timeout} s")
            sock.settimeout(left)
            chunk = sock.recv(4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


FETCH_ALTERNATIVES = [one_deadline_for_the_call, with_makefile, with_recv_into, by_hand_with_try_finally, byte_by_byte]


def test_fetch_reference_passes(record_mutation):
    result = check_fetch(fetch)
    record_mutation("check_fetch", "alternative", "reference", result.passed)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), FETCH_MUTANTS, ids=[m.__name__ for m, _ in FETCH_MUTANTS])
def test_fetch_mutant_fails_with_its_own_hint(wrong, hint, record_mutation):
    _pending.clear()
    mutable_default.__defaults__[0].clear()
    result = check_fetch(wrong)
    record_mutation("check_fetch", "mutant", wrong.__name__, not result.passed and result.hint == hint)
    assert not result.passed, result
    assert result.hint == hint, result


@pytest.mark.parametrize("right", FETCH_ALTERNATIVES, ids=[f.__name__ for f in FETCH_ALTERNATIVES])
def test_fetch_alternative_passes(right, record_mutation):
    result = check_fetch(right)
    record_mutation("check_fetch", "alternative", right.__name__, result.passed)
    assert result.passed, result


def test_fetch_stub_is_named():
    result = check_fetch(fetch_stub)
    assert not result.passed and "`...` body" in result.message


def test_fetch_global_timeout_is_undone():
    check_fetch(global_default_timeout)
    assert socket.getdefaulttimeout() is None


# ---- fetch_all: mutants ----------------------------------------------------------------------------

async def fetch_all_stub(address, requests, timeout):
    """All requests at once."""
    ...


async def _one(address, request):
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.readexactly(len(request))
    finally:
        writer.close()
        await writer.wait_closed()


async def one_after_another(address, requests, timeout):
    replies = []
    for request in requests:
        replies.append(await asyncio.wait_for(_one(address, request), timeout))
    return replies


async def two_at_a_time(address, requests, timeout):
    replies = []
    for i in range(0, len(requests), 2):
        replies += await asyncio.wait_for(asyncio.gather(*(_one(address, r) for r in requests[i:i + 2])), timeout)
    return replies


async def semaphore_of_three(address, requests, timeout):
    limit = asyncio.Semaphore(3)

    async def limited(request):
        async with limit:
            return await _one(address, request)

    return await asyncio.wait_for(asyncio.gather(*(limited(r) for r in requests)), timeout)


LIMIT = 8


async def semaphore_sized_to_the_first_call(address, requests, timeout):
    limit = asyncio.Semaphore(LIMIT)  # "8 is how many there are": the next call sends 11

    async def limited(request):
        async with limit:
            return await _one(address, request)

    return await asyncio.wait_for(asyncio.gather(*(limited(r) for r in requests)), timeout)


def _blocking_one(address, request, timeout):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while len(reply) < len(request):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


async def pool_of_four_threads(address, requests, timeout):
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [loop.run_in_executor(pool, _blocking_one, address, r, timeout) for r in requests]
        return await asyncio.wait_for(asyncio.gather(*jobs), timeout)


def plain_def(address, requests, timeout):
    return [_blocking_one(address, r, timeout) for r in requests]


async def single_read(address, requests, timeout):
    async def one(request):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request)
            return await reader.read(1024)  # what has arrived, not the whole echo
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.wait_for(asyncio.gather(*(one(r) for r in requests)), timeout)


async def strips_each_echo(address, requests, timeout):
    replies = await asyncio.wait_for(asyncio.gather(*(_one(address, r) for r in requests)), timeout)
    return [r.strip() for r in replies]


async def as_completed_order(address, requests, timeout):
    tasks = [asyncio.ensure_future(_one(address, r)) for r in requests]
    return [await t for t in asyncio.as_completed(tasks, timeout=timeout)]


_all_replies = []


async def module_level_list(address, requests, timeout):
    _all_replies.extend(await asyncio.wait_for(asyncio.gather(*(_one(address, r) for r in requests)), timeout))
    return _all_replies


async def no_async_timeout(address, requests, timeout):
    return await asyncio.gather(*(_one(address, r) for r in requests))


async def returns_the_exceptions(address, requests, timeout):
    async def one(request):
        return await asyncio.wait_for(_one(address, request), timeout)

    return await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)


async def leaves_writers_open(address, requests, timeout):
    async def one(request):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request)
        return await reader.readexactly(len(request))

    return await asyncio.wait_for(asyncio.gather(*(one(r) for r in requests)), timeout)


async def spins_on_done(address, requests, timeout):
    tasks = [asyncio.ensure_future(_one(address, r)) for r in requests]
    deadline = time.monotonic() + timeout
    while not all(t.done() for t in tasks):
        if time.monotonic() > deadline:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise TimeoutError("the server did not answer in time")
        await asyncio.sleep(0)  # spin: wake up again at once
    return [t.result() for t in tasks]


async def _one_not_awaited(address, request):
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        return reader.readexactly(len(request))  # forgot await
    finally:
        writer.close()
        await writer.wait_closed()


async def forgets_an_await(address, requests, timeout):  # found by an outsider: got the gather hint
    return await asyncio.wait_for(asyncio.gather(*(_one_not_awaited(address, r) for r in requests)), timeout)


async def _one_as_text(address, request):
    return (await _one(address, request)).decode()


async def returns_text(address, requests, timeout):  # found by an outsider: got the gather hint
    return await asyncio.wait_for(asyncio.gather(*(_one_as_text(address, r) for r in requests)), timeout)


async def waits_without_cancelling(address, requests, timeout):
    """Found by an outsider: raises on time, but leaves its requests running (asyncio.run at the
    end of the checker's own loop cancelled them, so it passed)."""
    tasks = [asyncio.create_task(_one(address, r)) for r in requests]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    if pending:
        raise TimeoutError(f"{len(pending)} requests unanswered")
    return [t.result() for t in tasks]


FETCH_ALL_MUTANTS = [
    (semaphore_sized_to_the_first_call, PARTIAL_HINT),
    (plain_def, ASYNC_HINT),
    (one_after_another, GATHER_HINT),
    (two_at_a_time, PARTIAL_HINT),
    (semaphore_of_three, PARTIAL_HINT),
    (pool_of_four_threads, PARTIAL_HINT),
    (single_read, READ_HINT),
    (strips_each_echo, ASYNC_STRIP_HINT),
    (as_completed_order, ORDER_HINT),
    (module_level_list, ASYNC_STATE_HINT),
    (no_async_timeout, ASYNC_TIMEOUT_HINT),
    (returns_the_exceptions, ASYNC_PROPAGATE_HINT),
    (leaves_writers_open, ASYNC_CLOSE_HINT),
    (spins_on_done, BUSY_HINT),
    (waits_without_cancelling, l05.ASYNC_CANCEL_HINT),
    (forgets_an_await, l05.AWAIT_HINT),
    (returns_text, l05.ASYNC_STRIP_HINT),
]


# ---- fetch_all: correct alternatives -----------------------------------------------------------------

async def task_group_and_timeout(address, requests, timeout):
    async def one(request):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request)
            data = b""
            while len(data) < len(request):  # read(4096) in a loop instead of readexactly
                chunk = await reader.read(4096)
                if not chunk:
                    raise EOFError("the server closed early")
                data += chunk
            return data
        finally:
            writer.close()
            await writer.wait_closed()

    async with asyncio.timeout(timeout):
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(r)) for r in requests]
    return [t.result() for t in tasks]


async def loop_sock_calls(address, requests, timeout):
    loop = asyncio.get_running_loop()

    async def one(request):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, request)
            data = bytearray()
            while len(data) < len(request):
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    raise EOFError("the server closed early")
                data += chunk
            return bytes(data)

    return list(await asyncio.wait_for(asyncio.gather(*(one(r) for r in requests)), timeout))


async def tasks_then_wait(address, requests, timeout):
    tasks = [asyncio.create_task(_one(address, r)) for r in requests]
    try:
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            raise TimeoutError(f"{len(pending)} requests unanswered after {timeout} s")
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def half_close_then_read_to_eof(address, requests, timeout):
    async def one(request):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request)
            writer.write_eof()  # done sending: the echo server closes after its echo
            return await reader.read()  # everything until EOF
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.wait_for(asyncio.gather(*(one(r) for r in requests)), timeout)


FETCH_ALL_ALTERNATIVES = [task_group_and_timeout, loop_sock_calls, tasks_then_wait, half_close_then_read_to_eof]


def test_fetch_all_reference_passes(record_mutation):
    result = check_fetch_all(fetch_all)
    record_mutation("check_fetch_all", "alternative", "reference", result.passed)
    assert result.passed, result
    assert "in progress at the same time" in result.message


@pytest.mark.parametrize(("wrong", "hint"), FETCH_ALL_MUTANTS, ids=[m.__name__ for m, _ in FETCH_ALL_MUTANTS])
def test_fetch_all_mutant_fails_with_its_own_hint(wrong, hint, record_mutation):
    _all_replies.clear()
    result = check_fetch_all(wrong)
    record_mutation("check_fetch_all", "mutant", wrong.__name__, not result.passed and result.hint == hint)
    assert not result.passed, result
    assert result.hint == hint, result


@pytest.mark.parametrize("right", FETCH_ALL_ALTERNATIVES, ids=[f.__name__ for f in FETCH_ALL_ALTERNATIVES])
def test_fetch_all_alternative_passes(right, record_mutation):
    result = check_fetch_all(right)
    record_mutation("check_fetch_all", "alternative", right.__name__, result.passed)
    assert result.passed, result


def test_fetch_all_stub_is_named():
    result = check_fetch_all(fetch_all_stub)
    assert not result.passed and "`...` body" in result.message


def test_solutions_can_be_shown():
    assert show_solution("fetch") is not None and show_solution("fetch_all") is not None


# ---- the same verdict every time -----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 runs each: 1-3 min beside a CPU hog per core, more in a crowded CI
@pytest.mark.xdist_group("checker-repeats")  # one repeat test at a time (tests/lessons/_repeat.py)
def test_checkers_give_the_same_verdict_20_times():
    """The references 20 runs each; the mutants whose verdict rests on timing fewer: busy loops
    (a share of CPU time, 10 runs), loops that stop early (they would pass if a busy machine
    glued every piece, 5 runs); mutants that fail by construction 2-3 runs (one send() cannot
    take 16 MiB while the server is not reading; a batch of two never has all eight requests in
    progress; a socket without timeout never returns from a silent server). About a minute
    quiet; 2-3 minutes at load 10 on 2 cores."""
    cases = [(check_fetch, fetch, None, 20), (check_fetch, busy_polling, BUSY_HINT, 10),
             (check_fetch, single_recv, LOOP_HINT, 5), (check_fetch, bounded_by_count, COUNT_HINT, 5),
             (check_fetch, bounded_by_request_length, COUNT_HINT, 5),
             (check_fetch, ignores_send_result, SENDALL_HINT, 3), (check_fetch, no_timeout, TIMEOUT_HINT, 2),
             (check_fetch, returns_the_reply_so_far_on_timeout, PARTIAL_REPLY_HINT, 5),
             (check_fetch, one_deadline_for_the_call, None, 5),
             (check_fetch_all, semaphore_sized_to_the_first_call, PARTIAL_HINT, 2),
             (check_fetch_all, fetch_all, None, 20), (check_fetch_all, spins_on_done, BUSY_HINT, 10),
             (check_fetch_all, single_read, READ_HINT, 5), (check_fetch_all, two_at_a_time, PARTIAL_HINT, 2),
             (check_fetch_all, one_after_another, GATHER_HINT, 2)]
    all_outcomes = repeated_verdicts([(check, fn, runs) for check, fn, _, runs in cases])
    for (check, fn, hint, runs), outcomes in zip(cases, all_outcomes):
        verdicts = {(passed, got) for passed, got, _ in outcomes}
        assert len(outcomes) == runs and verdicts == {(hint is None, hint or "")}, (fn.__name__, verdicts)
