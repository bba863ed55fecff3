"""Checkers of lesson 07: a client that loops over getaddrinfo, and text over a byte stream.

``check_connect_first`` builds address lists in which the first entries refuse (a port that is
bound but not listening) and a later one accepts (an echo server), on ``::1`` and ``127.0.0.1``
when this machine has IPv6 and on ``127.0.0.1`` alone when it has not. It catches: giving up
after the first refusal, creating every socket as AF_INET, returning ``None`` instead of raising
when nothing accepts, and leaking the sockets of the failed attempts.

``check_ask`` sends non-ASCII text through an echo server and then through a server that
dribbles the reply one byte at a time, so a character arrives split across ``recv`` calls.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ...checks._core import NotYet, call, checker, expect
from ...doctor import ipv6_available
from ...servers import DribbleServer, EchoServer
from .demos import candidates, closed_port

__all__ = ["check_ask", "check_connect_first"]

LOOP_HINT = ("loop over every getaddrinfo result: when connect() raises OSError, close that socket "
             "and try the next address")
FAMILY_HINT = ("create each socket with the family, type and proto of its own result: "
               "socket.socket(family, type, proto), then connect(sockaddr)")
RAISE_HINT = "when no address accepts, raise the last error (raise last_error) so the caller knows why"
CLOSE_HINT = "close the socket of each failed attempt (sock.close() in the except branch)"


def _peer_of(sock: Any) -> tuple[Any, ...]:
    expect(isinstance(sock, socket.socket), f"your function returned {type(sock).__name__}, not a socket",
           "return the connected socket object itself")
    try:
        return sock.getpeername()
    except OSError:
        raise NotYet("the socket you returned is not connected", LOOP_HINT) from None


def _attempt(fn: Callable[..., Any], infos: list[Any], server: EchoServer, label: str) -> None:
    try:
        sock = call(fn, infos, timeout=8, on_timeout=server.stop)
    except ConnectionRefusedError:
        raise NotYet(f"{label}: the first address refused and your function gave up", LOOP_HINT) from None
    except TypeError as exc:
        raise NotYet(f"{label}: your function raised TypeError: {exc}", FAMILY_HINT) from None
    try:
        peer = _peer_of(sock)
        expect(peer[:2] == server.address[:2], f"{label}: connected to {peer[:2]}, expected {server.address}",
               LOOP_HINT)
        sock.sendall(b"ping")
        expect(sock.recv(16) == b"ping", f"{label}: the echo server did not answer", LOOP_HINT)
    finally:
        if isinstance(sock, socket.socket):
            sock.close()


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
    with _resource_warnings() as seen:
        with EchoServer() as v4_server, closed_port(other) as refused_a, closed_port("127.0.0.1") as refused_b:
            _attempt(connect_first, candidates(refused_a, refused_b, v4_server.address), v4_server,
                     "two addresses that refuse, then one that accepts")
        if v6:
            with EchoServer("::1") as v6_server, closed_port("127.0.0.1") as refused:
                _attempt(connect_first, candidates(refused, v6_server.address), v6_server,
                         "IPv4 refuses, then IPv6 (::1) accepts")
        with closed_port(other) as refused_a, closed_port("127.0.0.1") as refused_b:
            try:
                got = call(connect_first, candidates(refused_a, refused_b), timeout=8)
            except OSError:
                got = "raised"
            if isinstance(got, socket.socket):
                got.close()
            expect(got == "raised", f"when every address refuses, your function returned {got!r}", RAISE_HINT)
    leaks = [w for w in seen if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)]
    expect(not leaks, f"{len(leaks)} socket(s) of failed attempts were never closed", CLOSE_HINT)
    families = "IPv6 and IPv4" if v6 else "IPv4 only (no IPv6 on this machine)"
    return f"skips refusing addresses, raises when none accepts, closes what failed ({families})"


TEXT = "naïve café, 東京 ✓"

DECODE_HINT = ("collect the bytes until b'\\n' first, then decode once: one character can be split "
               "between two recv() calls, and half a character cannot be decoded")


@checker("ask", solution="ask")
def check_ask(ask: Callable[..., Any]) -> str:
    with EchoServer() as server:
        try:
            got = call(ask, server.address, TEXT, timeout=5, on_timeout=server.stop)
        except UnicodeEncodeError as exc:
            raise NotYet(f"your function raised UnicodeEncodeError: {exc.encoding} cannot encode {TEXT!r}",
                         "encode with UTF-8, which can encode every character: text.encode('utf-8')") from None
    if isinstance(got, (bytes, bytearray)):
        raise NotYet(f"your function returned bytes ({bytes(got)!r})", "decode what you received: reply.decode('utf-8')")
    expect(isinstance(got, str), f"expected a str, got {type(got).__name__}", "return the decoded reply")
    expect(got != TEXT + "\n", "the reply still ends with its newline", "strip the final '\\n' before returning")
    expect(got == TEXT, f"sent {TEXT!r}, got back {got!r}",
           "encode with UTF-8 (text.encode('utf-8')), add b'\\n', and read until the newline")
    with DribbleServer(piece=1, pause=0.001) as slow:
        try:
            got = call(ask, slow.address, TEXT, timeout=5, on_timeout=slow.stop)
        except UnicodeDecodeError as exc:
            raise NotYet(f"with the reply arriving one byte at a time: UnicodeDecodeError ({exc.reason})",
                         DECODE_HINT) from None
    expect(got == TEXT, f"with the reply arriving one byte at a time, got {got!r}",
           "one recv() returns what has arrived so far: loop until the reply ends with b'\\n'" if
           isinstance(got, str) and TEXT.startswith(got) else DECODE_HINT)
    return f"{TEXT!r} made the round trip as UTF-8, even one byte at a time"
