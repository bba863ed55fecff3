"""Reference solutions of lesson 04 (UDP)."""

from __future__ import annotations

import socket
import time


def ping(address: tuple[str, int], count: int = 10, timeout: float = 0.05,
         retries: int = 2) -> list[float | None]:
    """Ping ``address`` ``count`` times over UDP; return each ping's round trip in seconds, or None.

    Each datagram carries the ping's number and the attempt's, ``ping 3 1``: a reply says which
    send it answers, so a duplicate, a late reply or one to another attempt is ignored, and the
    round trip is timed from the send that was answered. A ping with no reply within
    ``timeout`` is sent again, at most ``retries`` more times.
    """
    rtts: list[float | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for seq in range(count):
            rtt = None
            for attempt in range(1 + retries):
                message = f"ping {seq} {attempt}".encode()
                sent = time.perf_counter()
                sock.sendto(message, address)
                deadline = sent + timeout
                try:
                    while rtt is None:
                        # settimeout() starts again at every recvfrom: give it only the time left.
                        sock.settimeout(max(deadline - time.perf_counter(), 1e-6))
                        data, _ = sock.recvfrom(1024)
                        if data == message:  # this attempt's reply, not a stray, late or duplicated one
                            rtt = time.perf_counter() - sent
                except TimeoutError:  # socket.timeout before Python 3.10
                    continue  # lost (or late): try again
                break
            rtts.append(rtt)
    return rtts


def recv_datagram(sock: socket.socket, timeout: float = 1.0) -> bytes | None:
    """One whole datagram from ``sock``, exactly as it was sent; None if none came within ``timeout``."""
    sock.settimeout(timeout)
    try:
        data, _address = sock.recvfrom(65_535)  # the most one UDP datagram can carry: never truncated
    except TimeoutError:
        return None
    return data
