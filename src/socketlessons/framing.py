"""Message framing on a TCP byte stream: delimiters, length prefixes, a tiny protocol.

TCP delivers a stream of bytes, not messages: two ``send`` calls may arrive in one ``recv``
(glued) and one ``send`` may need several (split). A protocol therefore marks where each
message ends. Two ways are shown here:

* a **delimiter** (``b"\\n"``): simple and human-readable, but the delimiter must never occur
  inside a message;
* a **length prefix**: a fixed-size header, packed with ``struct`` in network byte order
  (``"!I"``: 4 bytes, big-endian, unsigned), then exactly that many bytes.

Rules of this module (the "bring your own I/O" style of h11):

* the decoders are pure: ``feed(chunk)`` returns the messages completed so far and keeps the
  rest, so they give the same messages however the stream was cut (tests check this with
  random cuts);
* the socket functions (``recv_exactly``, ``send_message``, ``recv_message``, ``request``)
  touch only the socket they are given, and never wait forever unless that socket does
  (give it a timeout);
* sizes are bounded (``MAX_MESSAGE``) so a corrupt header cannot make a reader allocate 4 GiB.

Example::

    >>> frames = encode_frame(b"hello") + encode_frame(b"world")
    >>> decoder = LengthPrefixDecoder()
    >>> decoder.feed(frames[:7]), decoder.feed(frames[7:])
    ([], [b'hello', b'world'])

Used in 06_framing.
"""

from __future__ import annotations

import socket
import struct

__all__ = [
    "HEADER",
    "MAX_MESSAGE",
    "DelimitedDecoder",
    "FramingError",
    "LengthPrefixDecoder",
    "ProtocolError",
    "answer",
    "encode_frame",
    "encode_line",
    "encode_request",
    "parse_request",
    "parse_response",
    "recv_exactly",
    "recv_message",
    "recv_up_to",
    "request",
    "send_message",
    "split_delimited",
    "split_frames",
]

#: The length header: network byte order ("!"), unsigned 32-bit ("I"): always 4 bytes, the
#: same on every machine. A bare "I" would use the machine's own byte order and size.
HEADER = struct.Struct("!I")
#: Largest message a reader accepts (bytes). A bound turns a corrupt or hostile header into a
#: clear error instead of a 4 GiB allocation; 16 MiB is far above anything the lessons send.
MAX_MESSAGE = 16 * 1024 * 1024
#: Bytes asked per ``recv`` by ``recv_exactly`` at most: large reads cost no more than small
#: ones, but a bound keeps one call's memory in check.
RECV_CHUNK = 64 * 1024


class FramingError(ValueError):
    """A message cannot be framed or a frame cannot be decoded (too long, bad delimiter…)."""


class ProtocolError(Exception):
    """The server answered a request with ``ERR …``; the message is the server's reason."""


def _check_bytes(data: object, what: str = "message") -> bytes:
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes, not str: encode it first ({what}.encode())")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, not {type(data).__name__}")
    return bytes(data)


def _check_max(max_size: int) -> int:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise ValueError(f"max_size must be a non-negative int (bytes), got {max_size!r}")
    return max_size


# ---- delimiters ------------------------------------------------------------------------------


def encode_line(message: bytes, delimiter: bytes = b"\n") -> bytes:
    """``message`` followed by ``delimiter``; refuses a message that contains the delimiter.

    Raises:
        FramingError: the delimiter occurs inside the message (the reader would cut it in two:
            escape it, or use a length prefix instead).
    """
    message, delimiter = _check_bytes(message), _check_bytes(delimiter, "delimiter")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    if delimiter in message:
        raise FramingError(f"the message contains the delimiter {delimiter!r}: a reader would cut it "
                           "in two; escape it or use a length prefix (encode_frame)")
    return message + delimiter


def split_delimited(buffer: bytes, delimiter: bytes = b"\n") -> tuple[list[bytes], bytes]:
    """Cut ``buffer`` at each delimiter: ``(complete messages, the incomplete rest)``."""
    buffer, delimiter = _check_bytes(buffer, "buffer"), _check_bytes(delimiter, "delimiter")
    if not delimiter:
        raise ValueError("delimiter must not be empty")
    *messages, rest = buffer.split(delimiter)
    return messages, rest


class DelimitedDecoder:
    """Incremental delimiter splitter: ``feed(chunk)`` returns the messages completed so far.

    Args:
        delimiter: the bytes that end each message.
        max_size: longest message accepted; a longer one raises ``FramingError`` (a peer that
            never sends the delimiter would otherwise fill memory).
    """

    def __init__(self, delimiter: bytes = b"\n", max_size: int = MAX_MESSAGE) -> None:
        self.delimiter = _check_bytes(delimiter, "delimiter")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        self.max_size = _check_max(max_size)
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return every message it completed, in order."""
        # Search only where a new delimiter can be: the old tail plus the new bytes.
        start = max(0, len(self._buffer) - len(self.delimiter) + 1)
        self._buffer += _check_bytes(chunk, "chunk")
        messages = []
        while (end := self._buffer.find(self.delimiter, start)) >= 0:
            messages.append(bytes(self._buffer[:end]))
            del self._buffer[: end + len(self.delimiter)]
            start = 0
        if len(self._buffer) > self.max_size:
            raise FramingError(f"no delimiter in the last {len(self._buffer)} bytes (max_size={self.max_size})")
        return messages


# ---- length prefixes -------------------------------------------------------------------------


def encode_frame(message: bytes, header: struct.Struct = HEADER) -> bytes:
    """``header.pack(len(message)) + message``: a length-prefixed frame."""
    message = _check_bytes(message)
    try:
        return header.pack(len(message)) + message
    except struct.error as exc:
        raise FramingError(f"a {len(message)}-byte message does not fit the header "
                           f"{header.format!r}: {exc}") from exc


def _frame_length(header_bytes: bytes, header: struct.Struct, max_size: int) -> int:
    (length,) = header.unpack(header_bytes)
    if length > max_size:
        raise FramingError(f"header announces {length} bytes, more than max_size={max_size}: is the "
                           f"header's byte order right? (network order is '!', e.g. '!I')")
    return int(length)


def split_frames(buffer: bytes, header: struct.Struct = HEADER,
                 max_size: int = MAX_MESSAGE) -> tuple[list[bytes], bytes]:
    """Cut ``buffer`` into length-prefixed frames: ``(complete messages, the incomplete rest)``."""
    decoder = LengthPrefixDecoder(header, max_size)
    messages = decoder.feed(buffer)
    return messages, decoder.rest


class LengthPrefixDecoder:
    """Incremental length-prefix decoder: ``feed(chunk)`` returns the messages completed so far."""

    def __init__(self, header: struct.Struct = HEADER, max_size: int = MAX_MESSAGE) -> None:
        if not isinstance(header, struct.Struct):
            raise TypeError(f"header must be a struct.Struct such as struct.Struct('!I'), "
                            f"not {type(header).__name__}")
        self.header = header
        self.max_size = _check_max(max_size)
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    @property
    def rest(self) -> bytes:
        """The bytes of the incomplete message (header included), if any."""
        return bytes(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return every message it completed, in order."""
        self._buffer += _check_bytes(chunk, "chunk")
        messages = []
        size = self.header.size
        while len(self._buffer) >= size:
            length = _frame_length(bytes(self._buffer[:size]), self.header, self.max_size)
            if len(self._buffer) < size + length:
                break
            messages.append(bytes(self._buffer[size : size + length]))
            del self._buffer[: size + length]
        return messages


# ---- on a socket -----------------------------------------------------------------------------


def recv_up_to(sock: socket.socket, n: int) -> bytes:
    """Receive ``n`` bytes from ``sock``, or fewer if the peer closes the connection first.

    For callers that decide themselves what a short read means (a checker reporting "the server
    closed early", a demo printing what came back). ``recv_exactly`` is the strict form.

    Raises:
        TimeoutError: the socket has a timeout and it expired.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int (bytes), got {n!r}")
    buffer = bytearray()
    while len(buffer) < n:
        chunk = sock.recv(min(n - len(buffer), RECV_CHUNK))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Receive exactly ``n`` bytes from ``sock``, however many ``recv`` calls that takes.

    ``recv(n)`` returns what has arrived so far (at least one byte), so one call is not enough.

    Raises:
        EOFError: the peer closed the connection before ``n`` bytes arrived (a cut-off message
            must not look like a whole one).
        TimeoutError: the socket has a timeout and it expired.
    """
    data = recv_up_to(sock, n)
    if len(data) < n:
        raise EOFError(f"the peer closed the connection after {len(data)} of {n} bytes")
    return data


def send_message(sock: socket.socket, message: bytes, header: struct.Struct = HEADER) -> None:
    """Send one length-prefixed message with ``sendall`` (``send`` may send only part)."""
    sock.sendall(encode_frame(message, header))


def recv_message(sock: socket.socket, header: struct.Struct = HEADER,
                 max_size: int = MAX_MESSAGE) -> bytes | None:
    """Receive one length-prefixed message; ``None`` if the peer closed between messages.

    Raises:
        EOFError: the peer closed in the middle of a message.
        FramingError: the header announces more than ``max_size`` bytes.
    """
    first = sock.recv(header.size)
    if not first:
        return None  # a clean end: the stream stopped at a message boundary
    head = first + recv_exactly(sock, header.size - len(first))
    return recv_exactly(sock, _frame_length(head, header, max_size))


# ---- a tiny request/response protocol ----------------------------------------------------------
#
# Each request and each response is one length-prefixed message. A request is an ASCII command,
# optionally a space and an argument: b"UPPER hello". A response is b"OK " + result or
# b"ERR " + reason. The commands are small on purpose: the protocol is the point.

COMMANDS = {
    b"PING": lambda arg: b"PONG",
    b"ECHO": lambda arg: arg,
    b"UPPER": lambda arg: arg.upper(),
    b"REVERSE": lambda arg: arg[::-1],
    b"LEN": lambda arg: str(len(arg)).encode(),
}


def encode_request(command: str | bytes, argument: bytes = b"") -> bytes:
    """The body of a request (frame it with ``encode_frame`` or ``send_message``)."""
    cmd = command.encode("ascii") if isinstance(command, str) else _check_bytes(command, "command")
    if not cmd or b" " in cmd:
        raise ValueError(f"command must be one non-empty word such as 'UPPER', got {command!r}")
    argument = _check_bytes(argument, "argument")
    return cmd.upper() + (b" " + argument if argument else b"")


def parse_request(body: bytes) -> tuple[bytes, bytes]:
    """``(command, argument)`` of a request body."""
    command, _, argument = _check_bytes(body, "body").partition(b" ")
    return command.upper(), argument


def answer(body: bytes) -> bytes:
    """The response body the protocol server gives to a request body (pure: no I/O)."""
    command, argument = parse_request(body)
    handler = COMMANDS.get(command)
    if handler is None:
        known = ", ".join(c.decode() for c in COMMANDS)
        return b"ERR unknown command " + command[:40] + b"; known: " + known.encode()
    return b"OK " + handler(argument)


def parse_response(body: bytes) -> bytes:
    """The result carried by a response body; raises ``ProtocolError`` for ``ERR …``."""
    body = _check_bytes(body, "body")
    if body.startswith(b"OK "):
        return body[3:]
    if body.startswith(b"ERR "):
        raise ProtocolError(body[4:].decode("utf-8", "replace"))
    raise FramingError(f"a response starts with b'OK ' or b'ERR ', got {body[:20]!r}")


def request(sock: socket.socket, command: str | bytes, argument: bytes = b"") -> bytes:
    """Send one request and return the result of its response (one round trip).

    Raises:
        ProtocolError: the server answered ``ERR``.
        EOFError: the server closed the connection before answering.
    """
    send_message(sock, encode_request(command, argument))
    body = recv_message(sock)
    if body is None:
        raise EOFError("the server closed the connection without answering")
    return parse_response(body)
