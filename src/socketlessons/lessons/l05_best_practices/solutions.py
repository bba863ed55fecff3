"""Reference solutions of lesson 05 (best practices)."""

from __future__ import annotations

import asyncio
import socket


def fetch(address: tuple[str, int], request: bytes, timeout: float) -> bytes:
    """Send request, half-close, return everything the server sends until it closes."""
    with socket.create_connection(address, timeout=timeout) as sock:  # closes on every path
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # "I am done sending": the server can finish and close
        chunks = []
        while chunk := sock.recv(4096):  # b"" means the server closed: the reply is complete
            chunks.append(chunk)
        return b"".join(chunks)  # a silent server makes recv raise TimeoutError after `timeout` s


async def fetch_all(address: tuple[str, int], requests: list[bytes], timeout: float) -> list[bytes]:
    """One connection per request, all at once; replies in the order of the requests."""
    async def one(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(request)
            await writer.drain()
            return await reader.readexactly(len(request))  # the echo is as long as the request
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.wait_for(asyncio.gather(*(one(r) for r in requests)), timeout)
