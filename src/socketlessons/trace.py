"""Trace a socket exchange: every call, its bytes and its result, on one clock.

``TracedSocket`` wraps a socket and keeps the stdlib method names, so a lesson's code runs
unchanged; each call is recorded in a ``Tracer`` as a ``TraceEvent`` (time on the
``time.perf_counter_ns`` clock, bytes asked, bytes done, result or error). Helper servers
started with ``trace=True`` record their own ``ServerEvent``s on the same clock;
``tracer.merge(server)`` puts both into one timeline, which ``tracer.table()`` lists and
``plots.sequence_diagram`` draws. No packet capture, no root.

Servers write their record after a call returned, so a server's send can appear a little
after the client's recv of the same bytes; traced sends are placed when the bytes were
offered, everything else when the call returned.

Example (one ``sendall`` of 1 MiB arrives as many ``recv`` calls of various sizes)::

    from socketlessons import SinkServer
    from socketlessons.trace import Tracer

    tracer = Tracer()
    with SinkServer(trace=True) as server:
        with tracer.connect(server.address) as sock:
            sock.sendall(b"x" * 2**20)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(8)
    tracer.merge(server)
    tracer.table()

A ``TracedSocket`` adds about a microsecond per call: trace to see *what* happens, time
untraced sockets to see *how long* it takes.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .validate import count

__all__ = ["TraceEvent", "TraceTable", "TracedSocket", "Tracer"]

#: Most events a tracer keeps (oldest dropped first), so a forgotten trace cannot grow forever.
MAX_TRACE_EVENTS = 100_000


@dataclasses.dataclass(frozen=True)
class TraceEvent:
    """One call: ``t_ns`` is when it returned, except for sends (when the bytes were offered,
    since the peer can read them before the send returns); ``dur_ns`` is how long it took.

    ``asked``: bytes offered (send) or the buffer size asked for (recv); ``None`` if not a
    data call. ``done``: bytes the call really sent or returned. ``result``: ``"ok"``,
    ``"EOF"`` (recv returned ``b""``), a peer address, or the error (``"TimeoutError: timed out"``).
    """

    t_ns: int
    side: str
    op: str
    asked: int | None
    done: int | None
    result: str = "ok"
    dur_ns: int = 0
    conn: int = 0


class Tracer:
    """Collects ``TraceEvent``s from traced sockets and helper servers (thread-safe)."""

    def __init__(self, maxlen: int = MAX_TRACE_EVENTS) -> None:
        self.events: collections.deque[TraceEvent] = collections.deque(maxlen=count("maxlen", maxlen, low=1,
                                                                                   unit="events"))
        self._lock = threading.Lock()
        self._merged: set[tuple[Any, ...]] = set()

    # ---- recording -----------------------------------------------------------------------------

    def record(self, event: TraceEvent) -> None:
        with self._lock:
            self.events.append(event)

    def wrap(self, sock: socket.socket, side: str = "client") -> TracedSocket:
        """``TracedSocket(sock, self, side)``."""
        return TracedSocket(sock, self, side)

    def connect(self, address: tuple[Any, ...], timeout: float | None = 5.0, side: str = "client") -> TracedSocket:
        """A traced TCP socket connected to ``address`` (its ``connect`` is in the trace).

        ``timeout`` (seconds) bounds every call, so a lesson never hangs on a silent peer.
        """
        family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
        sock = TracedSocket(socket.socket(family, socket.SOCK_STREAM), self, side)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self._merged.clear()

    def merge(self, *servers: Any, side: str = "server") -> list[TraceEvent]:
        """Add the ``events`` of helper servers (started with ``trace=True``) to this trace.

        Both sides use ``time.perf_counter_ns``, so the merged timeline is in true order.
        Merging the same server again adds only its new events. A server in process mode
        hands its events over when it stops. Returns the whole timeline, sorted by time.
        """
        for server in servers:
            events = _settled_events(server)
            if not events and hasattr(server, "trace") and not server.trace:
                raise ValueError(f"{server!r} records no calls: start it with trace=True")
            bufsize = getattr(server, "bufsize", None)
            for e in events:
                key = (id(server), e.t_ns, e.op, e.conn, e.nbytes)
                if key in self._merged:
                    continue
                self._merged.add(key)
                self.record(_from_server_event(e, side, bufsize))
        return self.timeline()

    # ---- reading -------------------------------------------------------------------------------

    def timeline(self) -> list[TraceEvent]:
        """Every event, sorted by time."""
        with self._lock:
            return sorted(self.events, key=lambda e: e.t_ns)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.timeline())

    def __len__(self) -> int:
        return len(self.events)

    def calls(self, op: str, side: str | None = None) -> list[TraceEvent]:
        """Events of one operation (e.g. ``"recv"``), optionally of one side."""
        return [e for e in self.timeline() if e.op == op and (side is None or e.side == side)]

    def total(self, op: str, side: str | None = None) -> int:
        """Bytes done by all calls of ``op`` (e.g. the bytes the server's recv calls returned)."""
        return sum(e.done or 0 for e in self.calls(op, side))

    def summary(self) -> dict[tuple[str, str], tuple[int, int]]:
        """``{(side, op): (calls, bytes done)}``."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for e in self.timeline():
            calls, nbytes = out.get((e.side, e.op), (0, 0))
            out[(e.side, e.op)] = (calls + 1, nbytes + (e.done or 0))
        return out

    def table(self, limit: int = 40) -> TraceTable:
        """A small table (text when printed, HTML in a notebook) of the first ``limit`` events."""
        return TraceTable(self.timeline(), limit)


#: ``merge`` waits at most this long for a server's handlers to record what they did, and stops
#: waiting once its events have not changed for ``SETTLE_QUIET_S`` (a connection still open).
SETTLE_LIMIT_S, SETTLE_QUIET_S = 1.0, 0.1


def _settled_events(server: Any) -> list[Any]:
    """The server's events once every connection it accepted has recorded its end (close or
    reset), bounded. A handler records a call after the call returns, so right after the client's
    last ``recv`` the server's ``sendall`` may not be in its list yet, nor the EOF and close
    that the client's close causes: measured beside nine busy kernels, a merged diagram lacked the
    server's reply to a request whose answer the client had read."""
    events = list(getattr(server, "events", ()))
    deadline = time.monotonic() + SETTLE_LIMIT_S
    changed = time.monotonic()
    while time.monotonic() < deadline:
        opened = {e.conn for e in events if e.op == "accept"}
        ended = {e.conn for e in events if e.op in ("close", "reset")}
        if opened <= ended or time.monotonic() - changed >= SETTLE_QUIET_S:
            break
        time.sleep(0.002)
        now = list(getattr(server, "events", ()))
        if len(now) != len(events):
            events, changed = now, time.monotonic()
    return events


def _from_server_event(e: Any, side: str, bufsize: int | None) -> TraceEvent:
    if e.op == "recv":
        return TraceEvent(e.t_ns, side, "recv", bufsize, e.nbytes, "ok" if e.nbytes else "EOF", 0, e.conn)
    if e.op == "send":
        return TraceEvent(e.t_ns, side, "sendall", e.nbytes, e.nbytes, "ok", 0, e.conn)
    detail = e.detail or "ok"
    if e.op == "close" and e.nbytes:
        detail = f"received {e.nbytes}, {detail}"
    return TraceEvent(e.t_ns, side, e.op, None, None, detail, 0, e.conn)


class TraceTable:
    """The trace as rows: ``str()`` gives text, a notebook shows HTML."""

    COLUMNS = ("t (µs)", "side", "call", "asked", "done", "result")

    def __init__(self, events: list[TraceEvent], limit: int = 40) -> None:
        self.events = events
        self.limit = limit

    def rows(self) -> list[tuple[str, ...]]:
        t0 = self.events[0].t_ns if self.events else 0
        return [
            (f"{(e.t_ns - t0) / 1000:.1f}", e.side, e.op, "" if e.asked is None else str(e.asked),
             "" if e.done is None else str(e.done), e.result)
            for e in self.events[: self.limit]
        ]

    def _more(self) -> str:
        n = len(self.events) - self.limit
        return f"... and {n} more calls" if n > 0 else ""

    def __str__(self) -> str:
        rows = [self.COLUMNS, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if self._more():
            lines.append(self._more())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows())
        more = f"<p>{html.escape(self._more())}</p>" if self._more() else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


class TracedSocket:
    """A socket whose calls are recorded in a ``Tracer``; same method names as ``socket.socket``.

    Methods not listed here pass through to the socket untraced (``getsockopt``, ``fileno``...).
    ``accept()`` returns a ``TracedSocket`` for the new connection, traced on the same side.
    """

    def __init__(self, sock: socket.socket, tracer: Tracer, side: str = "client") -> None:
        if not isinstance(tracer, Tracer):
            raise TypeError(f"tracer must be a Tracer, not {type(tracer).__name__}")
        self.sock = sock
        self.tracer = tracer
        self.side = side

    # ---- plumbing ------------------------------------------------------------------------------

    def _call(self, op: str, asked: int | None, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            value = fn(*args)
        except BaseException as exc:
            t1 = time.perf_counter_ns()
            self.tracer.record(TraceEvent(t1, self.side, op, asked, None, f"{type(exc).__name__}: {exc}", t1 - t0))
            raise
        t1 = time.perf_counter_ns()
        done, result = _outcome(op, value)
        if op == "sendall":
            done = asked  # sendall either sends every byte or raises
        # A send is placed when the bytes were offered (the peer may read them before the call
        # returns); everything else when it returned (a recv: when the bytes had arrived).
        at = t0 if op in _SENDING else t1
        self.tracer.record(TraceEvent(at, self.side, op, asked, done, result, t1 - t0))
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def __enter__(self) -> TracedSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TracedSocket {self.side} {self.sock!r}>"

    # ---- traced calls --------------------------------------------------------------------------

    def connect(self, address: Any) -> None:
        return self._call("connect", None, self.sock.connect, address)

    def connect_ex(self, address: Any) -> int:
        return self._call("connect_ex", None, self.sock.connect_ex, address)

    def bind(self, address: Any) -> None:
        return self._call("bind", None, self.sock.bind, address)

    def listen(self, backlog: int = socket.SOMAXCONN) -> None:
        return self._call("listen", None, self.sock.listen, backlog)

    def accept(self) -> tuple[TracedSocket, Any]:
        conn, addr = self._call("accept", None, self.sock.accept)
        return TracedSocket(conn, self.tracer, self.side), addr

    def send(self, data: Any, flags: int = 0) -> int:
        return self._call("send", _nbytes(data), self.sock.send, data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        return self._call("sendall", _nbytes(data), self.sock.sendall, data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        return self._call("sendto", _nbytes(data), self.sock.sendto, data, *args)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._call("recv", bufsize, self.sock.recv, bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self._call("recv_into", nbytes or _nbytes(buffer), self.sock.recv_into, buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._call("recvfrom", bufsize, self.sock.recvfrom, bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self._call("recvfrom_into", nbytes or _nbytes(buffer), self.sock.recvfrom_into, buffer, nbytes, flags)

    def shutdown(self, how: int) -> None:
        return self._call("shutdown", None, self.sock.shutdown, how)

    def close(self) -> None:
        if self.sock.fileno() == -1:
            return  # already closed: closing twice is allowed and not worth a line in the trace
        return self._call("close", None, self.sock.close)

    def settimeout(self, value: float | None) -> None:
        return self._call("settimeout", None, self.sock.settimeout, value)

    def setblocking(self, flag: bool) -> None:
        return self._call("setblocking", None, self.sock.setblocking, flag)

    def setsockopt(self, *args: Any) -> None:
        return self._call("setsockopt", None, self.sock.setsockopt, *args)


_SENDING = frozenset({"send", "sendall", "sendto"})


def _nbytes(data: Any) -> int | None:
    try:
        return memoryview(data).nbytes
    except TypeError:
        return None  # not bytes-like: the socket call will raise TypeError and the trace says so


def _outcome(op: str, value: Any) -> tuple[int | None, str]:
    if op in ("send", "sendto"):
        return value, "ok"
    if op == "sendall":
        return None, "ok"
    if op == "recv":
        return len(value), "ok" if value else "EOF"
    if op == "recvfrom":
        return len(value[0]), f"from {value[1][0]}:{value[1][1]}"
    if op in ("recv_into",):
        return value, "ok" if value else "EOF"
    if op == "recvfrom_into":
        return value[0], f"from {value[1][0]}:{value[1][1]}"
    if op == "accept":
        return None, f"from {value[1][0]}:{value[1][1]}"
    if op == "connect_ex":
        return None, "ok" if value == 0 else f"errno {value}"
    return None, "ok"


def totals(events: Iterable[TraceEvent], op: str, side: str | None = None) -> int:
    """Bytes done by ``op`` calls in ``events`` (for timelines built by hand)."""
    return sum(e.done or 0 for e in events if e.op == op and (side is None or e.side == side))
