"""Reference solutions of lesson 07 (IPv6 and versions)."""

from __future__ import annotations

import socket
from typing import Any


def connect_first(infos: list[tuple[Any, ...]], timeout: float = 2.0) -> socket.socket:
    """Connect to the first getaddrinfo result that accepts; raise the last error if none does."""
    last_error: OSError | None = None
    for family, type_, proto, _canonname, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()          # a failed attempt must not leak its descriptor
            last_error = exc
            continue
        sock.settimeout(None)
        return sock
    raise last_error or OSError("getaddrinfo returned no addresses")


def ask(address: tuple[str, int], text: str) -> str:
    """Send text as one UTF-8 line; return the reply line, decoded, without its newline."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(text.encode("utf-8") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            reply += chunk
    return reply.decode("utf-8").removesuffix("\n")   # decode once, after the last byte
