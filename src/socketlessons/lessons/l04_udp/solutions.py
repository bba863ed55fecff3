"""Reference solutions of lesson 04 (UDP)."""

from __future__ import annotations

import socket
import time


def ping(sock: socket.socket, address: tuple[str, int], count: int = 10, timeout: float = 0.05,
         retries: int = 2) -> list[float | None]:
    """Ping ``address`` ``count`` times over UDP; return each ping's round trip in seconds, or None.

    Each ping carries its number; a reply with another number (a late reply to an earlier ping,
    or a duplicate) is ignored. A ping with no reply within ``timeout`` is sent again, at most
    ``retries`` more times; the round trip is measured from the last send.
    """
    sock.settimeout(timeout)
    rtts: list[float | None] = []
    for seq in range(count):
        rtt = None
        for _attempt in range(1 + retries):
            message = f"ping {seq}".encode()
            sent = time.perf_counter()
            sock.sendto(message, address)
            deadline = sent + timeout
            try:
                while True:
                    sock.settimeout(max(deadline - time.perf_counter(), 1e-6))
                    data, _ = sock.recvfrom(1024)
                    if data == message:  # ours, not a late or duplicated reply to an earlier ping
                        rtt = time.perf_counter() - sent
                        break
            except TimeoutError:  # socket.timeout before Python 3.10
                continue  # lost (or late): try again
            break
        rtts.append(rtt)
    return rtts
