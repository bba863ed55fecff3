"""Background helper clients, and the learner's own server run without blocking the notebook.

Two jobs, both bounded in time so that no notebook cell can hang on them:

* ``drive(address, payloads)`` connects one client per payload to a server. Each client sends
  its payload (at once, or in ``piece``-byte pieces with a ``pause`` between them), says it is
  done with ``shutdown(SHUT_WR)``, reads the reply until the end of the stream (or until
  ``reply_bytes`` arrived), and records what happened in a ``ClientRecord``. ``concurrency``
  says how many clients run at once (1: one after another). ``start_clients`` does the same in
  the background and returns a ``ClientRun`` to ``wait()`` on.
* ``serve_in_background(fn, *args)`` runs a blocking server function ``fn(listener, *args)``
  written by the learner in a thread, on a listening socket it made for it (loopback, port 0).
  It is a helper server like the others (a context manager, ``name=`` replaces an earlier one,
  ``stop_all()`` stops it). A deadline, ``stop()`` or ``stop_all()`` stop the function by
  shutting down the listening socket and every connection the function accepted: a blocked
  ``accept()`` or ``recv()`` then returns or raises at once, even on Linux where ``close()``
  alone would not wake it.

Rules: helper threads never print and never raise into a cell; they record. Every wait has a
deadline. Sending and receiving run in one selector loop per client, so a client reads its
reply while it is still sending: an echo of many megabytes never deadlocks on full buffers.

Used in 02_server (the learner's server driven by helper clients) and 03_server_loop (N
concurrent clients, per-client latency)::

    with serve_in_background(my_echo_server, 2) as server:
        records = drive(server.address, [b"hello", b"world"])
    [r.received for r in records]        # [b'hello', b'world'] if my_echo_server is right
"""

from __future__ import annotations

import dataclasses
import itertools
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .validate import count, seconds
from .addresses import Address, check_loopback_host, check_port, family_of
from .servers import LoopbackServer

__all__ = [
    "BackgroundServer",
    "ClientRecord",
    "ClientRun",
    "drive",
    "serve_in_background",
    "start_clients",
]

#: Seconds one helper client may take for its whole exchange (connect, send, read the reply):
#: loopback answers in microseconds, so a client still waiting after this is waiting for a
#: server that will never answer.
DEFAULT_CLIENT_TIMEOUT_S = 5.0
#: At most this many clients per ``drive``: enough for any lesson, bounded for a shared host.
MAX_CLIENTS = 2000
#: At most this many clients at once (each holds one socket and one thread).
MAX_CONCURRENCY = 256
#: Bytes per ``recv`` of a helper client.
RECV_SIZE = 256 * 1024
#: Seconds a learner's server function may run before ``serve_in_background`` wakes it.
DEFAULT_SERVER_DEADLINE_S = 10.0
#: Backlog of the listening socket handed to a learner's server: connections the kernel
#: completes and queues before the server calls ``accept()`` (see 02_server).
DEFAULT_BACKLOG = 16


# ---- clients ----------------------------------------------------------------------------------


@dataclasses.dataclass
class ClientRecord:
    """What one helper client did and got. Times are ``perf_counter_ns()`` values (0: never).

    ``error`` is ``""`` or the exception the client met (``"ConnectionResetError: ..."``);
    ``eof`` is True when the server closed its side (``recv`` returned ``b""``).
    """

    index: int
    payload: bytes
    sent: int = 0
    received: bytes = b""
    eof: bool = False
    error: str = ""
    started_ns: int = 0
    connected_ns: int = 0
    first_byte_ns: int = 0
    done_ns: int = 0
    recv_calls: int = 0

    @property
    def complete(self) -> bool:
        """Sent the whole payload, saw the end of the stream, met no error."""
        return self.sent == len(self.payload) and self.eof and not self.error

    @property
    def connect_ns(self) -> int | None:
        """Nanoseconds ``connect()`` took (None if it never connected)."""
        return self.connected_ns - self.started_ns if self.connected_ns else None

    @property
    def total_ns(self) -> int | None:
        """Nanoseconds from the start of ``connect()`` to the end of the exchange."""
        return self.done_ns - self.started_ns if self.done_ns else None

    def summary(self) -> str:
        """One line for a notebook: what was sent, what came back, how it ended."""
        got = self.received if len(self.received) <= 40 else self.received[:37] + b"..."
        end = "end of stream" if self.eof else "no end of stream"
        err = f", {self.error}" if self.error else ""
        return (f"client {self.index}: sent {self.sent}/{len(self.payload)} B, "
                f"got {len(self.received)} B {got!r}, {end}{err}")


def _check_payloads(payloads: bytes | Sequence[bytes]) -> list[bytes]:
    if isinstance(payloads, (bytes, bytearray, memoryview)):
        return [bytes(payloads)]
    if isinstance(payloads, str):
        raise TypeError("payloads must be bytes, not str: encode text first, e.g. [b'hello'] or ['hello'.encode()]")
    items = list(payloads)
    for i, p in enumerate(items):
        if not isinstance(p, (bytes, bytearray, memoryview)):
            raise TypeError(f"payloads[{i}] is a {type(p).__name__}; every payload must be bytes (b'...')")
    if len(items) > MAX_CLIENTS:
        raise ValueError(f"at most {MAX_CLIENTS} clients per drive(), got {len(items)}; split the load")
    return [bytes(p) for p in items]


def _positive(name: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    seconds(name, value, high=86_400, allow_low=False)


class ClientRun:
    """Helper clients running in background threads; ``wait()`` returns their records.

    Created by ``start_clients``. Threads never print: everything lands in ``records``.
    """

    def __init__(self, address: Address, payloads: list[bytes], *, concurrency: int, piece: int | None,
                 pause: float, shut_write: bool, reply_bytes: int | None, timeout: float, delay: float) -> None:
        self.address = address
        self.records = [ClientRecord(i, p) for i, p in enumerate(payloads)]
        self._piece, self._pause, self._shut_write = piece, pause, shut_write
        self._reply_bytes, self._timeout, self._delay = reply_bytes, timeout, delay
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._socks: set[socket.socket] = set()
        workers = min(concurrency, len(payloads))
        self._threads = [threading.Thread(target=self._work, name=f"socketlessons-client-{i}", daemon=True)
                         for i in range(workers)]
        rounds = -(-len(payloads) // workers) if workers else 0
        #: The latest moment (``time.monotonic()``) by which every client has given up.
        self.deadline = time.monotonic() + delay + rounds * (timeout + 0.5) + 1.0
        for t in self._threads:
            t.start()

    @property
    def done(self) -> bool:
        return not any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float | None = None) -> list[ClientRecord]:
        """Wait until every client finished (at most ``timeout`` s, default: their deadline)."""
        end = self.deadline if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        if not self.done:
            self.stop()
        return self.records

    def stop(self) -> None:
        """Stop every client now: wake blocked ones, join them (bounded)."""
        self._stopping.set()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2.0)

    # ---- one worker: takes the next client until none is left ----

    def _work(self) -> None:
        if self._delay and self._stopping.wait(self._delay):
            return
        while not self._stopping.is_set():
            i = next(self._next)
            if i >= len(self.records):
                return
            try:
                self._run_client(self.records[i])
            except BaseException as exc:  # never let a helper thread print a traceback
                self.records[i].error = self.records[i].error or f"{type(exc).__name__}: {exc}"

    def _run_client(self, rec: ClientRecord) -> None:
        host, port = self.address[:2]
        deadline = time.monotonic() + self._timeout
        sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        with self._lock:
            self._socks.add(sock)
        try:
            rec.started_ns = time.perf_counter_ns()
            sock.settimeout(self._timeout)
            try:
                sock.connect((host, port))
            except OSError as exc:
                rec.error = f"{type(exc).__name__}: {exc}"
                return
            rec.connected_ns = time.perf_counter_ns()
            sock.setblocking(False)
            self._exchange(sock, rec, deadline)
        finally:
            rec.done_ns = time.perf_counter_ns()
            with self._lock:
                self._socks.discard(sock)
            sock.close()

    def _exchange(self, sock: socket.socket, rec: ClientRecord, deadline: float) -> None:
        """Send (in pieces) and read in one selector loop until the end of stream or the deadline."""
        payload = memoryview(rec.payload)
        piece = self._piece or len(payload) or 1
        piece_end = min(piece, len(payload))
        next_send = time.monotonic()
        chunks: list[bytes] = []
        got = 0
        try:
            sending = self._finish_sending(sock) if not payload else True
            with selectors.DefaultSelector() as sel:
                sel.register(sock, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    now = time.monotonic()
                    if now >= deadline:
                        rec.error = f"TimeoutError: no end of stream within {self._timeout:g} s"
                        return
                    want_write = sending and now >= next_send
                    sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0))
                    wake_at = min(deadline, next_send) if sending and not want_write else deadline
                    for _, mask in sel.select(max(0.0, wake_at - now)):
                        if mask & selectors.EVENT_READ:
                            try:
                                data = sock.recv(RECV_SIZE)
                            except (BlockingIOError, InterruptedError):  # a spurious wake-up
                                continue
                            rec.recv_calls += 1
                            if not data:
                                rec.eof = True
                                return
                            if not got:
                                rec.first_byte_ns = time.perf_counter_ns()
                            chunks.append(data)
                            got += len(data)
                            if self._reply_bytes is not None and got >= self._reply_bytes:
                                return
                        if mask & selectors.EVENT_WRITE and sending:
                            try:
                                rec.sent += sock.send(payload[rec.sent:piece_end])
                            except (BlockingIOError, InterruptedError):
                                continue
                            if rec.sent == piece_end:
                                if piece_end == len(payload):
                                    sending = self._finish_sending(sock)
                                else:
                                    piece_end = min(piece_end + piece, len(payload))
                                    next_send = time.monotonic() + self._pause
        except OSError as exc:  # reset, broken pipe: recorded, with what had arrived before it
            rec.error = f"{type(exc).__name__}: {exc}"
            self._drain(sock, chunks)
        finally:
            rec.received = b"".join(chunks)

    def _finish_sending(self, sock: socket.socket) -> bool:
        if self._shut_write:
            sock.shutdown(socket.SHUT_WR)
        return False

    @staticmethod
    def _drain(sock: socket.socket, chunks: list[bytes]) -> None:
        try:
            while data := sock.recv(RECV_SIZE):
                chunks.append(data)
        except OSError:
            pass


def start_clients(address: Address, payloads: bytes | Sequence[bytes], *, concurrency: int = 1,
                  piece: int | None = None, pause: float = 0.0, shut_write: bool = True,
                  reply_bytes: int | None = None, timeout: float = DEFAULT_CLIENT_TIMEOUT_S,
                  delay: float = 0.0) -> ClientRun:
    """Start one helper client per payload in the background; return a ``ClientRun``.

    Same arguments as ``drive``; ``delay`` seconds pass before the first client connects (to
    show, for example, that a server's ``accept()`` waits for it).
    """
    host = check_loopback_host(address[0])
    check_port(address[1])
    items = _check_payloads(payloads)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be an int from 1 (one client after another) to {MAX_CONCURRENCY}, "
                         f"got {concurrency!r}")
    if piece is not None and (isinstance(piece, bool) or not isinstance(piece, int) or piece <= 0):
        raise ValueError(f"piece must be None (send at once) or a positive number of bytes, got {piece!r}")
    pause = seconds("pause", pause, high=10)
    if reply_bytes is not None and (isinstance(reply_bytes, bool) or not isinstance(reply_bytes, int)
                                    or reply_bytes < 0):
        raise ValueError(f"reply_bytes must be None (read to the end of the stream) or bytes >= 0, got {reply_bytes!r}")
    timeout = seconds("timeout", timeout, high=600, allow_low=False)
    delay = seconds("delay", delay, high=60)
    return ClientRun((host, address[1]), items, concurrency=concurrency, piece=piece, pause=float(pause),
                     shut_write=shut_write, reply_bytes=reply_bytes, timeout=float(timeout), delay=float(delay))


def drive(address: Address, payloads: bytes | Sequence[bytes], *, concurrency: int = 1,
          piece: int | None = None, pause: float = 0.0, shut_write: bool = True,
          reply_bytes: int | None = None, timeout: float = DEFAULT_CLIENT_TIMEOUT_S) -> list[ClientRecord]:
    """Connect one client per payload to ``address``; return what each one sent and got.

    Args:
        address: the server's ``(host, port)``, on loopback.
        payloads: one bytes object per client (a single bytes object means one client).
        concurrency: clients at once; 1 runs them one after another.
        piece: send in pieces of this many bytes (None: all at once) ...
        pause: ... with this many seconds between pieces (a slow sender).
        shut_write: after the last byte, ``shutdown(SHUT_WR)``: "I am done", so that a server
            reading until ``b""`` sees the end of the request.
        reply_bytes: stop reading after this many bytes instead of at the end of the stream.
        timeout: seconds each client may take in all; a client still waiting then records a
            ``TimeoutError`` and gives up.

    Returns:
        One ``ClientRecord`` per payload, in the order of ``payloads``. Never raises for what a
        server does (refuses, resets, stays silent): that is recorded in each ``error``.

    Example::

        with EchoServer() as server:
            [rec] = drive(server.address, [b"hello"])
        rec.received, rec.eof      # (b'hello', True)
    """
    return start_clients(address, payloads, concurrency=concurrency, piece=piece, pause=pause,
                         shut_write=shut_write, reply_bytes=reply_bytes, timeout=timeout).wait()


# ---- the learner's server, in the background ------------------------------------------------


class _TrackingListener(socket.socket):
    """A listening socket that remembers every connection it accepted, so they can be woken."""

    def __init__(self, *args: Any, owner: BackgroundServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def accept(self) -> tuple[socket.socket, Any]:
        conn, addr = super().accept()
        self._owner._adopt(conn, addr)
        return conn, addr


class BackgroundServer(LoopbackServer):
    """Runs ``fn(listener, *args)`` in a thread; see ``serve_in_background``."""

    kind = "background"
    restartable = False  # it ran the learner's function once; run the cell again for a new run

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any] = (), *, host: str = "127.0.0.1",
                 port: int = 0, name: str | None = None, deadline: float = DEFAULT_SERVER_DEADLINE_S,
                 conn_timeout: float | None = None, backlog: int = DEFAULT_BACKLOG,
                 sndbuf: int | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be your server function itself (not called), got {type(fn).__name__}")
        _positive("deadline", deadline)
        _positive("conn_timeout", conn_timeout, allow_none=True)
        count("backlog", backlog, low=0, high=4096)
        if sndbuf is not None and (isinstance(sndbuf, bool) or not isinstance(sndbuf, int) or sndbuf < 1024):
            raise ValueError(f"sndbuf must be None (the system's default) or at least 1024 bytes, got {sndbuf!r}")
        super().__init__(host, port, name=name or getattr(fn, "__name__", None))
        self.fn, self.args = fn, tuple(args)
        self.deadline, self.conn_timeout, self.backlog = float(deadline), conn_timeout, backlog
        self.sndbuf = sndbuf
        #: Every connection the function accepted, in order.
        self.accepted: list[socket.socket] = []
        #: How many of them the function left open when it returned (None while it runs).
        self.left_open: int | None = None
        #: True when the deadline (not the function) ended the run.
        self.timed_out = False
        #: Seconds the function ran (None while it runs).
        self.elapsed_s: float | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._error_seen = False
        self._returned = threading.Event()
        self._settled = threading.Event()
        self._listener: socket.socket | None = None
        self._deadline_at = time.monotonic() + self.deadline

    # ---- results ----

    @property
    def returned(self) -> bool:
        """True once the function has returned (or raised, or was stopped)."""
        return self._returned.is_set()

    @property
    def result(self) -> Any:
        """What the function returned (None while it runs or if it raised)."""
        return self._result

    @property
    def error(self) -> BaseException | None:
        """The exception the function raised, if any (not the ones caused by stopping it)."""
        self._error_seen = True
        return self._error

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the function to return; give back its result or raise its exception.

        Waits at most ``timeout`` seconds (default: what is left of the deadline, plus one).
        Raises ``TimeoutError`` if the function is still running then, or if the deadline
        had to stop it.
        """
        if timeout is None:
            timeout = max(0.0, self._deadline_at - time.monotonic()) + 1.0
        if not self._returned.wait(timeout):
            raise TimeoutError(f"{self._label}() is still running after {timeout:g} s: "
                               "call stop() (or stop_all()) to end it")
        if self._error is not None:
            self._error_seen = True
            raise self._error
        if self.timed_out:
            raise TimeoutError(f"{self._label}() was still running at its {self.deadline:g} s deadline, "
                               "so it was stopped (its listener and connections were shut down)")
        return self._result

    # ---- LoopbackServer hooks ----

    def start(self) -> BackgroundServer:
        self._deadline_at = time.monotonic() + self.deadline
        super().start()
        if self.running:
            self._spawn(self._watchdog, f"{self._label}-watchdog")
        return self

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()
        if exc_type is None and self._error is not None and not self._error_seen:
            self._error_seen = True
            raise self._error  # the learner's exception, shown in the learner's cell

    def _settings(self) -> dict[str, Any]:  # pragma: no cover - thread mode only
        raise TypeError("a learner's server function runs in the kernel's threads only")

    def _open(self) -> socket.socket:
        sock = _TrackingListener(self.family, socket.SOCK_STREAM, owner=self)
        try:
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self.sndbuf is not None:  # accepted connections inherit it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
            sock.bind((self.host, self.port_requested))
            sock.listen(self.backlog)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        return sock

    def _serve(self) -> None:
        assert self._listener is not None
        started = time.perf_counter()
        try:
            self._result = self.fn(self._listener, *self.args)
        except BaseException as exc:  # kept for wait() / error, never printed from this thread
            woken = self._stopping.is_set() or self.timed_out
            if not (woken and isinstance(exc, OSError)):  # an OSError after we woke it is ours
                self._error = exc
        finally:
            self.elapsed_s = time.perf_counter() - started
            with self._lock:
                self.left_open = sum(1 for c in self.accepted if c.fileno() != -1)
            self._record("return", 0, 0, f"left {self.left_open} connection(s) open")
            self._returned.set()
            self._settled.set()

    def _watchdog(self) -> None:
        # _settled is set when the function returns or stop() runs: then there is nothing to do.
        if not self._settled.wait(max(0.0, self._deadline_at - time.monotonic())):
            self.timed_out = True
            self._record("deadline", 0, 0, f"{self.deadline:g} s")
            self._wake_function()

    def _adopt(self, conn: socket.socket, addr: Any) -> None:
        if self.conn_timeout is not None:
            conn.settimeout(self.conn_timeout)
        with self._lock:
            self.accepted.append(conn)
            n = len(self.accepted)
        self._record("accept", n, 0, f"{addr[0]}:{addr[1]}")

    def _wake_function(self) -> None:
        """Shut down the listener and every accepted connection, then close the connections:
        blocked calls return at once, and a loop that spins on ``b""`` gets an error instead."""
        with self._lock:
            conns = list(self.accepted)
        for sock in [self._listener, *conns]:
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for sock in conns:
            sock.close()

    def _wake(self) -> None:
        self._settled.set()  # the watchdog's work is done
        self._wake_function()
        self._returned.wait(1.0)  # give the function a moment to notice

    def _close(self) -> None:
        with self._lock:
            socks = [*self.accepted, self._listener]
        for sock in socks:
            if sock is not None:
                sock.close()

    def __repr__(self) -> str:
        base = super().__repr__()[:-1]
        if self.returned and self.elapsed_s is not None:
            how = "was stopped by its deadline" if self.timed_out else "returned"
            return f"{base}: {self._label}() {how} after {self.elapsed_s:.3g} s>"
        return f"{base}>"


def serve_in_background(fn: Callable[..., Any], *args: Any, name: str | None = None,
                        deadline: float = DEFAULT_SERVER_DEADLINE_S, conn_timeout: float | None = None,
                        backlog: int = DEFAULT_BACKLOG, host: str = "127.0.0.1",
                        sndbuf: int | None = None) -> BackgroundServer:
    """Run your blocking server function ``fn(listener, *args)`` in the background; return it started.

    ``listener`` is a TCP socket already bound to ``host`` on a free port and listening (with
    ``backlog``); ``server.address`` is where clients connect. The notebook stays free while
    ``fn`` runs. After ``deadline`` seconds, or at ``stop()``, ``stop_all()`` or the end of a
    ``with`` block, the listener and every connection ``fn`` accepted are shut down, so ``fn``'s
    blocked calls return. A server started again under the same ``name`` (default: the
    function's name) replaces the earlier one, so re-running a cell is safe.

    Args:
        conn_timeout: if set, each connection ``fn`` accepts gets this timeout (``settimeout``).
        sndbuf: if set, the send buffer (``SO_SNDBUF``) of the listener, inherited by every
            connection ``fn`` accepts: a small one makes a ``send()`` with a timeout take only
            part of what it is given, so a ``send`` that should be ``sendall`` shows.

    Afterwards: ``server.wait()`` returns what ``fn`` returned (or raises what it raised);
    ``server.left_open`` counts accepted connections ``fn`` did not close; ``server.accepted``
    lists them; ``server.events`` records accepts, the return and the deadline. An exception
    raised by ``fn`` and never looked at is raised again at the end of the ``with`` block.

    Example::

        def one_client(listener):
            conn, addr = listener.accept()
            with conn:
                conn.sendall(conn.recv(1024))

        with serve_in_background(one_client) as server:
            drive(server.address, [b"hi"])[0].received     # b'hi'
    """
    return BackgroundServer(fn, args, host=host, name=name, deadline=deadline, conn_timeout=conn_timeout,
                            backlog=backlog, sndbuf=sndbuf).start()
