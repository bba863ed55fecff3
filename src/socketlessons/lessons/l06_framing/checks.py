"""Checkers of lesson 06: ``read_lines`` and ``read_message`` against glued and dribbled streams.

Each case starts a ``ScriptedServer`` that sends a known stream cut a known way (all at once,
byte by byte, in listed sizes), then half-closes; the checker connects and hands the connected
socket to the learner's function. (``recv_exactly`` is lesson 01's exercise; here it is a tool.)
``check_read_lines`` catches: one ``recv`` taken as one message (glued lines), splitting each
``recv`` on its own (a line cut between two ``recv`` calls comes out as two), dropping empty
lines, and a cut-off last line returned as if it were whole.
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

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...framing import encode_frame
from .demos import ScriptedServer

__all__ = ["check_read_lines", "check_read_message"]

#: The learner's socket times out after this long, so even a function that ignores the
#: checker's deadline ends; the deadline itself is shorter.
SOCKET_TIMEOUT_S = 4.0
DEADLINE_S = 2.0

GLUED_LINES_HINT = ("one recv can hold several lines, or part of one: collect the bytes in a buffer and cut "
                    "it at every b'\\n' (buffer.split(b'\\n'))")
CARRY_HINT = ("a recv can end in the middle of a line: keep the piece after the last b'\\n' and put it in "
              "front of the next recv's bytes (DelimitedDecoder does exactly this)")
EMPTY_LINE_HINT = "an empty line is a message too: keep the b'' between two b'\\n' (do not filter it out)"
LINES_EOF_HINT = ("loop until recv returns b'' (the peer closed); if bytes remain after the last b'\\n', the "
                  "last line was cut off: raise EOFError")
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

    Returns the results so far and the exception that stopped the calls (``DidNotReturn`` if one
    did not return), never raising it: the checker decides what it means.
    """
    results: list[Any] = []
    with ScriptedServer(payload, chunks=chunks, pause=0.001) as server, \
            socket.create_connection(server.address, timeout=SOCKET_TIMEOUT_S) as sock:
        for args in calls:
            try:
                results.append(call(fn, sock, *args, timeout=DEADLINE_S, on_timeout=_kill(sock, server)))
            except (DidNotReturn, Exception) as exc:  # noqa: PERF203 - one call per case
                return results, exc
    return results, None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DidNotReturn):
        return f"did not return within {DEADLINE_S:g} s"
    return f"raised {type(exc).__name__}: {exc}"


@checker("read_lines", solution="read_lines")
def check_read_lines(read_lines: Callable[..., Any]) -> str:
    glued = [b"GET /hello", b"", b"PING", b"y" * 3000]
    got, error = _run(read_lines, b"".join(m + b"\n" for m in glued), "whole", [()])
    if error is not None:
        hint = LINES_EOF_HINT if isinstance(error, DidNotReturn) else GLUED_LINES_HINT
        raise NotYet(f"on {len(glued)} lines sent in one piece, your function {_describe(error)}", hint)
    expect(isinstance(got[0], list), f"expected a list of messages, got {type(got[0]).__name__}",
           "return a list of bytes, one item per line, without the b'\\n'")
    lines = list(got[0])
    expect(lines == glued, f"{len(glued)} lines sent in one piece (one of them empty, one of 3000 bytes); you "
           f"returned {len(lines)} item(s): {[bytes(x)[:12] for x in lines]}",
           EMPTY_LINE_HINT if lines == [m for m in glued if m] else GLUED_LINES_HINT)

    pieces = [b"alpha", b"beta gamma", b"a line long enough to be cut in several pieces", b"z"]
    got, error = _run(read_lines, b"".join(m + b"\n" for m in pieces), [3, 7, 2, 11, 5, 1, 13], [()])
    if error is not None:
        raise NotYet(f"on lines arriving in pieces of 3, 7, 2, 11… bytes, your function {_describe(error)}",
                     CARRY_HINT)
    expect(list(got[0]) == pieces, f"on lines arriving in pieces, expected {pieces[:2]}…, got "
           f"{[bytes(x) for x in got[0]][:4]}", CARRY_HINT)

    got, error = _run(read_lines, b"complete\nincompl", "whole", [()])
    early = "the stream ended in the middle of a line (b'complete\\nincompl') and your function"
    if error is None:
        raise NotYet(f"{early} returned {got[0]!r:.60}", LINES_EOF_HINT)
    expect(isinstance(error, (EOFError, ConnectionError)), f"{early} {_describe(error)}", LINES_EOF_HINT)
    return "glued lines came apart, cut lines came together, and a cut-off last line raised EOFError"


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
