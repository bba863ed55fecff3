"""Lesson 07 helpers: IPv6 on loopback, getaddrinfo, and what changed between Python versions.

Rules of this module:

* Loopback only. Nothing here binds ``::`` or ``0.0.0.0``: a dual-stack socket on ``::``
  would listen on every interface of the machine. The dual-stack demo binds ``::1`` and the
  IPv4-mapped form of ``127.0.0.1`` (``::ffff:127.0.0.1``), and says what a loopback-only demo
  cannot show (one socket reached by both ``::1`` and ``127.0.0.1``: those are two different
  addresses, and one socket binds one address).
* No name resolution leaves the machine: candidate lists are built from *literal* loopback
  addresses with ``AI_NUMERICHOST``, so the lesson does not depend on how ``localhost``
  resolves on the learner's machine (it differs: Docker, macOS and Windows disagree).
* Every IPv6 step first asks ``ipv6_available()`` and, when the host has no IPv6, returns a
  result that says so instead of raising: lesson 07 skips, it never fails.

Used in ``notebooks/07_ipv6_and_versions.ipynb``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import socket
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...doctor import ipv6_available
from .._ports import closed_port, listener_alone_at_its_port

__all__ = [
    "VERSION_NOTES",
    "AddrInfo",
    "DualStackReport",
    "VersionNote",
    "candidates",
    "closed_port",
    "describe_addrinfo",
    "dualstack_report",
    "echo_op",
    "family_verdict",
    "ipv6_skip_message",
    "python2_send_str",
    "split_utf8",
    "version_table",
]

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]

#: How long a demo connection may take on loopback before we call it failed (it takes µs).
CONNECT_TIMEOUT_S = 2.0


def ipv6_skip_message() -> str | None:
    """``None`` when ``::1`` works here; otherwise one sentence saying what to do instead."""
    if ipv6_available():
        return None
    return ("IPv6 is not available on this machine (no ::1 loopback): the IPv6 cells skip. "
            "Everything else in this lesson works with 127.0.0.1. "
            "Containers often run with IPv6 turned off; that is not your code's fault.")


# ---- getaddrinfo ------------------------------------------------------------------------------

def candidates(*addresses: tuple[str, int]) -> list[AddrInfo]:
    """getaddrinfo results for literal ``(host, port)`` pairs, in order, without any DNS lookup.

    The list has the same shape as ``socket.getaddrinfo(host, port, type=SOCK_STREAM)``:
    ``(family, type, proto, canonname, sockaddr)`` tuples. Exercises use it to build a host
    "resolving" to an IPv6 address that refuses and an IPv4 address that accepts.
    """
    out: list[AddrInfo] = []
    for host, port in addresses:
        out.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST))
    return out


def describe_addrinfo(infos: list[AddrInfo]) -> list[str]:
    """One readable line per getaddrinfo result: family, then the sockaddr to ``connect()`` to."""
    lines = []
    for family, _type, proto, _canon, sockaddr in infos:
        fam = socket.AddressFamily(family).name
        lines.append(f"{fam:<9} proto={proto:<2} sockaddr={sockaddr!r}")
    return lines


# ---- dual stack -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DualStackReport:
    """What the dual-stack experiments saw on this machine (each field computed, never assumed)."""

    has_dualstack: bool
    ipv6: bool
    v6_client_on_v6_server: str  # "accepted from ('::1', …)" or the error
    v4_client_on_same_port: str  # what an IPv4 client got on 127.0.0.1 at the ::1 server's port
    mapped_peer: str  # the peer address an IPv4 client shows on a dual-stack socket, or why not

    def lines(self) -> list[str]:
        return [
            f"socket.has_dualstack_ipv6(): {self.has_dualstack}",
            f"::1 works here: {self.ipv6}",
            f"IPv6 client -> dual-stack server on [::1]: {self.v6_client_on_v6_server}",
            f"IPv4 client -> 127.0.0.1, same port:      {self.v4_client_on_same_port}",
            f"IPv4 client -> dual-stack socket on ::ffff:127.0.0.1: {self.mapped_peer}",
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _try_connect(family: socket.AddressFamily, address: tuple[Any, ...],
                 listener: socket.socket | None) -> str:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.settimeout(CONNECT_TIMEOUT_S)
            client.connect(address)
            if listener is None:
                return f"connected to {client.getpeername()!r}"
            listener.settimeout(CONNECT_TIMEOUT_S)
            conn, peer = listener.accept()
            conn.close()
            return f"accepted, peer address {peer[0]!r}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


def dualstack_report() -> DualStackReport:
    """Run the dual-stack experiments on loopback and report what happened.

    1. ``create_server(("::1", P), family=AF_INET6, dualstack_ipv6=True)``, an IPv6 client.
    2. An IPv4 client to ``127.0.0.1`` at that same port number: a different address, so it is
       *not* this socket. We hold ``127.0.0.1`` at that port with a socket that never listens, so
       the connect is refused every time and can never reach another program (in a classroom,
       another student's kernel) that happened to get the same number for IPv4.
    3. An AF_INET6 socket with ``IPV6_V6ONLY`` off, bound to ``::ffff:127.0.0.1``: an IPv4
       client reaches it and shows up with an IPv4-mapped IPv6 peer address.
    """
    has_ds = socket.has_dualstack_ipv6()
    if not ipv6_available():
        skipped = "skipped: no IPv6 here"
        return DualStackReport(has_ds, False, skipped, skipped, skipped)
    with listener_alone_at_its_port("::1", ["127.0.0.1"], dualstack_ipv6=has_ds) as server:
        port = server.getsockname()[1]
        v6 = _try_connect(socket.AF_INET6, ("::1", port), server)
        v4 = _try_connect(socket.AF_INET, ("127.0.0.1", port), None)
    mapped = "skipped: this platform has no dual-stack sockets"
    if has_ds:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as mapped_sock:
                mapped_sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                mapped_sock.bind(("::ffff:127.0.0.1", 0))
                mapped_sock.listen(1)
                mapped = _try_connect(socket.AF_INET, ("127.0.0.1", mapped_sock.getsockname()[1]), mapped_sock)
        except OSError as exc:
            mapped = f"this system refuses IPv4-mapped binds ({type(exc).__name__}: {exc.strerror or exc})"
    return DualStackReport(has_ds, True, v6, v4, mapped)


# ---- Python 2 -> 3 ----------------------------------------------------------------------------

def python2_send_str(sock: socket.socket, text: str = "hello") -> str:
    """Do what Python 2 code did, ``sock.send("hello")``, and return what Python 3 says."""
    try:
        sock.send(text)  # type: ignore[arg-type]  # the point of the demo
    except TypeError as exc:
        return f"TypeError: {exc}"
    return "sent (this Python accepted a str: not Python 3?)"


def split_utf8(text: str, at: int) -> tuple[bytes, bytes]:
    """Encode ``text`` as UTF-8 and cut the bytes at ``at``: how a stream may deliver them."""
    data = text.encode("utf-8")
    return data[:at], data[at:]


@dataclasses.dataclass(frozen=True)
class VersionNote:
    feature: str
    version: str  # the Python version that added or changed it
    what: str
    probe: Callable[[], bool]  # true when this interpreter has the feature

    def available(self) -> bool | None:
        """Ask this interpreter whether it has the feature; ``None`` if it cannot be probed."""
        try:
            return bool(self.probe())
        except Exception:
            return None


#: Versions checked against the Python documentation (library/socket.rst ``versionadded`` /
#: ``versionchanged`` notes, and the 2.6 change log for create_connection).
VERSION_NOTES: tuple[VersionNote, ...] = (
    VersionNote("socket.timeout, settimeout()", "2.3", "per-socket timeouts",
                lambda: hasattr(socket.socket, 'settimeout')),
    VersionNote("socket.create_connection()", "2.6", "resolve, then try each address in turn",
                lambda: hasattr(socket, 'create_connection')),
    VersionNote("bytes on the wire", "3.0", "send()/recv() take and return bytes, not str",
                lambda: isinstance(b'', bytes) and bytes is not str),
    VersionNote("with socket ... as s:", "3.2", "sockets are context managers",
                lambda: hasattr(socket.socket, '__exit__')),
    VersionNote("create_connection(source_address=)", "3.2", "choose the local address",
                lambda: 'source_address' in inspect.signature(socket.create_connection).parameters),
    VersionNote("socket.error is OSError", "3.3", "PEP 3151: one OSError tree with subclasses",
                lambda: socket.error is OSError),
    VersionNote("sendmsg() / recvmsg()", "3.3", "ancillary data (Unix)",
                lambda: hasattr(socket.socket, 'sendmsg')),
    VersionNote("automatic EINTR retry", "3.5", "PEP 475: calls retry after a signal",
                lambda: sys.version_info >= (3, 5)),
    VersionNote("socket.sendfile()", "3.5", "zero-copy file sending where the OS has it",
                lambda: hasattr(socket.socket, 'sendfile')),
    VersionNote("socket.close(fd)", "3.7", "close a raw socket descriptor portably",
                lambda: hasattr(socket, 'close')),
    VersionNote("create_server(), has_dualstack_ipv6()", "3.8", "one call to bind+listen, dual stack",
                lambda: hasattr(socket, 'create_server') and hasattr(socket, 'has_dualstack_ipv6')),
    VersionNote("send_fds() / recv_fds()", "3.9", "pass descriptors over AF_UNIX (Unix only)",
                lambda: hasattr(socket, 'send_fds')),
    VersionNote("socket.timeout is TimeoutError", "3.10", "one exception for every timeout",
                lambda: socket.timeout is TimeoutError),
    VersionNote("create_connection(all_errors=)", "3.11", "an ExceptionGroup of every failed attempt",
                lambda: 'all_errors' in inspect.signature(socket.create_connection).parameters),
)


def version_table() -> list[tuple[str, str, str, str]]:
    """Rows ``(feature, added in, what, here?)``: each note checked against *this* interpreter."""
    rows = []
    for note in VERSION_NOTES:
        ok = note.available()
        here = "yes" if ok else ("no" if ok is False else "?")
        rows.append((note.feature, note.version, note.what, here))
    return rows


# ---- IPv4 vs IPv6 cost ------------------------------------------------------------------------

@contextlib.contextmanager
def echo_op(address: tuple[str, int], payload: bytes) -> Iterator[Callable[[], None]]:
    """A connection to an echo server and a zero-argument op: send ``payload``, read it all back.

    For ``measure.sweep`` / ``widgets.SweepPanel``: the family (IPv4 or IPv6) follows the address.
    """
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        view = memoryview(bytearray(len(payload)))

        def op() -> None:
            sock.sendall(payload)
            got = 0
            while got < len(payload):
                n = sock.recv_into(view[got:])
                if not n:
                    raise ConnectionError("the echo server closed the connection")
                got += n

        yield op


def family_verdict(points: Sequence[Any], v4: str = "IPv4", v6: str = "IPv6") -> str:
    """Compare IPv6 with IPv4 at the payload sizes both series measured (median of the ratios)."""
    by = {v4: {p.x: p.median_ns for p in points if p.series == v4},
          v6: {p.x: p.median_ns for p in points if p.series == v6}}
    common = sorted(set(by[v4]) & set(by[v6]))
    if not common:
        return f"run both series ({v4} and {v6}) at the same sizes to compare them"
    ratio = statistics.median(by[v6][x] / by[v4][x] for x in common)
    head = f"IPv6 / IPv4 time per echo, median over {len(common)} sizes: ×{ratio:.2f}"
    if 0.8 <= ratio <= 1.25:
        return f"{head}: the same cost on loopback (within 25 %): confirmed, the socket API is the same."
    slower = "IPv6" if ratio > 1 else "IPv4"
    return f"{head}: {slower} was slower here; run again to see whether it is noise."
