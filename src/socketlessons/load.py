"""Many concurrent clients from one kernel: N connections, per-request latency, bounded.

``run_load(address, clients=N)`` opens N TCP connections at once, waits until all are connected
(or failed), then lets every client send its requests at the same moment and records, per
client, how long its ``connect`` took and, per request, when it was sent and when the whole
reply was back, on the ``time.perf_counter_ns()`` clock that the helper servers' events use.

All N clients live in ONE background thread running its own asyncio event loop (never the
kernel's loop, never N threads): a thousand clients cost a thousand sockets, not a thousand
stacks, and the kernel stays responsive. Everything is bounded: at most ``MAX_CLIENTS``
clients, a deadline for the whole run (unfinished clients are closed and reported), and a cap
on connects in flight so a burst does not overflow the server's accept queue.

``open_connections(address, n)`` opens n connections and holds them, idle, until closed: the
"many mostly idle connections" measurement of lesson 03.

Used in 03_server_loop and benchmarks/bench_loops.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from .validate import count, seconds
from .addresses import check_loopback_host
from .background_call import BackgroundCall

__all__ = ["MAX_CLIENTS", "ClientRecord", "IdleConnections", "LoadResult", "make_payload", "open_connections",
           "percentile", "run_load"]

#: Most clients one run opens: each costs a descriptor here (and one in an in-kernel server);
#: lesson 03 goes to about 10,000 with a 20,000-descriptor limit.
MAX_CLIENTS = 20_000
#: Connects in flight at once: enough to be fast, few enough not to overflow a listen backlog.
CONNECT_CONCURRENCY = 256
#: Largest request a load client sends.
MAX_PAYLOAD = 1 << 20
#: Smallest request: room for the client and request numbers that make each request unique.
MIN_PAYLOAD = 16


@dataclasses.dataclass
class ClientRecord:
    """What one client saw. Times are ``perf_counter_ns()`` values; durations are ns."""

    client: int
    connect_start_ns: int = 0
    connect_ns: int | None = None  # None: never connected
    sent_ns: list[int] = dataclasses.field(default_factory=list)
    done_ns: list[int] = dataclasses.field(default_factory=list)
    wrong: int = 0  # replies that were not what the server should have answered
    error: str = ""

    @property
    def latencies_ns(self) -> list[int]:
        """Per completed request: reply fully received minus request sent."""
        return [d - s for s, d in zip(self.sent_ns, self.done_ns)]

    @property
    def completed(self) -> int:
        return len(self.done_ns)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@dataclasses.dataclass
class LoadResult:
    """The records of one load run, with the summaries a lesson plots."""

    clients: list[ClientRecord]
    requests_per_client: int
    start_ns: int
    end_ns: int
    timed_out: bool

    @property
    def latencies_ns(self) -> list[int]:
        return [lat for c in self.clients for lat in c.latencies_ns]

    @property
    def completed(self) -> int:
        return sum(c.completed for c in self.clients)

    @property
    def expected(self) -> int:
        return len(self.clients) * self.requests_per_client

    @property
    def wrong(self) -> int:
        return sum(c.wrong for c in self.clients)

    @property
    def failed(self) -> list[ClientRecord]:
        """Clients that did not finish every request correctly."""
        return [c for c in self.clients if c.error or c.wrong or c.completed < self.requests_per_client]

    @property
    def ok(self) -> bool:
        """Every client connected and got every reply, each exactly right."""
        return not self.failed and not self.timed_out

    @property
    def seconds(self) -> float:
        """From the first request sent to the last reply received (connects not included)."""
        sent = [c.sent_ns[0] for c in self.clients if c.sent_ns]
        done = [c.done_ns[-1] for c in self.clients if c.done_ns]
        return (max(done) - min(sent)) / 1e9 if sent and done else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else float("nan")

    def latency_ms(self, q: float = 50) -> float:
        """The ``q``-th percentile of request latency, in milliseconds (50: median)."""
        return percentile(self.latencies_ns, q) / 1e6

    def connect_ms(self, q: float = 50) -> float:
        return percentile([c.connect_ns for c in self.clients if c.connect_ns is not None], q) / 1e6

    def first_reply_ms(self) -> list[float]:
        """Per client, ms from the common start signal to its first reply (who waited for whom)."""
        return [(c.done_ns[0] - c.sent_ns[0]) / 1e6 for c in self.clients if c.done_ns]

    def summary(self) -> str:
        if not self.completed:
            first = next((c.error for c in self.clients if c.error), "")
            return (f"{len(self.clients)} clients × {self.requests_per_client} requests: none answered"
                    + (f" ({first})" if first else "") + ("; TIMED OUT" if self.timed_out else ""))
        text = (f"{len(self.clients)} clients × {self.requests_per_client} requests: {self.completed}/"
                f"{self.expected} answered in {self.seconds:.3g} s ({self.requests_per_s:,.0f} req/s); "
                f"latency median {self.latency_ms(50):.3g} ms, p99 {self.latency_ms(99):.3g} ms")
        if self.failed:
            first = next((c.error for c in self.failed if c.error), "")
            text += f"; {len(self.failed)} clients failed" + (f" (first: {first})" if first else "")
        return text + ("; TIMED OUT" if self.timed_out else "")

    def __repr__(self) -> str:
        return f"<LoadResult {self.summary()}>"


def make_payload(client: int, request: int, size: int) -> bytes:
    """A request of exactly ``size`` bytes naming its client and number (so a mix-up shows)."""
    head = b"c%07d r%06d " % (client, request)
    return (head + b"." * size)[:size] if size >= len(head) else head[:size]


def _check(clients: int, requests: int, size: int, timeout: float, *, clients_name: str = "clients") -> None:
    for label, value, low, high in ((clients_name, clients, 1, MAX_CLIENTS), ("requests", requests, 0, 100_000),
                                    ("size", size, MIN_PAYLOAD, MAX_PAYLOAD)):
        count(label, value, low=low, high=high)
    seconds("timeout", timeout, high=600, allow_low=False)


def _check_address(address: tuple[str, int]) -> tuple[str, int]:
    if not isinstance(address, tuple) or len(address) < 2:
        raise TypeError(f"address must be a (host, port) tuple such as server.address, got {address!r}")
    return check_loopback_host(address[0]), int(address[1])


def _run_in_thread(coro_factory: Callable[[asyncio.AbstractEventLoop], object], deadline_s: float) -> object:
    """Run a coroutine on a fresh event loop in ONE background thread; wait for it, bounded."""
    loop = asyncio.new_event_loop()

    def main() -> object:
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(coro_factory(loop))  # type: ignore[arg-type]
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    try:
        call = BackgroundCall(main, name="socketlessons-load").start()
    except RuntimeError as exc:  # "can't start new thread"
        loop.close()
        raise RuntimeError(f"could not start the clients' thread ({exc}): the machine has no thread to spare "
                           "(socketlessons.resources.thread_room() says which limit); shut down kernels you "
                           "no longer use, or ask for fewer connections") from None
    try:
        call.join(deadline_s)
    except KeyboardInterrupt:  # the learner pressed stop: cancel the run, then re-raise
        for task in asyncio.all_tasks(loop) if not loop.is_closed() else ():
            loop.call_soon_threadsafe(task.cancel)
        call.join(5.0)
        raise
    if call.still_running:  # the coroutine's own deadline should have fired long before
        raise RuntimeError(f"the load thread did not finish within {deadline_s:g} s")
    return call.outcome()


async def _connect(loop: asyncio.AbstractEventLoop, address: tuple[str, int], family: socket.AddressFamily,
                   gate: asyncio.Semaphore, rec: ClientRecord | None) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        async with gate:
            t0 = time.perf_counter_ns()
            await loop.sock_connect(sock, address)
            if rec is not None:
                rec.connect_start_ns, rec.connect_ns = t0, time.perf_counter_ns() - t0
    except BaseException:
        sock.close()
        raise
    return sock


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = await loop.sock_recv(sock, min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {got} of {n} reply bytes")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def run_load(address: tuple[str, int], clients: int = 10, *, requests: int = 1, size: int = 64,
             think: float = 0.0, timeout: float = 30.0,
             expect: Callable[[bytes], bytes] | None = None) -> LoadResult:
    """Run ``clients`` concurrent clients against ``address``; return what each one saw.

    Each client connects (at most ``CONNECT_CONCURRENCY`` connects in flight); once every
    client is connected or failed, all start together: ``requests`` times, send a ``size``-byte
    request, read the whole reply, record the latency, wait ``think`` seconds. Then close.

    Args:
        address: ``server.address`` of a loopback server.
        clients: how many clients (1 to ``MAX_CLIENTS``).
        requests: requests per client (0: connect only).
        size: bytes per request (16 to 1 MiB); each request is unique (client and request number).
        think: seconds each client waits between requests.
        timeout: deadline for the whole run; clients not done by then are closed and reported.
        expect: the reply the server should send for a request (default: the request itself).

    Example::

        with ThreadedServer(cost=0.01) as server:
            result = run_load(server.address, clients=100)
        result.latency_ms(99)
    """
    _check(clients, requests, size, timeout)
    think = seconds("think", think, high=60)
    host, port = _check_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    want = expect or (lambda data: data)
    records = [ClientRecord(i) for i in range(1, clients + 1)]

    async def one(loop: asyncio.AbstractEventLoop, rec: ClientRecord, gate: asyncio.Semaphore,
                  arrived: list[int], go: asyncio.Event) -> None:
        sock = None
        try:
            try:
                sock = await _connect(loop, (host, port), family, gate, rec)
            finally:
                arrived[0] += 1
                if arrived[0] == clients:
                    go.set()
            await go.wait()
            for r in range(requests):
                request = make_payload(rec.client, r, size)
                reply_wanted = want(request)
                rec.sent_ns.append(time.perf_counter_ns())
                await loop.sock_sendall(sock, request)
                reply = await _recv_exactly(loop, sock, len(reply_wanted))
                rec.done_ns.append(time.perf_counter_ns())
                rec.wrong += reply != reply_wanted
                if think:
                    await asyncio.sleep(think)
        except asyncio.CancelledError:
            rec.error = rec.error or f"not done after the {timeout:g} s deadline"
        except OSError as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
        finally:
            if sock is not None:
                sock.close()
            if len(rec.sent_ns) > len(rec.done_ns):
                rec.sent_ns.pop()  # a request without its reply has no latency

    async def main(loop: asyncio.AbstractEventLoop) -> LoadResult:
        gate, go, arrived = asyncio.Semaphore(CONNECT_CONCURRENCY), asyncio.Event(), [0]
        start = time.perf_counter_ns()
        tasks = [loop.create_task(one(loop, rec, gate, arrived, go)) for rec in records]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        return LoadResult(records, requests, start, time.perf_counter_ns(), timed_out=bool(pending))

    return _run_in_thread(main, timeout + 10.0)  # type: ignore[return-value]


class IdleConnections:
    """``n`` open TCP connections that send nothing until closed (a context manager).

    Example::

        with AsyncioServer() as server, open_connections(server.address, 2000) as idle:
            len(idle), server.connections      # 2000, 2000
    """

    def __init__(self, socks: list[socket.socket], failed: int, first_error: str, seconds: float) -> None:
        self.sockets = socks
        self.failed = failed
        self.first_error = first_error
        self.seconds = seconds

    def __len__(self) -> int:
        return len(self.sockets)

    def close(self) -> None:
        """Close every connection (idempotent)."""
        socks, self.sockets = self.sockets, []
        for sock in socks:
            sock.close()

    def __enter__(self) -> IdleConnections:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        extra = f", {self.failed} failed ({self.first_error})" if self.failed else ""
        return f"<IdleConnections {len(self.sockets)} open{extra}, opened in {self.seconds:.2f} s>"


def open_connections(address: tuple[str, int], n: int, *, timeout: float = 60.0) -> IdleConnections:
    """Open ``n`` connections to ``address`` and hold them open, idle; close with ``close()``.

    Connections that fail (descriptor limit, refused) are counted, not raised: the point is to
    find out how many a server can hold. Stops at the deadline with what it has.
    """
    _check(n, 0, MIN_PAYLOAD, timeout, clients_name="n")
    host, port = _check_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    async def main(loop: asyncio.AbstractEventLoop) -> IdleConnections:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        t0 = time.monotonic()
        tasks = [loop.create_task(_connect(loop, (host, port), family, gate, None)) for _ in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        socks, errors = [], []
        for task in tasks:
            if task.cancelled():
                errors.append("deadline")
            elif task.exception() is not None:
                exc = task.exception()
                errors.append(f"{type(exc).__name__}: {exc}")
            else:
                socks.append(task.result())
        return IdleConnections(socks, len(errors), errors[0] if errors else "", time.monotonic() - t0)

    return _run_in_thread(main, timeout + 10.0)  # type: ignore[return-value]

