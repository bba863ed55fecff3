"""Checkers of lesson 01: reading exactly n bytes, and sending everything with ``send`` alone.

``check_recv_exactly`` runs the learner's ``recv_exactly(sock, n)`` on a connection to a
server that echoes in 3-byte pieces, twice in a row (so reading past n shows), then on a
256 KiB reply, then on a stream that ends early. It catches: a single ``recv`` (part of the
bytes), ``recv(n)`` in the loop (reads past n: the next call misses bytes), no check for
``b""`` (loops forever on a closed stream), and returning fewer bytes instead of raising.

``check_send_all`` runs the learner's ``send_all(sock, data)`` on a socket with a small send
buffer and a timeout, to a peer that reads slowly: each ``send`` takes only part of the data.
The learner gets a socket that only has ``send`` (``sendall`` is what they are writing). It
catches: a single ``send`` (the peer gets part), sending all of ``data`` again instead of the
rest (the peer gets duplicates), and a wrong count of calls.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...servers import DribbleServer, EchoServer

__all__ = ["check_recv_exactly", "check_send_all"]

LOOP_HINT = ("recv returns what has arrived so far, maybe only a few bytes: call it in a loop "
             "until you have n bytes")
OVERREAD_HINT = ("ask recv only for what is still missing, recv(n - len(data)): recv(n) can return bytes "
                 "that belong to the next message")
EOF_HINT = ("recv returns b'' when the peer has closed: no more bytes will ever come, so raise "
            "EOFError then instead of asking again")
SHORT_HINT = ("when the stream ends before n bytes, raise EOFError: returning fewer bytes lets the caller "
              "believe it got a whole message")
RETURN_HINT = "return the bytes you collected (joined into one bytes object: b''.join(chunks))"
BYTES_HINT = "keep bytes as bytes: collect the chunks and return b''.join(chunks), do not decode them"
PARTIAL_SEND_HINT = ("send() returns how many bytes it took, which can be fewer than you gave it: loop, "
                     "sending the rest (data[sent:]) until every byte is sent")
REST_HINT = ("send only the rest each time, data[sent:] (a memoryview avoids copies): sending all of data "
             "again repeats bytes the peer already has")
COUNT_HINT = "count the send() calls in your loop (calls += 1 each time) and return that number"
SENDALL_HINT = "this exercise is to write sendall yourself: use only sock.send(...) in a loop"

#: Bytes in the big payloads (large enough to need many calls, small enough to be quick).
BIG = 256 * 1024
SEND_BIG = 1024 * 1024


def _kill(sock: socket.socket) -> Callable[[], None]:
    """on_timeout for a learner stuck on ``sock``: wake a blocked recv, then make a spinning
    loop fail (a closed socket raises OSError at its next call)."""

    def kill() -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    return kill


def _judge_read(got: Any, expected: bytes, what: str) -> None:
    """Fail with the right hint unless ``got == expected``."""
    if got == expected:
        return
    if got is None:
        raise NotYet(f"{what}: your function returned None", RETURN_HINT)
    if isinstance(got, str):
        raise NotYet(f"{what}: your function returned a str", BYTES_HINT)
    if not isinstance(got, (bytes, bytearray)):
        raise NotYet(f"{what}: expected bytes, got a {type(got).__name__}", RETURN_HINT)
    got = bytes(got)
    shown = got if len(got) <= 24 else got[:21] + b"..."
    if len(got) < len(expected) and expected.startswith(got):
        raise NotYet(f"{what}: asked for {len(expected)} bytes, got only {len(got)} ({shown!r})", LOOP_HINT)
    if len(got) > len(expected):
        raise NotYet(f"{what}: asked for {len(expected)} bytes, got {len(got)}", OVERREAD_HINT)
    raise NotYet(f"{what}: expected {expected[:24]!r}..., got {shown!r}", LOOP_HINT)


@checker("recv_exactly", solution="recv_exactly")
def check_recv_exactly(recv_exactly: Callable[..., Any]) -> str:
    # 1. Dribbled 3 bytes at a time, read as two messages of 10: a single recv gets 3 bytes;
    #    recv(n) in the loop reads past the first 10 and the second message comes out wrong.
    message = b"0123456789abcdefghij"
    with DribbleServer(piece=3, pause=0.002) as server, socket.create_connection(server.address, timeout=5) as sock:
        sock.settimeout(None)
        sock.sendall(message)
        first = call(recv_exactly, sock, 10, timeout=3, on_timeout=_kill(sock))
        _judge_read(first, message[:10], "first 10 of 20 bytes arriving 3 at a time")
        second = call(recv_exactly, sock, 10, timeout=3, on_timeout=_kill(sock))
        if isinstance(second, (bytes, bytearray)) and bytes(second) != message[10:] and len(second) <= 10:
            raise NotYet(f"the next 10 bytes came out as {bytes(second)!r}, expected {message[10:]!r}: "
                         "your first call read past its 10 bytes", OVERREAD_HINT)
        _judge_read(second, message[10:], "next 10 bytes")

    # 2. A big reply, written by another thread while the learner reads.
    payload = os.urandom(BIG)
    with EchoServer() as server, socket.create_connection(server.address, timeout=5) as sock:
        sock.settimeout(None)
        writer = threading.Thread(target=_sendall_quietly, args=(sock, payload), daemon=True)
        writer.start()
        try:
            got = call(recv_exactly, sock, BIG, timeout=5, on_timeout=_kill(sock))
        finally:
            writer.join(1)
            if writer.is_alive():  # the learner stopped reading: unblock the writer
                _kill(sock)()
                writer.join(2)
        _judge_read(got, payload, f"{BIG // 1024} KiB echoed back")

    # 3. The stream ends after 3 of the 10 bytes asked for.
    with DribbleServer(piece=3, pause=0.002) as server, socket.create_connection(server.address, timeout=5) as sock:
        sock.settimeout(None)
        sock.sendall(b"abc")
        sock.shutdown(socket.SHUT_WR)  # the server echoes b"abc", then closes
        try:
            got = call(recv_exactly, sock, 10, timeout=2, on_timeout=_kill(sock))
        except (EOFError, ConnectionError):
            pass
        except DidNotReturn:
            raise NotYet("the stream ended after 3 of 10 bytes and your function never returned "
                         "(it kept calling recv, which kept returning b'')", EOF_HINT) from None
        else:
            raise NotYet(f"the stream ended after 3 of 10 bytes and your function returned {got!r} "
                         "instead of raising EOFError", SHORT_HINT)
    return (f"20 bytes arriving 3 at a time read as two messages of 10, {BIG // 1024} KiB read whole, "
            "and EOFError when the stream ended early")


def _sendall_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the checker may close the socket under us
        sock.sendall(data)


class _SendOnly:
    """The learner's view of a socket in ``send_all``: ``send`` is counted, ``sendall`` refused."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.calls = 0

    def send(self, data: Any, flags: int = 0) -> int:
        self.calls += 1
        return self._sock.send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        raise NotYet("your function called sendall()", SENDALL_HINT)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _SlowReader:
    """The far end: accepts one connection and reads it slowly, keeping what arrives (bounded)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
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
        deadline = time.monotonic() + 10
        with contextlib.suppress(OSError):
            while len(self.received) < self.limit and time.monotonic() < deadline:
                chunk = self.conn.recv(4096)
                if not chunk:
                    return
                self.received += chunk
                time.sleep(0.0005)  # slower than the sender: the buffers fill, send() takes part

    def finish(self) -> bytes:
        """Close the sending side, wait for the reader to drain, return what it got."""
        with contextlib.suppress(OSError):
            self.client.shutdown(socket.SHUT_WR)
        self.thread.join(10)
        return bytes(self.received)

    def close(self) -> None:
        for sock in (self.client, self.conn, self.listener):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.thread.join(2)


@checker("send_all", solution="send_all")
def check_send_all(send_all: Callable[..., Any]) -> str:
    results = []
    for data in (b"hello", os.urandom(SEND_BIG)):
        peer = _SlowReader(limit=2 * len(data) + 65536)
        try:
            peer.client.settimeout(2.0)  # timeout mode: send() takes what fits and returns
            wrapped = _SendOnly(peer.client)
            try:
                count = call(send_all, wrapped, data, timeout=8, on_timeout=_kill(peer.client))
            except TimeoutError:
                got = peer.finish()
                raise NotYet(f"send() timed out after the peer had received {len(got):,} of {len(data):,} bytes",
                             REST_HINT if len(got) > len(data) else PARTIAL_SEND_HINT) from None
            got = peer.finish()
        finally:
            peer.close()
        size = f"{len(data):,} bytes"
        if len(got) < len(data) and data.startswith(got):
            raise NotYet(f"of {size} the peer received only {len(got):,} (your function called send() "
                         f"{wrapped.calls} time(s))", PARTIAL_SEND_HINT)
        if len(got) > len(data):
            raise NotYet(f"the peer received {len(got):,} bytes for {size}: some were sent twice", REST_HINT)
        expect(got == data, f"the peer received {len(got):,} bytes, but not the {size} in order", REST_HINT)
        expect(count == wrapped.calls, f"your function returned {count!r}, but it called send() "
               f"{wrapped.calls} time(s) for {size}", COUNT_HINT)
        results.append(wrapped.calls)
    return (f"5 bytes took {results[0]} send() call(s); {SEND_BIG // 1024} KiB through a small, slowly "
            f"read buffer took {results[1]}: each send() took only what fit")
