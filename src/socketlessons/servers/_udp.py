"""UDP echo server with simulated loss, delay, reordering and duplication.

Loopback never loses a datagram, so the lesson on UDP would show nothing: this server makes
the network's misbehaviour happen on purpose, from a seeded random generator, so a run can be
repeated exactly. ``loss`` drops a reply, ``duplicate`` sends it twice, ``delay`` + a random
``jitter`` hold it back (a later datagram with a shorter draw overtakes it: reordering).

One thread waits in a selector on the socket and a wake-up socket pair, with a timeout only
while delayed replies are due, so ``stop()`` wakes it at once.
"""

from __future__ import annotations

import heapq
import math
import random
import selectors
import socket
import time
from typing import Any

from ._base import LoopbackServer, make_listener
from ..validate import seconds

__all__ = ["UDPEchoServer"]

#: The largest UDP payload over IPv4: 65,535 - 20 (IP header) - 8 (UDP header).
MAX_DATAGRAM = 65_507
#: Delayed replies held at once at most; beyond, replies are dropped (bounded memory).
MAX_PENDING = 10_000


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability between 0 and 1, got {value!r}")
    return float(value)


class UDPEchoServer(LoopbackServer):
    """Echoes each datagram back to its sender, with optional seeded misbehaviour.

    Args:
        loss: probability that a reply is dropped.
        duplicate: probability that a reply is sent twice.
        delay: seconds every reply is held back.
        jitter: extra random delay, uniform in ``[0, jitter]`` seconds (reorders replies).
        seed: seed of the random generator; the same seed gives the same drops.

    Example::

        with UDPEchoServer(loss=0.2, seed=1) as server:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.sendto(b"ping", server.address)
    """

    kind = "udp-echo"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, loss: float = 0.0, duplicate: float = 0.0,
                 delay: float = 0.0, jitter: float = 0.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.loss = _probability("loss", loss)
        self.duplicate = _probability("duplicate", duplicate)
        self.delay, self.jitter = seconds("delay", delay, high=10), seconds("jitter", jitter, high=10)
        self.seed = seed
        self.received = self.sent = self.dropped = self.duplicated = 0
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "loss": self.loss, "duplicate": self.duplicate,
                "delay": self.delay, "jitter": self.jitter, "seed": self.seed}

    def _open(self) -> socket.socket:
        self._sock = make_listener(self.family, socket.SOCK_DGRAM, self.host, self.port_requested)
        self._wake_r, self._wake_w = socket.socketpair()
        return self._sock

    def _wake(self) -> None:
        assert self._wake_w is not None
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _close(self) -> None:
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _serve(self) -> None:
        assert self._sock is not None and self._wake_r is not None
        sock, rng = self._sock, random.Random(self.seed)
        sock.setblocking(False)
        pending: list[tuple[float, int, bytes, Any]] = []  # (due, seq, data, peer)
        seq = 0
        peers: dict[Any, int] = {}
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
                if timeout is not None and timeout < 0.001:
                    # epoll waits in whole milliseconds, rounding up (CPython's EpollSelector), so a
                    # 0.3 ms hold would last 1 ms and every jitter would land on a millisecond step
                    # (measured: round trips of 1.1-5.2 ms for a 0-5 ms jitter). Sleep the remainder.
                    time.sleep(timeout)
                    timeout = 0.0
                elif timeout is not None:
                    timeout = math.floor(timeout * 1000) / 1000  # wake no later than due; sleep the rest
                for key, _ in sel.select(timeout):
                    if key.fileobj is sock:
                        seq = self._receive(sock, rng, pending, seq, peers)
                now = time.monotonic()
                while pending and pending[0][0] <= now:
                    _, _, data, peer = heapq.heappop(pending)
                    self._reply(sock, data, peer, peers)

    def _receive(self, sock: socket.socket, rng: random.Random, pending: list[Any], seq: int,
                 peers: dict[Any, int]) -> int:
        try:
            data, peer = sock.recvfrom(MAX_DATAGRAM + 1)
        except (BlockingIOError, InterruptedError):
            return seq
        except ConnectionResetError:  # Windows reports an earlier ICMP "port unreachable" here
            return seq
        self.received += 1
        pid = peers.setdefault(peer, len(peers) + 1)
        if self.trace:
            self._record("recvfrom", pid, len(data))
        if rng.random() < self.loss:
            self.dropped += 1
            self._record("drop", pid, len(data), "simulated loss")
            return seq
        copies = 2 if rng.random() < self.duplicate else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            wait = self.delay + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)
            if wait == 0.0:
                self._reply(sock, data, peer, peers)
            elif len(pending) < MAX_PENDING:
                seq += 1
                heapq.heappush(pending, (time.monotonic() + wait, seq, data, peer))
            else:
                self.dropped += 1
                self._record("drop", pid, len(data), "too many delayed replies")
        return seq

    def _reply(self, sock: socket.socket, data: bytes, peer: Any, peers: dict[Any, int]) -> None:
        try:
            sock.sendto(data, peer)
        except (BlockingIOError, ConnectionResetError, OSError):
            # A full socket buffer or a vanished peer: UDP makes no promise, neither do we.
            self.dropped += 1
            return
        self.sent += 1
        if self.trace:
            self._record("sendto", peers.get(peer, 0), len(data))
