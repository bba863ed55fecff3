"""TCP helper servers: echo, sink, dribble and silent.

One accept thread waits in a selector on the listening socket and a wake-up socket pair
(``serve_listener``), so
``stop()`` wakes it at once (``close()`` alone does not wake a thread blocked in ``accept()`` on
Linux). Each connection gets its own thread doing plain blocking ``recv``/``send``: no selector
and no ``settimeout()`` on the hot path, so an echo through the helper costs what a hand-written
echo costs. ``stop()`` wakes those threads with ``shutdown(SHUT_RDWR)``, which makes a blocked
``recv`` return ``b""`` and a blocked ``send`` fail at once.

Memory per connection is bounded by ``bufsize``: a server reads at most that much before it
has answered or discarded it.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import socket
import struct
import time
from typing import Any

from ._base import LoopbackServer, ServerEvent, make_listener, serve_listener
from ..validate import count, seconds

__all__ = ["DribbleServer", "EchoServer", "SilentServer", "SinkServer", "TCPServer"]

#: Bytes read per ``recv`` call by the helpers: 256 KiB keeps loopback throughput at the
#: level of iperf3 on this kind of machine (measured in benchmarks/), and bounds memory.
DEFAULT_BUFSIZE = 256 * 1024
#: A server refuses connections beyond this many at once (one thread each).
MAX_CONNECTIONS = 4096

#: Reads that return a new bytes object stay at or below 64 KiB: a larger recv() allocates
#: past glibc's mmap threshold on every call (see EchoServer.handle).
_SMALL_READ = 64 * 1024

_PEER_GONE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def _peer_left(exc: OSError) -> bool:
    """True when ``exc`` says the client is gone, not that the server broke.

    Besides reset and broken pipe, ``shutdown()`` on a connection the client already reset
    raises ``ENOTCONN`` ("Transport endpoint is not connected"): the client read what it
    wanted and closed while the server still had bytes in flight.
    """
    return isinstance(exc, _PEER_GONE) or exc.errno == errno.ENOTCONN


@dataclasses.dataclass
class ConnectionStats:
    """Counters of one connection, written only by its own thread."""

    conn: int
    peer: tuple[Any, ...]
    bytes_in: int = 0
    bytes_out: int = 0


class TCPServer(LoopbackServer):
    """A TCP server with one thread per connection; subclasses define ``handle``."""

    kind = "tcp"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, bufsize: int = DEFAULT_BUFSIZE,
                 nodelay: bool = True, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if isinstance(bufsize, bool) or not isinstance(bufsize, int) or bufsize <= 0:
            raise ValueError(f"bufsize must be a positive int (bytes per recv), got {bufsize!r}")
        self.bufsize = bufsize
        self.nodelay = nodelay
        self.stats: list[ConnectionStats] = []
        self._conns: dict[int, socket.socket] = {}
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "bufsize": self.bufsize, "nodelay": self.nodelay}

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._conns)

    @property
    def bytes_received(self) -> int:
        return sum(s.bytes_in for s in list(self.stats))

    @property
    def bytes_sent(self) -> int:
        return sum(s.bytes_out for s in list(self.stats))

    # ---- lifecycle --------------------------------------------------------------------------

    def _open(self) -> socket.socket:
        self._listener = make_listener(self.family, socket.SOCK_STREAM, self.host, self.port_requested)
        self._wake_r, self._wake_w = socket.socketpair()
        return self._listener

    def _wake(self) -> None:
        assert self._wake_w is not None
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by its thread, or the peer reset it
                pass

    def _close(self) -> None:
        with self._lock:
            leftovers = list(self._conns.values())
            self._conns.clear()
        for sock in [*leftovers, self._listener, self._wake_r, self._wake_w]:
            if sock is not None:
                sock.close()

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        serve_listener(self._listener, self._wake_r, self._stopping, self._accept)

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # the client gave up between select and accept
        conn.setblocking(True)
        if self.nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = next(self._ids)
        with self._lock:
            if self._stopping.is_set() or len(self._conns) >= MAX_CONNECTIONS:
                conn.close()
                self._record("refused", cid, 0, f"{len(self._conns)} connections open")
                return
            self._conns[cid] = conn
        stats = ConnectionStats(cid, peer)
        self.stats.append(stats)
        self._record("accept", cid, 0, f"{peer[0]}:{peer[1]}")
        self._threads = [t for t in self._threads if t.is_alive()]
        if not self._spawn_for_connection(self._run_connection, cid, conn, conn, stats):
            with self._lock:
                self._conns.pop(cid, None)

    def _run_connection(self, conn: socket.socket, stats: ConnectionStats) -> None:
        how = "close"
        try:
            self.handle(conn, stats)
        except OSError as exc:
            if _peer_left(exc):
                how = "reset"
                self._record("reset", stats.conn, 0, type(exc).__name__)
            elif not self._stopping.is_set():
                self._keep_error(stats.conn, exc)
        except Exception as exc:  # a bug: keep it, keep serving the others
            self._keep_error(stats.conn, exc)
        finally:
            with self._lock:
                self._conns.pop(stats.conn, None)
            conn.close()
            if how == "close":
                self._record("close", stats.conn, stats.bytes_in, f"sent {stats.bytes_out}")

    # ---- behaviour --------------------------------------------------------------------------

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:  # pragma: no cover
        raise NotImplementedError

    def _recv(self, conn: socket.socket, stats: ConnectionStats) -> bytes:
        data = conn.recv(min(self.bufsize, _SMALL_READ))
        stats.bytes_in += len(data)
        if self.trace:
            self._record("recv", stats.conn, len(data))
        return data

    def _send(self, conn: socket.socket, stats: ConnectionStats, data: bytes) -> None:
        # Stamped when the call starts: the peer may receive the bytes before sendall returns.
        t_ns = time.perf_counter_ns()
        conn.sendall(data)
        stats.bytes_out += len(data)
        if self.trace:
            self.events.append(ServerEvent(t_ns, "send", stats.conn, len(data)))


class EchoServer(TCPServer):
    """Sends back every byte it receives, as soon as it arrives.

    Example::

        with EchoServer() as server:
            with socket.create_connection(server.address) as sock:
                sock.sendall(b"hello")
                sock.recv(1024)   # b'hello'
    """

    kind = "echo"

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        if self.trace:
            while data := self._recv(conn, stats):
                self._send(conn, stats, data)
            return
        # The hot path of every RTT measurement: nothing but recv_into and sendall, into a
        # buffer allocated once. (recv(256 KiB) would allocate and shrink a 256 KiB bytes
        # object per message: an mmap/mremap/munmap each time, 2x the RTT; benchmarks/README.md.)
        buf = bytearray(self.bufsize)
        view, recv_into, sendall = memoryview(buf), conn.recv_into, conn.sendall
        n = 0
        try:
            while got := recv_into(buf):
                sendall(view[:got])
                n += got
        finally:
            stats.bytes_in = stats.bytes_out = n


class SinkServer(TCPServer):
    """Reads and discards everything: the far end of a throughput measurement.

    When the client shuts down its sending side (``sock.shutdown(socket.SHUT_WR)``), the sink
    answers with the byte count it received as an 8-byte big-endian integer, then closes. A
    client that waits for that answer knows every byte has arrived.
    """

    kind = "sink"
    COUNT = struct.Struct("!Q")

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        buf = memoryview(bytearray(self.bufsize))
        recv_into = conn.recv_into
        n = 0
        try:
            while got := recv_into(buf):
                n += got
                if self.trace:
                    self._record("recv", stats.conn, got)
            if self.trace:
                self._record("recv", stats.conn, 0, "end of stream")
        finally:
            stats.bytes_in = n
        if not self._stopping.is_set():
            self._send(conn, stats, self.COUNT.pack(n))


class DribbleServer(TCPServer):
    """Echoes what it receives, but in pieces of ``piece`` bytes with ``pause`` seconds between.

    The lesson it teaches: ``recv(1024)`` returns what has arrived so far, not "the message".
    """

    kind = "dribble"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, piece: int = 1, pause: float = 0.002,
                 **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.piece = count("piece", piece, low=1, unit="bytes")
        self.pause = seconds("pause", pause, high=10)

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "piece": self.piece, "pause": self.pause}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        while data := self._recv(conn, stats):
            for i in range(0, len(data), self.piece):
                if i and self._stopping.wait(self.pause):  # stop() cuts the pause short
                    return
                self._send(conn, stats, data[i : i + self.piece])


class SilentServer(TCPServer):
    """Accepts connections, reads and discards what arrives, never answers.

    A client's ``recv`` against it waits forever unless the client set a timeout: the lesson
    on timeouts.
    """

    kind = "silent"

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        buf = memoryview(bytearray(min(self.bufsize, 64 * 1024)))
        while got := conn.recv_into(buf):
            stats.bytes_in += got
            if self.trace:
                self._record("recv", stats.conn, got)
