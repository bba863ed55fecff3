"""Lesson 06 checkers, mutation-tested: the reference passes; one mutant per class of beginner
mistake fails with the hint about ITS bug; correct alternatives written differently pass."""

from __future__ import annotations

import struct
import sys
import time

import pytest

from socketlessons.checks import BUSY_HINT, show_solution
from socketlessons.framing import DelimitedDecoder, recv_exactly
from socketlessons.lessons.l06_framing.checks import (
    BODY_PIECES_HINT,
    BYTES_HINT,
    CARRY_HINT,
    CR_HINT,
    DECODE_HINT,
    DELIMITER_HINT,
    EMPTY_END_HINT,
    EMPTY_LINE_HINT,
    EMPTY_MESSAGE_HINT,
    EMPTY_STREAM_HINT,
    EOF_SPIN_HINT,
    GLUED_HINT,
    GLUED_LINES_HINT,
    HEADER_IN_BODY_HINT,
    HEADER_PIECES_HINT,
    LENGTH_HINT,
    LINES_EOF_HINT,
    MSG_EOF_HINT,
    READ_AHEAD_HINT,
    STATE_HINT,
    STOP_EARLY_HINT,
    STRIP_HINT,
    UNPACK_TUPLE_HINT,
    check_read_lines,
    check_read_message,
)
from socketlessons.lessons.l06_framing import checks as l06
from socketlessons.lessons.l06_framing.solutions import read_lines, read_message

from ._repeat import repeated_verdicts

pytestmark = pytest.mark.usefixtures("no_leaks")


# ---- read_lines: mutants -----------------------------------------------------------------------------

def read_lines_stub(sock):
    """Every newline-terminated message until the peer closes."""
    ...


def one_recv_is_one_line(sock):
    lines = []
    while chunk := sock.recv(4096):
        lines.append(chunk.rstrip(b"\n"))
    return lines


def splits_each_recv_alone(sock):
    lines = []
    while chunk := sock.recv(4096):
        lines.extend(chunk.split(b"\n")[:-1] if chunk.endswith(b"\n") else chunk.split(b"\n"))
    return lines


def bounded_by_count(sock):
    buffer, lines = b"", []
    for _ in range(8):  # "eight recv calls are plenty"
        chunk = sock.recv(4096)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines += complete
    return lines


def bounded_by_count_then_eof(sock):
    buffer, lines = b"", []
    for _ in range(10):  # "ten recv calls are plenty"; what is left looks like a cut-off line
        chunk = sock.recv(4096)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines += complete
    if buffer:
        raise EOFError("the stream ended inside a line")
    return lines


def decodes_and_encodes_again(sock):
    text = ""
    while chunk := sock.recv(4096):
        text += chunk.decode("utf-8", errors="ignore")  # b"caf\xe9" loses its \xe9
    if text and not text.endswith("\n"):
        raise EOFError("the stream ended inside a line")
    return [line.encode() for line in text.split("\n")[:-1]]


def decodes_strictly(sock):
    buffer = b""
    while chunk := sock.recv(4096):
        buffer += chunk
    text = buffer.decode()  # UnicodeDecodeError on bytes that are not UTF-8
    if text and not text.endswith("\n"):
        raise EOFError("the stream ended inside a line")
    return [line.encode() for line in text.split("\n")[:-1]]


def single_recv_of_1024(sock):
    return sock.recv(1024).split(b"\n")[:-1]


def drops_empty_lines(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return [line for line in data.split(b"\n") if line]


def uses_splitlines(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    if data and not data.endswith(b"\n"):
        raise EOFError("cut off")
    return data.splitlines()


def strips_each_line(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    *lines, rest = data.split(b"\n")
    if rest:
        raise EOFError("cut off")
    return [line.strip() for line in lines]


def normalises_crlf(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk.replace(b"\r\n", b"\n")  # "be liberal in what you accept"
    *lines, rest = data.split(b"\n")
    if rest:
        raise EOFError("cut off")
    return lines


def keeps_a_cut_off_line(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    *lines, rest = data.split(b"\n")
    return lines + [rest] if rest else lines


def drops_a_cut_off_line(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data.split(b"\n")[:-1]  # the cut-off rest disappears silently


_buffer = b""


def module_level_buffer(sock):
    global _buffer
    lines = []
    while chunk := sock.recv(4096):
        _buffer += chunk
        *complete, _buffer = _buffer.split(b"\n")
        lines += complete
    if _buffer:
        raise EOFError("cut off")  # ...and the leftover stays for the next socket
    return lines


_lines = []


def module_level_list(sock):
    buffer = b""
    while chunk := sock.recv(4096):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        _lines.extend(complete)
    if buffer:
        raise EOFError("cut off")
    return _lines


def busy_nonblocking(sock):
    sock.setblocking(False)
    buffer, lines = b"", []
    try:
        while True:
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                continue  # spin until something arrives
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines += complete
    finally:
        sock.settimeout(4.0)
    if buffer:
        raise EOFError("cut off")
    return lines


# Found by an outsider writing wrong answers without the tests (each passed, or got another
# mistake's hint, before the checker sent lines one per piece, an empty stream, and looked for
# the delimiter kept in a line and an empty line taken for the end).

def stops_when_the_buffer_ends_in_a_newline(sock):  # "all lines complete: done"
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
        if data.endswith(b"\n"):
            break
    if data and not data.endswith(b"\n"):
        raise EOFError("cut off")
    return data.split(b"\n")[:-1]


def empty_stream_is_an_error(sock):  # b"" does not end with b"\n" either
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    if not data.endswith(b"\n"):
        raise EOFError("the stream ended in the middle of a line")
    return data.split(b"\n")[:-1]


def keeps_the_newline(sock):  # splitlines(keepends=True)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    if data and not data.endswith(b"\n"):
        raise EOFError("cut off")
    return data.splitlines(keepends=True)


def continues_at_the_newline(sock):  # buffer[i:] instead of buffer[i + 1:]
    buffer, lines = b"", []
    while chunk := sock.recv(4096):
        buffer += chunk
        i = buffer.find(b"\n")
        while i != -1:
            lines.append(buffer[:i])
            buffer = buffer[i:]
            i = buffer.find(b"\n", 1)
    if buffer.startswith(b"\n"):
        buffer = buffer[1:]
    if buffer:
        raise EOFError("the last line is cut off")
    return lines


def empty_line_is_the_end(sock):  # b"\n" alone taken for "no more messages"
    buffer, lines = b"", []
    while chunk := sock.recv(4096):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line == b"":
                return lines
            lines.append(line)
    if buffer:
        raise EOFError("the last line is cut off")
    return lines


READ_LINES_MUTANTS = [
    (one_recv_is_one_line, GLUED_LINES_HINT),
    (splits_each_recv_alone, CARRY_HINT),
    (bounded_by_count, STOP_EARLY_HINT),
    (bounded_by_count_then_eof, STOP_EARLY_HINT),
    (decodes_and_encodes_again, DECODE_HINT),
    (decodes_strictly, DECODE_HINT),
    (single_recv_of_1024, STOP_EARLY_HINT),
    (drops_empty_lines, EMPTY_LINE_HINT),
    (uses_splitlines, CR_HINT),
    (strips_each_line, STRIP_HINT),
    (normalises_crlf, STRIP_HINT),
    (keeps_a_cut_off_line, LINES_EOF_HINT),
    (drops_a_cut_off_line, LINES_EOF_HINT),
    (module_level_buffer, STATE_HINT),
    (module_level_list, STATE_HINT),
    (busy_nonblocking, BUSY_HINT),
    (stops_when_the_buffer_ends_in_a_newline, STOP_EARLY_HINT),
    (empty_stream_is_an_error, EMPTY_STREAM_HINT),
    (keeps_the_newline, DELIMITER_HINT),
    (continues_at_the_newline, DELIMITER_HINT),
    (empty_line_is_the_end, EMPTY_END_HINT),
]


# ---- read_lines: correct alternatives -----------------------------------------------------------------

def with_makefile(sock):
    lines = []
    with sock.makefile("rb") as f:
        for line in f:  # binary files split at b"\n" only
            if not line.endswith(b"\n"):
                raise EOFError(f"cut off: {line[:20]!r}")
            lines.append(line[:-1])
    return lines


def with_recv_into(sock):
    lines, buffer, buf = [], bytearray(), bytearray(1024)
    while n := sock.recv_into(buf):
        buffer += buf[:n]
        while (end := buffer.find(b"\n")) >= 0:
            lines.append(bytes(buffer[:end]))
            del buffer[: end + 1]
    if buffer:
        raise EOFError("the last line was cut off")
    return lines


def byte_by_byte(sock):
    lines, line = [], bytearray()
    while byte := sock.recv(1):
        if byte == b"\n":
            lines.append(bytes(line))
            line.clear()
        else:
            line += byte
    if line:
        raise EOFError("the last line was cut off")
    return lines


def with_decoder(sock):
    decoder, lines = DelimitedDecoder(b"\n"), []
    while chunk := sock.recv(65536):
        lines += decoder.feed(chunk)
    if decoder.pending:
        raise EOFError(f"{decoder.pending} bytes after the last newline")
    return lines


READ_LINES_ALTERNATIVES = [with_makefile, with_recv_into, byte_by_byte, with_decoder]


def test_read_lines_reference_passes(record_mutation):
    result = check_read_lines(read_lines)
    record_mutation("check_read_lines", "alternative", "reference", result.passed)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), READ_LINES_MUTANTS, ids=[m.__name__ for m, _ in READ_LINES_MUTANTS])
def test_read_lines_mutant_fails_with_its_own_hint(wrong, hint, record_mutation):
    global _buffer
    _buffer = b""
    _lines.clear()
    result = check_read_lines(wrong)
    record_mutation("check_read_lines", "mutant", wrong.__name__, not result.passed and result.hint == hint)
    assert not result.passed, result
    assert result.hint == hint, result


@pytest.mark.parametrize("right", READ_LINES_ALTERNATIVES, ids=[f.__name__ for f in READ_LINES_ALTERNATIVES])
def test_read_lines_alternative_passes(right, record_mutation):
    result = check_read_lines(right)
    record_mutation("check_read_lines", "alternative", right.__name__, result.passed)
    assert result.passed, result


def test_read_lines_stub_is_named():
    result = check_read_lines(read_lines_stub)
    assert not result.passed and "`...` body" in result.message


# ---- read_message: mutants ----------------------------------------------------------------------------

def read_message_stub(sock):
    """Read one length-prefixed message."""
    ...


def single_recvs(sock):
    (n,) = struct.unpack("!I", sock.recv(4))
    return sock.recv(n)


def header_single_recv(sock):  # found by an outsider: one recv for the header, the body read right
    (n,) = struct.unpack("!I", sock.recv(4))
    return recv_exactly(sock, n)


def body_single_recv(sock):
    (n,) = struct.unpack("!I", recv_exactly(sock, 4))
    return sock.recv(n)


def body_bounded_by_count(sock):
    (n,) = struct.unpack("!I", recv_exactly(sock, 4))
    body = b""
    for _ in range(3):  # "three pieces at most"
        if len(body) < n:
            body += sock.recv(n - len(body))
    return body


def one_recv_is_one_message(sock):
    return sock.recv(65536)[4:]


def big_recv_reads_ahead(sock):
    data = sock.recv(65536)
    while len(data) < 4:
        data += sock.recv(65536)
    (n,) = struct.unpack("!I", data[:4])
    while len(data) < 4 + n:
        data += sock.recv(65536)
    return data[4 : 4 + n]  # the bytes after it are lost


def makefile_per_call(sock):
    with sock.makefile("rb") as f:  # buffered: reads ahead, and the buffer dies with f
        (n,) = struct.unpack("!I", f.read(4))
        return f.read(n)


def strips_the_message(sock):
    (n,) = struct.unpack("!I", recv_exactly(sock, 4))
    return recv_exactly(sock, n).strip()


def returns_a_cut_off_message(sock):
    def read(k):
        data = b""
        while len(data) < k:
            chunk = sock.recv(k - len(data))
            if not chunk:
                break  # the peer closed: return what we have
            data += chunk
        return data

    (n,) = struct.unpack("!I", read(4))
    return read(n)


def spins_at_eof(sock):
    def read(k):
        data = b""
        while len(data) < k:
            data += sock.recv(k - len(data))  # b"" forever once the peer closed
        return data

    (n,) = struct.unpack("!I", read(4))
    return read(n)


def native_byte_order(sock):
    (n,) = struct.unpack("I", recv_exactly(sock, 4))
    return recv_exactly(sock, n)


_pending = bytearray()


def module_level_buffer_messages(sock):
    while True:  # a buffered reader whose buffer outlives the connection
        if len(_pending) >= 4:
            (n,) = struct.unpack("!I", _pending[:4])
            if len(_pending) >= 4 + n:
                message = bytes(_pending[4 : 4 + n])
                del _pending[: 4 + n]
                return message
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("the stream ended inside a message")
        _pending.extend(chunk)


def swallows_errors(sock):
    try:
        (n,) = struct.unpack("!I", recv_exactly(sock, 4))
        return recv_exactly(sock, n)
    except Exception:
        return b""


def busy_nonblocking_messages(sock):
    sock.setblocking(False)

    def read(k):
        data = b""
        while len(data) < k:
            try:
                chunk = sock.recv(k - len(data))
            except BlockingIOError:
                continue  # spin
            if not chunk:
                raise EOFError("the peer closed")
            data += chunk
        return data

    try:
        (n,) = struct.unpack("!I", read(4))
        return read(n)
    finally:
        sock.settimeout(4.0)


# Found by the same outsider: another header size, a length that counts the header, an empty
# message taken for the end, str or header + body returned, unpack's tuple used as a length.

def _exactly(sock, n):
    return recv_exactly(sock, n)


def two_byte_header(sock):
    (n,) = struct.unpack("!H", _exactly(sock, 2))
    return _exactly(sock, n)


def eight_byte_header(sock):
    (n,) = struct.unpack("!Q", _exactly(sock, 8))
    return _exactly(sock, n)


def length_counts_the_header(sock):
    (n,) = struct.unpack("!I", _exactly(sock, 4))
    return _exactly(sock, n - 4)


def empty_message_is_the_end(sock):
    (n,) = struct.unpack("!I", _exactly(sock, 4))
    body = _exactly(sock, n)
    if not body:
        raise EOFError("the connection is closed")
    return body


def returns_str(sock):
    (n,) = struct.unpack("!I", _exactly(sock, 4))
    return _exactly(sock, n).decode("utf-8", errors="replace")


def returns_the_header_too(sock):
    header = _exactly(sock, 4)
    (n,) = struct.unpack("!I", header)
    return header + _exactly(sock, n)


def unpacks_a_tuple(sock):
    n = struct.unpack("!I", _exactly(sock, 4))  # a tuple, not an int
    return _exactly(sock, n)


READ_MESSAGE_MUTANTS = [
    (single_recvs, HEADER_PIECES_HINT),
    (header_single_recv, HEADER_PIECES_HINT),
    (body_single_recv, BODY_PIECES_HINT),
    (body_bounded_by_count, BODY_PIECES_HINT),
    (one_recv_is_one_message, GLUED_HINT),
    (big_recv_reads_ahead, READ_AHEAD_HINT),
    (makefile_per_call, READ_AHEAD_HINT),
    (strips_the_message, STRIP_HINT),
    (returns_a_cut_off_message, MSG_EOF_HINT),
    (swallows_errors, MSG_EOF_HINT),
    (spins_at_eof, EOF_SPIN_HINT),
    (module_level_buffer_messages, STATE_HINT),
    (busy_nonblocking_messages, BUSY_HINT),
    (two_byte_header, l06.PREFIX_SIZE_HINT.format(size=2, fmt="'!H', 2 bytes")),
    (eight_byte_header, l06.PREFIX_SIZE_HINT.format(size=8, fmt="'!Q', 8 bytes")),
    (length_counts_the_header, LENGTH_HINT),
    (empty_message_is_the_end, EMPTY_MESSAGE_HINT),
    (returns_str, BYTES_HINT),
    (returns_the_header_too, HEADER_IN_BODY_HINT),
    (unpacks_a_tuple, UNPACK_TUPLE_HINT),
]


# ---- read_message: correct alternatives --------------------------------------------------------------

def with_int_from_bytes_and_recv_into(sock):
    def exactly(n):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = sock.recv_into(view[got:])
            if k == 0:
                raise EOFError(f"closed after {got} of {n} bytes")
            got += k
        return bytes(buf)

    return exactly(int.from_bytes(exactly(4), "big"))


def with_struct_object_and_big_asks(sock):
    header = struct.Struct("!I")

    def exactly(n):
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(min(n - len(data), 65536))
            if not chunk:
                raise ConnectionError("the peer closed in the middle of a message")
            data += chunk
        return bytes(data)

    (length,) = header.unpack(exactly(header.size))
    return exactly(length)


def byte_at_a_time(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            byte = sock.recv(1)
            if not byte:
                raise EOFError("cut off")
            data += byte
        return data

    return exactly(struct.unpack(">I", exactly(4))[0])


READ_MESSAGE_ALTERNATIVES = [with_int_from_bytes_and_recv_into, with_struct_object_and_big_asks, byte_at_a_time]


def test_read_message_reference_passes(record_mutation):
    result = check_read_message(read_message)
    record_mutation("check_read_message", "alternative", "reference", result.passed)
    assert result.passed, result


@pytest.mark.parametrize(("wrong", "hint"), READ_MESSAGE_MUTANTS, ids=[m.__name__ for m, _ in READ_MESSAGE_MUTANTS])
def test_read_message_mutant_fails_with_its_own_hint(wrong, hint, record_mutation):
    _pending.clear()
    result = check_read_message(wrong)
    record_mutation("check_read_message", "mutant", wrong.__name__, not result.passed and result.hint == hint)
    assert not result.passed, result
    assert result.hint == hint, result


def test_read_message_header_in_one_recv_fails_even_when_the_learner_thread_starts_late(monkeypatch):
    # Found by an outsider's audit: a learner's thread started 100 ms late found the whole stream
    # queued, so one recv(4) got the whole header and the mutant passed. The server now sends each
    # piece only once the reader has taken the last.
    call = l06.call

    def late_call(fn, *args, **kwargs):
        def late(*a, **k):
            time.sleep(0.1)
            return fn(*a, **k)
        return call(late, *args, **kwargs)

    monkeypatch.setattr(l06, "call", late_call)
    result = check_read_message(header_single_recv)
    assert not result.passed and result.hint == HEADER_PIECES_HINT, result
    assert check_read_message(read_message).passed


@pytest.mark.skipif(sys.byteorder != "little", reason="native and network order agree on big-endian machines")
def test_read_message_native_byte_order_is_diagnosed(record_mutation):
    result = check_read_message(native_byte_order)
    ok = not result.passed and "'!I'" in result.hint and "83,886,080" in result.hint
    record_mutation("check_read_message", "mutant", "native_byte_order", ok)
    assert ok, result


@pytest.mark.parametrize("right", READ_MESSAGE_ALTERNATIVES, ids=[f.__name__ for f in READ_MESSAGE_ALTERNATIVES])
def test_read_message_alternative_passes(right, record_mutation):
    result = check_read_message(right)
    record_mutation("check_read_message", "alternative", right.__name__, result.passed)
    assert result.passed, result


def test_read_message_stub_is_named():
    result = check_read_message(read_message_stub)
    assert not result.passed and "`...` body" in result.message


def test_solutions_can_be_shown():
    assert show_solution("read_lines") is not None and show_solution("read_message") is not None


# ---- the same verdict every time -----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 runs each: 1-3 min beside a CPU hog per core, more in a crowded CI
@pytest.mark.xdist_group("checker-repeats")  # one repeat test at a time (tests/lessons/_repeat.py)
def test_checkers_give_the_same_verdict_20_times():
    """The references and the busy-loop mutants (their verdict rests on a share of CPU time),
    20 runs each; mutants whose verdict rests on how the pieces arrive (a reader that falls
    behind sees pieces glued), 5 runs each: never a different verdict. About a minute quiet,
    3 minutes at load 10 on 2 cores."""
    cases = [(check_read_lines, read_lines, None, 20), (check_read_lines, busy_nonblocking, BUSY_HINT, 20),
             (check_read_lines, splits_each_recv_alone, CARRY_HINT, 5),
             (check_read_lines, bounded_by_count, STOP_EARLY_HINT, 5),
             (check_read_lines, bounded_by_count_then_eof, STOP_EARLY_HINT, 5),
             (check_read_message, read_message, None, 20),
             (check_read_message, busy_nonblocking_messages, BUSY_HINT, 20),
             (check_read_message, single_recvs, HEADER_PIECES_HINT, 5),
             (check_read_message, body_single_recv, BODY_PIECES_HINT, 5)]
    all_outcomes = repeated_verdicts([(check, fn, runs) for check, fn, _, runs in cases])
    for (check, fn, hint, runs), outcomes in zip(cases, all_outcomes):
        verdicts = {(passed, got) for passed, got, _ in outcomes}
        assert len(outcomes) == runs and verdicts == {(hint is None, hint or "")}, (fn.__name__, verdicts)
