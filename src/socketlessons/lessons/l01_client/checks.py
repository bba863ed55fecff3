"""Checkers of lesson 01: reading exactly n bytes, and sending everything with ``send`` alone.

Both checkers judge behaviour, not timing: the checker owns both ends of a real loopback TCP
connection, decides how the bytes arrive or how much each ``send()`` takes, and compares what
the other end saw byte for byte. So the same function gets the same verdict on an idle laptop
and on a classroom host with every core busy.

``check_recv_exactly`` gives the learner's ``recv_exactly(sock, n)`` a real socket whose
``recv``/``recv_into`` calls are counted, and:

1. on connection A sends 4 bytes, waits until they were read, then 16 at once: asked for 10,
   a ``recv(n)`` in the loop reads 14 (past n); then, on a NEW connection B with 20 bytes
   waiting, asks for 10: a module-level leftover buffer hands over A's bytes; then asks A for
   its next 10 (A's sender has closed): a reader that read past n and threw the rest away
   finds only the end of the stream. The bytes include spaces, ``\\r\\n``, ``\\x00`` and
   ``\\xff`` at the edges, so ``strip()``, line-end handling and decoding show;
2. paces 48 bytes in pieces of 1 to 3 bytes, each sent only once the previous one was read,
   read as two messages of 24: a single ``recv`` gets 1 byte, a loop bounded by a count stops
   short, replacing instead of appending keeps the last piece, prepending reverses them; a
   non-blocking loop that asks again at once shows as hundreds of recv calls (counted, so at
   any load; the core's CPU-time check sees it too);
3. 256 KiB written by another thread while the learner reads;
4. 3 bytes, then the end of the stream, when 10 were asked for: no ``b""`` check loops for
   ever, a ``break`` returns 3 bytes instead of raising ``EOFError``, and another exception
   (``ConnectionError``, say) is the wrong one for the caller to catch.

``check_send_all`` gives the learner's ``send_all(sock, data)`` a real connected socket whose
``send()`` takes at most half of what it is given (at most 64 KiB), as a full send buffer
does, and records every call; the far end reads slowly (so a non-blocking spinner spins) and
keeps every byte; once, after a quarter of the big payload, it stops reading for 0.4 s (a peer
busy for a moment), so a short timeout of the learner's own runs out. It catches: a timeout caught
and taken for "done"; a non-blocking spinner (hundreds of send() calls refused with
BlockingIOError); a single ``send``; a loop bounded by a count; the last piece's
return ignored; a loop condition one byte short; fixed-size chunks that ignore each return (gaps); resending from the start
(duplicates); bytes added or altered; ``sendall`` instead of ``send``; a wrong count of calls.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...checks._core import BUSY_HINT, CallersSocket, DidNotReturn, NotYet, call, checker, expect

__all__ = ["check_recv_exactly", "check_send_all"]

# ---- hints: what to change, for what was observed -------------------------------------------

LOOP_HINT = ("recv returns what has arrived so far, maybe only a few bytes: call it in a loop "
             "until you have n bytes")
COUNT_LOOP_HINT = ("recv can return as little as 1 byte, so no fixed number of calls is enough: loop "
                   "while len(data) < n, not for a count")
OVERREAD_HINT = ("ask recv only for what is still missing, recv(n - len(data)): recv(n) can return bytes "
                 "that belong to the next message")
LOST_HINT = ("your function read past its n bytes and threw the rest away: ask recv only for what is still "
             "missing, recv(n - len(data)), so the next call finds the next bytes")
CALLERS_SOCKET_HINT = ("the socket is the caller's: do not close or shut it down (no `with sock:`, no "
                      "sock.close()); the caller may read or send more on it after your function returns")
RESTORE_HINT = ("the socket is the caller's: leave its timeout as it was, or put it back (old = "
                "sock.gettimeout() ... finally: sock.settimeout(old)); a timeout or non-blocking mode you leave "
                "behind changes every later call on it")
PAUSE_HINT = ("a pause is not the end of the stream: only recv() returning b'' is (the peer closed); do not "
              "take a timeout or a moment of silence for EOF")
ZERO_HINT = "recv_exactly(sock, 0) asks for nothing: return b'' at once (without calling recv)"
STATE_HINT = ("keep no bytes between calls (no module-level buffer): bytes left over from one connection "
              "end up in the answer for another; ask recv only for what is still missing instead")
OVERWRITE_HINT = "append each chunk to what you have (chunks.append(chunk), or data += chunk) instead of replacing it"
ORDER_HINT = "keep the chunks in the order they arrived: append new chunks at the end (data += chunk), not the front"
ALTERED_HINT = ("return the bytes exactly as they arrived: no strip(), no decode()/encode(), no line-end "
                "handling (\\r and spaces are data too)")
EOF_HINT = ("recv returns b'' when the peer has closed: no more bytes will ever come, so raise "
            "EOFError then instead of asking again")
EOF_TYPE_HINT = ("raise EOFError (not ConnectionError or another exception) when the stream ends before n "
                 "bytes: EOFError is what the caller catches for 'the other side closed, the message is incomplete', "
                 "while a ConnectionError means the connection broke")
SHORT_HINT = ("when the stream ends before n bytes, raise EOFError: returning fewer bytes lets the caller "
              "believe it got a whole message")
RETURN_HINT = "return the bytes you collected (joined into one bytes object: b''.join(chunks))"
BYTES_HINT = "keep bytes as bytes: collect the chunks and return b''.join(chunks), do not decode them"
PARTIAL_SEND_HINT = ("send() returns how many bytes it took, which can be fewer than you gave it: loop, "
                     "sending the rest (data[sent:]) until every byte is sent")
SEND_COUNT_LOOP_HINT = ("a fixed number of send() calls is never enough (each may take a single byte): loop "
                        "while sent < len(data), not for a count")
LAST_PIECE_HINT = ("check what every send() returned, the last one too: it can take part of the last piece; "
                   "keep looping until sent == len(data)")
GAP_HINT = ("advance by what send() returned (sent += sock.send(...)), not by the size of the piece you "
            "gave it: the bytes it did not take never left")
OFF_BY_ONE_HINT = ("loop while sent < len(data): every byte, the last one too; a condition such as "
                   "sent < len(data) - 1 (or <=, or a range that stops early) stops one byte short")
SEND_TIMEOUT_HINT = ("a send() that times out has not sent the rest: do not catch the timeout and return as if "
                     "done (the caller would believe every byte left); better set no timeout here at all (the "
                     "caller's socket decides), or let the TimeoutError propagate")
REST_HINT = ("send only the rest each time, data[sent:] (a memoryview avoids copies): sending all of data "
             "again repeats bytes the peer already has")
EXTRA_HINT = "send exactly the bytes you were given: add nothing (no newline, no terminator) to data"
SEND_ALTERED_HINT = "send the bytes exactly as given: no strip(), no encoding or decoding of data"
COUNT_HINT = "count the send() calls in your loop (calls += 1 each time) and return that number"
SENDALL_HINT = "this exercise is to write sendall yourself: use only sock.send(...) in a loop"
ERRORS_HINT = ("when send() raises (the peer reset the connection, the socket broke), let the error reach the "
               "caller: caught and returned from, it tells the caller every byte left; caught and retried, it "
               "fails again forever")

#: Bytes of the big payloads (many calls needed, still quick).
BIG = 256 * 1024
#: A pause in the middle of a message: longer than a "quiet for a moment means done" read waits.
PAUSE_S = 0.3
SEND_BIG = 512 * 1024
#: The third peer reads this much of SEND_BIG, then resets the connection: the rest cannot go.
RESET_AFTER = 16 * 1024
#: How long a send_all may keep going after the reset before the check stops it.
RESET_WAIT_S = 5.0
#: Most one send() of the checker's socket takes (it takes at most half of what it is given).
MAX_TAKE = 64 * 1024
#: Once, after a quarter of the big payload, the far end stops reading this long (a peer busy for a
#: moment): a send() with a short timeout of the learner's (tenths of a second) runs out meanwhile,
#: while a blocking send() simply waits.
PEER_PAUSE_S = 0.4
#: Pause between paced pieces (a spinner shows in the recv calls it makes meanwhile).
PACE_S = 0.005
#: Longest the checker waits for the learner's side to read a paced piece (then it stops pacing).
CONSUME_WAIT_S = 3.0


def _kill(sock: socket.socket) -> Callable[[], None]:
    """on_timeout for a learner stuck on ``sock``: wake a blocked recv, then make a spinning
    loop fail (a closed socket raises OSError at its next call)."""

    def kill() -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    return kill


def _shown(data: bytes, most: int = 24) -> str:
    return repr(data if len(data) <= most else data[: most - 3] + b"...")


# ---- recv_exactly -----------------------------------------------------------------------------


class _CountingSocket(CallersSocket):
    """A real socket whose ``recv`` and ``recv_into`` calls, and the bytes they returned, are counted."""

    calls = 0  # recv/recv_into calls since the checker last reset it
    got = 0  # bytes they returned

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self.calls += 1
        data = super().recv(*args, **kwargs)
        self.got += len(data)
        return data

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self.calls += 1
        n = super().recv_into(*args, **kwargs)
        self.got += n
        return n


@contextlib.contextmanager
def _pair() -> Iterator[tuple[_CountingSocket, socket.socket]]:
    """``(learner's socket, the checker's end)``: a real loopback TCP connection, both blocking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)
        raw = socket.create_connection(listener.getsockname()[:2], timeout=5)
        try:
            peer, _ = listener.accept()
        except BaseException:
            raw.close()
            raise
    learner = _CountingSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    with learner, peer:
        learner.settimeout(None)
        peer.settimeout(5)
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece leaves at once
        yield learner, peer


def _readable(sock: socket.socket) -> bool:
    """True while bytes (or the end of the stream) wait unread in ``sock``; False once closed."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _wait_unread(sock: socket.socket, count: int, timeout: float = 2.0) -> None:
    """Wait (bounded) until ``count`` bytes sent by the checker wait unread in ``sock``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if len(sock.recv(count, socket.MSG_PEEK)) >= count:
                return
        time.sleep(0.001)


class _Pacer:
    """Sends ``pieces`` from ``peer``, each only once the learner's socket has no unread byte
    left (and ``pause`` later): every ``recv`` then returns at most one piece, however busy the
    machine is. Stops when ``stop()`` is called or the learner stops reading."""

    def __init__(self, learner: socket.socket, peer: socket.socket, pieces: Sequence[bytes],
                 pause: float = PACE_S) -> None:
        self.learner, self.peer, self.pieces, self.pause = learner, peer, list(pieces), pause
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="socketlessons-check-pacer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            for i, piece in enumerate(self.pieces):
                if i:
                    deadline = time.monotonic() + CONSUME_WAIT_S
                    while _readable(self.learner):  # the learner has not read the last piece yet
                        if self._stop.wait(0.001) or time.monotonic() > deadline:
                            return
                    if self._stop.wait(self.pause):
                        return
                self.peer.sendall(piece)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


def _judge_read(got: Any, expected: bytes, what: str, calls: int) -> None:
    """Fail with the hint that matches what ``got`` shows, unless ``got == expected``."""
    if isinstance(got, (bytes, bytearray)) and bytes(got) == expected:
        return
    if got is None:
        raise NotYet(f"{what}: your function returned None", RETURN_HINT)
    if isinstance(got, str):
        raise NotYet(f"{what}: your function returned a str ({got[:20]!r})", BYTES_HINT)
    if not isinstance(got, (bytes, bytearray, memoryview)):
        raise NotYet(f"{what}: expected bytes, got a {type(got).__name__}", RETURN_HINT)
    got = bytes(got)
    n, m = len(expected), len(got)
    if m < n and expected.startswith(got):
        said = f"{what}: asked for {n} bytes, got only {m} ({_shown(got)}) after {calls} recv call(s)"
        raise NotYet(said, LOOP_HINT if calls <= 1 else COUNT_LOOP_HINT)
    if m > n and got.startswith(expected):
        raise NotYet(f"{what}: asked for {n} bytes, got {m}: {m - n} of them belong to what comes next",
                     OVERREAD_HINT)
    if 0 < m < n and expected.endswith(got):
        raise NotYet(f"{what}: asked for {n} bytes, got only the last {m} ({_shown(got)}): the earlier "
                     "pieces were replaced, not kept", OVERWRITE_HINT)
    if m == n and sorted(got) == sorted(expected) and _swapped(got, expected):
        raise NotYet(f"{what}: the right {n} bytes, in the wrong order: expected {_shown(expected)}, "
                     f"got {_shown(got)}", ORDER_HINT)
    raise NotYet(f"{what}: expected {_shown(expected)} ({n} bytes), got {_shown(got)} ({m} bytes)", ALTERED_HINT)


def _swapped(got: bytes, expected: bytes) -> bool:
    """True when ``got`` starts with a tail of ``expected`` and ends with a head of it: the pieces
    were joined in the wrong order (not merely altered)."""
    n = len(expected)
    return any(got.startswith(expected[j:]) for j in range(1, n)) and \
        any(got.endswith(expected[:k]) for k in range(1, n))


#: More calls than this for one paced message (12 pieces) or one send_all means asking again at
#: once instead of waiting: counted, not timed, so it shows however busy the machine is.
SPIN_CALLS = 200


def _judge_spin(calls: int, said: str) -> None:
    if calls > SPIN_CALLS:
        raise NotYet(f"{said.format(calls=calls)}: on a non-blocking socket it asked again at once instead of "
                     "waiting", BUSY_HINT)


def _read(recv_exactly: Callable[..., Any], sock: _CountingSocket, n: int, timeout: float, *,
          count_cpu: bool = True) -> Any:
    sock.calls = sock.got = 0
    before = sock.gettimeout()
    try:
        got = call(recv_exactly, sock, n, timeout=timeout, on_timeout=_kill(sock), count_cpu=count_cpu)
    except DidNotReturn:
        if sock.got >= n:  # it had all it asked for and still waited: it lost count of its bytes
            raise NotYet(f"asked for {n} bytes, your function received {sock.got} in {sock.calls} recv calls and "
                         "still waited for more: it lost count of the bytes it already had", OVERWRITE_HINT) from None
        raise
    _judge_left_as_given(sock, before)
    return got


def _judge_left_as_given(sock: Any, before: float | None, now: float | None | str = "read it") -> None:
    """The socket is the caller's: the learner's function must leave it open, connected, and with
    the timeout (or blocking mode) it came with (``now``: as read when the function returned)."""
    if getattr(sock, "closed_by_learner", False):
        raise NotYet("your function closed (or shut down) the socket it was given", CALLERS_SOCKET_HINT)
    if now == "read it":
        now = sock.gettimeout()
    if now != before:
        said = "non-blocking" if now == 0.0 else "blocking" if now is None else f"with a {now:g} s timeout"
        was = "non-blocking" if before == 0.0 else "blocking, no timeout" if before is None else f"{before:g} s"
        raise NotYet(f"your function left the socket it was given {said} (it came {was})", RESTORE_HINT)


#: Case 1's bytes: whitespace, \r\n, NUL and 0xff at the edges of each 10-byte answer.
_A = b" \r\nA" + b"bc\x00\xff \t" + b"\r\nxy\xffz\x00 \n "   # 4 bytes, then 16 at once
_B = b"\t\r\nB-second\xff\x00 conn\r\n"


@checker("recv_exactly", solution="recv_exactly")
def check_recv_exactly(recv_exactly: Callable[..., Any]) -> str:
    # 1. Over-reading, state kept across calls, bytes preserved exactly.
    assert len(_A) == 20 and len(_B) == 20
    with _pair() as (a, a_peer), _pair() as (b, b_peer):
        pacer = _Pacer(a, a_peer, [_A[:4], _A[4:]], pause=0.002)
        try:
            first = _read(recv_exactly, a, 10, timeout=3)
        finally:
            pacer.stop()
        _judge_read(first, _A[:10], "4 bytes arrived, then 16 at once; asked for 10", a.calls)
        b_peer.sendall(_B)
        _wait_unread(b, len(_B))
        other = _read(recv_exactly, b, 10, timeout=3)
        if isinstance(other, (bytes, bytearray)) and len(other) >= 4 and bytes(other)[:4] == _A[10:14]:
            raise NotYet(f"on a second connection, asked for 10 bytes, your function returned {_shown(bytes(other))}: "
                         "bytes left over from the first connection", STATE_HINT)
        _judge_read(other, _B[:10], "on a second connection with 20 bytes waiting, asked for 10", b.calls)
        a_peer.shutdown(socket.SHUT_WR)  # the first connection's last 10 bytes are all there will be
        try:
            rest = _read(recv_exactly, a, 10, timeout=2)
        except (EOFError, ConnectionError, DidNotReturn) as exc:
            what = "never returned" if isinstance(exc, DidNotReturn) else f"raised {type(exc).__name__}"
            raise NotYet(f"back on the first connection, its last 10 bytes had already arrived, but your "
                         f"function {what}: they were read by the first call and lost", LOST_HINT) from None
        if isinstance(rest, (bytes, bytearray)) and len(rest) < 10 and _A[10:].endswith(bytes(rest)):
            raise NotYet(f"back on the first connection, asked for its last 10 bytes, got {_shown(bytes(rest))}: "
                         "the first call had read them and thrown them away", LOST_HINT)
        _judge_read(rest, _A[10:], "back on the first connection, its last 10 bytes", a.calls)

    # 2. Pieces of 1 to 3 bytes, each sent only after the previous one was read.
    message = bytes(range(65, 65 + 48))
    sizes = [1, 2, 3] * 8
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    pieces = [message[lo:hi] for lo, hi in zip(bounds, bounds[1:])]
    with _pair() as (sock, peer):
        pacer = _Pacer(sock, peer, pieces)
        try:
            for what, expected in (("24 bytes arriving 1 to 3 at a time", message[:24]),
                                   ("the next 24 bytes, 1 to 3 at a time", message[24:])):
                got = _read(recv_exactly, sock, 24, timeout=4)
                _judge_read(got, expected, what, sock.calls)
                _judge_spin(sock.calls, "your function called recv() {calls:,} times to read 24 bytes that "
                            "arrived in 12 pieces")
        finally:
            pacer.stop()

    # 3. A big reply, written by another thread while the learner reads.
    payload = os.urandom(BIG)
    with _pair() as (sock, peer):
        writer = threading.Thread(target=_sendall_quietly, args=(peer, payload), daemon=True)
        writer.start()
        try:
            # Its CPU is not counted: reading 256 KiB one byte per recv() is real work (0.2 s), not a
            # busy loop; a non-blocking spinner shows in case 2's recv() count.
            got = _read(recv_exactly, sock, BIG, timeout=5, count_cpu=False)
        finally:
            writer.join(1)
            if writer.is_alive():  # the learner stopped reading: unblock the writer
                _kill(peer)()
                writer.join(2)
        _judge_read(got, payload, f"{BIG // 1024} KiB written at once", sock.calls)

    # 3b. A pause in the middle: the rest comes PAUSE_S later (silence is not the end).
    with _pair() as (sock, peer):
        pacer = _Pacer(sock, peer, [b"first half, ", b"then the rest"], pause=PAUSE_S)
        try:
            try:
                got = _read(recv_exactly, sock, 25, timeout=4)
            except (EOFError, TimeoutError) as exc:
                raise NotYet(f"25 bytes, the last 13 after a {PAUSE_S:g} s pause: your function raised "
                             f"{type(exc).__name__} during the pause, while the peer was still connected",
                             PAUSE_HINT) from None
        finally:
            pacer.stop()
        if isinstance(got, (bytes, bytearray)) and bytes(got) == b"first half, ":
            raise NotYet(f"25 bytes, the last 13 after a {PAUSE_S:g} s pause: your function returned the first 12",
                         PAUSE_HINT)
        _judge_read(got, b"first half, then the rest", f"25 bytes, the last 13 after a {PAUSE_S:g} s pause",
                    sock.calls)

    # 3c. Nothing asked for.
    with _pair() as (sock, _peer):
        try:
            got = _read(recv_exactly, sock, 0, timeout=2)
        except (EOFError, DidNotReturn) as exc:
            what = "never returned" if isinstance(exc, DidNotReturn) else f"raised {type(exc).__name__}"
            raise NotYet(f"asked for 0 bytes (nothing sent yet), your function {what}", ZERO_HINT) from None
        if got != b"":
            raise NotYet(f"asked for 0 bytes, your function returned {got!r:.40}", ZERO_HINT)

    # 4. The stream ends after 3 of the 10 bytes asked for.
    with _pair() as (sock, peer):
        peer.sendall(b"abc")
        peer.shutdown(socket.SHUT_WR)
        try:
            got = _read(recv_exactly, sock, 10, timeout=2)
        except EOFError:
            pass
        except (ConnectionError, OSError, ValueError, RuntimeError) as exc:  # the learner's own, marked by call()
            raise NotYet(f"the stream ended after 3 of 10 bytes and your function raised {type(exc).__name__}"
                         f" ({exc}) instead of EOFError", EOF_TYPE_HINT) from None
        except DidNotReturn:
            raise NotYet("the stream ended after 3 of 10 bytes and your function never returned "
                         "(it kept calling recv, which kept returning b'')", EOF_HINT) from None
        else:
            raise NotYet(f"the stream ended after 3 of 10 bytes and your function returned {got!r} "
                         "instead of raising EOFError", SHORT_HINT)
    return ("never read past n (4 + 16 bytes asked for 10), kept nothing between connections, read 48 bytes "
            f"arriving 1 to 3 at a time, {BIG // 1024} KiB whole, and raised EOFError when the stream ended early")


def _sendall_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the checker may close the socket under us
        sock.sendall(data)


# ---- send_all ---------------------------------------------------------------------------------

_HEAD = 32  # bytes compared to place a send() call's data within the whole


class _Stopped(BaseException):
    """Ends a learner's loop that retries a failing send() forever (passes ``except Exception``)."""


class _HalfTaking:
    """The learner's socket in ``send_all``: a real connected socket whose ``send`` takes at most
    half of what it is given (at most ``MAX_TAKE``; 1 byte whole), as a full send buffer does.
    Each call that returned is recorded; ``sendall`` is refused."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self._sock, self._data = sock, bytes(data)
        self.calls = 0
        self.refused = 0  # send() calls that raised BlockingIOError (no room yet)
        self.timed_out = 0  # send() calls that raised TimeoutError (a timeout the learner set)
        self.timeout: float | None = None  # the socket's timeout when one did
        self.taken = 0  # bytes taken so far, in stream order
        #: one (position before, bytes given, bytes taken, given starts at position, head of given)
        self.trace: list[tuple[int, int, int, bool, bytes]] = []

    stopped = False  # set by the checker: every later send() raises _Stopped

    def send(self, data: Any, flags: int = 0) -> int:
        if self.stopped:  # a BaseException: even `except Exception: continue` lets it through
            raise _Stopped("the checker has stopped this send_all")
        view = memoryview(data).cast("B")  # a str raises TypeError here, as a real send would
        size = len(view)
        cap = size if size <= 1 else min(MAX_TAKE, (size + 1) // 2)
        try:
            took = self._sock.send(view[:cap], flags)
        except BlockingIOError:  # a non-blocking socket with no room: counted, then raised as usual
            self.refused += 1
            raise
        except TimeoutError:  # a timeout the learner set ran out while the peer paused
            self.timed_out += 1
            self.timeout = self._sock.gettimeout()
            raise
        head = bytes(view[:_HEAD])
        pos = self.taken
        self.trace.append((pos, size, took, head == self._data[pos:pos + _HEAD], head))
        self.taken += took
        self.calls += 1
        return took

    def sendall(self, data: Any, flags: int = 0) -> None:
        raise NotYet("your function called sendall()", SENDALL_HINT)

    closed_by_learner = False

    def close(self) -> None:
        self.closed_by_learner = True  # the real socket stays open: the check reads what arrived

    def shutdown(self, how: int) -> None:
        self.closed_by_learner = True

    def __enter__(self) -> _HalfTaking:  # `with sock:` closes it on the way out
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _SlowReader:
    """The far end: accepts one connection and reads it slowly (so send buffers fill), keeping
    what arrives (at most ``limit`` bytes)."""

    def __init__(self, limit: int, pause_after: int | None = None, *, reset: bool = False) -> None:
        self.limit, self.pause_after, self.reset = limit, pause_after, reset
        self.received = bytearray()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        self.client.connect(self.listener.getsockname())
        self.listener.settimeout(5)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5)
        self.thread = threading.Thread(target=self._read, name="socketlessons-check-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + 20
        paused = self.pause_after is None
        with contextlib.suppress(OSError):
            while len(self.received) < self.limit and time.monotonic() < deadline:
                chunk = self.conn.recv(8192)
                if not chunk:
                    return
                self.received += chunk
                time.sleep(0.004)  # slower than the sender: the buffers fill up
                if not paused and len(self.received) >= self.pause_after:  # type: ignore[operator]
                    paused = True
                    time.sleep(PEER_PAUSE_S)  # a slow peer: a short send timeout runs out meanwhile
            if self.reset and len(self.received) >= self.limit:  # SO_LINGER on, 0 s: close() sends a reset
                self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.conn.close()

    def finish(self) -> bytes:
        """Close the sending side, wait for the reader to drain, return what it got."""
        with contextlib.suppress(OSError):
            self.client.setblocking(True)
            self.client.shutdown(socket.SHUT_WR)
        self.thread.join(10)
        return bytes(self.received)

    def close(self) -> None:
        for sock in (self.client, self.conn, self.listener):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.thread.join(2)


def _judge_sent(got: bytes, data: bytes, wrapped: _HalfTaking, count: Any) -> None:
    size = f"{len(data):,} bytes"
    trace, calls = wrapped.trace, wrapped.calls
    for i, (pos, given, took, in_place, head) in enumerate(trace):
        if pos and not in_place and head == data[:len(head)]:
            raise NotYet(f"of {size}, {pos:,} were taken when send() call {i + 1} was given data from its first "
                         "byte again: the peer received bytes twice", REST_HINT)
        if i and not in_place:
            ppos, pgiven, ptook, pin_place = trace[i - 1][:4]
            if pin_place and ptook < pgiven and head == data[ppos + pgiven:ppos + pgiven + len(head)]:
                raise NotYet(f"send() call {i} was given {pgiven:,} bytes and took {ptook:,}; call {i + 1} started "
                             f"after all {pgiven:,}: {pgiven - ptook:,} bytes in between never left", GAP_HINT)
    if got == data:
        expect(count == calls, f"every byte arrived, but your function returned {count!r} while it called send() "
               f"{calls} time(s) for {size}", COUNT_HINT)
        return
    if len(got) < len(data) and data.startswith(got):
        left = f"of {size} the peer received only the first {len(got):,}"
        if calls <= 1:
            raise NotYet(f"{left}: your function called send() once, and that call took {len(got):,}",
                         PARTIAL_SEND_HINT)
        pos, given, took = trace[-1][:3]
        if wrapped.timed_out:
            timeout = wrapped.timeout
            raise NotYet(f"{left}: the peer paused reading for {PEER_PAUSE_S:g} s, a send() raised TimeoutError"
                         f"{f' (your socket timeout was {timeout:g} s)' if timeout else ''}, and your function "
                         "returned as if every byte had been sent", SEND_TIMEOUT_HINT)
        if len(data) - len(got) == 1:
            raise NotYet(f"{left}: your function called send() {calls} times and stopped with exactly 1 byte "
                         "unsent (the last one)", OFF_BY_ONE_HINT)
        if all(g == len(data) - p and ok for p, g, _t, ok, _h in trace):
            raise NotYet(f"{left}: your function called send() {calls} times, each time with the rest, and "
                         "stopped with bytes still to send", SEND_COUNT_LOOP_HINT)
        raise NotYet(f"{left}: your last send() (call {calls}) was given {given:,} bytes and took {took:,}, and "
                     "your function returned without sending the rest", LAST_PIECE_HINT)
    if len(got) > len(data) and got.startswith(data):
        extra = got[len(data):]
        raise NotYet(f"the peer received {size} and then {len(extra):,} more: {_shown(extra)}", EXTRA_HINT)
    if len(got) > len(data):
        raise NotYet(f"the peer received {len(got):,} bytes for {size}: some were sent twice", REST_HINT)
    raise NotYet(f"the peer received {len(got):,} bytes that differ from the {size} given: starts "
                 f"{_shown(got)}, expected {_shown(data)}", SEND_ALTERED_HINT)


@checker("send_all", solution="send_all")
def check_send_all(send_all: Callable[..., Any]) -> str:
    results = []
    big = b" \r\n" + os.urandom(SEND_BIG - 6) + b"\r\n "  # spaces and line ends at both edges
    for data in (big, b"hello"):
        peer = _SlowReader(limit=2 * len(data) + 65536, pause_after=len(data) // 4 if len(data) > 4096 else None)
        try:
            wrapped = _HalfTaking(peer.client, data)
            before = peer.client.gettimeout()
            try:
                count = call(send_all, wrapped, data, timeout=10, on_timeout=_kill(peer.client))
            except DidNotReturn:
                got = peer.finish()
                if len(got) >= peer.limit:
                    raise NotYet(f"your function kept sending: the peer had received {len(got):,} bytes for "
                                 f"{len(data):,} when the check gave up", REST_HINT) from None
                raise
            after = peer.client.gettimeout()  # before finish(), which makes it blocking
            got = peer.finish()
        finally:
            peer.close()
        _judge_sent(got, data, wrapped, count)
        _judge_left_as_given(wrapped, before, after)  # after the bytes: a lost byte is the worse mistake
        _judge_spin(wrapped.refused, "{calls:,} of your send() calls raised BlockingIOError (no room yet) "
                    f"while sending {len(data):,} bytes")
        results.append(wrapped.calls)
    _judge_reset(send_all)
    return (f"{SEND_BIG // 1024} KiB took {results[0]} send() calls and 5 bytes took {results[1]}, through a "
            "socket whose send() took at most half of what it was given, and every byte arrived once, in order; "
            "when the peer reset the connection, the error reached the caller")


def _judge_reset(send_all: Callable[..., Any]) -> None:
    """A peer that reads RESET_AFTER bytes, then resets the connection: the rest of SEND_BIG cannot
    go (the small buffers hold far less), so send() raises, and the caller must hear of it."""
    data = os.urandom(SEND_BIG)
    peer = _SlowReader(limit=RESET_AFTER, reset=True)
    wrapped = _HalfTaking(peer.client, data)

    def stop() -> None:
        wrapped.stopped = True
        _kill(peer.client)()

    what = (f"the peer read {RESET_AFTER // 1024} KiB of the {len(data) // 1024} KiB, then reset the connection "
            "(SO_LINGER 0)")
    try:
        count = call(send_all, wrapped, data, timeout=RESET_WAIT_S, on_timeout=stop)
    except DidNotReturn:
        raise NotYet(f"{what}, and your function was still sending {RESET_WAIT_S:g} s later", ERRORS_HINT) from None
    except OSError:
        return  # ConnectionResetError, BrokenPipeError, ...: the caller knows the data did not all go
    finally:
        peer.close()
    raise NotYet(f"{what}; your function returned {count!r} as if every byte had been sent", ERRORS_HINT)
