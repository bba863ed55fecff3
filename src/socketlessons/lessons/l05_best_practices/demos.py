"""Helpers of lesson 05 (best practices): a slow server, a watchdog, leak and GUI probes.

What lesson 05 shows needs a few things no other lesson does:

* ``SlowEchoServer``: echoes after a delay, like a far-away server; with ``serial=True`` it
  serves one client at a time, like the reference's synchronous server loop;
* ``watch(fn, seconds)``: run a call that may never return in a daemon thread and report
  whether it is still waiting (the "hangs forever" demo, without hanging the kernel);
* ``resource_warnings_visible()`` and ``recording_resource_warnings()``: Python's default
  warning filters hide ``ResourceWarning``; these show the filter and catch the warnings;
* ``localhost_server()``: ``create_server(("127.0.0.1", 0))`` that no ``connect("localhost")``
  can miss, even when ``localhost`` also means ``::1`` and another kernel listens there;
* ``GuiDemo``: three buttons fetching from a slow server, blocking the kernel or handing the
  work to a thread or to asyncio; each click measures how long the kernel was kept busy;
* verdict functions that turn measured numbers into the sentence the notebook prints.

Used in 05_best_practices.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from ...background_call import BackgroundCall
from ...framing import recv_up_to
from ...measure import Point, Status, Timing, fit_affine, machine_load, summarize
from ...resources import recording_resource_warnings
from ...servers import SilentServer, TCPServer
from ...servers._tcp import ConnectionStats
from .._ports import listener_alone_at_its_port

__all__ = [
    "GuiDemo",
    "HangingServer",
    "clients_timing",
    "fetch_async",
    "run_async",
    "wait_until",
    "SlowEchoServer",
    "Verdict",
    "Watch",
    "concurrency_verdict",
    "fetch_blocking",
    "localhost_server",
    "gui_verdict",
    "recording_resource_warnings",
    "resource_warnings_visible",
    "waits_verdict",
    "watch",
    "with_verdict",
]

#: How long a serial server's waiting connection thread sleeps between checks for its turn or
#: for stop(): short, so stop() stays fast; only waiting threads pay it.
_TURN_POLL_S = 0.02


class SlowEchoServer(TCPServer):
    """Echoes each piece it receives ``delay`` seconds later, like a server far away.

    Args:
        delay: seconds between receiving a piece and echoing it (0 to 10).
        serial: serve one connection at a time (the others wait, connected but unserved),
            like the reference's ``while True: accept(); handle()`` loop.

    ``max_concurrent`` reports the most requests in progress at the same moment (received,
    echo not yet due).
    """

    kind = "slow-echo"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, delay: float = 0.05,
                 serial: bool = False, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if not 0 <= delay <= 10:
            raise ValueError(f"delay must be between 0 and 10 seconds, got {delay!r}")
        self.delay, self.serial = delay, serial
        self.max_concurrent = 0
        self._serving = 0
        self._turn = threading.Lock()
        self._count_lock = threading.Lock()

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "delay": self.delay, "serial": self.serial}

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        if self.serial:
            while not self._turn.acquire(timeout=_TURN_POLL_S):
                if self._stopping.is_set():
                    return
        try:
            while data := self._recv(conn, stats):
                # counted from receiving a piece until its echo is due, and uncounted BEFORE
                # the echo leaves: a client that got its reply can never still be counted
                # when the next one-after-another client arrives
                with self._count_lock:
                    self._serving += 1
                    self.max_concurrent = max(self.max_concurrent, self._serving)
                try:
                    stopping = self._stopping.wait(self.delay)  # stop() cuts the delay short
                finally:
                    with self._count_lock:
                        self._serving -= 1
                if stopping:
                    return
                self._send(conn, stats, data)
        finally:
            if self.serial:
                self._turn.release()


class HangingServer(SilentServer):
    """Never answers and never closes, not even after the client's half-close.

    ``SilentServer`` closes when the client says "done" (``shutdown(SHUT_WR)``); this one
    keeps the connection open until it is stopped: only a timeout gets a client out.
    """

    kind = "hanging"

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        super().handle(conn, stats)  # read and discard until the client's EOF
        self._stopping.wait()  # then hold the connection open; stop() sets the event


# ---- a call that may never return -------------------------------------------------------------


class Watch(BackgroundCall):
    """A call running in a daemon thread: is it still waiting, and what did it return?"""

    @property
    def still_waiting(self) -> bool:
        return self.still_running

    @property
    def result(self) -> Any:
        return self.value

    def join(self, timeout: float = 2.0) -> bool:
        """Wait (bounded) for the call to finish; True if it did."""
        return super().join(timeout)


def watch(fn: Callable[[], Any], seconds: float) -> Watch:
    """Run ``fn()`` in a daemon thread and wait at most ``seconds`` for it.

    The kernel stays free: if ``fn`` never returns, the thread keeps waiting (wake it by closing
    what it waits on, e.g. stopping the server) and ``still_waiting`` says so. What ``fn`` raised
    is kept in ``error`` for the notebook to show, never printed from the thread.
    """
    w = Watch(fn, name="socketlessons-watch").start()
    w.join(seconds)
    return w


#: How long ``accept()`` on a ``localhost_server()`` may wait: the demo connects first, so it never should.
LOCALHOST_ACCEPT_TIMEOUT_S = 5.0


@contextlib.contextmanager
def localhost_server(attempts: int = 20) -> Iterator[socket.socket]:
    """``socket.create_server(("127.0.0.1", 0))``, with every other address of ``localhost`` held.

    ``create_connection(("localhost", port))`` tries each address ``localhost`` resolves to, often
    ``::1`` first. IPv4 and IPv6 hand out port numbers separately, so in a classroom another
    kernel may be listening on ``[::1]`` at this very number, and the demo would talk to it. We
    bind (and never listen on) each other address at the same port: connecting there is refused
    at once and ``create_connection`` moves on to our server. If one of them is taken, we draw a
    new port (a bounded number of times). ``accept()`` gets a timeout, so it can never hang.
    """
    others = {ai[4][0] for ai in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)}
    with listener_alone_at_its_port("127.0.0.1", others, attempts=attempts) as server:
        server.settimeout(LOCALHOST_ACCEPT_TIMEOUT_S)
        yield server


def wait_until(predicate: Callable[[], bool], timeout: float = 1.0, poll: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value.

    For things another thread finishes a moment later (a server noticing a closed connection).
    """
    deadline = time.monotonic() + timeout
    while not (ok := bool(predicate())) and time.monotonic() < deadline:
        time.sleep(poll)
    return ok


# ---- ResourceWarning --------------------------------------------------------------------------


def resource_warnings_visible() -> bool:
    """Would an unclosed socket's ``ResourceWarning`` be shown under the current filters?"""
    for action, message, category, module, _lineno in warnings.filters:
        if issubclass(ResourceWarning, category) and (message is None or message.match("unclosed")) \
                and (module is None or module.match("socket")):
            return action != "ignore"
    return True  # no filter matches: Python's default action shows it


# ---- blocking in a GUI callback ---------------------------------------------------------------


def fetch_blocking(address: tuple[str, int], payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    """One request to an echo server, waiting for the whole reply (bounded by ``timeout``)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        return recv_up_to(sock, len(payload))


async def fetch_async(address: tuple[str, int], payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    """The same request with asyncio streams: waits without blocking the event loop."""
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(payload)
            await writer.drain()
            return await reader.readexactly(len(payload))
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.wait_for(exchange(), timeout)


T = TypeVar("T")
#: Longest a helper waits for a coroutine run in its own thread.
RUN_ASYNC_TIMEOUT_S = 30.0


def run_async(make_coro: Callable[[], Awaitable[T]], timeout: float = RUN_ASYNC_TIMEOUT_S) -> T:
    """Run ``make_coro()`` in a fresh event loop in a helper thread; wait (bounded) for it.

    In a notebook cell, prefer top-level ``await``: the kernel's own loop is already running,
    so ``asyncio.run()`` fails there. This helper is for code that is not a coroutine itself
    (a sweep's op, a widget's worker thread).
    """
    call = BackgroundCall(lambda: asyncio.run(make_coro()), name="socketlessons-async").start()  # type: ignore[arg-type]
    if not call.join(timeout):
        raise TimeoutError(f"the coroutine did not finish within {timeout:g} s")
    return call.outcome()  # type: ignore[no-any-return]


async def _clients(address: tuple[str, int], n: int, at_once: bool, payload: bytes) -> None:
    if at_once:
        await asyncio.gather(*(fetch_async(address, payload) for _ in range(n)))
    else:
        for _ in range(n):
            await fetch_async(address, payload)


def clients_timing(address: tuple[str, int], n: int, *, at_once: bool, repeats: int = 3, warmup: int = 1,
                   payload: bytes = b"ping") -> Timing:
    """Wall time for ``n`` clients, each one request, all at once or one after another.

    Each client opens its own connection (asyncio streams), sends ``payload``, reads the echo
    and closes. Returns a ``Timing`` of ``repeats`` runs (for ``measure.sweep``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of clients, got {n!r}")
    samples = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter_ns()
        run_async(lambda: _clients(address, n, at_once, payload))
        if i >= warmup:  # the first run pays for imports, thread and loop start-up
            samples.append(time.perf_counter_ns() - t0)
    return summarize(samples)


MODES = ("blocking", "thread", "asyncio")


class GuiDemo:
    """Three buttons that fetch from a slow server: blocking, in a thread, with asyncio.

    Each click records ``busy_s[mode]``, how long the callback kept the kernel busy (while a
    callback runs, the kernel handles no other click, slider or cell), and ``reply_s[mode]``,
    how long the reply took to arrive. A "ping" button counts clicks: click it while a
    blocking fetch runs and watch the count stall.

    Headless (tests, nbmake): ``demo.click("thread")`` does what a click does;
    ``await demo.finished("asyncio")`` waits (bounded) for the background work.
    """

    def __init__(self, address: tuple[str, int], payload: bytes = b"ping", timeout: float = 5.0, *,
                 fetch: Callable[..., bytes] | None = None,
                 fetch_async: Callable[..., Awaitable[bytes]] | None = None) -> None:
        from ..._interrupts import import_held

        w = import_held("ipywidgets")  # ■ during a first import would break it for the kernel

        self.address, self.payload, self.timeout = address, payload, timeout
        # the lesson passes the two fetch functions its cell defines; these defaults are the same code
        self._fetch = fetch or fetch_blocking
        self._fetch_async = fetch_async or globals()["fetch_async"]
        self.busy_s: dict[str, float] = {}
        self.reply_s: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self._done = {mode: threading.Event() for mode in MODES}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.buttons = {mode: w.Button(description=f"fetch ({mode})") for mode in MODES}
        for mode, button in self.buttons.items():
            button.on_click(lambda _b, mode=mode: self._clicked(mode))
        self.pings = 0
        self.ping_button = w.Button(description="ping: 0", button_style="info")
        self.ping_button.on_click(self._ping)
        self.status = w.Label(value="click a fetch button, then 'ping' at once")
        self.widget = w.VBox([w.HBox([*self.buttons.values(), self.ping_button]), self.status])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _ping(self, _button: Any) -> None:
        self.pings += 1
        self.ping_button.description = f"ping: {self.pings}"

    def click(self, mode: str) -> None:
        """What clicking the ``mode`` button does."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.buttons[mode].click()

    def _finish(self, mode: str, t0: float, error: BaseException | None = None) -> None:
        # Runs in a worker thread or a task: record and set widget values only, never print.
        self.reply_s[mode] = time.perf_counter() - t0
        if error is not None:
            self.errors[mode] = f"{type(error).__name__}: {error}"
        self.status.value = f"{mode}: reply after {self.reply_s[mode]:.3f} s" + (f" ({self.errors[mode]})" if error else "")
        self._done[mode].set()

    def _clicked(self, mode: str) -> None:
        self._done[mode].clear()
        t0 = time.perf_counter()
        if mode == "blocking":
            try:
                self._fetch(self.address, self.payload, self.timeout)
                self._finish(mode, t0)
            except OSError as exc:
                self._finish(mode, t0, exc)
        elif mode == "thread":
            def work() -> None:
                try:
                    self._fetch(self.address, self.payload, self.timeout)
                    self._finish(mode, t0)
                except OSError as exc:
                    self._finish(mode, t0, exc)

            threading.Thread(target=work, name="socketlessons-gui-fetch", daemon=True).start()
        else:
            async def work_async() -> None:
                try:
                    await self._fetch_async(self.address, self.payload, self.timeout)
                    self._finish(mode, t0)
                except (OSError, asyncio.TimeoutError) as exc:
                    self._finish(mode, t0, exc)

            task = asyncio.get_running_loop().create_task(work_async())
            self._tasks.add(task)  # keep a reference: the loop holds tasks only weakly
            task.add_done_callback(self._tasks.discard)
        self.busy_s[mode] = time.perf_counter() - t0

    async def finished(self, mode: str, timeout: float | None = None) -> bool:
        """Wait (without blocking the event loop) until ``mode``'s reply arrived; True if it did."""
        deadline = time.perf_counter() + (self.timeout + 1 if timeout is None else timeout)
        while not self._done[mode].is_set() and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        return self._done[mode].is_set()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A verdict lesson 05 prints: ``status`` and the sentences (``str()``), built from the numbers."""

    status: Status
    text: str

    def __str__(self) -> str:
        return self.text


def with_verdict(leaked: int | None, kept: int | None, calls: int) -> Verdict:
    """Section 1's verdict: descriptors left open by ``calls`` failed calls, without and with ``with``.

    Counts, not times: a socket the error keeps alive holds its descriptor until the error is
    freed, so the count is exact (other descriptors opened in this process meanwhile add to it).
    """
    if leaked is None or kept is None:
        return Verdict("inconclusive", "inconclusive: this system does not let Python count its open descriptors")
    head = f"without with: {leaked} of {calls} sockets left open; with `with`: {kept} of {calls}"
    if kept == 0 and leaked >= calls:
        return Verdict("confirmed", f"{head}\n→ confirmed: each saved error kept its socket open; `with` closed "
                       "every socket, also when sendall raised")
    if kept > 0:
        return Verdict("inconclusive", f"{head}\n→ inconclusive: {kept} more descriptor(s) were open after the "
                       "`with` calls; descriptors that something else in this process opened meanwhile (a "
                       "running panel or server) count too: run the two cells again")
    return Verdict("inconclusive", f"{head}\n→ inconclusive: without `with`, only {leaked} of {calls} stayed open: "
                   "the saved errors (and their sockets) were freed before counting; run the cells in order, "
                   "from the one that fills `failures`")


#: The blocking fetch must keep the kernel busy at least this long for the trap to show.
GUI_MIN_BLOCK_S = 0.05
#: Handing off must free the kernel at least this many times sooner than blocking. Starting a
#: thread or a task takes well under a millisecond; the blocking click waits the server's delay
#: (0.3 s in the lesson), so the real ratio is in the hundreds even on a busy machine.
GUI_RATIO = 10.0


def gui_verdict(busy_s: dict[str, float], delay_s: float) -> Verdict:
    """The verdict lesson 05 prints about blocking in a GUI callback, from the measured times.

    One click per mode; each time is what the user waits before the kernel answers again (so
    one measurement, not an estimator over many: the blocking one cannot be shorter than the
    server's delay, and the offloaded ones are thread or task start-ups).
    """
    blocked = busy_s["blocking"]
    offloaded = {m: t for m, t in busy_s.items() if m != "blocking"}
    worst = max(offloaded, key=offloaded.__getitem__) if offloaded else None
    freed = offloaded.get(worst, 0.0) if worst else 0.0
    lines = [f"{mode:>8}: the click kept the kernel busy {busy_s[mode] * 1000:8.2f} ms"
             for mode in MODES if mode in busy_s]
    if blocked < GUI_MIN_BLOCK_S:
        lines.append(f"inconclusive: the blocking fetch took only {blocked * 1000:.1f} ms: a fast server "
                     f"hides the trap; raise the server's delay (now {delay_s:g} s) and click again")
        return Verdict("inconclusive", "\n".join(lines))
    if worst is None:
        lines.append("inconclusive: click an offloading button (thread or asyncio) too, to compare")
        return Verdict("inconclusive", "\n".join(lines))
    if freed * GUI_RATIO <= blocked:
        lines.append(f"confirmed: blocking in a callback froze the kernel for {blocked:.2f} s (the server's "
                     f"delay was {delay_s:g} s); handing the work off freed it after at most "
                     f"{freed * 1000:.1f} ms ({worst}), {blocked / max(freed, 1e-9):,.0f}x sooner")
        return Verdict("confirmed", "\n".join(lines))
    if freed * 2 >= blocked:
        lines.append(f"contradicted: the {worst} click kept the kernel busy {freed * 1000:.1f} ms, about as long "
                     f"as the blocking one ({blocked * 1000:.1f} ms): that callback waited for the reply itself")
        return Verdict("contradicted", "\n".join(lines))
    load = machine_load()
    lines.append(f"inconclusive: the {worst} click kept the kernel busy {freed * 1000:.1f} ms, less than blocking "
                 f"({blocked * 1000:.1f} ms) but not {GUI_RATIO:g}x less; starting a thread or a task "
                 f"usually takes well under a millisecond, so something slowed it ({load}): click again")
    return Verdict("inconclusive", "\n".join(lines))


#: "At once" must beat "one after another" by at least this factor (or n / 4, if larger) for
#: the claim; the ideal is n (all n waits overlap into one).
CONCURRENCY_RATIO = 2.0


def concurrency_verdict(label: str, sequential_s: float, concurrent_s: float, n: int, delay_s: float, *,
                        served_at_once: int | None = None) -> Verdict:
    """Compare ``n`` requests one after another with ``n`` at once, against a ``delay_s`` server.

    The times are medians of whole runs: the claim is about what a user waits for n replies.
    ``served_at_once``: the most requests the concurrent run's server had in progress at the same
    moment (``SlowEchoServer.max_concurrent``). When it served all ``n`` at once, the waits DID
    overlap, so "only partly faster" cannot be blamed on serving them one at a time: what is left
    is the machine's time to connect and schedule n clients (measured at load 20: 8 clients at
    once 12-40 ms against 10 ms of delay), and the verdict says so instead of "refined".
    """
    ratio = sequential_s / max(concurrent_s, 1e-9)
    need = max(CONCURRENCY_RATIO, n / 4)
    head = (f"{label}: {n} requests one after another took {sequential_s:.3f} s "
            f"(at least {n} × {delay_s:g} s = {n * delay_s:.3f} s); all at once took {concurrent_s:.3f} s")
    if served_at_once is not None:
        head += f"; the server had {served_at_once} in progress at once"
    if ratio >= need:
        return Verdict("confirmed", f"{head}\n→ confirmed: {ratio:.1f}x faster at once: the waits overlap, so the "
                       f"total was {concurrent_s / max(delay_s, 1e-9):.1f} delays instead of "
                       f"{sequential_s / max(delay_s, 1e-9):.1f}")
    if served_at_once is not None and served_at_once >= n:
        return Verdict("inconclusive", (
            f"{head}\n→ inconclusive: only {ratio:.1f}x faster (at least {need:.1f}x expected), yet the server "
            f"served all {n} at once, so the waits did overlap; the other "
            f"{max(concurrent_s - delay_s, 0) * 1e3:.0f} ms went to connecting and scheduling {n} clients on a "
            f"busy machine ({machine_load()}). Run the cell again when it is quieter."))
    if ratio >= 1.5:
        return Verdict("refined", f"{head}\n→ refined: only {ratio:.1f}x faster (at least {need:.1f}x expected): "
                       "the waits overlapped partly; something still serves them partly one at a time")
    return Verdict("contradicted", f"{head}\n→ contradicted: no faster ({ratio:.1f}x): the requests were still "
                   "served one at a time")


#: Each client added to N clients adds about one server delay to the total when the waits add up
#: (measured: 0.9-1.05 delays, quiet and at load 3) and far less when they overlap (0.05-0.3: what
#: is left is each client's own connection and handshake, which grows with the machine's load).
#: Between the two the verdict says it cannot tell.
ADDS_UP, OVERLAPS = 0.7, 0.4
WAYS = ("add up", "overlap")


def waits_verdict(label: str, expected: str, points: Sequence[Point], delay_s: float) -> Verdict:
    """"The waits add up" or "the waits overlap", judged from what each added client adds.

    ``points``: total time (median of runs) against N clients, against a server that answers
    each request after ``delay_s``. A straight line through them: its slope is the time one more
    client adds. One delay per client: the waits add up (linear in N). Far less: they overlap,
    and the small slope left is the clients' own connections. A log-log growth label judged this
    before and flipped between "constant", "sub-linear" and "too noisy" on a busy machine,
    because a fixed 10 ms plus a growing connection cost is neither constant nor a power law;
    the per-client cost in delays is what the claim is about, and it stays near 1 or near 0.
    """
    if expected not in WAYS:
        raise ValueError(f"expected must be one of {WAYS}, got {expected!r}")
    if delay_s <= 0:
        raise ValueError(f"delay_s must be a positive number of seconds, got {delay_s!r}")
    pts = sorted(points, key=lambda p: p.x)
    if len({p.x for p in pts}) < 3:
        return Verdict("inconclusive", f"{label}: only {len(pts)} client counts measured: a line through fewer "
                       "than 3 says nothing about its slope; measure more client counts (e.g. 1, 2, 4, 8).")
    fit = fit_affine([p.x for p in pts], [p.median_ns for p in pts])
    per_client_s = fit.per_unit_ns / 1e9
    delays = per_client_s / delay_s
    line = f"a straight line through the {len(pts)} totals"
    added = (f"each added client added {per_client_s * 1e3:.1f} ms, {delays:.2f} of the server's "
             f"{delay_s * 1e3:g}-ms delays ({line})" if per_client_s > 0 else
             f"the total did not grow with N ({line} falls by {-per_client_s * 1e3:.1f} ms per client)")
    measured = (f"from N = {pts[0].x:g} to {pts[-1].x:g} clients the total went from {pts[0].median_ns / 1e6:.1f} to "
                f"{pts[-1].median_ns / 1e6:.1f} ms: {added}")
    seen = "add up" if delays >= ADDS_UP else "overlap" if delays <= OVERLAPS else None
    if seen is None:
        return Verdict("inconclusive", (
            f"{label}: inconclusive: {measured}, between {OVERLAPS} (overlap) and {ADDS_UP} (add up). A busy machine "
            f"({machine_load()}) makes each connection cost more; a longer server delay makes the waits "
            "dominate (run again with a larger delay)."))
    rest = (" What little it rose is each client's own set-up (its connection, the server's thread for it, the "
            "scheduling of both), not the waits."
            if seen == "overlap" and per_client_s > 0 else "")
    # A point half a delay or more above N = 1's that the line does not show: say it, with its
    # numbers (measured beside nine busy kernels: N = 2 took two delays, N = 4 and 8 one and a
    # bit; "the total did not grow" alone contradicted the plot).
    bumps = [p for p in pts[1:] if p.median_ns - pts[0].median_ns >= 0.5 * delay_s * 1e9]
    if seen == "overlap" and bumps and len(bumps) < len(pts) - 1:
        rest += (" But at " + ", ".join(f"N = {p.x:g} ({p.median_ns / 1e6:.1f} ms)" for p in bumps)
                 + f" the total was half a delay or more above N = {pts[0].x:g}'s: there some waits came one "
                 "after another (most likely a busy machine running the server's threads late), which a straight "
                 "line through all the points smooths over.")
    if seen == "add up" and delays > 1.15:
        rest += (f" More than one delay per client: each client's connection and the server's thread for it add "
                 f"their own time, more on a busy machine ({machine_load()}).")
    if seen == expected:
        return Verdict("confirmed", f"{label}: confirmed, the waits {seen}: {measured}.{rest}")
    return Verdict("contradicted", f"{label}: contradicted, the claim says the waits {expected}, but {measured}: "
                   f"they {seen}.{rest}")
