"""Reference solutions of lesson 06 (framing)."""

from __future__ import annotations

import socket
import struct


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Return exactly n bytes from sock, however they arrive; EOFError if the stream ends first."""
    buffer = bytearray()
    while len(buffer) < n:
        chunk = sock.recv(n - len(buffer))  # never ask for more than is missing
        if not chunk:  # b"": the peer closed before n bytes came
            raise EOFError(f"the stream ended after {len(buffer)} of {n} bytes")
        buffer += chunk
    return bytes(buffer)


def read_message(sock: socket.socket) -> bytes:
    """Read one message: a 4-byte length in network byte order ("!I"), then that many bytes."""
    (length,) = struct.unpack("!I", recv_exactly(sock, 4))
    return recv_exactly(sock, length)
