"""The server-loop family of lesson 03: one protocol, four ways to serve many clients.

Every server here answers each ``recv`` with ``process(data)`` (an echo by default) after a
processing cost that can be set: ``cost`` seconds of ``work="sleep"`` (waiting on something
else, like a database: other clients could be served meanwhile) or ``work="cpu"`` (busy Python
code: it holds the GIL, so nothing else in the process runs in parallel). They differ only in
how they wait:

* ``SequentialServer``: the seed's loop as written. ``accept()`` one client, serve it until it
  closes (``if not data: break``), only then ``accept()`` the next. Client k waits for all the
  clients before it.
* ``ThreadedServer``: thread-per-client; the blocking loop of the seed, once per connection.
* ``SelectorServer``: one thread, non-blocking sockets, a ``selectors`` loop. A "sleep" cost is
  a timer (the reply is due later), not a blocked thread.
* ``AsyncioServer``: ``asyncio.start_server`` and one coroutine per connection, on its own event
  loop in a background thread (never ``asyncio.run()`` in the kernel's loop).

All follow the server contract of ``_base``: loopback, port 0, fast idempotent ``stop()`` via a
wake-up socket pair (or ``call_soon_threadsafe`` for asyncio), names that replace, errors kept.
With ``trace=True`` each server records ``accept``, ``recv`` (a request arrived), ``send`` (its
reply went out) and ``close`` events, from which ``service_intervals`` in
``socketlessons.lessons.l03_server_loop`` shows who was served when.

Used in 03_server_loop.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import heapq
import itertools
import pickle
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from ._base import LoopbackServer, make_listener, serve_listener

__all__ = [
    "LOOP_SERVERS",
    "AsyncioServer",
    "LoopServer",
    "SelectorServer",
    "SequentialServer",
    "ThreadedServer",
    "echo",
    "spend",
]

Work = Literal["sleep", "cpu"]

#: Bytes per ``recv``. The seed reads 1024; 64 KiB keeps a request of up to that size in one
#: ``recv`` on loopback (so it is processed once), and bounds memory per connection.
DEFAULT_BUFSIZE = 64 * 1024
#: Processing cost is capped: a lesson never needs more, and ``stop()`` stays fast.
MAX_COST_S = 10.0
#: Connections served at once at most (beyond: accepted and closed at once). Threads cost a
#: stack each; the many-connections demo of lesson 03 needs about 10,000.
DEFAULT_MAX_CONNECTIONS = 20_000
#: Unsent reply bytes a selector connection may hold before the server stops reading from it.
MAX_PENDING_OUT = 4 * DEFAULT_BUFSIZE

_PEER_GONE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
#: accept() errors that mean "this process (or system) is out of descriptors or memory".
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def echo(data: bytes) -> bytes:
    """The default ``process``: the reply is the request."""
    return data


#: CPU work is counted in the thread's CPU time where that clock is fine-grained (Linux, macOS;
#: Windows' thread clock ticks every ~16 ms, so there it falls back to the wall clock).
CPU_CLOCK = time.thread_time if time.get_clock_info("thread_time").resolution <= 1e-4 else time.perf_counter


def spend(seconds: float, work: Work, stopping: threading.Event | None = None) -> None:
    """Spend ``seconds`` the way a request handler would: waiting (``"sleep"``) or computing.

    ``"cpu"`` spins in Python code for ``seconds`` of the thread's CPU time: it holds the GIL like
    real computation does. Either way a
    set ``stopping`` event cuts it short, so a server's ``stop()`` never waits for it.
    """
    if seconds <= 0:
        return
    if work == "sleep":
        if stopping is None:
            time.sleep(seconds)
        else:
            stopping.wait(seconds)
        return
    # CPU time, not wall time: a fixed amount of computing, so N requests need N × the cost of CPU
    # however their threads take turns for the GIL. A wall-clock spin lets threads that the
    # operating system (or a short switch interval) interleaves all end "on time" together: lesson
    # 03's thread server with CPU work once looked flat in N beside 8 busy kernels (load 9.6).
    end = CPU_CLOCK() + seconds
    x = 0
    while CPU_CLOCK() < end:
        for i in range(200):  # real bytecode work, not a sleep in disguise
            x += i * i
        if stopping is not None and stopping.is_set():
            return


def _check_settings(process: Any, cost: Any, work: Any, bufsize: Any, max_connections: Any) -> None:
    if not callable(process):
        raise TypeError(f"process must be a function taking bytes and returning bytes, got {type(process).__name__}")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost <= MAX_COST_S:
        raise ValueError(f"cost is seconds of processing per request, between 0 and {MAX_COST_S:g}; got {cost!r}")
    if work not in ("sleep", "cpu"):
        raise ValueError(f"work must be 'sleep' (waiting, e.g. on a database) or 'cpu' (computing), got {work!r}")
    for label, value in (("bufsize", bufsize), ("max_connections", max_connections)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive int, got {value!r}")


class LoopServer(LoopbackServer):
    """Base of the family: settings, the listening socket, a wake-up pair, counters.

    Args:
        process: ``process(data) -> bytes``, called once per ``recv``; its result is sent back.
            Must be a module-level function in ``mode="process"`` (it is pickled).
        cost: seconds spent per request before replying (0 to 10).
        work: ``"sleep"`` (waiting: other clients can be served meanwhile) or ``"cpu"``.
        bufsize: bytes per ``recv``.
        max_connections: connections served at once; more are closed at once.
    """

    kind: ClassVar[str] = "loop"
    #: One line for tables and legends.
    label: ClassVar[str] = "loop"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, process: Callable[[bytes], bytes] = echo,
                 cost: float = 0.0, work: Work = "sleep", bufsize: int = DEFAULT_BUFSIZE,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        _check_settings(process, cost, work, bufsize, max_connections)
        if self.mode == "process" and process is not echo:
            try:
                pickle.dumps(process)
            except Exception:
                raise TypeError("in mode='process' the process function is sent to the child process: "
                                "define it with def at the top level of a module (not a lambda)") from None
        self.process, self.cost, self.work = process, float(cost), work
        self.bufsize, self.max_connections = bufsize, max_connections
        self.accepted = self.requests = self.refused = self.peak_connections = 0
        self._open_count = 0
        self._count_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "process": self.process, "cost": self.cost, "work": self.work,
                "bufsize": self.bufsize, "max_connections": self.max_connections}

    @property
    def connections(self) -> int:
        """Connections open right now (accepted, not yet closed)."""
        return self._open_count

    # ---- shared plumbing --------------------------------------------------------------------

    def _open(self) -> socket.socket:
        self._listener = make_listener(self.family, socket.SOCK_STREAM, self.host, self.port_requested)
        self._wake_r, self._wake_w = socket.socketpair()
        return self._listener

    def _wake(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass

    def _close(self) -> None:
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _accept_one(self, listener: socket.socket) -> tuple[int, socket.socket] | None:
        """Accept a waiting client (the listener is non-blocking); ``None`` if there is none."""
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as exc:
            if exc.errno not in _OUT_OF_RESOURCES:
                raise
            # Out of descriptors: the client stays in the backlog and the listener stays
            # readable, so back off instead of spinning; keep the first such error.
            if not any("accept" in e.error for e in self.errors):
                self._keep_error(0, OSError(exc.errno, f"accept: {exc.strerror}; raise the descriptor limit "
                                                        "(lessons.loop.raise_fd_limit) or open fewer connections"))
            self._stopping.wait(0.05)
            return None
        cid = next(self._ids)
        with self._count_lock:
            if self._stopping.is_set() or self._open_count >= self.max_connections:
                self.refused += 1
                conn.close()
                self._record("refused", cid, 0, f"{self._open_count} connections open")
                return None
            self._open_count += 1
            self.accepted += 1
            self.peak_connections = max(self.peak_connections, self._open_count)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.trace:
            self._record("accept", cid, 0, f"{peer[0]}:{peer[1]}")
        return cid, conn

    def _closed(self, cid: int) -> None:
        with self._count_lock:
            self._open_count -= 1
        if self.trace:
            self._record("close", cid)

    def _answer(self, cid: int, data: bytes) -> bytes:
        """Count, trace and process one request (the cost is spent by the caller)."""
        with self._count_lock:
            self.requests += 1
        return bytes(self.process(data))

    def _serve_blocking(self, cid: int, conn: socket.socket) -> None:
        """The seed's inner loop on one blocking connection, until EOF, reset or stop."""
        try:
            while not self._stopping.is_set():
                data = conn.recv(self.bufsize)
                if not data:  # EOF: the client closed its side
                    break
                if self.trace:
                    self._record("recv", cid, len(data))
                spend(self.cost, self.work, self._stopping)
                reply = self._answer(cid, data)
                conn.sendall(reply)
                if self.trace:
                    self._record("send", cid, len(reply))
        except _PEER_GONE as exc:  # the client vanished: its loss, not the server's
            self._record("reset", cid, 0, type(exc).__name__)
        except OSError as exc:
            if not self._stopping.is_set():
                self._keep_error(cid, exc)
        except Exception as exc:  # the process function raised: keep it, serve the others
            self._keep_error(cid, exc)
        finally:
            conn.close()
            self._closed(cid)


class SequentialServer(LoopServer):
    """The seed's server loop as written: one client at a time, in accept order.

    Example::

        with SequentialServer(cost=0.01) as server:
            run_load(server.address, clients=5)   # client 5 waits for clients 1-4
    """

    kind = "sequential"
    label = "sequential (reference)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._current: socket.socket | None = None

    def _wake(self) -> None:
        super()._wake()
        conn = self._current
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv with b""
            except OSError:
                pass

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        serve_listener(self._listener, self._wake_r, self._stopping, self._serve_next)

    def _serve_next(self, listener: socket.socket) -> None:
        accepted = self._accept_one(listener)
        if accepted is None:
            return
        cid, conn = accepted
        conn.setblocking(True)
        self._current = conn
        if self._stopping.is_set():  # stop() ran before _current was visible
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client already reset it: ENOTCONN
                pass
        try:
            self._serve_blocking(cid, conn)  # every other client waits here
        finally:
            self._current = None


class ThreadedServer(LoopServer):
    """Thread-per-client: the seed's inner loop, in a new thread for each connection."""

    kind = "threaded"
    label = "thread per client"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conns: dict[int, socket.socket] = {}

    def _wake(self) -> None:
        super()._wake()
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        serve_listener(self._listener, self._wake_r, self._stopping, self._start_thread)

    def _start_thread(self, listener: socket.socket) -> None:
        accepted = self._accept_one(listener)
        if accepted is None:
            return
        cid, conn = accepted
        conn.setblocking(True)
        with self._lock:
            self._conns[cid] = conn
        if len(self._threads) > 64:  # forget finished threads (bounded list)
            self._threads = [t for t in self._threads if t.is_alive()]
        if not self._spawn_for_connection(self._run, cid, conn, cid, conn):
            with self._lock:
                self._conns.pop(cid, None)
            self._closed(cid)

    def _run(self, cid: int, conn: socket.socket) -> None:
        try:
            self._serve_blocking(cid, conn)
        finally:
            with self._lock:
                self._conns.pop(cid, None)

    def _close(self) -> None:
        with self._lock:
            leftovers = list(self._conns.values())
            self._conns.clear()
        for conn in leftovers:
            conn.close()
        super()._close()


class _Conn:
    """State of one connection in the selector loop."""

    __slots__ = ("cid", "sock", "out", "waiting", "reading")

    def __init__(self, cid: int, sock: socket.socket) -> None:
        self.cid, self.sock = cid, sock
        self.out = bytearray()  # reply bytes not yet sent
        self.waiting = 0  # requests whose "sleep" cost has not elapsed yet
        self.reading = True


class SelectorServer(LoopServer):
    """One thread, non-blocking sockets and a ``selectors`` loop: an event loop by hand.

    A "sleep" cost becomes a timer: the reply is due ``cost`` seconds later and the loop serves
    other clients meanwhile. A "cpu" cost runs inline and stalls every client: one thread
    computes one thing at a time. (On Windows ``DefaultSelector`` is ``select()``, limited to
    512 sockets; the asyncio server has no such limit there.)
    """

    kind = "selectors"
    label = "selectors loop"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conns: dict[int, _Conn] = {}

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        listener = self._listener
        listener.setblocking(False)
        due: list[tuple[float, int, int, bytes]] = []  # (due time, seq, cid, request)
        seq = itertools.count()
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            self._sel = sel
            while not self._stopping.is_set():
                timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
                for key, mask in sel.select(timeout):
                    if key.fileobj is listener:
                        self._accept_all(sel, listener)
                    elif key.fileobj is not self._wake_r:
                        self._on_ready(sel, key.data, mask, due, seq)
                now = time.monotonic()
                while due and due[0][0] <= now:
                    _, _, cid, data = heapq.heappop(due)
                    c = self._conns.get(cid)
                    if c is not None:
                        c.waiting -= 1
                        self._reply(sel, c, data)

    def _accept_all(self, sel: selectors.BaseSelector, listener: socket.socket) -> None:
        for _ in range(64):  # a burst of connections, but keep serving the others too
            accepted = self._accept_one(listener)
            if accepted is None:
                return
            cid, sock = accepted
            sock.setblocking(False)
            c = _Conn(cid, sock)
            self._conns[cid] = c
            sel.register(sock, selectors.EVENT_READ, c)

    def _on_ready(self, sel: selectors.BaseSelector, c: _Conn, mask: int, due: list[Any],
                  seq: itertools.count[int]) -> None:
        try:
            if mask & selectors.EVENT_WRITE and c.out:
                sent = c.sock.send(c.out)
                del c.out[:sent]
            if mask & selectors.EVENT_READ and c.reading:
                data = c.sock.recv(self.bufsize)
                if not data:  # EOF
                    if not c.out and not c.waiting:
                        self._drop(sel, c)
                    else:
                        c.reading = False  # answer what is pending, then close
                    self._update(sel, c)
                    return
                if self.trace:
                    self._record("recv", c.cid, len(data))
                if self.work == "sleep" and self.cost > 0:
                    c.waiting += 1
                    heapq.heappush(due, (time.monotonic() + self.cost, next(seq), c.cid, data))
                else:
                    spend(self.cost, self.work, self._stopping)
                    self._reply(sel, c, data)
                    return
            self._update(sel, c)
        except (BlockingIOError, InterruptedError):
            pass
        except _PEER_GONE as exc:
            self._record("reset", c.cid, 0, type(exc).__name__)
            self._drop(sel, c)
        except Exception as exc:
            self._keep_error(c.cid, exc)
            self._drop(sel, c, "error")

    def _reply(self, sel: selectors.BaseSelector, c: _Conn, data: bytes) -> None:
        if c.cid not in self._conns:
            return
        try:
            reply = self._answer(c.cid, data)
        except Exception as exc:
            self._keep_error(c.cid, exc)
            self._drop(sel, c)
            return
        c.out += reply
        if self.trace:
            self._record("send", c.cid, len(reply))
        try:
            sent = c.sock.send(c.out)
            del c.out[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except _PEER_GONE as exc:
            self._record("reset", c.cid, 0, type(exc).__name__)
            self._drop(sel, c)
            return
        self._update(sel, c)

    def _update(self, sel: selectors.BaseSelector, c: _Conn) -> None:
        """Listen for what this connection needs next; close it once it is done."""
        if c.cid not in self._conns:
            return
        if not c.reading and not c.out and not c.waiting:
            self._drop(sel, c)
            return
        events = selectors.EVENT_WRITE if c.out else 0
        if c.reading and len(c.out) < MAX_PENDING_OUT:
            events |= selectors.EVENT_READ
        if events == 0:  # waiting for a timer only
            events = selectors.EVENT_READ if c.reading else selectors.EVENT_WRITE
        if sel.get_key(c.sock).events != events:
            sel.modify(c.sock, events, c)

    def _drop(self, sel: selectors.BaseSelector, c: _Conn) -> None:
        if self._conns.pop(c.cid, None) is None:
            return
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        self._closed(c.cid)

    def _close(self) -> None:
        for c in list(self._conns.values()):
            c.sock.close()
        self._conns.clear()
        super()._close()


class AsyncioServer(LoopServer):
    """``asyncio.start_server``: one coroutine per connection, on an event loop of its own.

    The loop runs in a background thread (the kernel already runs an asyncio loop, so a
    notebook must never call ``asyncio.run()``). A "sleep" cost is ``await asyncio.sleep``: the
    loop serves other clients meanwhile. A "cpu" cost blocks the loop, as it would in any
    asyncio program.
    """

    kind = "asyncio"
    label = "asyncio"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_future: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _open(self) -> socket.socket:
        listener = super()._open()
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._on_loop_error)  # keep, never log from a thread
        self._stop_future = self._loop.create_future()
        return listener

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's own errors (e.g. accept() out of descriptors: it pauses accepting for 1 s)."""
        if self._stopping.is_set():  # e.g. that paused accept resuming on the closed listener
            return
        exc = context.get("exception")
        message = context.get("message", "asyncio error")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES:
            message += "; raise the descriptor limit (lessons.loop.raise_fd_limit) or open fewer connections"
        if len(self.errors) < 10 or not isinstance(exc, OSError):
            self._keep_error(0, RuntimeError(f"{message}: {exc!r}" if exc else message))

    def _wake(self) -> None:
        loop, fut = self._loop, self._stop_future
        if loop is None or fut is None:
            return
        try:
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))
        except RuntimeError:  # the loop already closed (its thread ended)
            pass

    def _serve(self) -> None:
        assert self._loop is not None
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _main(self) -> None:
        assert self._listener is not None and self._stop_future is not None
        server = await asyncio.start_server(self._client, sock=self._listener, limit=self.bufsize,
                                            backlog=socket.SOMAXCONN)
        try:
            await self._stop_future
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=1.0)
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except (asyncio.TimeoutError, TimeoutError):
                pass
            for _ in range(3):  # let closed transports release their sockets
                await asyncio.sleep(0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        sock = writer.get_extra_info("socket")
        cid = next(self._ids)
        with self._count_lock:
            refuse = self._stopping.is_set() or self._open_count >= self.max_connections
            if refuse:
                self.refused += 1
            else:
                self._open_count += 1
                self.accepted += 1
                self.peak_connections = max(self.peak_connections, self._open_count)
        if refuse:
            writer.close()
            self._record("refused", cid)
            return
        if task is not None:
            self._tasks.add(task)
        if sock is not None and self.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self.trace:
            peer = writer.get_extra_info("peername") or ("?", 0)
            self._record("accept", cid, 0, f"{peer[0]}:{peer[1]}")
        try:
            while data := await reader.read(self.bufsize):
                if self.trace:
                    self._record("recv", cid, len(data))
                if self.cost > 0:
                    if self.work == "sleep":
                        await asyncio.sleep(self.cost)
                    else:
                        spend(self.cost, "cpu", self._stopping)
                reply = self._answer(cid, data)
                writer.write(reply)
                await writer.drain()
                if self.trace:
                    self._record("send", cid, len(reply))
        except _PEER_GONE as exc:
            self._record("reset", cid, 0, type(exc).__name__)
        except asyncio.CancelledError:
            pass  # stop(): the loop is shutting down
        except Exception as exc:
            self._keep_error(cid, exc)
        finally:
            writer.close()
            self._closed(cid)
            if task is not None:
                self._tasks.discard(task)


#: The four servers of lesson 03, in the order the lesson introduces them.
LOOP_SERVERS: dict[str, type[LoopServer]] = collections.OrderedDict(
    (cls.kind, cls) for cls in (SequentialServer, ThreadedServer, SelectorServer, AsyncioServer)
)
