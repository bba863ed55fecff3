"""Lesson 03 checkers, mutation-tested: each mutant of the reference (one per class of beginner
mistake that applies) fails with the hint about ITS bug; each correct alternative, written
differently from the reference, passes. Outcomes go to ``record_mutation`` (score per checker)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import selectors
import socket
import threading
import time

import pytest

from socketlessons.checks import BUSY_HINT, GLOBAL_TIMEOUT_HINT
from socketlessons.lessons.l03_server_loop import check_echo_until_eof, check_serve_concurrently
from socketlessons.lessons.l03_server_loop import checks as c
from socketlessons.lessons.l03_server_loop.solutions import echo_until_eof, serve_concurrently

from ._repeat import repeated_verdicts

pytestmark = pytest.mark.usefixtures("no_leaks")

ECHO, SERVE = "check_echo_until_eof", "check_serve_concurrently"


# ---- echo_until_eof: mutants ---------------------------------------------------------------------

def echo_stub(conn):
    """Echo until the client closes."""
    ...


def no_eof_check(conn):  # b"" forever once the client closed: spins, never returns
    with conn:
        while True:
            data = conn.recv(1024)
            conn.sendall(data)


def single_recv(conn):
    with conn:
        conn.sendall(conn.recv(1024))


def count_bounded(conn):  # "the client sends a few messages"
    with conn:
        for _ in range(5):
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)


def never_closes(conn):
    try:
        while data := conn.recv(1024):
            conn.sendall(data)
    except ConnectionError:
        pass


def raises_on_reset(conn):
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)


def closes_only_on_eof(conn):  # the error path leaks the socket of a client that reset
    try:
        while data := conn.recv(1024):
            conn.sendall(data)
        conn.close()
    except ConnectionError:
        pass


def catches_only_resets(conn):  # BrokenPipeError (a client gone while we send) escapes
    try:
        while data := conn.recv(4096):
            conn.sendall(data)
    except ConnectionResetError:
        pass
    finally:
        conn.close()


def returns_on_reset_without_close(conn):  # the except path returns before the close at the end
    while True:
        try:
            data = conn.recv(4096)
        except ConnectionError:
            return
        if not data:
            break
        conn.sendall(data)
    conn.close()


def strips(conn):  # bytes altered: whitespace at the ends
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data.strip())
        except ConnectionError:
            pass


def normalises_line_ends(conn):  # bytes altered: \r\n taken for \n
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data.replace(b"\r\n", b"\n"))
        except ConnectionError:
            pass


def treats_bytes_as_text(conn):  # decode/encode round trip: fails on bytes that are not UTF-8
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data.decode().encode())
        except ConnectionError:
            pass


def ignores_send_result(conn):  # send() instead of sendall(): a partial send loses bytes
    with conn:
        try:
            while data := conn.recv(65536):
                conn.send(data)
        except ConnectionError:
            pass


def store_and_forward(conn):  # glues everything and answers only at the end
    with conn:
        received = bytearray()
        try:
            while data := conn.recv(1024):
                received += data
            conn.sendall(received)
        except ConnectionError:
            pass


def _echo_until_quiet(conn, seconds):  # "set timeouts": but a quiet moment is not the end
    conn.settimeout(seconds)
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data)
        except (TimeoutError, ConnectionError):
            pass


# Module-level functions (not made by a factory): the 20-runs test sends them to other processes by name.
def timeout_taken_for_the_end(conn):
    _echo_until_quiet(conn, 0.2)


def one_second_timeout_taken_for_the_end(conn):  # the round number beginners write
    _echo_until_quiet(conn, 1.0)


def timeout_raises(conn):  # the same, without catching the timeout
    conn.settimeout(0.2)
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data)
        except ConnectionError:
            pass


_pending = b""


def module_level_buffer(conn):  # state that outlives the call: leftovers go to the next client
    global _pending
    with conn:
        try:
            while data := conn.recv(1024):
                _pending += data
                sent = conn.send(_pending)
                _pending = _pending[sent:]
        except ConnectionError:
            pass


def spins_on_non_blocking(conn):  # busy loop: asks again at once instead of waiting
    conn.setblocking(False)
    with conn:
        try:
            while True:
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                view = memoryview(data)
                while view:
                    try:
                        view = view[conn.send(view):]
                    except BlockingIOError:
                        continue
        except ConnectionError:
            pass


def sets_the_default_timeout(conn):  # "set timeouts", for every socket of the kernel
    socket.setdefaulttimeout(5)
    echo_until_eof(conn)


ECHO_MUTANTS = [
    (echo_stub, "`...` body", "write the function"),
    (no_eof_check, "did not return", c.EOF_HINT),
    (single_recv, "1 came back", c.LOOP_HINT),
    (count_bounded, "5 came back", c.COUNT_HINT),
    (never_closes, "still open", c.CLOSE_HINT),
    (raises_on_reset, "disconnected early", c.RESET_HINT),
    (closes_only_on_eof, "without closing", c.CLOSE_HINT),
    (catches_only_resets, "raised BrokenPipeError", c.RESET_KINDS_HINT),
    (returns_on_reset_without_close, "first recv() raised", c.CLOSE_HINT),
    (strips, "got back", c.BYTES_HINT),
    (normalises_line_ends, "got back", c.BYTES_HINT),
    (treats_bytes_as_text, "UnicodeDecodeError", c.TEXT_HINT),
    (ignores_send_result, "got back only", c.SEND_HINT),
    (store_and_forward, "no reply came back", c.STORE_HINT),
    (timeout_taken_for_the_end, "during the pause", c.PAUSE_HINT),
    (one_second_timeout_taken_for_the_end, "during the pause", c.PAUSE_HINT),
    (timeout_raises, "raised TimeoutError", c.PAUSE_HINT),
    (module_level_buffer, "a new connection sent", c.STATE_HINT),
    (spins_on_non_blocking, "a busy loop", BUSY_HINT),
    (sets_the_default_timeout, "", GLOBAL_TIMEOUT_HINT),
]


@pytest.mark.parametrize("wrong, message, hint", ECHO_MUTANTS, ids=[m[0].__name__ for m in ECHO_MUTANTS])
def test_echo_mutants_fail_with_their_own_hint(wrong, message, hint, record_mutation):
    result = check_echo_until_eof(wrong)
    ok = not result.passed and message in result.message and hint in result.hint
    record_mutation(ECHO, "mutant", wrong.__name__, ok)
    assert ok, result


# ---- echo_until_eof: correct alternatives ----------------------------------------------------------

def echo_recv_into(conn):  # a reused 4 KiB buffer
    buf = bytearray(4096)
    view = memoryview(buf)
    with conn:
        try:
            while n := conn.recv_into(buf):
                conn.sendall(view[:n])
        except ConnectionError:
            pass


def echo_big_buffer_try_finally(conn):  # 64 KiB reads, an explicit send loop, close in finally
    try:
        while True:
            data = conn.recv(65536)
            if data == b"":
                break
            view = memoryview(data)
            while view:
                view = view[conn.send(view):]
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return
    finally:
        conn.close()


def echo_makefile(conn):  # the raw file interface: read1 returns what has arrived
    with conn, conn.makefile("rwb", buffering=0) as f:
        try:
            while data := f.read(1024):
                f.write(data)  # unbuffered: SocketIO.write sends once; loop until all is out
        except ConnectionError:
            pass


def echo_selectors(conn):  # a selectors loop on the one connection
    conn.setblocking(False)
    pending = bytearray()
    with conn, selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ)
        try:
            while True:
                for key, mask in sel.select():
                    if mask & selectors.EVENT_READ:
                        data = conn.recv(4096)
                        if not data:
                            while pending:  # flush what is left, then stop
                                sel.modify(conn, selectors.EVENT_WRITE)
                                sel.select()
                                del pending[:conn.send(pending)]
                            return
                        pending += data
                    if pending:
                        try:
                            del pending[:conn.send(pending)]
                        except BlockingIOError:
                            pass
                    sel.modify(conn, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0))
        except ConnectionError:
            pass


def echo_asyncio(conn):  # asyncio streams on the given socket
    async def main():
        reader, writer = await asyncio.open_connection(sock=conn)
        try:
            while data := await reader.read(8192):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    asyncio.run(main())


ECHO_ALTERNATIVES = [echo_until_eof, echo_recv_into, echo_big_buffer_try_finally, echo_makefile, echo_selectors,
                     echo_asyncio]


@pytest.mark.parametrize("right", ECHO_ALTERNATIVES, ids=[f.__name__ for f in ECHO_ALTERNATIVES])
def test_echo_correct_alternatives_pass(right, record_mutation):
    result = check_echo_until_eof(right)
    if right is not echo_until_eof:
        record_mutation(ECHO, "alternative", right.__name__, result.passed)
    assert result.passed, result


# ---- serve_concurrently: mutants ------------------------------------------------------------------

def serve_stub(listener, handle_client):
    """Serve clients at the same time."""
    ...


def sequential(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        handle_client(conn)


def target_called_inline(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle_client(conn)).start()


def joins_each_thread(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        t = threading.Thread(target=handle_client, args=(conn,))
        t.start()
        t.join()


def pool_of_two(listener, handle_client):  # partial concurrency: a pool smaller than the clients
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        while True:
            conn, _ = listener.accept()
            pool.submit(handle_client, conn)


def default_executor(listener, handle_client):  # asyncio's default executor: min(32, cores + 4) workers
    async def main():
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.run_in_executor(None, listener.accept)
            loop.run_in_executor(None, handle_client, conn)

    asyncio.run(main())


def accepts_once(listener, handle_client):
    conn, _ = listener.accept()
    threading.Thread(target=handle_client, args=(conn,)).start()


def accepts_a_count(listener, handle_client):  # loop bounded by a count
    for _ in range(5):
        conn, _ = listener.accept()
        threading.Thread(target=handle_client, args=(conn,)).start()


def forgets_args(listener, handle_client):
    while True:
        conn, _ = listener.accept()
        try:
            threading.Thread(target=handle_client).start()
        finally:
            conn.close()


def closes_in_the_loop(listener, handle_client):  # the thread gets a closed socket
    while True:
        conn, _ = listener.accept()
        with conn:
            threading.Thread(target=handle_client, args=(conn,)).start()


def never_accepts(listener, handle_client):
    return None


def swallows_everything(listener, handle_client):  # spins at 100 % once accept() fails for good
    while True:
        try:
            conn, _ = listener.accept()
            threading.Thread(target=handle_client, args=(conn,), daemon=True).start()
        except Exception:
            pass


def retries_a_closed_listener(listener, handle_client):  # never ends: it idles, retrying forever
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            time.sleep(0.1)
            continue
        threading.Thread(target=handle_client, args=(conn,), daemon=True).start()


def retries_the_handler(listener, handle_client):  # a handler thread that swallows and retries forever
    def worker(conn):
        while True:
            try:
                handle_client(conn)
            except Exception:
                pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=worker, args=(conn,), daemon=True).start()


def polls_non_blocking(listener, handle_client):  # busy loop: spin on BlockingIOError
    listener.setblocking(False)
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            continue
        conn.setblocking(True)
        threading.Thread(target=handle_client, args=(conn,), daemon=True).start()


def late_bound_lambda(listener, handle_client):  # the lambda reads conn when the thread runs
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=lambda: handle_client(conn)).start()


def serves_exactly_eight(listener, handle_client):  # "the checker sends eight": a count, not the end
    threads = []
    for _ in range(8):
        conn, _ = listener.accept()
        t = threading.Thread(target=handle_client, args=(conn,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


SERVE_MUTANTS = [
    (serve_stub, "`...` body", "write the function"),
    (sequential, "at most 1", c.THREAD_HINT),
    (target_called_inline, "accept loop's own thread", "target=handle_client(conn)"),
    (joins_each_thread, "one after another", c.JOIN_HINT),
    (pool_of_two, "at most 2 of them", c.POOL_HINT),
    (default_executor, "the others waited", c.POOL_HINT),
    (accepts_once, "only 1 of 8", c.ACCEPT_HINT),
    (accepts_a_count, "only 5 of 8", "not a fixed number of times"),
    (forgets_args, "raised TypeError", c.ARGS_HINT),
    (closes_in_the_loop, "closed already", c.CLOSED_EARLY_HINT),
    (never_accepts, "none of the 8", c.ACCEPT_HINT),
    (swallows_everything, "kept calling accept()", c.SPIN_HINT),
    (retries_a_closed_listener, "still running", c.ENDLESS_HINT),
    (retries_the_handler, "again for a connection", c.RETRY_HINT),
    (polls_non_blocking, "polls instead of waiting", c.SPIN_ACCEPT_HINT),
    (late_bound_lambda, "two different threads", c.LATE_BINDING_HINT),
    (serves_exactly_eight, "3 more came", c.FIXED_COUNT_HINT),
]


@pytest.mark.parametrize("wrong, message, hint", SERVE_MUTANTS, ids=[m[0].__name__ for m in SERVE_MUTANTS])
def test_serve_mutants_fail_with_their_own_hint(wrong, message, hint, record_mutation):
    result = check_serve_concurrently(wrong)
    ok = not result.passed and message in result.message and hint in result.hint
    record_mutation(SERVE, "mutant", wrong.__name__, ok)
    assert ok, result


def test_a_spinning_loop_is_measured_and_then_stopped():
    result = check_serve_concurrently(swallows_everything)
    assert "of a core" in result.message or "calls in 0.5 s" in result.message
    assert not [t for t in threading.enumerate() if t.name == "socketlessons-exercise"]


# ---- serve_concurrently: correct alternatives ------------------------------------------------------

def big_pool(listener, handle_client):
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        while True:
            conn, _addr = listener.accept()
            pool.submit(handle_client, conn)


def keeps_and_joins_threads(listener, handle_client):  # non-daemon threads, joined when the loop ends
    threads = []
    try:
        while True:
            conn, _addr = listener.accept()
            t = threading.Thread(target=functools.partial(handle_client, conn), name="client")
            t.start()
            threads.append(t)
    finally:
        for t in threads:
            t.join(5)


def runs_until_closed(listener, handle_client):  # a quiet moment is no reason to stop: ends on close
    while True:
        try:
            conn, _addr = listener.accept()
        except TimeoutError:
            continue
        threading.Thread(target=handle_client, args=(conn,), daemon=True).start()


def selector_then_accept(listener, handle_client):  # waits with selectors, ends when nobody comes
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        while sel.select(timeout=listener.gettimeout()):
            conn, _addr = listener.accept()
            threading.Thread(target=handle_client, args=(conn,), daemon=True).start()


SERVE_ALTERNATIVES = [serve_concurrently, big_pool, keeps_and_joins_threads, runs_until_closed, selector_then_accept]


@pytest.mark.parametrize("right", SERVE_ALTERNATIVES, ids=[f.__name__ for f in SERVE_ALTERNATIVES])
def test_serve_correct_alternatives_pass(right, record_mutation):
    result = check_serve_concurrently(right)
    if right is not serve_concurrently:
        record_mutation(SERVE, "alternative", right.__name__, result.passed)
    assert result.passed, result
    assert "at the same time" in result.message


def test_checkers_never_raise_on_garbage():
    assert not check_serve_concurrently(42).passed
    assert not check_echo_until_eof(lambda conn: 1 / 0).passed


# ---- the same verdict, 20 runs out of 20 -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 runs each: 1-3 min beside a CPU hog per core, more in a crowded CI
@pytest.mark.xdist_group("checker-repeats")  # one repeat test at a time (tests/lessons/_repeat.py)
def test_twenty_runs_same_verdict():
    """Each checker on its reference and on the mutants that sit nearest a margin (a 0.2 s timeout
    against the 1.2 s pause; a spinning loop against the busy-CPU threshold; a pool of two against
    the 1 s gathering wait; a late-bound lambda against the threads' delayed start; a reset while the
    echo is sent), 20 times each, a few runs at once (which also keeps the machine busy for each)."""
    cases = {"echo ref": (check_echo_until_eof, echo_until_eof, True),
             "echo timeout": (check_echo_until_eof, timeout_taken_for_the_end, False),
             "echo spin": (check_echo_until_eof, spins_on_non_blocking, False),
             "serve ref": (check_serve_concurrently, serve_concurrently, True),
             "serve pool": (check_serve_concurrently, pool_of_two, False),
             "serve lambda": (check_serve_concurrently, late_bound_lambda, False),
             "echo reset only": (check_echo_until_eof, catches_only_resets, False)}
    seen = repeated_verdicts([(check, fn, 20) for check, fn, _ in cases.values()])
    for (case, (_, _, passes)), outcomes in zip(cases.items(), seen):
        verdicts = {(passed, hint) for passed, hint, _ in outcomes}
        assert len(outcomes) == 20 and verdicts == {(passes, outcomes[0][1])}, (case, verdicts)
