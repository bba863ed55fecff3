"""Checkers of lesson 07: a client that loops over getaddrinfo, and text over a byte stream.

``check_connect_first`` builds address lists in which the first entries refuse (a port that is
bound but not listening), or never answer (a *silent address*: a listener whose one-place
accept queue is already full, so the kernel drops every further SYN and ``connect()`` waits),
and a later one accepts (an echo server), on ``::1`` and ``127.0.0.1`` when this machine has
IPv6 and on ``127.0.0.1`` alone when it has not. Every verdict comes from what the peer saw or
what the function returned, not from how long it took: the only clock is the deadline that
tells "gave up" from "still waiting". It catches, each with its own hint: giving up after the
first refusal; trying a fixed number of addresses; creating every socket as AF_INET; waiting
forever on a silent address (no timeout, or one set after ``connect``); treating a timeout as
the end instead of a reason to try the next address; returning ``None`` instead of raising when
nothing accepts; leaking the socket of a failed attempt (refused or timed out). The shared
checker machinery adds the busy-loop, global-timeout and leak checks.

``check_ask`` sends non-ASCII text through an echo server twice (the second text starts and
ends with whitespace), and then through a server that dribbles the reply one byte at a time,
so a character arrives split across ``recv`` calls.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...doctor import ipv6_available
from ...servers import DribbleServer, EchoServer
from .demos import candidates, closed_port

__all__ = ["check_ask", "check_connect_first"]

LOOP_HINT = ("loop over every getaddrinfo result: when connect() raises OSError, close that socket "
             "and try the next address")
COUNT_HINT = ("loop over the whole list (for family, type_, proto, _, sockaddr in infos:), not a fixed "
              "number of attempts: a name can have any number of addresses")
FAMILY_HINT = ("create each socket with the family, type and proto of its own result: "
               "socket.socket(family, type, proto), then connect(sockaddr)")
RAISE_HINT = "when no address accepts, raise the last error (raise last_error) so the caller knows why"
CLOSE_HINT = ("close the socket of each failed attempt, refused or timed out (sock.close() in the "
              "except branch, or `except OSError` around a `with` block that you leave open only on success)")
TIMEOUT_HINT = ("give each attempt a deadline: sock.settimeout(timeout) BEFORE sock.connect(sockaddr). "
                "A silent address never refuses, and without a timeout connect() waits for minutes")
SIGNATURE_HINT = "keep the exercise's signature, connect_first(infos, timeout=2.0): the checker passes both"
BUDGET_HINT = ("give each attempt the whole timeout (sock.settimeout(timeout) for every address): one deadline "
               "shared by all attempts leaves the next address next to nothing after a silent one, and the "
               "socket you return keeps that leftover timeout")
SLOW_HINT = ("a timeout is a reason to try the next address, like a refusal: catch OSError (both "
             "TimeoutError and ConnectionRefusedError are OSErrors), close that socket, go on")

#: Seconds the checker gives each connect attempt (the ``timeout`` argument). A loopback connect
#: takes tens of µs, and well under 50 ms with every core busy: 0.5 s is a wide margin.
ATTEMPT_TIMEOUT_S = 0.5
#: Seconds the whole call may take when one address is silent: the attempt's timeout, then a
#: connect to the echo server. A function still running then is waiting on the silent address.
SILENT_DEADLINE_S = 2.5


class SilentAddress:
    """A TCP address that neither accepts nor refuses, while the block runs.

    A listener with ``listen(0)`` holds one finished connection in its accept queue (ours, never
    accepted); the kernel drops every further SYN, so a ``connect()`` there waits (the client
    retries its SYN after 1, 3, 7 s ...) until its own timeout. ``release()`` accepts our
    connection: the next SYN retry of a client still waiting completes, so a function that had no
    timeout returns instead of staying blocked. Only our own listener is ever contacted.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._filler = socket.socket(family, socket.SOCK_STREAM)
        self._accepted: list[socket.socket] = []
        try:
            self._listener.bind((host, 0))
            self._listener.listen(0)
            self._filler.settimeout(2.0)
            self._filler.connect(self._listener.getsockname()[:2])
        except BaseException:
            self.close()
            raise
        self.address: tuple[str, int] = self._listener.getsockname()[:2]

    def release(self) -> None:
        """Make room in the accept queue: a client still retrying its SYN gets through."""
        self._listener.settimeout(0.5)
        with contextlib.suppress(OSError):
            self._accepted.append(self._listener.accept()[0])

    def close(self) -> None:
        for s in (*self._accepted, self._filler, self._listener):
            s.close()

    def __enter__(self) -> SilentAddress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def silent_address_works() -> bool:
    """True when a connect to a ``SilentAddress`` here waits (Linux, macOS) rather than being
    refused (Windows answers a full accept queue with a reset)."""
    with SilentAddress() as silent, socket.socket() as probe:
        probe.settimeout(0.2)
        try:
            probe.connect(silent.address)
        except TimeoutError:
            return True
        except OSError:
            return False
        return False


def _peer_of(sock: Any, label: str) -> tuple[Any, ...]:
    if isinstance(sock, socket.socket):
        try:
            return sock.getpeername()
        except OSError:
            sock.close()
            raise NotYet(f"{label}: the socket you returned is not connected", LOOP_HINT) from None
    if sock is None:
        raise NotYet(f"{label}: your function returned None", "return the connected socket object itself")
    raise NotYet(f"{label}: your function returned {type(sock).__name__}, not a socket",
                 "return the connected socket object itself")


def _check_connected(sock: Any, server: EchoServer, label: str) -> None:
    try:
        peer = _peer_of(sock, label)
        expect(peer[:2] == server.address[:2], f"{label}: connected to {peer[:2]}, expected {server.address}",
               LOOP_HINT)
        sock.settimeout(5)
        sock.sendall(b"ping")
        expect(sock.recv(16) == b"ping", f"{label}: the echo server did not answer", LOOP_HINT)
    finally:
        if isinstance(sock, socket.socket):
            sock.close()


def _attempt(fn: Callable[..., Any], infos: list[Any], server: EchoServer, label: str, *,
             refusal_hint: str = LOOP_HINT) -> None:
    try:
        sock = call(fn, infos, ATTEMPT_TIMEOUT_S, timeout=8, on_timeout=server.stop)
    except ConnectionRefusedError:
        raise NotYet(f"{label}: your function raised ConnectionRefusedError", refusal_hint) from None
    except TypeError as exc:
        if "positional argument" in str(exc):
            raise NotYet(f"{label}: your function raised TypeError: {exc}", SIGNATURE_HINT) from None
        raise NotYet(f"{label}: your function raised TypeError: {exc}", FAMILY_HINT) from None
    _check_connected(sock, server, label)


def _attempt_past_silence(fn: Callable[..., Any], silent: SilentAddress, server: EchoServer, label: str) -> None:
    """The first address never answers; the second accepts. Closes whatever the function
    returns, even after the deadline (a function without a timeout returns once released)."""
    lock, abandoned, returned = threading.Lock(), [False], []
    finished = threading.Event()

    def attempt() -> Any:
        try:
            got = fn(candidates(silent.address, server.address), ATTEMPT_TIMEOUT_S)
        finally:
            finished.set()
        with lock:
            if abandoned[0] and isinstance(got, socket.socket):
                got.close()
            returned.append(got)
        return got

    try:
        sock = call(attempt, timeout=SILENT_DEADLINE_S, on_timeout=silent.release)
    except DidNotReturn:
        with lock:
            abandoned[0] = True
            for late in returned:  # it returned after the deadline, before we gave up on it
                if isinstance(late, socket.socket):
                    late.close()
        finished.wait(8.5)  # the client's next SYN retry (≤ 7 s after it started) gets through
        raise NotYet(f"{label}: after {SILENT_DEADLINE_S:g} s your function was still waiting on the silent "
                     f"address (it was given timeout={ATTEMPT_TIMEOUT_S:g})", TIMEOUT_HINT) from None
    except TimeoutError as exc:
        raise NotYet(f"{label}: the first address did not answer within {ATTEMPT_TIMEOUT_S:g} s and your "
                     f"function raised {type(exc).__name__} instead of trying the next one", SLOW_HINT) from None
    except ConnectionRefusedError:
        raise NotYet(f"{label}: your function raised ConnectionRefusedError", LOOP_HINT) from None
    # A loopback connect takes microseconds, so a deadline shared by all attempts still connects
    # after the silent address with ~1 ms left; what the caller gets is a socket whose timeout is
    # that leftover (its first recv would give up after a millisecond). Each attempt's own
    # timeout (or None, blocking, reset after connecting) is what the caller needs.
    left = sock.gettimeout() if isinstance(sock, socket.socket) else None
    if left is not None and left < ATTEMPT_TIMEOUT_S / 2:
        sock.close()
        raise NotYet(f"{label}: the socket you returned has a timeout of {left:.3g} s left (the timeout argument "
                     f"was {ATTEMPT_TIMEOUT_S:g} s): the caller's first recv on it would give up after that",
                     BUDGET_HINT)
    _check_connected(sock, server, label)


@contextlib.contextmanager
def _resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        yield seen
        gc.collect()


@checker("connect_first", solution="connect_first")
def check_connect_first(connect_first: Callable[..., Any]) -> str:
    v6 = ipv6_available()
    other = "::1" if v6 else "127.0.0.1"
    silent_here = silent_address_works()
    with _resource_warnings() as seen:
        with EchoServer() as v4_server:
            with closed_port(other) as refused:
                _attempt(connect_first, candidates(refused, v4_server.address), v4_server,
                         "one address that refuses, then one that accepts")
            with contextlib.ExitStack() as stack:
                refused = [stack.enter_context(closed_port(h)) for h in (other, "127.0.0.1", other)]
                _attempt(connect_first, candidates(*refused, v4_server.address), v4_server,
                         "three addresses that refuse, then one that accepts", refusal_hint=COUNT_HINT)
            if silent_here:
                with SilentAddress(other) as silent:
                    _attempt_past_silence(connect_first, silent, v4_server,
                                          "one address that never answers, then one that accepts")
        if v6:
            with EchoServer("::1") as v6_server, closed_port("127.0.0.1") as refused:
                _attempt(connect_first, candidates(refused, v6_server.address), v6_server,
                         "IPv4 refuses, then IPv6 (::1) accepts")
        with closed_port(other) as refused_a, closed_port("127.0.0.1") as refused_b:
            try:
                got = call(connect_first, candidates(refused_a, refused_b), ATTEMPT_TIMEOUT_S, timeout=8)
            except OSError:
                got = "raised"
            if isinstance(got, socket.socket):
                got.close()
            expect(got == "raised", f"when every address refuses, your function returned {got!r}", RAISE_HINT)
    leaks = [w for w in seen if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)]
    expect(not leaks, f"{len(leaks)} socket(s) of failed attempts were never closed", CLOSE_HINT)
    families = "IPv6 and IPv4" if v6 else "IPv4 only (no IPv6 on this machine)"
    silence = "moves on from a silent address, " if silent_here else ""
    return f"skips refusing addresses, {silence}raises when none accepts, closes what failed ({families})"


TEXT = "naïve café, 東京 ✓"
#: Whitespace at both ends, a tab inside: text is returned exactly, only the newline removed.
TEXT2 = "  ½ tab\there, spaces at both ends  "

DECODE_HINT = ("collect the bytes until b'\\n' first, then decode once: one character can be split "
               "between two recv() calls, and half a character cannot be decoded")
LOOP_RECV_HINT = ("one recv() returns what has arrived so far: loop until the reply ends with b'\\n' "
                  "(a condition, not a fixed number of recv() calls, nor a pause or a timeout: a reply may "
                  "stop for a moment and go on)")
FAMILY_HINT = ("the host may be IPv4 ('127.0.0.1') or IPv6 ('::1'): connect to the address you were given "
               "and let socket.create_connection(address) (or socket.getaddrinfo) pick the family, instead "
               "of AF_INET, AF_INET6 or 127.0.0.1 written into the function")
WAIT_HINT = ("the echo server sends back exactly what it got and keeps the connection open: the reply "
             "ends with the b'\\n' you send, so send one (text.encode('utf-8') + b'\\n', over TCP: "
             "SOCK_STREAM) and read until it, not until the connection closes")
MOJIBAKE_HINT = ("the bytes came back right, but were decoded with another encoding: decode the reply "
                 "with UTF-8 too (reply.decode('utf-8')), the encoding it was sent in")
#: The reply in two halves, this long apart: longer than a "wait until it goes quiet" read waits.
PAUSE_S = 0.3
STRIP_HINT = ("remove only the final '\\n' (reply.removesuffix('\\n') or reply[:-1]); strip() also "
              "removes spaces and tabs that belong to the text")
STATE_HINT = ("keep the received bytes in a variable inside the function: a buffer kept outside it "
              "(a module-level variable, a default argument) still holds the previous call's reply")


def _cut_short(got: Any, text: str = TEXT) -> bool:
    """``got`` is the start of ``text`` (nothing at all included): the reply was read too early. A
    read that stopped inside a character and decoded with ``errors="replace"`` ends in U+FFFD:
    still a reply cut short (how many bytes one recv() returns depends on timing, so the hint
    must not: a read that gives up after 1 ms returns everything, part or nothing)."""
    return isinstance(got, str) and text.startswith(got.rstrip("\ufffd"))


def _mojibake(got: Any, text: str = TEXT) -> bool:
    """``got`` is ``text``'s UTF-8 bytes decoded as Latin-1 or Windows-1252: decoded wrongly."""
    wrong = set()
    for codec in ("latin-1", "cp1252"):
        try:
            wrong.add(text.encode("utf-8").decode(codec))
        except UnicodeDecodeError:  # cp1252 has no character for some bytes
            continue
    return isinstance(got, str) and got in wrong


def _ask(ask: Callable[..., Any], server: Any, text: str, label: str) -> Any:
    try:
        return call(ask, server.address, text, timeout=5, on_timeout=server.stop)
    except UnicodeEncodeError as exc:
        raise NotYet(f"your function raised UnicodeEncodeError: {exc.encoding} cannot encode {text!r}",
                     "encode with UTF-8, which can encode every character: text.encode('utf-8')") from None
    except UnicodeDecodeError as exc:
        raise NotYet(f"{label}: UnicodeDecodeError ({exc.reason})", DECODE_HINT) from None
    except socket.gaierror as exc:  # a numeric loopback host: only a family that does not fit it
        raise NotYet(f"{label}, to {server.address}: your function raised gaierror: {exc}", FAMILY_HINT) from None
    except TimeoutError as exc:
        raise NotYet(f"{label}: your function raised {type(exc).__name__} ({exc}) before the reply came",
                     WAIT_HINT) from None
    except DidNotReturn as late:
        raise NotYet(f"{label}: your function did not return within {late.args[0]:g} s", WAIT_HINT) from None


@checker("ask", solution="ask")
def check_ask(ask: Callable[..., Any]) -> str:
    with EchoServer() as server:
        got = _ask(ask, server, TEXT, "first call")
        if isinstance(got, (bytes, bytearray)):
            raise NotYet(f"your function returned bytes ({bytes(got)!r})",
                         "decode what you received: reply.decode('utf-8')")
        expect(isinstance(got, str), f"expected a str, got {type(got).__name__}", "return the decoded reply")
        expect(got != TEXT + "\n", "the reply still ends with its newline", "strip the final '\\n' before returning")
        expect(got == TEXT, f"sent {TEXT!r}, got back {got!r}",
               LOOP_RECV_HINT if _cut_short(got) else MOJIBAKE_HINT if _mojibake(got) else
               "encode with UTF-8 (text.encode('utf-8')), add b'\\n', and read until the newline")
        got = _ask(ask, server, TEXT2, "second call")
        if isinstance(got, str) and got != TEXT2 and TEXT in got:
            raise NotYet(f"second call: sent {TEXT2!r}, got back {got!r}, with the first call's reply in it",
                         STATE_HINT)
        expect(got not in {TEXT2.strip(), TEXT2.rstrip(), TEXT2.lstrip()},
               f"second call: sent {TEXT2!r}, got back {got!r}: spaces are gone", STRIP_HINT)
        expect(got == TEXT2, f"second call: sent {TEXT2!r}, got back {got!r}",
               LOOP_RECV_HINT if _cut_short(got, TEXT2) else
               "return the reply exactly as it came back, minus its final newline")
    with DribbleServer(piece=1, pause=0.001) as slow:
        got = _ask(ask, slow, TEXT, "with the reply arriving one byte at a time")
    expect(got == TEXT, f"with the reply arriving one byte at a time, got {got!r}",
           LOOP_RECV_HINT if _cut_short(got) else DECODE_HINT)
    half = (len(TEXT.encode("utf-8")) + 2) // 2  # + 1 for the newline, rounded up: two pieces
    with DribbleServer(piece=half, pause=PAUSE_S) as pausing:
        got = _ask(ask, pausing, TEXT, f"with a {PAUSE_S:g} s pause in the middle of the reply")
    expect(got == TEXT, f"with a {PAUSE_S:g} s pause in the middle of the reply, got {got!r}",
           LOOP_RECV_HINT if _cut_short(got) else DECODE_HINT)
    where = "an IPv4 address"
    if ipv6_available():
        with EchoServer("::1") as v6:
            try:
                got = _ask(ask, v6, TEXT, "to an IPv6 address (::1)")
            except OSError as exc:
                raise NotYet(f"to an IPv6 address {v6.address}: your function raised {type(exc).__name__}: {exc}",
                             FAMILY_HINT) from None
        expect(got == TEXT, f"to an IPv6 address (::1), got {got!r}", FAMILY_HINT)
        where = "IPv4 and IPv6 addresses"
    return (f"{TEXT!r} and {TEXT2!r} made the round trip as UTF-8, even one byte at a time and across a pause, "
            f"to {where}")
