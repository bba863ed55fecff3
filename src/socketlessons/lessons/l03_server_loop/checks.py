"""Checkers of lesson 03: the inner loop's end of stream, and a loop that serves clients at once.

Both judge behaviour that the peer observes directly, never a total time:

``check_echo_until_eof`` hands the learner's function an accepted connection and plays the
client, one request at a time, each waiting for its echo: a dozen small messages chosen to
expose altered bytes (spaces and a newline at the ends, ``\\r\\n``, bytes that are not UTF-8, a
NUL), then one of 64 KiB (more than the socket buffers hold, so a ``send()`` whose return value
is ignored loses bytes; the connection has a timeout, which makes ``send()`` return early the way
a non-blocking socket does), then a 1.2 s pause (a loop that treats a quiet moment as the end gives
up here), one more message, and ``shutdown(SHUT_WR)`` (EOF). It then waits for the server's EOF.
The client sees *where* the conversation stopped (after one echo: a single ``recv``; after a few:
a loop bounded by a count; during the pause: a timeout taken for the end), so each mistake gets
its own hint. Then clients vanish (the function must neither raise nor leak the socket): one resets the
connection before sending anything (the first ``recv`` raises: a ``close`` skipped on that path
shows), one sends a request and resets before reading its reply, and one sends 64 KiB, says it is
done and resets while the echo is being sent (the ``send`` raises ``BrokenPipeError`` on Linux: a
function that catches only ``ConnectionResetError`` lets it escape); a third, fresh connection must get back only its own bytes
(a buffer kept at module level hands the previous connection's leftovers to the next).
The connection counts the ``recv``/``send`` calls that found nothing to do (``BlockingIOError``):
thousands of them is a loop that polls a non-blocking socket instead of waiting, whatever share
of a busy core it got.

``check_serve_concurrently`` runs the learner's accept loop on a listener with a 0.5 s timeout
(so the loop ends on its own once the clients have come) and a handler that records how many clients are being served at
once. Eight clients connect and send before the loop starts (waiting in the backlog, so the loop
accepts them back to back: a thread whose target is ``lambda: handle_client(conn)`` finds the
next connection in ``conn`` when it runs, and the handler sees one connection from two threads);
three more come as soon as those eight were accepted (a loop bounded by a count of eight has
returned by then); each handler holds its client until all
eight are being served (or 1 s has passed: then it gives up waiting and answers). So the check
measures the overlap of service intervals, not a total time: thread-per-client reaches 8 at once
within milliseconds, a pool of two threads reaches 2, a loop that calls the handler inline
reaches 1 (and the handler saw that it ran in the loop's own thread), and a margin of 1 s holds
on a busy machine. The listener counts ``accept()`` calls: thousands while clients were being
served is a loop that spins on a non-blocking socket; thousands after the listener was closed is
a loop that swallows every exception (it would spin at 100 % of a core forever: the checker
measures its CPU, then stops it with an exception that ``except Exception`` cannot catch).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ...background_call import BackgroundCall
from ...checks._core import BUSY_HINT, LEARNER_THREAD, DidNotReturn, NotYet, call, checker, expect
from ...servers._base import make_listener

__all__ = ["check_echo_until_eof", "check_serve_concurrently"]

# ---- hints: one per mistake, each naming what to change ----------------------------------------

LOOP_HINT = "recv returns what has arrived: call it in a loop (while True:) and send back each piece"
COUNT_HINT = ("loop until recv returns b'' (the client closed), not a fixed number of times: "
              "`while True:` ... `if not data: break`")
EOF_HINT = "recv returns b'' when the client has closed its side: `if not data: break`"
PAUSE_HINT = ("a quiet client is not a finished one: only recv returning b'' means the end; if you set a "
              "timeout, make it longer than a client may pause, and do not treat it as the end")
BYTES_HINT = ("send back exactly the bytes you received, unchanged (no strip(), no line-end changes, "
              "no decode/encode): conn.sendall(data)")
TEXT_HINT = ("a socket carries bytes, not text: these bytes are not UTF-8, so decode() fails; "
             "echo data as it came: conn.sendall(data)")
SEND_HINT = ("send() may send only part of what you give it and returns how much it sent: "
             "use conn.sendall(data), which loops until every byte is out")
STORE_HINT = ("the client waits for each reply before it sends more: send back each piece as soon as it "
              "arrives, not all at the end")
CLOSE_HINT = "close the connection when the loop ends: `with conn:` around the loop, or conn.close() in finally"
RESET_HINT = ("a client can vanish mid-conversation: catch ConnectionError around the loop "
              "(and still close the connection)")
RESET_KINDS_HINT = ("a client that vanishes shows up as ConnectionResetError, BrokenPipeError or "
                    "ConnectionAbortedError, depending on when it left: catch their common base class, "
                    "except ConnectionError:, not one of them (and still close the connection)")
STATE_HINT = ("bytes from an earlier connection came back on this one: keep buffers inside the function "
              "(a local variable), never at module level, so each call starts empty")

THREAD_HINT = ("start a thread per client and do not wait for it: "
               "threading.Thread(target=handle_client, args=(conn,)).start(); "
               "note that target=handle_client(conn) would call it right away, in the loop")
JOIN_HINT = ("each client ran in its own thread, but your loop waited for that thread (join) before it "
             "accepted the next: start the thread and go straight back to accept()")
POOL_HINT = ("a pool with fewer workers than clients makes the others wait for a free one: start a thread "
             "per client, or give the pool at least as many workers as clients you expect at once")
ACCEPT_HINT = "accept in a loop (while True: conn, addr = listener.accept()) and hand each conn to handle_client"
ARGS_HINT = ("pass the connection to the thread: threading.Thread(target=handle_client, args=(conn,)) "
             "(args is a tuple: mind the comma)")
CLOSED_EARLY_HINT = ("do not close conn in the accept loop: the thread still needs it, and handle_client "
                     "closes it when it is done")
SPIN_HINT = ("catch only the exceptions you expect: `except Exception: pass` (or continue) inside the loop "
             "swallows the error accept() raises once the listener is closed, so the loop fails again at "
             "once, forever, at full speed. Let unexpected exceptions end the loop")
ENDLESS_HINT = ("your loop never ended, not even once the listener was closed: it catches the error accept() "
                "raises then and tries again; let an OSError from a closed listener end the loop")
SPIN_ACCEPT_HINT = ("block instead of spinning: leave the listener blocking (no setblocking(False)), or wait "
                    "for it with selectors/select before accept(); polling accept() burns a whole core")
LATE_BINDING_HINT = ("pass the connection itself to the thread: threading.Thread(target=handle_client, "
                     "args=(conn,)). A lambda (or a nested def) such as target=lambda: handle_client(conn) looks "
                     "up the variable conn only when the thread runs; by then the loop may have accepted the next "
                     "client, so one connection is served twice and another never")
FIXED_COUNT_HINT = ("accept until accept() raises (the caller's listener times out when nobody comes), not a fixed "
                    "number of times: `while True:` around accept(); you cannot know how many clients will come")
RETRY_HINT = ("call handle_client once per connection: it closes the connection when it returns, so calling "
              "it again (a retry after an exception) can only fail, and with the exception swallowed the "
              "thread would spin forever")

# ---- echo_until_eof ------------------------------------------------------------------------------

#: Small requests, each sent after the previous one's echo came back: the ends, line ends and
#: bytes that are not text are where altered bytes show.
MESSAGES = (b"first", b"  spaces and a newline  \n", b"carriage\r\nreturns\r\n", b"\xff\xfe not UTF-8 \x00 NUL",
            b"5", b"six", b"seven", b"eight!", b"\tnine\t", b"ten\n\n", b"eleven", b"twelve and last small")
#: A request bigger than the socket buffers between the two ends: a send() may send part of it.
BIG = bytes(range(256)) * 256  # 64 KiB
#: The pause before the last request: a loop that takes a quiet moment for the end gives up here.
#: Longer than the 1 s timeout a beginner writes, with 0.2 s to spare for a thread that a busy
#: machine wakes late.
PAUSE_S = 1.2
LAST = b"after a pause"
#: What the third, fresh connection sends (and must get back alone).
FRESH = b"a fresh connection"
#: Buffers of the checker's end of the connection: far smaller than BIG (the kernel doubles them).
SMALL_BUFFER = 4096


#: recv()/send() calls that found nothing to do (BlockingIOError) beyond which a function polls
#: instead of waiting: a blocking or selector-driven echo makes a handful, a spinning one
#: thousands even with a small share of a busy core.
SPIN_POLLS = 1000


class _CountingSocket(socket.socket):
    """The connection handed to the learner: counts calls that found nothing to do (``polls``)."""

    polls = 0

    def _count(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except BlockingIOError:
            self.polls += 1
            raise

    def recv(self, *args: Any) -> bytes:
        return self._count(super().recv, *args)  # type: ignore[no-any-return]

    def recv_into(self, *args: Any) -> int:
        return self._count(super().recv_into, *args)  # type: ignore[no-any-return]

    def send(self, *args: Any) -> int:
        return self._count(super().send, *args)  # type: ignore[no-any-return]


@contextlib.contextmanager
def _pair(small_buffers: bool = False) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected (client, server-side conn) pair over real loopback TCP."""
    with make_listener(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 0) as listener:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if small_buffers:  # before connect, so the window is small from the start
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
            client.settimeout(5)
            client.connect(listener.getsockname())
            accepted, _ = listener.accept()
            conn = _CountingSocket(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        except BaseException:
            client.close()
            raise
    with client, conn:
        for s in (client, conn):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if small_buffers:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            conn.settimeout(10)  # a server may set one; it also lets send() return after a partial write
        yield client, conn


def _stop(conn: socket.socket) -> Callable[[], None]:
    def stop() -> None:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv; a later send fails

    return stop


def _closed_by_server(client: socket.socket, wait_s: float) -> bool:
    """Wait up to ``wait_s`` for the server's side to end (EOF or reset); True if it did."""
    readable, _, _ = select.select([client], [], [], wait_s)
    if not readable:
        return False
    try:
        return client.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


#: How long the client waits for each echo: generous, for a busy machine.
REPLY_WAIT_S = 2.0


def _read(client: socket.socket, n: int, wait_s: float = REPLY_WAIT_S) -> tuple[bytes, str]:
    """Up to ``n`` bytes and how the read ended: "complete", "eof" (server closed) or "timeout"."""
    got = bytearray()
    deadline = time.monotonic() + wait_s
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(got), "timeout"
        client.settimeout(left)
        try:
            chunk = client.recv(n - len(got))
        except TimeoutError:
            return bytes(got), "timeout"
        except ConnectionError:
            return bytes(got), "eof"
        if not chunk:
            return bytes(got), "eof"
        got += chunk
    return bytes(got), "complete"


def _play_client(client: socket.socket, log: dict[str, Any]) -> None:
    """The conversation: each request waits for its echo; then a pause, a last one, EOF, the server's EOF."""
    log["echoed"] = 0
    try:
        for i, msg in enumerate([*MESSAGES, BIG, LAST]):
            if msg is LAST and _closed_by_server(client, PAUSE_S):
                log["closed_in_pause"] = True
                return
            client.settimeout(REPLY_WAIT_S)
            client.sendall(msg)
            got, end = _read(client, len(msg))
            if got != msg[:len(got)]:
                log["wrong"] = (msg, got)
                return
            if end == "eof":
                log["closed_early"] = (i, msg, got)
                return
            if end == "timeout":
                log["short" if got else "no_reply"] = (i, msg, got)
                return
            log["echoed"] += 1
        client.shutdown(socket.SHUT_WR)
        log["server_eof"] = _read(client, 1)[0] == b""
    except OSError as exc:
        log["error"] = type(exc).__name__
    finally:
        if "server_eof" not in log:  # gave up early: still let the server see the end of the stream
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)


def _shown(data: bytes, limit: int = 40) -> str:
    return repr(data) if len(data) <= limit else f"{data[:limit]!r}… ({len(data):,} bytes)"


def _judge_conversation(log: dict[str, Any]) -> None:
    """Turn what the client saw into a "not yet" about the mistake that causes it."""
    total = len(MESSAGES) + 2
    if "wrong" in log:
        sent, got = log["wrong"]
        raise NotYet(f"the client sent {_shown(sent)} and got back {_shown(got)}", BYTES_HINT)
    if "short" in log:
        i, sent, got = log["short"]
        raise NotYet(f"the client sent {len(sent):,} bytes in request {i + 1} and got back only {len(got):,} "
                     "(the rest never came)", SEND_HINT)
    if log.get("closed_in_pause"):
        raise NotYet(f"the client paused for {PAUSE_S:g} s after {log['echoed']} echoed requests, and your "
                     "function closed the connection during the pause, before the client had finished", PAUSE_HINT)
    if "closed_early" in log:
        echoed = log["echoed"]
        raise NotYet(f"the client sent {total} requests, one after another; {echoed} came back, then your "
                     "function closed the connection", LOOP_HINT if echoed <= 1 else COUNT_HINT)
    if "no_reply" in log:
        i, sent, _ = log["no_reply"]
        raise NotYet(f"the client sent request {i + 1} ({_shown(sent)}) and no reply came back while it waited",
                     STORE_HINT if log["echoed"] == 0 else LOOP_HINT)


@checker("echo_until_eof", solution="echo_until_eof")
def check_echo_until_eof(echo_until_eof: Callable[[socket.socket], Any]) -> str:
    with _pair(small_buffers=True) as (client, conn):
        log: dict[str, Any] = {}
        player = threading.Thread(target=_play_client, args=(client, log), daemon=True)
        player.start()
        try:
            call(echo_until_eof, conn, timeout=REPLY_WAIT_S + PAUSE_S + 3, on_timeout=_stop(conn))
        except DidNotReturn:
            player.join(5)
            _judge_conversation(log)
            if log.get("echoed") == len(MESSAGES) + 2:  # every echo came back, then EOF: it kept going
                raise NotYet("the client sent all its requests, got every echo and closed its side, but your "
                             "function did not return (recv returns b'' at once, forever, after the end)",
                             EOF_HINT) from None
            raise
        except UnicodeError as exc:
            player.join(5)
            raise NotYet(f"your function raised {type(exc).__name__}: {exc}", TEXT_HINT) from None
        except TimeoutError as exc:
            player.join(5)
            raise NotYet(f"your function raised {type(exc).__name__} while the client paused for {PAUSE_S:g} s "
                         f"({exc})", PAUSE_HINT) from None
        finally:
            player.join(5)
        _judge_conversation(log)
        expect(conn.polls < SPIN_POLLS, f"your function echoed everything, but it asked the socket {conn.polls:,} "
               "times for data that had not arrived (or room that was not free): a busy loop", BUSY_HINT)
        expect(conn.fileno() == -1, "your function returned, but the connection is still open: the client is "
               "left waiting for the end of the stream", CLOSE_HINT)
    with _pair() as (client, conn):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset before the client sent anything: the function's first recv() raises
        time.sleep(0.05)
        try:
            call(echo_until_eof, conn, timeout=3, on_timeout=_stop(conn))
        except ConnectionError as exc:
            raise NotYet(f"a client that disconnected early (a reset before it sent anything) made your function "
                         f"raise {type(exc).__name__}", RESET_HINT) from None
        expect(conn.fileno() == -1, "a client reset the connection before sending anything (so your first recv() "
               "raised ConnectionResetError), and your function returned without closing the connection (a leaked "
               "socket per rude client)", CLOSE_HINT)
    with _pair() as (client, conn):
        client.sendall(b"goodbye")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # abortive close: a reset, before the server even read the request
        time.sleep(0.05)
        try:
            call(echo_until_eof, conn, timeout=3, on_timeout=_stop(conn))
        except ConnectionError as exc:
            raise NotYet(f"a client that disconnected early made your function raise {type(exc).__name__}",
                         RESET_HINT) from None
        expect(conn.fileno() == -1, "after a client vanished, your function returned without closing the "
               "connection (a leaked socket per rude client)", CLOSE_HINT)
    _vanishes_while_echoed(echo_until_eof)
    with _pair() as (client, conn):
        log = {}

        def fresh() -> None:
            try:
                client.sendall(FRESH)
                got = _read(client, len(FRESH))[0]
                if got != FRESH:  # read a little more, to show what else came
                    got += _read(client, len(BIG) + 256, wait_s=0.3)[0]
                log["got"] = got
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)

        player = threading.Thread(target=fresh, daemon=True)
        player.start()
        try:
            call(echo_until_eof, conn, timeout=3, on_timeout=_stop(conn))
        finally:
            player.join(5)
        got = log.get("got", b"")
        expect(got == FRESH, f"a new connection sent {FRESH!r} and got back {_shown(got)}",
               STATE_HINT if FRESH in got and got != FRESH else BYTES_HINT)
    return (f"echoed {len(MESSAGES) + 2} requests byte for byte (a 64 KiB one and one after a {PAUSE_S:g} s pause "
            "included), stopped at the end of the stream, closed the connection, survived clients that reset "
            "the connection before sending or before reading their reply, or left while their echo was being "
            "sent, and started the next connection afresh")


def _vanishes_while_echoed(echo_until_eof: Callable[[socket.socket], Any]) -> None:
    """A client sends 64 KiB, says it is done (FIN), and once the first echoed bytes arrive, leaves
    with a reset, before reading them: the function's send then fails with EPIPE (BrokenPipeError on
    Linux: the reset came after the client's FIN), not the ConnectionResetError of the other cases.
    The small buffers make the echo block long before its end, so the reset always comes first."""
    with _pair(small_buffers=True) as (client, conn):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sendall(BIG)
        client.shutdown(socket.SHUT_WR)

        def vanish() -> None:
            deadline = time.monotonic() + REPLY_WAIT_S
            with contextlib.suppress(OSError):
                while time.monotonic() < deadline and not select.select([client], [], [], 0.01)[0]:
                    pass
            client.close()  # with unread bytes (and SO_LINGER 0): a reset

        leaver = threading.Thread(target=vanish, daemon=True)
        leaver.start()
        try:
            call(echo_until_eof, conn, timeout=REPLY_WAIT_S + 3, on_timeout=_stop(conn))
        except ConnectionError as exc:
            kind = type(exc).__name__
            raise NotYet(f"a client sent 64 KiB and left while your function was sending the echo back: your "
                         f"function raised {kind}", RESET_HINT if isinstance(exc, ConnectionResetError)
                         else RESET_KINDS_HINT) from None
        finally:
            leaver.join(REPLY_WAIT_S + 1)
        expect(conn.fileno() == -1, "a client sent 64 KiB and left while your function was sending the echo back; "
               "your function returned without closing the connection", CLOSE_HINT)


# ---- serve_concurrently --------------------------------------------------------------------------

#: Clients that connect at once: more than a small pool (or the 6 workers of asyncio's default
#: executor on a 2-core machine) serves at once. They are all waiting in the listener's backlog
#: before the learner's loop starts, so the loop accepts them back to back: a thread whose target
#: looks ``conn`` up late (a lambda) then finds the NEXT connection there.
CLIENTS = 8
#: Clients that come once the first CLIENTS have been accepted: a loop bounded by a count of
#: CLIENTS (the number the exercise's text names) returns before it accepts them.
MORE = 3
#: How long a handler holds its client waiting for the others to be served at the same time.
#: A thread per client gets all of them in within milliseconds; 1 s is the margin for a busy host.
GATHER_S = 1.0
#: The listener's timeout: the learner's loop ends when nobody has come for this long.
IDLE_S = 0.5
#: accept() calls that mean "spinning": a blocking loop makes one per client (plus one).
SPIN_CALLS = 1000


class _CheckerStop(BaseException):
    """Ends a learner's loop that swallows every ``Exception`` (a ``BaseException`` passes through)."""


class _Listener(socket.socket):
    """A listening socket that counts ``accept()`` calls and can refuse further ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accept_calls = 0
        self.accepted = 0  # calls that returned a connection
        #: accept() calls up to this number wait longer than the learner's idle timeout (the
        #: checker's clients may be slow to come on a busy machine); later ones wait IDLE_S.
        self.patient_calls = 1
        self.stopped = False

    def accept(self) -> tuple[socket.socket, Any]:
        if self.stopped:
            raise _CheckerStop("the checker has finished")
        self.accept_calls += 1
        idle = self.gettimeout()
        if self.accept_calls <= self.patient_calls and idle == IDLE_S and not _waiting(self):  # slow to come
            self.settimeout(max(idle, GATHER_S + 4))
            try:
                got = super().accept()
            finally:
                self.settimeout(idle)
        else:
            got = super().accept()
        self.accepted += 1
        return got


#: A thread the learner's loop starts begins its target only once the loop has come back to
#: accept() twice more, or has not come back for this long (it is waiting for something else,
#: say a join()). A busy machine may start a thread that late; the checker makes it happen every
#: time, so a target that looks ``conn`` up when it runs (a lambda) finds a later connection.
LATE_START_STALL_S = 0.1


@contextlib.contextmanager
def _threads_start_late(listener: _Listener) -> Iterator[None]:
    """Delay the start of every thread started (through ``threading``) meanwhile, except the checker's."""
    previous = threading.getprofile()

    def hook(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)  # runs once, in the new thread, just before its run()
        if threading.current_thread().name.startswith("socketlessons"):
            return
        target = listener.accept_calls + 2
        last, since = listener.accept_calls, time.monotonic()
        while listener.accept_calls < target and not listener.stopped:
            now = time.monotonic()
            if listener.accept_calls != last:
                last, since = listener.accept_calls, now
            elif now - since > LATE_START_STALL_S:
                break
            time.sleep(0.001)

    threading.setprofile(hook)
    try:
        yield
    finally:
        threading.setprofile(previous)


def _waiting(listener: socket.socket) -> bool:
    """True when a connection waits in ``listener``'s backlog (accept() returns at once)."""
    try:
        return bool(select.select([listener], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _thread_cpu_s(native_id: int | None) -> float | None:
    """CPU seconds used so far by one thread of this process (psutil), or None where unknown."""
    if native_id is None:
        return None
    try:
        import psutil

        for t in psutil.Process().threads():
            if t.id == native_id:
                return float(t.user_time + t.system_time)
    except Exception:  # psutil missing or the platform cannot say
        return None
    return None


@contextlib.contextmanager
def _thread_errors() -> Iterator[list[str]]:
    """Collect exceptions raised in threads the learner started (instead of tracebacks in the cell)."""
    seen: list[str] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if not issubclass(args.exc_type, _CheckerStop):
            seen.append(f"{args.exc_type.__name__}: {args.exc_value}")

    threading.excepthook = hook
    try:
        yield seen
    finally:
        threading.excepthook = previous


class _Handler:
    """The checker's ``handle_client``: echoes one request once all clients are being served (or
    GATHER_S has passed), and records how many were being served at once and in which threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = self.calls = 0
        self.threads: set[int] = set()
        self.seen: weakref.WeakKeyDictionary[socket.socket, int] = weakref.WeakKeyDictionary()  # conn -> thread
        self.shared = 0  # second calls for one connection from ANOTHER thread (a late-bound lambda)
        self.connections = 0
        self.errors: list[str] = []
        self.repeated = 0
        self.all_in = threading.Event()
        self.gave_up = False
        self.finished = False

    def __call__(self, conn: socket.socket) -> None:
        with self.lock:
            self.calls += 1
            again = conn in self.seen or self.finished
            if conn not in self.seen:
                self.seen[conn] = threading.get_ident()
                self.connections += 1
            elif self.seen[conn] != threading.get_ident() and not self.finished:
                self.shared += 1
            self.threads.add(threading.get_ident())
        if again:  # a retry on a connection it already closed, or a call after the check: stop here
            with self.lock:
                self.repeated += not self.finished
            with contextlib.suppress(OSError):
                conn.close()
            raise _CheckerStop("handle_client called again for the same connection")
        try:
            with conn:
                conn.settimeout(GATHER_S + 3)
                data = conn.recv(1024)
                if not data:
                    return
                with self.lock:
                    self.active += 1
                    self.peak = max(self.peak, self.active)
                    if self.active >= CLIENTS:
                        self.all_in.set()
                try:
                    if not self.gave_up and not self.all_in.wait(GATHER_S):
                        self.gave_up = True  # the others are not coming: answer the rest at once
                    conn.sendall(data)
                finally:
                    with self.lock:
                        self.active -= 1
        except OSError as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")


def _connect(address: tuple[str, int], first: int, n: int, clients: list[tuple[socket.socket, bytes]]) -> None:
    """``n`` clients connect and send their request (numbered from ``first``); the listener's backlog
    holds them until the learner's loop accepts them."""
    for i in range(first, first + n):
        sock = socket.create_connection(address, timeout=5)
        request = f"request {i:02d}".encode()
        clients.append((sock, request))
        sock.sendall(request)


def _answered(clients: list[tuple[socket.socket, bytes]], wait_s: float) -> int:
    """How many of ``clients`` got their request back before a common deadline ``wait_s`` from now."""
    deadline = time.monotonic() + wait_s
    answered = 0
    for sock, request in clients:
        got = b""
        with contextlib.suppress(OSError):
            while len(got) < len(request):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(len(request) - len(got))
                if not chunk:
                    break
                got += chunk
        answered += got == request
    return answered


@checker("serve_concurrently", solution="serve_concurrently")
def check_serve_concurrently(serve_concurrently: Callable[..., Any]) -> str:
    handler = _Handler()
    clients: list[tuple[socket.socket, bytes]] = []
    with _thread_errors() as thread_errors, contextlib.ExitStack() as closing:
        base = make_listener(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", 0)
        listener = _Listener(base.family, base.type, base.proto, fileno=base.detach())
        closing.callback(lambda: [sock.close() for sock, _ in clients])
        try:
            listener.settimeout(IDLE_S)  # the learner's loop ends when nobody comes for 0.5 s
            listener.patient_calls = CLIENTS + MORE
            _connect(listener.getsockname(), 1, CLIENTS, clients)  # all waiting before the loop starts
            closing.enter_context(_threads_start_late(listener))
            t0 = time.perf_counter()
            server = BackgroundCall(lambda: serve_concurrently(listener, handler),
                                    name=LEARNER_THREAD).start()
            # The next clients come as soon as the first ones have been accepted (a loop bounded by
            # CLIENTS returns then; a correct one waits up to GATHER_S + 4 s for them).
            end = time.monotonic() + GATHER_S + 2
            while listener.accepted < CLIENTS and server.still_running and time.monotonic() < end:
                time.sleep(0.005)
            _connect(listener.getsockname(), CLIENTS + 1, MORE, clients)
            answered = _answered(clients[:CLIENTS], GATHER_S + 2)
            took = time.perf_counter() - t0
            answered_more = _answered(clients[CLIENTS:], 1.5) if answered == CLIENTS else 0
            server.join(IDLE_S + 2.5)
            spin_calls, cpu_share = 0, None
            calls_serving = listener.accept_calls  # every call before the listener was closed
            if server.still_running:  # it should have ended with the TimeoutError: close, as a shutdown would
                native = server.thread.native_id
                listener.close()
                cpu0, w0, c0 = _thread_cpu_s(native), time.perf_counter(), listener.accept_calls
                server.join(0.5)
                spin_calls = listener.accept_calls - c0
                cpu1, wall = _thread_cpu_s(native), time.perf_counter() - w0
                if cpu0 is not None and cpu1 is not None and wall > 0:
                    cpu_share = (cpu1 - cpu0) / wall
            still_running = server.still_running
        finally:
            handler.finished = True
            listener.stopped = True  # further accept() calls raise _CheckerStop
            listener.close()
            server.join(2.0)
        error = server.error
    if still_running:
        if spin_calls >= SPIN_CALLS:
            at = f" and {cpu_share:.0%} of a core" if cpu_share is not None else ""
            raise NotYet(f"after the last client, once the listener was closed, your loop kept calling accept(): "
                         f"{spin_calls:,} calls in 0.5 s{at}, each failing at once", SPIN_HINT)
        raise NotYet(f"your function was still running {IDLE_S + 2.5:g} s after the last client and 0.5 s "
                     f"after the listener was closed ({spin_calls} more accept() calls)", ENDLESS_HINT)
    if handler.shared:
        raise NotYet(f"handle_client was called {handler.calls} times for {listener.accepted} connections accepted "
                     f"(it saw only {handler.connections} different ones): {handler.shared} connection(s) were "
                     "handed to two different threads, so others were never served", LATE_BINDING_HINT)
    if handler.repeated:
        raise NotYet(f"handle_client was called {handler.calls} times for {handler.connections} connections: "
                     "again for a connection it had already served and closed", RETRY_HINT)
    if error is not None and not isinstance(error, (TimeoutError, OSError, _CheckerStop)):
        raise NotYet(f"your function raised {type(error).__name__}: {error}", ACCEPT_HINT)
    if thread_errors:
        first = thread_errors[0]
        raise NotYet(f"a thread you started raised {first}", ARGS_HINT if "TypeError" in first and "argument"
                     in first else THREAD_HINT)
    expect(calls_serving < SPIN_CALLS, f"your loop called accept() {calls_serving:,} times for {CLIENTS} clients "
           "(before the listener was closed): it polls instead of waiting", SPIN_ACCEPT_HINT)
    if handler.errors:
        raise NotYet(f"handle_client could not use the connection it was given ({handler.errors[0]}): it had "
                     "been closed already", CLOSED_EARLY_HINT)
    expect(answered > 0, f"none of the {CLIENTS} clients got an answer (your function returned after "
           f"{server.elapsed_s:.2f} s, having called accept() {calls_serving} time(s))", ACCEPT_HINT)
    expect(answered == CLIENTS, f"only {answered} of {CLIENTS} clients got an answer: your loop accepted "
           f"{answered} and returned", ACCEPT_HINT if answered == 1 else COUNT_HINT.replace(
               "recv returns b'' (the client closed)", "accept() raises (the checker's listener times out)"))
    at_once = handler.peak
    if at_once < CLIENTS:
        inline = handler.threads == {server.thread.ident}
        detail = (f"{CLIENTS} clients connected at once; at most {at_once} of them were being served at the same "
                  f"time (measured in handle_client), the others waited")
        if at_once <= 1:
            raise NotYet(detail + ("; handle_client ran in your accept loop's own thread" if inline else
                                   "; each in a thread of its own, one after another"),
                         THREAD_HINT if inline else JOIN_HINT)
        raise NotYet(detail + f": {at_once} workers", POOL_HINT)
    expect(answered_more == MORE, f"the first {CLIENTS} clients were all answered, then {MORE} more came and "
           f"{'none' if not answered_more else f'only {answered_more}'} of them got an answer: your loop accepted "
           f"{listener.accepted} clients and returned",
           FIXED_COUNT_HINT)
    return (f"{CLIENTS} clients connected at once and all {CLIENTS} were being served at the same time "
            f"({at_once} at the peak, with the {MORE} that came next), in {len(handler.threads)} threads; "
            f"the first {CLIENTS} answered in {took:.2f} s")
