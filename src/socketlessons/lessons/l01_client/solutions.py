"""Reference solutions of lesson 01 (the TCP client)."""

from __future__ import annotations

import socket


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Return exactly n bytes from sock, however they arrive; EOFError if the stream ends first."""
    chunks = []
    missing = n
    while missing > 0:
        chunk = sock.recv(missing)  # ask only for what is still missing: never read past n
        if not chunk:  # b"": the peer closed, no more bytes will ever come
            raise EOFError(f"the stream ended after {n - missing} of {n} bytes")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def send_all(sock: socket.socket, data: bytes) -> int:
    """Send every byte of data using only sock.send; return how many send() calls it took."""
    view = memoryview(data)  # slicing a memoryview copies nothing
    sent = calls = 0
    while sent < len(data):
        sent += sock.send(view[sent:])  # send() returns how many bytes it took: maybe fewer
        calls += 1
    return calls
