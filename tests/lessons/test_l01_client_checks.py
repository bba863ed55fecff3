"""Lesson 01 checkers, mutation-tested: each passes its reference and correct alternatives
written differently, and fails the stub and one mutant per class of beginner mistake that
applies, each with the hint about its own bug (written out below as a learner would write them).

Classes that do not apply: neither function opens a socket of its own or sets a timeout (the
caller's socket is given), so "not closed on the error path" and "misplaced timeout" have no
instance here; the leak check is still exercised by a function that dup()s the socket and never
closes the copy.
"""

from __future__ import annotations

import socket
import time

import pytest

from socketlessons.checks import BUSY_HINT, GLOBAL_TIMEOUT_HINT, LEAK_HINT, solution
from socketlessons.lessons.l01_client import checks as l01
from socketlessons.lessons.l01_client.checks import (
    ALTERED_HINT,
    BYTES_HINT,
    COUNT_HINT,
    COUNT_LOOP_HINT,
    EOF_HINT,
    EOF_TYPE_HINT,
    EXTRA_HINT,
    GAP_HINT,
    LAST_PIECE_HINT,
    LOOP_HINT,
    LOST_HINT,
    OFF_BY_ONE_HINT,
    ORDER_HINT,
    OVERREAD_HINT,
    OVERWRITE_HINT,
    PARTIAL_SEND_HINT,
    REST_HINT,
    RETURN_HINT,
    SEND_ALTERED_HINT,
    SEND_COUNT_LOOP_HINT,
    SEND_TIMEOUT_HINT,
    SENDALL_HINT,
    SHORT_HINT,
    STATE_HINT,
    check_recv_exactly,
    check_send_all,
)

from ._repeat import repeated_verdicts

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- recv_exactly: mutants ----------------------------------------------------------------------

def recv_exactly_stub(sock, n):
    """Return exactly n bytes from sock, however they arrive."""
    ...


def single_recv(sock, n):
    return sock.recv(n)


def count_bounded(sock, n):
    data = b""
    for _ in range(8):  # "a few tries should be enough"
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
        if len(data) == n:
            break
    return data


def recv_n_in_loop(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n)  # asks for n every time: reads past the end of this message
        if not chunk:
            raise EOFError
        data += chunk
    return data


def reads_big_then_cuts(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        data += chunk
    return data[:n]  # the rest is thrown away


_leftover = b""


def module_level_buffer(sock, n):
    global _leftover
    while len(_leftover) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        _leftover += chunk
    data, _leftover = _leftover[:n], _leftover[n:]  # kept for "the next call": another socket's
    return data


def replaces_chunk(sock, n):
    data = sock.recv(n)
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data = chunk  # replaces instead of appending
    return data


def prepends_chunk(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data = chunk + data
    return data


def strips(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data.strip()


def line_ends_fixed(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk.replace(b"\r\n", b"\n")  # "\r is not part of the text"
    return data


def decodes(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data.decode("latin-1")


def no_eof_check(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))  # b"" forever once the peer closed
    return data


def returns_short(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def wrong_exception(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")  # the caller catches EOFError for "stream ended early"
        data += chunk
    return data


def forgets_return(sock, n):
    chunks, missing = [], n
    while missing:
        chunk = sock.recv(missing)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)


def spins_nonblocking(sock, n):
    sock.setblocking(False)
    data = b""
    try:
        while len(data) < n:
            try:
                chunk = sock.recv(n - len(data))
            except BlockingIOError:
                continue  # nothing yet: ask again, at once
            if not chunk:
                raise EOFError
            data += chunk
    finally:
        sock.setblocking(True)
    return data


def sets_default_timeout(sock, n):
    socket.setdefaulttimeout(5)  # "so nothing hangs": changes every socket of the kernel
    return solution("recv_exactly")(sock, n)


def dup_never_closed(sock, n):
    copy = sock.dup()  # "leave the caller's socket alone"; the copy is never closed
    data = b""
    while len(data) < n:
        chunk = copy.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# Found by an outsider writing wrong answers without the tests: each passed (or a correct one
# failed) before the checker looked at the socket it handed over, paused mid-message, asked for 0.

def timeout_left_behind(sock, n):
    sock.settimeout(2.0)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("stream ended")
        buf += chunk
    return buf


def nonblocking_left_behind(sock, n):
    sock.setblocking(False)
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except BlockingIOError:
            time.sleep(0.005)
            continue
        if not chunk:
            raise EOFError("stream ended")
        buf += chunk
    return buf


def _silence_is_the_end(quiet_s):
    def recv_exactly(sock, n):
        old = sock.gettimeout()
        sock.settimeout(quiet_s)
        buf = b""
        try:
            while len(buf) < n:
                try:
                    chunk = sock.recv(n - len(buf))
                except TimeoutError:
                    raise EOFError("no more data") from None
                if not chunk:
                    raise EOFError("stream ended")
                buf += chunk
        finally:
            sock.settimeout(old)
        return buf
    return recv_exactly


quiet_50_ms_is_the_end, quiet_200_ms_is_the_end = _silence_is_the_end(0.05), _silence_is_the_end(0.2)


def zero_raises(sock, n):  # do-while: one recv even for n = 0
    buf = b""
    while True:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("stream ended")
        buf += chunk
        if len(buf) >= n:
            return buf


def closes_the_callers_socket(sock, n):
    with sock:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("stream ended")
            buf += chunk
        return buf


RECV_MUTANTS = [
    (single_recv, LOOP_HINT),
    (count_bounded, COUNT_LOOP_HINT),
    (recv_n_in_loop, OVERREAD_HINT),
    (reads_big_then_cuts, LOST_HINT),
    (module_level_buffer, STATE_HINT),
    (replaces_chunk, OVERWRITE_HINT),
    (prepends_chunk, ORDER_HINT),
    (strips, ALTERED_HINT),
    (line_ends_fixed, ALTERED_HINT),
    (decodes, BYTES_HINT),
    (no_eof_check, EOF_HINT),
    (returns_short, SHORT_HINT),
    (wrong_exception, EOF_TYPE_HINT),
    (forgets_return, RETURN_HINT),
    (spins_nonblocking, BUSY_HINT),
    (sets_default_timeout, GLOBAL_TIMEOUT_HINT),
    (dup_never_closed, LEAK_HINT),
    (timeout_left_behind, l01.RESTORE_HINT),
    (nonblocking_left_behind, l01.RESTORE_HINT),
    (quiet_50_ms_is_the_end, l01.PAUSE_HINT),
    (quiet_200_ms_is_the_end, l01.PAUSE_HINT),
    (zero_raises, l01.ZERO_HINT),
    (closes_the_callers_socket, l01.CALLERS_SOCKET_HINT),
]


# ---- recv_exactly: correct alternatives -------------------------------------------------------

def recv_into_memoryview(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError(f"stream ended after {got} of {n} bytes")
        got += k
    return bytes(buf)


def bytearray_capped_4096(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 4096))
        if chunk == b"":
            raise EOFError
        data += chunk
    return data  # a bytearray is bytes-like: fine


def msg_waitall(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data), socket.MSG_WAITALL)  # may still return less: loop
        if not chunk:
            raise EOFError
        data += chunk
    return data


def one_byte_per_recv(sock, n):  # slow, blocking, right: real work, not a busy loop
    out = bytearray()
    for _ in range(n):
        b = sock.recv(1)
        if not b:
            raise EOFError("stream ended early")
        out += b
    return bytes(out)


RECV_ALTERNATIVES = [solution("recv_exactly"), recv_into_memoryview, bytearray_capped_4096, one_byte_per_recv]
if hasattr(socket, "MSG_WAITALL"):
    RECV_ALTERNATIVES.append(msg_waitall)


def test_recv_exactly_stub_is_not_yet():
    result = check_recv_exactly(recv_exactly_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize("mutant, hint", RECV_MUTANTS, ids=[m.__name__ for m, _ in RECV_MUTANTS])
def test_recv_exactly_mutant_gets_its_own_hint(mutant, hint, record_mutation):
    result = check_recv_exactly(mutant)
    record_mutation("check_recv_exactly", "mutant", mutant.__name__, not result.passed and result.hint == hint)
    assert not result.passed, str(result)
    assert result.hint == hint, str(result)


@pytest.mark.parametrize("alternative", RECV_ALTERNATIVES, ids=[a.__name__ for a in RECV_ALTERNATIVES])
def test_recv_exactly_alternative_passes(alternative, record_mutation):
    result = check_recv_exactly(alternative)
    record_mutation("check_recv_exactly", "alternative", alternative.__name__, result.passed)
    assert result.passed, str(result)


def test_recv_exactly_hint_names_what_happened():
    """The message carries the observation: bytes and calls."""
    assert "after 1 recv call(s)" in check_recv_exactly(single_recv).message
    assert "after 8 recv call(s)" in check_recv_exactly(count_bounded).message
    assert "14" in check_recv_exactly(recv_n_in_loop).message


# ---- send_all: mutants ---------------------------------------------------------------------------

def send_all_stub(sock, data):
    """Send every byte of data using only sock.send; return how many send() calls it took."""
    ...


def single_send(sock, data):
    sock.send(data)
    return 1


def send_count_bounded(sock, data):
    view, sent = memoryview(data), 0
    for _ in range(8):  # "eight calls will do"
        sent += sock.send(view[sent:])
    return 8


def last_piece_unchecked(sock, data):
    view, sent, calls = memoryview(data), 0, 0
    while len(data) - sent > 4096:
        sent += sock.send(view[sent:sent + 4096])
        calls += 1
    sock.send(view[sent:])  # the last piece: its return value ignored
    return calls + 1


def fixed_chunks(sock, data):
    calls = 0
    for i in range(0, len(data), 4096):
        sock.send(data[i:i + 4096])  # each return ignored
        calls += 1
    return calls


def resends_everything(sock, data):
    sent = calls = 0
    while sent < len(data):
        sent += sock.send(data)  # all of data again, not the rest
        calls += 1
    return calls


def adds_newline(sock, data):
    data = data + b"\n"  # "messages end with a newline"
    view, sent, calls = memoryview(data), 0, 0
    while sent < len(data):
        sent += sock.send(view[sent:])
        calls += 1
    return calls


def strips_data(sock, data):
    data = data.strip()
    view, sent, calls = memoryview(data), 0, 0
    while sent < len(data):
        sent += sock.send(view[sent:])
        calls += 1
    return calls


def off_by_one(sock, data):
    sent = calls = 0
    while sent < len(data) - 1:  # one byte short
        sent += sock.send(data[sent:])
        calls += 1
    return calls


def timeout_swallowed(sock, data):
    sock.settimeout(0.05)  # "so it never hangs"
    sent = calls = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent:])
            calls += 1
    except TimeoutError:
        pass  # a slow peer: the rest is silently dropped
    return calls


def uses_sendall(sock, data):
    sock.sendall(data)
    return 1


def wrong_count(sock, data):
    sent = 0
    while sent < len(data):
        sent += sock.send(data[sent:])
    return sent  # bytes, not calls


def send_spins_nonblocking(sock, data):
    sock.setblocking(False)
    view, sent, calls = memoryview(data), 0, 0
    while sent < len(data):
        try:
            sent += sock.send(view[sent:])
        except BlockingIOError:
            continue  # no room yet: try again at once
        calls += 1
    sock.setblocking(True)
    return calls


def errors_swallowed(sock, data):  # "never crash": a reset peer looks like success to the caller
    view, sent, calls = memoryview(data), 0, 0
    while sent < len(data):
        try:
            sent += sock.send(view[sent:])
        except OSError:
            return calls
        calls += 1
    return calls


def errors_retried(sock, data):  # "try again": a reset connection never comes back
    view, sent, calls = memoryview(data), 0, 0
    while sent < len(data):
        try:
            sent += sock.send(view[sent:])
        except Exception:
            continue
        calls += 1
    return calls


def send_sets_default_timeout(sock, data):
    socket.setdefaulttimeout(10)
    return solution("send_all")(sock, data)


def send_timeout_left_behind(sock, data):
    sock.settimeout(5.0)
    sent = calls = 0
    while sent < len(data):
        sent += sock.send(data[sent:])
        calls += 1
    return calls


def shuts_the_callers_socket(sock, data):
    sent = calls = 0
    while sent < len(data):
        sent += sock.send(data[sent:])
        calls += 1
    sock.shutdown(socket.SHUT_WR)
    return calls


def send_closes_the_callers_socket(sock, data):
    try:
        sent = calls = 0
        while sent < len(data):
            sent += sock.send(data[sent:])
            calls += 1
        return calls
    finally:
        sock.close()


SEND_MUTANTS = [
    (single_send, PARTIAL_SEND_HINT),
    (send_count_bounded, SEND_COUNT_LOOP_HINT),
    (last_piece_unchecked, LAST_PIECE_HINT),
    (fixed_chunks, GAP_HINT),
    (resends_everything, REST_HINT),
    (adds_newline, EXTRA_HINT),
    (strips_data, SEND_ALTERED_HINT),
    (uses_sendall, SENDALL_HINT),
    (off_by_one, OFF_BY_ONE_HINT),
    (timeout_swallowed, SEND_TIMEOUT_HINT),
    (wrong_count, COUNT_HINT),
    (send_spins_nonblocking, BUSY_HINT),
    (send_sets_default_timeout, GLOBAL_TIMEOUT_HINT),
    (send_timeout_left_behind, l01.RESTORE_HINT),
    (shuts_the_callers_socket, l01.CALLERS_SOCKET_HINT),
    (send_closes_the_callers_socket, l01.CALLERS_SOCKET_HINT),
    (errors_swallowed, l01.ERRORS_HINT),
    (errors_retried, l01.ERRORS_HINT),
]


# ---- send_all: correct alternatives ---------------------------------------------------------

def chunks_of_1024_checked(sock, data):
    sent = calls = 0
    while sent < len(data):
        sent += sock.send(data[sent:sent + 1024])  # small pieces, each return counted
        calls += 1
    return calls


def slice_the_rest(sock, data):
    calls = 0
    while data:
        n = sock.send(data)
        data = data[n:]  # copies, but correct
        calls += 1
    return calls


def bytearray_consumed(sock, data):
    buf, calls = bytearray(data), 0
    while buf:
        del buf[:sock.send(buf)]
        calls += 1
    return calls


def waits_with_select(sock, data):
    import select

    sent = calls = 0
    while sent < len(data):
        select.select([], [sock], [])  # blocks until there is room: the peer's pause included
        sent += sock.send(data[sent:])
        calls += 1
    return calls


SEND_ALTERNATIVES = [solution("send_all"), chunks_of_1024_checked, slice_the_rest, bytearray_consumed,
                     waits_with_select]


def test_send_all_stub_is_not_yet():
    result = check_send_all(send_all_stub)
    assert not result.passed and "`...` body" in result.message


@pytest.mark.parametrize("mutant, hint", SEND_MUTANTS, ids=[m.__name__ for m, _ in SEND_MUTANTS])
def test_send_all_mutant_gets_its_own_hint(mutant, hint, record_mutation):
    result = check_send_all(mutant)
    record_mutation("check_send_all", "mutant", mutant.__name__, not result.passed and result.hint == hint)
    assert not result.passed, str(result)
    assert result.hint == hint, str(result)


@pytest.mark.parametrize("alternative", SEND_ALTERNATIVES, ids=[a.__name__ for a in SEND_ALTERNATIVES])
def test_send_all_alternative_passes(alternative, record_mutation):
    result = check_send_all(alternative)
    record_mutation("check_send_all", "alternative", alternative.__name__, result.passed)
    assert result.passed, str(result)


def test_send_all_socket_takes_part_every_time():
    """The checker's socket really takes at most half: the reference needs many calls for a MiB."""
    from socketlessons.lessons.l01_client.checks import SEND_BIG, _HalfTaking, _SlowReader

    data = b"x" * SEND_BIG
    peer = _SlowReader(limit=2 * SEND_BIG)
    try:
        wrapped = _HalfTaking(peer.client, data)
        calls = solution("send_all")(wrapped, data)
        assert peer.finish() == data
    finally:
        peer.close()
    assert calls == wrapped.calls > 20
    assert all(took <= max(1, (given + 1) // 2) for _pos, given, took, _ok, _head in wrapped.trace)


# ---- the same verdict every time -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 runs each: 1-3 min beside a CPU hog per core, more in a crowded CI
@pytest.mark.xdist_group("checker-repeats")  # one repeat test at a time (tests/lessons/_repeat.py)
def test_l01_checkers_give_the_same_verdict_20_times():
    """The references and the timing-sensitive mutants (busy loops, judged by the CPU time they
    use; a short send timeout against the peer's pause), 20 runs each: one verdict every time. (The paced reads and the half-taking send make
    every other mutant's verdict independent of timing.)"""
    cases = [
        (check_recv_exactly, solution("recv_exactly"), ""),
        (check_recv_exactly, spins_nonblocking, BUSY_HINT),
        (check_send_all, solution("send_all"), ""),
        (check_send_all, send_spins_nonblocking, BUSY_HINT),
        (check_send_all, timeout_swallowed, SEND_TIMEOUT_HINT),  # the peer's 0.4 s pause vs a 0.05 s timeout
    ]
    for (check, fn, hint), outcomes in zip(cases, repeated_verdicts([(check, fn, 20) for check, fn, _ in cases])):
        seen = {(passed, got) for passed, got, _ in outcomes}
        assert len(outcomes) == 20 and seen == {(hint == "", hint)}, f"{check.__name__}({fn.__name__}): {seen}"
