"""Reference solutions of lesson 08 (under the hood)."""

from __future__ import annotations

import socket


def nodelay_client(address: tuple[str, int]) -> socket.socket:
    """A connection whose small writes leave at once (Nagle's algorithm off)."""
    sock = socket.create_connection(address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_request(sock: socket.socket, header: bytes, body: bytes) -> None:
    """Send header and body as ONE write: nothing small is left waiting for an ACK."""
    sock.sendall(header + body)
