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
* ``cut`` is the pure function deciding the pieces (the tests and the notebook use it too).

Used in 06_framing and by ``checks.lesson06``.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from typing import Any

from ..framing import DelimitedDecoder, LengthPrefixDecoder, answer, encode_frame
from ..servers import TCPServer
from ..servers._tcp import ConnectionStats

__all__ = ["CHUNKINGS", "LateReaderServer", "ProtocolServer", "ScriptedServer", "cut", "decode_chunks"]

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
