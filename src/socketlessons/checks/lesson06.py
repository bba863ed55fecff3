"""Checkers of lesson 06: ``recv_exactly`` and ``read_message`` against glued and dribbled streams.

Each case starts a ``ScriptedServer`` that sends a known stream cut a known way (all at once,
byte by byte, in listed sizes), connects, and hands the connected socket to the learner's
function. ``check_recv_exactly`` catches: a single ``recv`` (one byte of a dribbled stream),
asking ``recv`` for more than is missing (eats the next message of a glued stream), a loop that
spins forever when the stream ends early, and returning a short result instead of raising.
``check_read_message`` catches: a single ``recv`` for the header or the body, assuming one
``recv`` is one message, and the wrong ``struct`` byte order: when a case fails, the same
messages are sent again with the machine's native header (``"I"``), and if that passes the
hint names the byte order.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..framing import encode_frame
from ..lessons.framing import ScriptedServer
from ._core import NotYet, _Timeout, call, checker, expect

__all__ = ["check_read_message", "check_recv_exactly"]

#: The learner's socket times out after this long, so even a function that ignores the
#: checker's deadline ends; the deadline itself is shorter.
SOCKET_TIMEOUT_S = 4.0
DEADLINE_S = 2.0

LOOP_HINT = "one recv returns what has arrived so far (maybe 1 byte): loop until you have n bytes"
OVERREAD_HINT = ("ask recv for at most the bytes still missing, recv(n - len(data)): more would eat the start "
                 "of the next message")
EOF_HINT = ("when recv returns b'' the peer has closed: raise EOFError there (a loop that goes on never ends, "
            "and a short result looks like a whole message)")
HEADER_PIECES_HINT = ("the 4-byte header can arrive in pieces too: read it with recv_exactly(sock, 4), then the "
                      "body with recv_exactly(sock, length)")
GLUED_HINT = ("one recv can return several messages glued together: read the 4-byte header, then exactly "
              "that many bytes, and leave the rest in the socket for the next call")
ORDER_HINT = ("the header is in network byte order: struct.unpack('!I', header); a bare 'I' uses this "
              "machine's order ({order}-endian) and reads 5 as {wrong:,}")


def _kill(sock: socket.socket, server: ScriptedServer) -> Callable[[], None]:
    """On a missed deadline: wake a blocked recv, and make a spinning loop fail (closed socket)."""
    def stop() -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        server.stop()
    return stop


def _run(fn: Callable[..., Any], payload: bytes, chunks: str | Sequence[int],
         calls: Sequence[tuple[Any, ...]]) -> tuple[list[Any], BaseException | None]:
    """Serve ``payload`` cut into ``chunks``; call ``fn(sock, *args)`` for each args in ``calls``.

    Returns the results so far and the exception that stopped the calls (``_Timeout`` if one
    did not return), never raising it: the checker decides what it means.
    """
    results: list[Any] = []
    with ScriptedServer(payload, chunks=chunks, pause=0.001) as server, \
            socket.create_connection(server.address, timeout=SOCKET_TIMEOUT_S) as sock:
        for args in calls:
            try:
                results.append(call(fn, sock, *args, timeout=DEADLINE_S, on_timeout=_kill(sock, server)))
            except (_Timeout, Exception) as exc:  # noqa: PERF203 - one call per case
                return results, exc
    return results, None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Timeout):
        return f"did not return within {DEADLINE_S:g} s"
    return f"raised {type(exc).__name__}: {exc}"


@checker("recv_exactly", solution="recv_exactly")
def check_recv_exactly(recv_exactly: Callable[..., Any]) -> str:
    stream = b"0123456789abcdef"
    got, error = _run(recv_exactly, stream, "bytes", [(10,), (6,)])
    if error is not None and not got:
        raise NotYet(f"on a stream arriving one byte at a time, asked for 10 bytes, your function "
                     f"{_describe(error)}", LOOP_HINT)
    expect(isinstance(got[0], (bytes, bytearray)), f"expected bytes, got {got[0]!r:.40}",
           "return the bytes you received, joined: b''.join(chunks) or bytes(buffer)")
    expect(got[0] == stream[:10], f"asked for 10 bytes arriving one at a time, got {got[0]!r}",
           OVERREAD_HINT if len(got[0]) > 10 else LOOP_HINT)
    expect(error is None, f"then asked for the last 6, your function {_describe(error)}" if error else "", LOOP_HINT)
    expect(got[1] == stream[10:], f"then asked for the last 6, got {got[1]!r}", LOOP_HINT)

    glued = b"hello" + b"glued-stream!!!"
    got, error = _run(recv_exactly, glued, "whole", [(5,), (15,)])
    if error is not None and not got:
        raise NotYet(f"on 20 bytes sent at once, asked for 5, your function {_describe(error)}", OVERREAD_HINT)
    expect(got[0] == b"hello", f"asked for 5 of 20 bytes sent at once, got {len(got[0])} bytes: {got[0]!r:.40}",
           OVERREAD_HINT)
    expect(error is None, f"then asked for the other 15, your function {_describe(error)}" if error else "",
           OVERREAD_HINT)
    expect(got[1] == glued[5:], f"then asked for the other 15, got {got[1]!r:.60}", OVERREAD_HINT)

    got, error = _run(recv_exactly, b"abc", "whole", [(10,)])
    early = "the stream ended after 3 of 10 bytes and your function"
    if error is None:
        raise NotYet(f"{early} returned {got[0]!r:.40}", EOF_HINT)
    expect(isinstance(error, (EOFError, ConnectionError)), f"{early} {_describe(error)}" if error else "", EOF_HINT)
    return "exact counts through a dribble and through glued bytes, and EOFError when the stream ends early"


def _frames(messages: Sequence[bytes], header: struct.Struct) -> bytes:
    return b"".join(encode_frame(m, header) for m in messages)


def _byte_order_hint_or(read_message: Callable[..., Any], messages: Sequence[bytes], hint: str) -> str:
    """``ORDER_HINT`` if the learner's function reads the machine's native headers right."""
    native = struct.Struct("=I")
    if native.pack(5) == struct.pack("!I", 5):
        return hint  # a big-endian machine: native and network order agree
    got, error = _run(read_message, _frames(messages, native), "whole", [()] * len(messages))
    if error is None and got == list(messages):
        little = int.from_bytes(struct.pack("!I", 5), sys.byteorder)
        return ORDER_HINT.format(order=sys.byteorder, wrong=little)
    return hint


@checker("read_message", solution="read_message")
def check_read_message(read_message: Callable[..., Any]) -> str:
    glued = [b"hello", b"", b"framing works"]
    got, error = _run(read_message, _frames(glued, struct.Struct("!I")), "whole", [()] * len(glued))
    if error is not None or got != glued:
        first = got[0] if got else None
        hint = GLUED_HINT if isinstance(first, (bytes, bytearray)) and len(first) > len(glued[0]) else HEADER_PIECES_HINT
        hint = _byte_order_hint_or(read_message, glued, hint)
        shown = _describe(error) if error is not None else f"returned {got!r:.80}"
        raise NotYet(f"3 messages sent in one piece ({glued!r}); your function {shown}", hint)

    dribbled = [b"one byte at a time", b"x" * 300]
    got, error = _run(read_message, _frames(dribbled, struct.Struct("!I")), [1, 2, 1, 3, 5, 8, 13],
                      [()] * len(dribbled))
    if error is not None:
        raise NotYet(f"on a stream arriving in pieces of 1, 2, 1, 3, 5, 8, 13 bytes your function "
                     f"{_describe(error)}", HEADER_PIECES_HINT)
    expect(got == dribbled, f"on a stream arriving in pieces, expected {dribbled[0]!r} and 300 × b'x', got "
           f"{got[0]!r:.40} and {len(got[1]) if len(got) > 1 else 0} bytes", HEADER_PIECES_HINT)
    return "three glued messages came apart, and two dribbled ones came together"
