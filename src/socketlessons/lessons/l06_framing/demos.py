"""Helpers of lesson 06 (framing): servers that glue messages together and split them apart.

* ``ScriptedServer`` sends a fixed byte stream to every client, cut the way you ask: all at
  once (``"whole"``: several messages glued in one ``send``), byte by byte (``"bytes"``), in
  seeded random pieces (``"random"``) or in the sizes you list; then it says "done" with a
  half-close, so the client sees the end of the stream after the last byte;
* ``LateReaderServer`` reads only ``delay`` seconds after each reply, so several small
  ``send`` calls of a client have all arrived by then and come out of one ``recv`` glued;
  it echoes what it read, so the client sees the glued bytes too;
* ``ProtocolServer`` answers the length-prefixed request/response protocol of
  ``socketlessons.framing``, optionally dribbling its responses;
* ``RepeatServer`` sends the same framed message over and over, as fast as the client reads:
  the source for timing a reader (no echo, so no send/receive deadlock at any size);
* three readers to compare: ``read_line_bytewise`` (``recv(1)`` until the newline: one system
  call per byte), ``LineReader`` (big ``recv`` calls, split with a decoder) and the package's
  ``recv_message`` (length prefix); ``reading(address, size, how)`` times one of them;
* ``cut`` is the pure function deciding the pieces (the tests and the notebook use it too);
* ``diagram(events)``: the sequence diagram as a PNG image a notebook cell displays.

Used in 06_framing and by ``checks.lesson06``.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...framing import (
    DelimitedDecoder,
    FramingError,
    LengthPrefixDecoder,
    answer,
    encode_frame,
    recv_message,
)
from ...servers import TCPServer
from ...servers._tcp import ConnectionStats

__all__ = ["CHUNKINGS", "READERS", "LateReaderServer", "LineReader", "ProtocolServer", "RepeatServer",
           "ScriptedServer", "cut", "decode_chunks", "diagram", "read_line_bytewise", "reader_verdict", "reading",
           "request_stream"]

CHUNKINGS = ("whole", "bytes", "random")
#: Largest piece of a ``"random"`` cutting: small enough that a message of a few dozen bytes
#: is split, large enough that a kilobyte does not take a second to dribble.
RANDOM_PIECE_MAX = 16
#: Longest stream a scripted server will send byte by byte (each piece costs a pause).
MAX_DRIBBLE = 4096


def cut(data: bytes, chunks: str | Sequence[int] = "whole", seed: int = 0) -> list[bytes]:
    """Cut ``data`` into pieces: ``"whole"``, ``"bytes"``, ``"random"`` (seeded) or given sizes.

    A list of sizes is used in turn, the last size repeating until the data ends.
    """
    if isinstance(chunks, str):
        if chunks == "whole":
            return [data] if data else []
        if chunks == "bytes":
            return [data[i : i + 1] for i in range(len(data))]
        if chunks == "random":
            rng, pieces, i = random.Random(seed), [], 0
            while i < len(data):
                step = rng.randint(1, RANDOM_PIECE_MAX)
                pieces.append(data[i : i + step])
                i += step
            return pieces
        raise ValueError(f"chunks must be one of {', '.join(CHUNKINGS)} or a list of sizes, got {chunks!r}")
    sizes = list(chunks)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
        raise ValueError(f"chunk sizes must be positive ints, got {chunks!r}")
    pieces, i, k = [], 0, 0
    while i < len(data):
        step = sizes[min(k, len(sizes) - 1)]
        pieces.append(data[i : i + step])
        i, k = i + step, k + 1
    return pieces


def decode_chunks(chunks: Sequence[bytes], framing: str = "length", delimiter: bytes = b"\n") -> list[bytes]:
    """Messages in a stream received as ``chunks`` (``framing`` is ``"length"`` or ``"line"``)."""
    decoder = LengthPrefixDecoder() if framing == "length" else DelimitedDecoder(delimiter)
    return [m for chunk in chunks for m in decoder.feed(chunk)]


class ScriptedServer(TCPServer):
    """Sends ``payload`` to every client, cut into pieces with a pause between, then half-closes.

    Args:
        payload: the bytes to send (already framed, e.g. ``encode_frame(b"hi") * 3``).
        chunks: how to cut it; see ``cut``.
        pause: seconds between pieces, so each piece leaves as its own segment (with
            ``TCP_NODELAY``, which helper servers set) and a reader sees it arrive alone.
        seed: for ``"random"`` cuts.
        close: after the last piece, ``shutdown(SHUT_WR)`` (the client's ``recv`` then returns
            ``b""``); with ``close=False`` the server stays silent until the client leaves.
    """

    kind = "scripted"

    def __init__(self, payload: bytes, host: str = "127.0.0.1", port: int = 0, *,
                 chunks: str | Sequence[int] = "whole", pause: float = 0.001, seed: int = 0,
                 close: bool = True, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if not isinstance(payload, (bytes, bytearray)):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}: encode text first")
        if not 0 <= pause <= 1:
            raise ValueError(f"pause must be between 0 and 1 second, got {pause!r}")
        self.payload, self.chunks, self.pause, self.seed, self.close = bytes(payload), chunks, pause, seed, close
        self.pieces = cut(self.payload, chunks, seed)
        if len(self.pieces) > MAX_DRIBBLE:
            raise ValueError(f"{len(self.pieces)} pieces would take too long to dribble; "
                             f"use at most {MAX_DRIBBLE} pieces (larger sizes, or a shorter payload)")

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "payload": self.payload, "chunks": self.chunks,
                "pause": self.pause, "seed": self.seed, "close": self.close}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        for i, piece in enumerate(self.pieces):
            if i and self.pause and self._stopping.wait(self.pause):
                return
            self._send(conn, stats, piece)
        if self.close:
            conn.shutdown(socket.SHUT_WR)
            self._record("shutdown", stats.conn, 0, "SHUT_WR")
        while self._recv(conn, stats):  # wait for the client to leave; discard what it sends
            pass


class LateReaderServer(TCPServer):
    """Echo server that waits ``delay`` seconds before each ``recv``: small sends arrive glued.

    A client that sends ``b"hello"`` then ``b"world"`` quickly finds both in the server's
    buffer when it finally reads: one ``recv`` returns ``b"helloworld"``. Run it with
    ``trace=True`` to see the server's ``recv`` sizes.
    """

    kind = "late-reader"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, delay: float = 0.05, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if not 0 <= delay <= 10:
            raise ValueError(f"delay must be between 0 and 10 seconds, got {delay!r}")
        self.delay = delay

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "delay": self.delay}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        while True:
            if self._stopping.wait(self.delay):
                return
            data = self._recv(conn, stats)
            if not data:
                return
            self._send(conn, stats, data)


class ProtocolServer(TCPServer):
    """Answers length-prefixed requests (``framing.answer``), in order, on each connection.

    Args:
        chunks: how each response is cut (``"whole"``, ``"bytes"``, ``"random"``); cut
            responses test a client's reader.
        pause: seconds between pieces of a cut response.
    """

    kind = "protocol"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, chunks: str = "whole",
                 pause: float = 0.0005, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        cut(b"", chunks)  # validates
        self.chunks, self.pause, self.seed = chunks, pause, seed
        self.requests = 0

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "chunks": self.chunks, "pause": self.pause, "seed": self.seed}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        decoder = LengthPrefixDecoder(max_size=self.bufsize)  # bounded memory per connection
        while data := self._recv(conn, stats):
            for body in decoder.feed(data):
                self.requests += 1
                response = encode_frame(answer(body))
                for i, piece in enumerate(cut(response, self.chunks, self.seed + self.requests)):
                    if i and self.pause and self._stopping.wait(self.pause):
                        return
                    self._send(conn, stats, piece)


class RepeatServer(TCPServer):
    """Sends one framed message again and again until the client leaves: a source for timing readers.

    The client asks first, with 5 bytes: ``b"L"`` (length prefix) or ``b"N"`` (newline) and the
    message size as ``"!I"``; ``request_stream`` does that. One server thus serves every size
    and framing, and can run in its own process (``mode="process"``) so that producing the
    bytes never competes with the measuring thread for the kernel's GIL. Frames are sent in
    blocks of at least ``BLOCK`` bytes: few system calls, however small the message.
    """

    kind = "repeat"
    BLOCK = 64 * 1024
    ASK = struct.Struct("!cI")
    MAX_SIZE = 16 * 1024 * 1024

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        ask = b""
        while len(ask) < self.ASK.size:
            piece = self._recv(conn, stats)
            if not piece:
                return
            ask += piece
        kind, size = self.ASK.unpack(ask[: self.ASK.size])
        if kind not in (b"L", b"N") or size > self.MAX_SIZE:
            raise ValueError(f"bad request {ask[:5]!r}: want b'L' or b'N' and a size up to {self.MAX_SIZE}")
        message = b"x" * size
        frame = encode_frame(message) if kind == b"L" else message + b"\n"
        block = frame * max(1, self.BLOCK // len(frame))
        sendall = conn.sendall
        while not self._stopping.is_set():
            sendall(block)  # blocks while the client is not reading; stop() wakes it
            stats.bytes_out += len(block)


def request_stream(sock: socket.socket, size: int, framing: str) -> None:
    """Ask a ``RepeatServer`` for endless ``size``-byte messages framed ``"length"`` or ``"line"``."""
    sock.sendall(RepeatServer.ASK.pack(b"L" if framing == "length" else b"N", size))


def read_line_bytewise(sock: socket.socket, delimiter: bytes = b"\n") -> bytes:
    """The beginner's line reader: ``recv(1)`` until the delimiter. Correct, but one system call per byte."""
    line = bytearray()
    while not line.endswith(delimiter):
        byte = sock.recv(1)
        if not byte:
            raise EOFError(f"the stream ended after {len(line)} bytes, before a delimiter")
        line += byte
    return bytes(line[: -len(delimiter)])


class LineReader:
    """A buffered line reader: large ``recv`` calls, split by a ``DelimitedDecoder``.

    Bytes after the delimiter stay in the reader for the next call: nothing is lost.
    """

    def __init__(self, sock: socket.socket, delimiter: bytes = b"\n", bufsize: int = 64 * 1024) -> None:
        self.sock, self.bufsize = sock, bufsize
        self.decoder = DelimitedDecoder(delimiter)
        self._ready: list[bytes] = []

    def read_line(self) -> bytes:
        while not self._ready:
            chunk = self.sock.recv(self.bufsize)
            if not chunk:
                raise EOFError("the stream ended before a complete line")
            self._ready.extend(self.decoder.feed(chunk))
        return self._ready.pop(0)


READERS = ("recv(1) until newline", "buffered lines", "length prefix")


@contextlib.contextmanager
def reading(size: int, how: str, address: tuple[str, int] | None = None, *,
            bufsize: int = 64 * 1024) -> Iterator[Callable[[], bytes]]:
    """A connection to a ``RepeatServer`` sending ``size``-byte messages, and an op reading one.

    ``how`` is one of ``READERS``; ``bufsize`` is what the buffered line reader asks each
    ``recv`` for (1 makes it a byte-by-byte reader again). Without ``address``, a thread-mode server is started for
    this point only. Use as ``make_op`` for ``measure.sweep``: the connection (and that
    server) live for one point and are closed after it.
    """
    if how not in READERS:
        raise ValueError(f"how must be one of {', '.join(map(repr, READERS))}, got {how!r}")
    with contextlib.ExitStack() as stack:
        if address is None:
            address = stack.enter_context(RepeatServer()).address
        sock = stack.enter_context(socket.create_connection(address, timeout=10))
        request_stream(sock, size, "length" if how == "length prefix" else "line")
        if how == "recv(1) until newline":
            read: Callable[[], Any] = lambda: read_line_bytewise(sock)  # noqa: E731
        elif how == "buffered lines":
            read = LineReader(sock, bufsize=bufsize).read_line
        else:
            read = lambda: recv_message(sock)  # noqa: E731

        def op() -> bytes:
            got = read()
            if got is None or len(got) != size:
                raise FramingError(f"read {0 if got is None else len(got)} bytes, expected {size}")
            return got  # type: ignore[no-any-return]

        yield op


def diagram(events: Sequence[Any], title: str = "Who called what, when (bytes on each arrow)",
            max_events: int = 60) -> Any:
    """``plots.sequence_diagram`` as an ``IPython.display.Image`` (a bare Figure shows as text).

    Calls that move no data and only configure the socket (``settimeout``…) are left out.
    """
    from IPython.display import Image

    from ...plots import sequence_diagram, to_png

    shown = [e for e in events if e.op not in _CONFIG_OPS]
    return Image(data=to_png(sequence_diagram(shown, title=title, max_events=max_events)), format="png")


_CONFIG_OPS = frozenset({"settimeout", "setblocking", "setsockopt"})


def reader_verdict(per_byte_ns: dict[str, float], largest: int) -> str:
    """The sentence lesson 06 prints after timing the readers (per-byte costs from a linear fit)."""
    lines = [f"{how:>22}: {ns:9.2f} ns per byte" for how, ns in per_byte_ns.items()]
    slow = per_byte_ns.get("recv(1) until newline")
    fast = min((ns for how, ns in per_byte_ns.items() if how != "recv(1) until newline"), default=None)
    if slow is None or fast is None or fast <= 0:
        lines.append("inconclusive: time both a recv(1) reader and a buffered one")
    elif slow >= 10 * fast:
        lines.append(f"→ recv(1) until the newline costs {slow / fast:,.0f}x more per byte than a buffered reader: "
                     f"one system call per byte ({slow * largest / 1e6:.2f} ms for one {largest:,}-byte line)")
    else:
        lines.append(f"→ only {slow / fast:.1f}x apart: the messages are too short for the per-byte cost to show; "
                     "time longer lines")
    return "\n".join(lines)
