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
import dataclasses
import math
import random
import select
import socket
import struct
import time
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
from ...measure import Point, Status, fit_affine
from ...servers import TCPServer
from ...servers._tcp import ConnectionStats

__all__ = ["CHUNKINGS", "READERS", "LateReaderServer", "LineReader", "ProtocolServer", "RepeatServer",
           "ReaderVerdict", "ScriptedServer", "cut", "decode_chunks", "diagram", "read_line_bytewise", "reader_verdict", "reading",
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
        first_pause: the pause after the first piece only (default: ``pause``); a long one
            makes sure a reader's first ``recv`` returns the first piece alone, however busy
            the machine.

    ``reader``: set it to the client's socket (in this process, thread mode) and each piece
    after the first waits until the reader has taken every byte sent before it (at most
    ``READER_WAIT_S``; a reader that stops reading ends the pacing): then no ``recv`` can
    return two pieces, however late the reading thread runs. The checkers use it.
    """

    READER_WAIT_S = 1.0
    reader: socket.socket | None = None

    kind = "scripted"

    def __init__(self, payload: bytes, host: str = "127.0.0.1", port: int = 0, *,
                 chunks: str | Sequence[int] = "whole", pause: float = 0.001, seed: int = 0,
                 close: bool = True, first_pause: float | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if first_pause is not None and not 0 <= first_pause <= 1:
            raise ValueError(f"first_pause must be between 0 and 1 second, got {first_pause!r}")
        self.first_pause = pause if first_pause is None else first_pause
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
                "pause": self.pause, "seed": self.seed, "close": self.close, "first_pause": self.first_pause}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        paced = True
        for i, piece in enumerate(self.pieces):
            wait = self.first_pause if i == 1 else self.pause
            if i and wait and self._stopping.wait(wait):
                return
            if i and paced and self.reader is not None:
                paced = self._wait_until_read()
            self._send(conn, stats, piece)
        if self.close:
            conn.shutdown(socket.SHUT_WR)
            self._record("shutdown", stats.conn, 0, "SHUT_WR")
        while self._recv(conn, stats):  # wait for the client to leave; discard what it sends
            pass


    def _wait_until_read(self) -> bool:
        """Wait (bounded) until ``reader`` holds no unread byte; False when it stopped reading."""
        end = time.monotonic() + self.READER_WAIT_S
        while not self._stopping.is_set():
            try:
                unread = bool(select.select([self.reader], [], [], 0)[0])
            except (OSError, ValueError, TypeError):  # closed by the checker
                return False
            if not unread:
                return True
            if time.monotonic() > end:
                return False
            self._stopping.wait(0.001)
        return False


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
            bufsize: int = 64 * 1024,
            reader: Callable[[socket.socket], bytes] | None = None) -> Iterator[Callable[[], bytes]]:
    """A connection to a ``RepeatServer`` sending ``size``-byte messages, and an op reading one.

    ``how`` is one of ``READERS``; ``bufsize`` is what the buffered line reader asks each
    ``recv`` for (1 makes it a byte-by-byte reader again). Without ``address``, a thread-mode server is started for
    this point only. Use as ``make_op`` for ``measure.sweep``: the connection (and that
    server) live for one point and are closed after it. ``reader(sock)``, if given, reads one
    message instead of ``how``'s own reader (the lesson passes the recv(1) reader its cell
    defines; ``how`` still says which framing the server sends).
    """
    if how not in READERS:
        raise ValueError(f"how must be one of {', '.join(map(repr, READERS))}, got {how!r}")
    with contextlib.ExitStack() as stack:
        if address is None:
            address = stack.enter_context(RepeatServer()).address
        sock = stack.enter_context(socket.create_connection(address, timeout=10))
        request_stream(sock, size, "length" if how == "length prefix" else "line")
        if reader is not None:
            read: Callable[[], Any] = lambda: reader(sock)  # noqa: E731
        elif how == "recv(1) until newline":
            read = lambda: read_line_bytewise(sock)  # noqa: E731
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


#: The claim: one system call per byte makes recv(1) at least this many times slower than a
#: buffered reader for the same line. At 4 KiB a system call costs ~0.3-4 µs per byte (VMs differ) against a
#: few µs for the whole line buffered, so the real ratio is in the hundreds; 10× leaves room for
#: a busy machine, which slows both readers.
READER_RATIO = 10.0
#: Below this ratio the claim is contradicted (the per-byte cost did not show at all).
READER_RATIO_FLOOR = 2.0


@dataclasses.dataclass(frozen=True)
class ReaderVerdict:
    """What lesson 06 prints after timing the readers: ``status`` and the sentences (``str()``)."""

    status: Status
    text: str
    ratio: float

    def __str__(self) -> str:
        return self.text


def reader_verdict(runs: dict[str, Sequence[Point]], estimator: str = "low") -> ReaderVerdict:
    """Judge "recv(1) per byte costs far more than a buffered line reader", from the sweeps.

    ``runs`` maps each of ``READERS`` to its sweep points. The claim compares the two *line*
    readers (the same framing, the same bytes): the recv(1) reader's and the buffered reader's
    time for one line at the largest size measured, by ``estimator`` ("low": the 10th
    percentile of the batches, the operation's own cost: noise from a busy machine only ever
    adds time, as timeit's docs note for its minimum). The recv(1) reader's cost per byte is the
    slope of a straight-line fit (``fit_affine``). The length-prefix reader is shown beside them.
    """
    slow_name, fast_name = READERS[0], READERS[1]
    if slow_name not in runs or fast_name not in runs or not runs[slow_name] or not runs[fast_name]:
        return ReaderVerdict("inconclusive", f"inconclusive: time both the {slow_name!r} and the {fast_name!r} "
                             "readers (the claim compares those two)", math.nan)
    largest = max(p.x for p in runs[slow_name])
    at = {how: next((p.estimate(estimator) for p in pts if p.x == largest), math.nan) for how, pts in runs.items()}
    slow_pts = runs[slow_name]
    per_byte = fit_affine([p.x for p in slow_pts], [p.estimate(estimator) for p in slow_pts]).per_unit_ns \
        if len(slow_pts) >= 2 else math.nan
    lines = [f"{how:>22}: one {int(largest):,}-byte message in {_fmt_us(ns)}" for how, ns in at.items()]
    slow, fast = at[slow_name], at[fast_name]
    ratio = slow / fast if fast > 0 else math.nan
    if math.isnan(ratio):
        return ReaderVerdict("inconclusive", "\n".join([*lines, f"inconclusive: no {fast_name!r} time at "
                                                        f"{int(largest):,} bytes to compare with"]), ratio)
    # "per byte" is b of time = a + b × size, not the log-log slope that the legend calls "slope"
    per_byte_text = (f" ({per_byte:.0f} ns per byte: b of a straight line a + b × size through its 10th "
                     "percentiles)") if per_byte > 0 else ""
    if ratio >= READER_RATIO:
        status: Status = "confirmed"
        lines.append(f"→ confirmed: for the same {int(largest):,}-byte line, recv(1) until the newline took "
                     f"{ratio:,.0f}x as long as the buffered line reader{per_byte_text}: one system call per byte")
    elif ratio >= READER_RATIO_FLOOR:
        status = "inconclusive"
        lines.append(f"→ inconclusive: recv(1) took only {ratio:.1f}x as long as the buffered line reader at "
                     f"{int(largest):,} bytes, less than the {READER_RATIO:g}x one system call per byte should "
                     "give; something slowed the buffered reader too (a busy machine?): run the cell again, "
                     "or time longer lines")
    else:
        status = "contradicted"
        lines.append(f"→ contradicted: recv(1) took {ratio:.1f}x as long as the buffered line reader at "
                     f"{int(largest):,} bytes: the per-byte system calls did not show")
    return ReaderVerdict(status, "\n".join(lines), ratio)


def _fmt_us(ns: float) -> str:
    return "—" if math.isnan(ns) else (f"{ns / 1e3:,.1f} µs" if ns < 1e6 else f"{ns / 1e6:,.2f} ms")
