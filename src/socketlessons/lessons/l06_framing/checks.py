"""Checkers of lesson 06: ``read_lines`` and ``read_message`` against glued and dribbled streams.

Each case starts a ``ScriptedServer`` that sends a known stream cut a known way (all at once,
in listed sizes), then half-closes; the checker connects and hands the connected socket to the
learner's function, and compares what came back with what was sent, byte for byte. (``recv_exactly``
is lesson 01's exercise; here it is a tool.) Every wrong result is matched against what each
typical mistake would have returned, so the hint names the mistake that was made:

``check_read_lines``: one ``recv`` taken as one line (glued lines); each ``recv`` split on its own
(a line cut between two ``recv`` calls comes out as two); a loop bounded by a count (stops
early, or raises EOFError while the peer is still sending); bytes that are not UTF-8 decoded and
encoded again; empty lines dropped; ``splitlines()`` (cuts at ``b"\\r"`` too); stripped lines; a cut-off
last line returned as if whole; a buffer kept at module level (the next socket starts with the
last one's leftover).

``check_read_message``: a single ``recv`` for the header or the body; one ``recv`` taken as one
message (glued); reading ahead with a big ``recv`` or ``makefile()`` (the next call finds the
socket empty); stripped bytes; a stream that ends inside a message returned short or looped on
forever; the machine's byte order instead of network order (the same messages are sent again
with a native header: if that passes, the hint names the byte order); a module-level buffer
that hands one connection's bytes to the next.

Dribbled cases pause between pieces long enough (about 0.6 s in all) that a function spinning
on a non-blocking socket is seen by the shared busy-loop check of ``checks._core``.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker
from ...framing import encode_frame
from .demos import ScriptedServer, cut

__all__ = ["check_read_lines", "check_read_message"]

#: The learner's socket times out after this long, so even a function that ignores the
#: checker's deadline ends; the deadline itself is shorter.
SOCKET_TIMEOUT_S = 4.0
DEADLINE_S = 2.0
#: How long a dribbled stream takes to arrive, in all: each piece is its own segment, and a
#: function spinning on a non-blocking socket spins long enough for the busy-loop check (at
#: 0.35 s a spinner used 0.14-0.21 s of CPU at load 9 on 2 cores, and 1 run in 20 slipped under
#: the check's 0.08 s; 0.6 s doubles the margin).
DRIBBLE_S = 0.6
#: ...with a longer pause after the first piece, so that a single recv returns that piece alone
#: even when a busy machine makes the reader late (a header read with one recv(4) must fail).
FIRST_PAUSE_S = 0.06
#: Between lines that arrive one per piece: long enough that each recv returns one line alone.
PAUSE_BETWEEN_LINES_S = 0.05

GLUED_LINES_HINT = ("one recv can hold several lines, or part of one: collect the bytes in a buffer and cut "
                    "it at every b'\\n' (buffer.split(b'\\n'))")
CARRY_HINT = ("a recv can end in the middle of a line: keep the piece after the last b'\\n' and put it in "
              "front of the next recv's bytes (DelimitedDecoder does exactly this)")
STOP_EARLY_HINT = ("your function stopped reading before the peer closed: loop until recv returns b'', not a "
                   "fixed number of times (you cannot know in advance how many pieces will come)")
EMPTY_LINE_HINT = "an empty line is a message too: keep the b'' between two b'\\n' (do not filter it out)"
CR_HINT = ("cut only at b'\\n': splitlines() also cuts at b'\\r' (and drops it), but here b'\\r' is part of "
           "the message; use buffer.split(b'\\n')")
DECODE_HINT = ("a line is bytes, not text: do not decode and encode again (b'caf\\xe9' is not UTF-8, and "
               "errors='ignore' or 'replace' changes it); cut the bytes at b'\\n' and return them as they came")
STRIP_HINT = ("return each message's bytes exactly: do not strip() them; spaces, tabs and b'\\r' are part of "
              "the message")
LINES_EOF_HINT = ("loop until recv returns b'' (the peer closed); if bytes remain after the last b'\\n', the "
                  "last line was cut off: raise EOFError")
STATE_HINT = ("keep the buffer inside the function (a local variable): a module-level buffer or list outlives "
              "the call and hands one connection's bytes to the next")
HEADER_PIECES_HINT = ("the 4-byte header can arrive in pieces too: read it with recv_exactly(sock, 4), then the "
                      "body with recv_exactly(sock, length)")
BODY_PIECES_HINT = ("recv(n) returns what has arrived, maybe fewer than n bytes: read the body with "
                    "recv_exactly(sock, length), which loops until it has all of them")
GLUED_HINT = ("one recv can return several messages glued together: read the 4-byte header, then exactly "
              "that many bytes, and leave the rest in the socket for the next call")
READ_AHEAD_HINT = ("your first call read past the end of its message, so the next call found those bytes gone: "
                   "a big recv() or a makefile() reads ahead; read exactly 4 bytes, then exactly length bytes")
MSG_EOF_HINT = ("when recv returns b'' before the message is complete, the peer has closed: raise EOFError "
                "(recv_exactly does); a cut-off message must not pass for a whole one")
EOF_SPIN_HINT = ("recv returned b'' (the peer closed) and your loop kept calling it: stop at b'' and raise "
                 "EOFError")
EMPTY_END_HINT = ("an empty line (b'\\n' alone) is a message too, not the end of the stream: only recv "
                  "returning b'' (the peer closed) ends it")
DELIMITER_HINT = ("the b'\\n' belongs to neither line: return each line without it, and go on right after it "
                  "(buffer[i + 1:], or buffer.split(b'\\n'))")
EMPTY_STREAM_HINT = ("a stream that ends at once (the peer closed without sending) holds no lines: return []; "
                     "only bytes left after the last b'\\n' are a cut-off line")
PREFIX_SIZE_HINT = ("the header is exactly 4 bytes, an unsigned int in network byte order: "
                    "struct.unpack('!I', recv_exactly(sock, 4)); your function read a {size}-byte header "
                    "('{fmt}')")
LENGTH_HINT = ("the header counts the body's bytes only, not its own 4: read exactly length bytes after it")
EMPTY_MESSAGE_HINT = ("a header announcing 0 bytes is an empty message: return b''; only a connection that "
                      "closes before a header is complete is the end")
BYTES_HINT = "return the body as bytes, as it came (do not decode it): a message is bytes"
HEADER_IN_BODY_HINT = "return the body only: the 4-byte header frames the message but is not part of it"
UNPACK_TUPLE_HINT = ("struct.unpack always returns a tuple, even for one value: (length,) = "
                     "struct.unpack('!I', header), then read length bytes")
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
         calls: int = 1, pause: float | None = 0.001,
         unsent: list[int] | None = None) -> tuple[list[Any], BaseException | None]:
    """Serve ``payload`` cut into ``chunks``; call ``fn(sock)`` ``calls`` times on one connection.

    Returns the results so far and the exception that stopped the calls (``DidNotReturn`` if one
    did not return), never raising it: the checker decides what it means. ``unsent``, if given,
    receives how many bytes the server had not sent yet when the calls ended.
    """
    results: list[Any] = []
    dribbled = pause is None
    if pause is None:  # spread the pieces over DRIBBLE_S
        pause = DRIBBLE_S / max(1, len(cut(payload, chunks)) - 1)
    first = max(pause, FIRST_PAUSE_S) if dribbled else pause
    with ScriptedServer(payload, chunks=chunks, pause=pause, first_pause=first) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        server.reader = sock  # each piece waits until the learner has read the last: one piece per recv
        sock.settimeout(SOCKET_TIMEOUT_S)
        sock.connect(server.address)
        for _ in range(calls):
            try:
                results.append(call(fn, sock, timeout=DEADLINE_S, on_timeout=_kill(sock, server)))
            except (DidNotReturn, Exception) as exc:  # noqa: PERF203 - one call per case
                if unsent is not None:
                    unsent.append(len(payload) - server.bytes_sent)
                return results, exc
    return results, None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DidNotReturn):
        return f"did not return within {DEADLINE_S:g} s"
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return f"raised {name}: {exc}"


def _as_list(got: Any) -> list[bytes] | None:
    if not isinstance(got, (list, tuple)) or not all(isinstance(x, (bytes, bytearray)) for x in got):
        return None
    return [bytes(x) for x in got]


def _is_prefix(got: list[bytes], expected: list[bytes]) -> bool:
    """``got`` is what a reader that stopped early returns: the first lines, the last maybe cut."""
    if not got or len(got) > len(expected) or got == expected:
        return False
    *whole, last = got
    return whole == expected[: len(whole)] and expected[len(whole)].startswith(last)


def _not_utf8(data: bytes) -> bool:
    """Is ``data`` NOT valid UTF-8 (a line a decode/encode round trip changes)?"""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _lines_hint(got: list[bytes], expected: list[bytes], previous: list[bytes]) -> str:
    """The hint for the mistake that turns ``expected`` into ``got`` (``previous``: the last case's lines)."""
    stream = b"".join(m + b"\n" for m in expected)
    if previous and len(got) > len(expected) and got[: len(previous)] == previous:
        return STATE_HINT
    if got == stream.splitlines():
        return CR_HINT
    for strip in (bytes.strip, bytes.rstrip, bytes.lstrip, lambda m: m.rstrip(b"\r")):
        if got == [strip(m) for m in expected] or got == [strip(m) for m in expected if strip(m)]:
            return STRIP_HINT
    if got == [m for m in expected if m]:
        return EMPTY_LINE_HINT
    if sum(line[:1] == b"\n" or line[-1:] == b"\n" for line in got) >= max(1, len(got) // 2):
        return DELIMITER_HINT  # most lines begin or end with the newline that should have cut them
    if b"" in expected and got == expected[: expected.index(b"")]:
        return EMPTY_END_HINT
    if len(got) == len(expected) and all(_not_utf8(e) for g, e in zip(got, expected) if g != e):
        return DECODE_HINT
    if _is_prefix(got, expected):
        return STOP_EARLY_HINT
    if len(got) > len(expected):
        return CARRY_HINT
    return GLUED_LINES_HINT


#: Case 1, sent in one piece: an empty line, spaces, a tab, b"\r" inside and before the b"\n", 3,000 bytes,
#: bytes that are not UTF-8 (a line is bytes, not text: decoding and encoding again changes them).
GLUED_LINES = [b"GET /hello", b"", b"  PING  ", b"tab\there, a\rcarriage return inside", b"y" * 3000,
               b"not UTF-8: caf\xe9 \xff\xfe\x80", b"ends in CR\r"]
#: Case 2, arriving in pieces of 3, 7, 2, 11, 5, 1, then 13 bytes: more pieces than a fixed loop expects.
PIECES = [3, 7, 2, 11, 5, 1, 13]
PIECE_LINES = [b"alpha", b"beta gamma", b"a line long enough to be cut in several pieces",
               b"another one, cut up as well, of a few dozen bytes", b"z", b"the last line of this stream"]


@checker("read_lines", solution="read_lines")
def check_read_lines(read_lines: Callable[..., Any]) -> str:
    previous: list[bytes] = []
    for expected, chunks, pause, how in (
            (GLUED_LINES, "whole", 0.001, f"{len(GLUED_LINES)} lines sent in one piece"),
            (PIECE_LINES, PIECES, None, "lines arriving in pieces of 3, 7, 2, 11, 5, 1, 13… bytes")):
        unsent: list[int] = []
        got, error = _run(read_lines, b"".join(m + b"\n" for m in expected), chunks, pause=pause, unsent=unsent)
        if error is not None:
            hint = LINES_EOF_HINT if isinstance(error, DidNotReturn) else \
                (GLUED_LINES_HINT if chunks == "whole" else CARRY_HINT)
            if isinstance(error, UnicodeError):
                hint = DECODE_HINT
            elif isinstance(error, EOFError) and unsent and unsent[0] > 0:
                hint = STOP_EARLY_HINT  # "the stream ended" while the server was still sending it
            raise NotYet(f"on {how}, your function {_describe(error)}", hint)
        lines = _as_list(got[0])
        if lines is None:
            raise NotYet(f"expected a list of bytes, got {got[0]!r:.60}",
                         "return a list of bytes, one item per line, without the b'\\n'")
        if lines != expected:
            raise NotYet(f"on {how}, expected {len(expected)} lines {[m[:14] for m in expected]}…; you returned "
                         f"{len(lines)}: {[m[:14] for m in lines][:8]}", _lines_hint(lines, expected, previous))
        previous = expected

    one_each = [b"first", b"second, after a pause", b"third"]
    got, error = _run(read_lines, b"".join(m + b"\n" for m in one_each), [len(m) + 1 for m in one_each],
                      pause=PAUSE_BETWEEN_LINES_S)
    how = "three lines, each arriving alone (a recv that ends exactly at a b'\\n' while more lines follow)"
    if error is not None or _as_list(got[0]) != one_each:
        shown = _describe(error) if error is not None else f"returned {got[0]!r:.80}"
        lines = _as_list(got[0]) if error is None else None
        raise NotYet(f"on {how}, your function {shown}",
                     _lines_hint(lines, one_each, []) if lines is not None else STOP_EARLY_HINT)

    got, error = _run(read_lines, b"", "whole")
    if error is not None or _as_list(got[0]) != []:
        shown = _describe(error) if error is not None else f"returned {got[0]!r:.60}"
        raise NotYet(f"on a stream that ends at once (the peer closed without sending), your function {shown}",
                     EMPTY_STREAM_HINT)

    got, error = _run(read_lines, b"complete\nincompl", "whole")
    early = "the stream ended in the middle of a line (b'complete\\nincompl') and your function"
    if error is None:
        raise NotYet(f"{early} returned {got[0]!r:.60}", LINES_EOF_HINT)
    if not isinstance(error, (EOFError, ConnectionError)):
        raise NotYet(f"{early} {_describe(error)}", LINES_EOF_HINT)

    got, error = _run(read_lines, b"fresh\n", "whole")
    if error is not None or _as_list(got[0]) != [b"fresh"]:
        shown = _describe(error) if error is not None else f"returned {got[0]!r:.60}"
        raise NotYet(f"on a new connection that sent only b'fresh\\n', after the cut-off stream, your function "
                     f"{shown}", STATE_HINT)
    return ("glued lines came apart with every byte kept, cut lines came together, lines arriving one by one "
            "were all read, an empty stream gave [], a cut-off last line raised EOFError, and a new connection "
            "started afresh")


def _frames(messages: Sequence[bytes], header: struct.Struct) -> bytes:
    return b"".join(encode_frame(m, header) for m in messages)


def _byte_order_hint_or(read_message: Callable[..., Any], messages: Sequence[bytes], hint: str) -> str:
    """``ORDER_HINT`` if the learner's function reads the machine's native headers right."""
    native = struct.Struct("=I")
    if native.pack(5) == struct.pack("!I", 5):
        return hint  # a big-endian machine: native and network order agree
    got, error = _run(read_message, _frames(messages, native), "whole", len(messages))
    if error is None and got == list(messages):
        little = int.from_bytes(struct.pack("!I", 5), sys.byteorder)
        return ORDER_HINT.format(order=sys.byteorder, wrong=little)
    return hint


#: Headers a learner may have read instead of 4 bytes in network order: (struct format, how the
#: hint names it). An 8-byte native header is struct's 'L' on 64-bit Linux and macOS.
OTHER_HEADERS = [("!H", "'!H', 2 bytes"), ("!Q", "'!Q', 8 bytes"), ("=Q", "'L' or 'Q', 8 bytes")]


def _format_hint_or(read_message: Callable[..., Any], messages: Sequence[bytes], hint: str) -> str:
    """A hint naming the header the learner's function reads right, if it is not the exercise's:
    another size (2 or 8 bytes), or a length that counts the header's own 4 bytes."""
    for fmt, named in OTHER_HEADERS:
        header = struct.Struct(fmt)
        got, error = _run(read_message, _frames(messages, header), "whole", len(messages))
        if error is None and got == list(messages):
            return PREFIX_SIZE_HINT.format(size=header.size, fmt=named)
    counted = b"".join(struct.pack("!I", len(m) + 4) + m for m in messages)
    got, error = _run(read_message, counted, "whole", len(messages))
    if error is None and got == list(messages):
        return LENGTH_HINT
    return hint


def _message_hint(got: list[Any], error: BaseException | None, expected: Sequence[bytes], whole: bool) -> str:
    """The hint for the mistake that turns ``expected`` into ``got`` (then ``error``)."""
    if isinstance(error, (TypeError, ValueError)) and ("tuple" in str(error) or ",)" in str(error)):
        return UNPACK_TUPLE_HINT  # recv_exactly(sock, (5,)) or sock.recv((5,))
    bad = next((i for i, (g, e) in enumerate(zip(got, expected)) if g != e), None)
    if bad is None:  # every message returned was right: the next call raised or did not return
        if isinstance(error, EOFError) and len(got) < len(expected) and expected[len(got)] == b"":
            return EMPTY_MESSAGE_HINT  # a length of 0 taken for the end of the stream
        if got:
            return READ_AHEAD_HINT  # an earlier call took this message's bytes with its own
        return HEADER_PIECES_HINT if isinstance(error, struct.error) or not whole else GLUED_HINT
    g, e = got[bad], expected[bad]
    if isinstance(g, str):
        return BYTES_HINT
    if isinstance(g, (bytes, bytearray)):
        g = bytes(g)
        if len(g) == len(e) + 4 and g.endswith(e):
            return HEADER_IN_BODY_HINT
        if len(g) > len(e) and g.startswith(e):
            return GLUED_HINT
        if g in (e.strip(), e.rstrip(), e.lstrip()):
            return STRIP_HINT
        if len(g) < len(e) and e.startswith(g):
            return BODY_PIECES_HINT
    return GLUED_HINT if whole else HEADER_PIECES_HINT


#: Case 1, sent in one piece: glued; an empty message; spaces and b"\r\n" that must survive.
GLUED_MESSAGES = [b"hello", b"", b"  framing works \r\n"]
#: Case 2, arriving in pieces of 1, 2, 1, 3, 5, 8, 13, 13… bytes: the header itself in three.
DRIBBLED = [b"one byte at a time ", b"x" * 300]
DRIBBLE_PIECES = [1, 2, 1, 3, 5, 8, 13]


@checker("read_message", solution="read_message")
def check_read_message(read_message: Callable[..., Any]) -> str:
    network = struct.Struct("!I")
    for expected, chunks, pause, how in (
            (GLUED_MESSAGES, "whole", 0.001, f"{len(GLUED_MESSAGES)} messages sent in one piece ({GLUED_MESSAGES!r})"),
            (DRIBBLED, DRIBBLE_PIECES, None, "a stream arriving in pieces of 1, 2, 1, 3, 5, 8, 13 bytes "
             f"({DRIBBLED[0]!r} and 300 × b'x')")):
        got, error = _run(read_message, _frames(expected, network), chunks, len(expected), pause=pause)
        if error is not None or [bytes(g) if isinstance(g, (bytes, bytearray)) else g for g in got] != expected:
            hint = _message_hint(got, error, expected, chunks == "whole")
            if chunks == "whole" and hint in (GLUED_HINT, HEADER_PIECES_HINT, BODY_PIECES_HINT, READ_AHEAD_HINT):
                hint = _format_hint_or(read_message, expected, _byte_order_hint_or(read_message, expected, hint))
            shown = _describe(error) if error is not None else f"returned {got!r:.80}"
            raise NotYet(f"on {how}, your function {shown}", hint)

    first, second = [b"from the first connection", b"second", b"left unread"], [b"from a new connection"]
    got, error = _run(read_message, _frames(first, network), "whole", 2)
    if error is None:
        got, error = _run(read_message, _frames(second, network), "whole", 1)
    if error is not None or got != second:
        shown = _describe(error) if error is not None else f"returned {got[0]!r:.60}"
        raise NotYet(f"after reading 2 of 3 messages on one connection, on a new connection that sent "
                     f"{second[0]!r} your function {shown}", STATE_HINT)

    cut_off = network.pack(10) + b"only"
    got, error = _run(read_message, cut_off, "whole")
    early = "the stream ended inside a message (a header announcing 10 bytes, then b'only') and your function"
    if error is None:
        raise NotYet(f"{early} returned {got[0]!r:.40}", MSG_EOF_HINT)
    if isinstance(error, DidNotReturn):
        raise NotYet(f"{early} {_describe(error)}", EOF_SPIN_HINT)
    if not isinstance(error, (EOFError, ConnectionError)):
        raise NotYet(f"{early} {_describe(error)}", MSG_EOF_HINT)
    return ("three glued messages came apart with every byte kept, two dribbled ones came together, a new "
            "connection started afresh, and a cut-off message raised EOFError")
