"""The server contract, shared by every helper server.

Rules (DESIGN.md, "Server contract"):

* loopback only, port 0 by default; ``address`` is what a client connects to;
* a context manager; ``start()`` returns once the socket is bound and listening;
* ``stop()`` is idempotent and fast: it wakes blocked threads (a wake-up socket for the
  selector, ``shutdown()`` for blocked ``recv``/``send``) instead of polling with timeouts,
  then joins every thread it started, within a deadline;
* a server started under a ``name`` replaces a running server of that name, so re-running a
  notebook cell never fails with "Address already in use"; ``stop_all()`` and interpreter exit
  stop everything;
* threads never print or raise: a handler's exception is kept in ``errors`` and reported as a
  ``ServerWarning`` by the main thread (after the learner's cell, or at ``stop()``);
* what the server saw is kept in ``events`` (a bounded deque of ``ServerEvent``).
"""

from __future__ import annotations

import abc
import atexit
import collections
import dataclasses
import itertools
import selectors
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, ClassVar, Literal

from ..addresses import Address, check_loopback_host, check_port, family_of
from ..errors import ServerWarning

__all__ = ["LoopbackServer", "ServerError", "ServerEvent", "running_servers", "serve_listener", "stop_all"]

Mode = Literal["thread", "process"]

#: How long ``stop()`` waits for the threads it woke. Woken threads end in well under a
#: millisecond; the deadline only matters when a platform fails to wake a blocked call.
STOP_DEADLINE_S = 2.0
#: How many events a server keeps (oldest dropped first): enough for a plotted exchange,
#: bounded so a long-running server cannot grow without limit.
MAX_EVENTS = 100_000
#: How many handler errors a server keeps.
MAX_ERRORS = 100


@dataclasses.dataclass(frozen=True)
class ServerEvent:
    """One thing a server saw or did, on the same clock as ``time.perf_counter_ns()``."""

    t_ns: int
    op: str  # "accept", "recv", "send", "close", "reset", "drop", ...
    conn: int  # connection (TCP) or datagram peer number (UDP); 0 for the server itself
    nbytes: int = 0
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ServerError:
    """A handler's exception, kept instead of printed from a background thread."""

    t_ns: int
    server: str
    conn: int
    error: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.server}: connection {self.conn}: {self.error}"


_registry_lock = threading.Lock()
_running: dict[int, LoopbackServer] = {}
_by_name: dict[str, LoopbackServer] = {}
_unreported: collections.deque[ServerError] = collections.deque(maxlen=MAX_ERRORS)
_counter = itertools.count(1)


def running_servers() -> list[LoopbackServer]:
    """Every helper server started in this interpreter and not yet stopped."""
    with _registry_lock:
        return list(_running.values())


def stop_all() -> int:
    """Stop every running helper server; return how many were stopped.

    Call it at the end of a notebook or when in doubt: it is safe to call at any time.
    """
    servers = running_servers()
    for server in servers:
        server.stop()
    return len(servers)


def report_errors() -> None:
    """Turn handler errors kept by background threads into warnings, in the calling thread.

    Registered as an IPython ``post_run_cell`` hook, so an error appears under the cell that
    was running; ``stop()`` calls it too.
    """
    while _unreported:
        try:
            err = _unreported.popleft()
        except IndexError:  # pragma: no cover - emptied by another thread
            break
        # warn_explicit: point at the server, not at the line of this module that reports it.
        warnings.warn_explicit(
            f"{err} (the server kept serving; see server.errors for the traceback)",
            ServerWarning,
            filename=f"<server {err.server}>",
            lineno=0,
            module="socketlessons",
        )


def _install_ipython_hook() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: errors surface at stop()
        return
    ip = get_ipython()
    if ip is None or getattr(ip, "_socketlessons_hook", False):
        return
    ip.events.register("post_run_cell", lambda *_: report_errors())
    ip._socketlessons_hook = True


atexit.register(stop_all)


class LoopbackServer(abc.ABC):
    """Base of every helper server: lifecycle, registry, events and errors.

    Subclasses implement ``_open()`` (bind and return the listening socket) and ``_serve()``
    (run in a background thread until ``self._stopping`` is set), and wake their own blocked
    calls in ``_wake()``.
    """

    kind: ClassVar[str] = "server"
    #: ``start()`` after ``stop()`` serves again on a new port (False: it raises instead).
    restartable: ClassVar[bool] = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str | None = None,
        mode: Mode = "thread",
        trace: bool = False,
    ) -> None:
        self.host = check_loopback_host(host)
        self.port_requested = check_port(port)
        if mode not in ("thread", "process"):
            raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        self.name = name
        self.mode: Mode = mode
        self.trace = trace
        self.family = family_of(self.host)
        self.events: collections.deque[ServerEvent] = collections.deque(maxlen=MAX_EVENTS)
        self.errors: list[ServerError] = []
        #: connections closed at once because the operating system refused a thread for them
        self.turned_away = 0
        self._label = name or f"{self.kind}-{next(_counter)}"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._address: Address | None = None
        self._state: Literal["new", "running", "stopped"] = "new"
        self._process: Any = None  # a _process.ServerProcess in process mode

    # ---- public API -------------------------------------------------------------------------

    @property
    def address(self) -> Address:
        """``(host, port)`` to connect to; only known once started."""
        if self._address is None:
            raise RuntimeError(f"{self._label} is not running: call start() or use it in a with block first")
        return self._address

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self) -> LoopbackServer:
        """Bind, listen and serve in the background; return ``self`` once clients can connect.

        Idempotent while running. After ``stop()`` it serves again on a new port (read
        ``address`` again): a widget panel calls ``server.start().address`` so that it still
        works after the lesson's last cell stopped everything.
        """
        if self._state == "running":
            return self
        if self._state == "stopped":
            if not self.restartable:
                raise RuntimeError(f"{self._label} was stopped; create a new server instead of restarting it")
            # A panel that outlives the lesson's final stop_all() starts its server again: new
            # sockets, a new port (read .address again), the same settings and name.
            self._threads, self._address, self._process = [], None, None
        if self.name is not None:
            with _registry_lock:
                previous = _by_name.get(self.name)
            if previous is not None and previous is not self:
                previous.stop()  # re-running a cell: the new server replaces the old one
        _install_ipython_hook()
        if self.mode == "process":
            from ._process import ServerProcess

            self._process = ServerProcess(self)
            self._address = self._process.start()
        else:
            self._stopping.clear()
            listener = self._open()
            try:
                self._address = listener.getsockname()[:2]
                self._spawn(self._serve_guarded, f"{self._label}-main")
            except BaseException:
                listener.close()
                raise
        self._state = "running"
        with _registry_lock:
            _running[id(self)] = self
            if self.name is not None:
                _by_name[self.name] = self
        return self

    def stop(self) -> None:
        """Stop serving, wake and join every thread, close every socket. Safe to call twice."""
        with self._lock:
            if self._state != "running":
                return
            self._state = "stopped"
        try:
            if self._process is not None:
                errors, events = self._process.stop()
                self.errors.extend(errors)
                self.events.extend(events)
                _unreported.extend(errors)
            else:
                self._stopping.set()
                self._wake()
                stuck = self._join_threads(time.monotonic() + STOP_DEADLINE_S)
                self._close()
                if stuck:
                    self._keep_error(0, RuntimeError(f"threads did not stop in {STOP_DEADLINE_S} s: {stuck}"))
                self._threads.clear()
        finally:
            with _registry_lock:
                _running.pop(id(self), None)
                if self.name is not None and _by_name.get(self.name) is self:
                    del _by_name[self.name]
        report_errors()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f" on {self._address[0]}:{self._address[1]}" if self._address else ""
        return f"<{type(self).__name__} {self._label!r} {self._state}{where} ({self.mode})>"

    def iter_events(self, op: str | None = None) -> Iterator[ServerEvent]:
        """The events seen so far, optionally only those of one operation."""
        return (e for e in list(self.events) if op is None or e.op == op)

    # ---- for subclasses ---------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        """Constructor keyword arguments, to rebuild this server in a child process."""
        return {"host": self.host, "port": self.port_requested, "trace": self.trace}

    @abc.abstractmethod
    def _open(self) -> socket.socket:
        """Create, bind (and listen on) the server socket; return it."""

    @abc.abstractmethod
    def _serve(self) -> None:
        """Serve until ``self._stopping`` is set (runs in a background thread)."""

    @abc.abstractmethod
    def _wake(self) -> None:
        """Wake every thread blocked in a socket call so it sees ``self._stopping``."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Close every socket (called after the threads were joined)."""

    def _join_threads(self, deadline: float) -> list[str]:
        """Join every thread, including any spawned while joining; return those still alive."""
        me = threading.current_thread()
        while True:
            pending = [t for t in list(self._threads) if t.is_alive() and t is not me]
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return [t.name for t in pending]
            for thread in pending:  # the main (accept) thread comes first
                thread.join(max(0.0, deadline - time.monotonic()))

    def _spawn(self, target: Any, name: str, *args: Any) -> threading.Thread:
        # Daemon threads: a kernel shutting down never waits for a helper (ECOSYSTEM.md, nbclient).
        thread = threading.Thread(target=target, args=args, name=f"socketlessons-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _record(self, op: str, conn: int = 0, nbytes: int = 0, detail: str = "") -> None:
        self.events.append(ServerEvent(time.perf_counter_ns(), op, conn, nbytes, detail))

    def _keep_error(self, conn: int, exc: BaseException) -> None:
        err = ServerError(
            time.perf_counter_ns(),
            self._label,
            conn,
            f"{type(exc).__name__}: {exc}",
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(err)
        _unreported.append(err)
        self._record("error", conn, 0, err.error)

    def _spawn_for_connection(self, target: Any, conn_id: int, conn: socket.socket, *args: Any) -> bool:
        """Start the thread serving one connection; if the OS refuses a thread, close the
        connection, count it in ``turned_away`` and keep one error (not one per connection)."""
        try:
            self._spawn(target, f"{self._label}-conn{conn_id}", *args)
            return True
        except RuntimeError as exc:  # "can't start new thread": the price of a thread per connection
            conn.close()
            self.turned_away += 1
            self._record("refused", conn_id, 0, "no thread")
            if self.turned_away == 1:
                self._keep_error(conn_id, RuntimeError(
                    f"{exc}: the operating system refused a thread for this connection, so it was closed "
                    "(threads come from one pool the whole machine shares: see "
                    "socketlessons.resources.thread_room()); later ones are only counted, in .turned_away"))
            return False

    def _serve_guarded(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # never let a thread print a traceback into a cell
            if not self._stopping.is_set():
                self._keep_error(0, exc)


def make_listener(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    """A socket bound to ``(host, port)``; for TCP also listening.

    ``SO_REUSEADDR`` is set only for a fixed port on POSIX (so a restarted ``serve --port``
    does not trip over TIME_WAIT); on Windows it would allow port stealing, so there
    ``SO_EXCLUSIVEADDRUSE`` is used instead.
    """
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if port != 0:
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock


def serve_listener(listener: socket.socket, wake_r: socket.socket, stopping: threading.Event,
                   on_ready: Callable[[socket.socket], None]) -> None:
    """Call ``on_ready(listener)`` whenever a connection waits, until ``stopping`` is set.

    The one accept loop of the TCP helpers: a selector on the listening socket and the
    wake-up socket, with no timeout (``stop()`` writes to the wake-up socket; ``close()``
    alone would not wake a thread blocked in ``accept()`` on Linux). The listener is
    non-blocking, so a client that gives up between ``select`` and ``accept`` cannot leave
    the thread stuck in ``accept()`` where the wake-up socket cannot reach it.
    """
    listener.setblocking(False)
    with selectors.DefaultSelector() as sel:
        sel.register(listener, selectors.EVENT_READ)
        sel.register(wake_r, selectors.EVENT_READ)
        while not stopping.is_set():
            for key, _ in sel.select():
                if key.fileobj is listener and not stopping.is_set():
                    on_ready(listener)
