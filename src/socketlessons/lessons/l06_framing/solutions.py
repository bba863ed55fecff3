"""Reference solutions of lesson 06 (framing)."""

from __future__ import annotations

import socket
import struct

from ..l01_client.solutions import recv_exactly  # lesson 01's exercise, a tool here


def read_lines(sock: socket.socket) -> list[bytes]:
    """Every b"\\n"-terminated message until the peer closes; EOFError if the last one is cut off."""
    lines: list[bytes] = []
    buffer = b""
    while chunk := sock.recv(4096):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")  # the piece after the last b"\n" waits for more
        lines.extend(complete)
    if buffer:
        raise EOFError(f"the stream ended in the middle of a line: {buffer[:20]!r}")
    return lines


def read_message(sock: socket.socket) -> bytes:
    """Read one message: a 4-byte length in network byte order ("!I"), then that many bytes."""
    (length,) = struct.unpack("!I", recv_exactly(sock, 4))
    return recv_exactly(sock, length)
