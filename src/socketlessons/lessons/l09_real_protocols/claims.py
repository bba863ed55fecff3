"""The measured claims of lesson 09, run as its cells run them (same rounds, estimators, verdicts).

The raw-socket client below is a copy of the one the lesson's cells define (the lesson shows it;
the benchmark needs it without a notebook).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator

from ...claims import Claim
from ...measure import Status
from ...servers import EchoServer
from .demos import StdlibHTTPServer, TLSEchoServer, alternate, handshake_verdict, keepalive_verdict, machine_load

#: As in the lesson's cells.
ROUNDS, PER_ROUND, BUDGET_S = 9, 15, 2.0
TLS_ROUNDS, TLS_PER_ROUND = 9, 10


def _read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("the server closed before the end of the headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(max(4096, length - len(body)))
        if not chunk:
            raise EOFError(f"the server closed after {len(body)} of {length} body bytes")
        body += chunk
    return status_line, headers, body


def _get(sock: socket.socket, path: str = "/") -> tuple[str, dict[str, str], bytes]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii"))
    return _read_response(sock)


def _keepalive_is_faster() -> Status:
    with StdlibHTTPServer() as server:
        def new_connection() -> None:
            with socket.create_connection(server.address, timeout=5) as sock:
                _get(sock)

        @contextlib.contextmanager
        def one_connection() -> Iterator[Callable[[], object]]:
            with socket.create_connection(server.address, timeout=5) as sock:
                _get(sock)
                yield lambda: _get(sock)

        rounds = alternate({"new": new_connection}, each_round={"keep": one_connection}, rounds=ROUNDS,
                           per_round=PER_ROUND, budget_s=BUDGET_S)
    return keepalive_verdict(rounds["new"], rounds["keep"], machine_load()).verdict.status


def _handshake_costs_more() -> Status:
    from ..._interrupts import import_held

    trustme = import_held("trustme")  # cryptography inside: ■ during a first import would break it

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode("ascii"))
    with TLSEchoServer(server_ctx) as tls_server, EchoServer() as plain_server:
        def plain() -> None:
            socket.create_connection(plain_server.address, timeout=5).close()

        def tls() -> None:
            with socket.create_connection(tls_server.address, timeout=5) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname="localhost"):
                pass

        rounds = alternate({"plain": plain, "tls": tls}, rounds=TLS_ROUNDS, per_round=TLS_PER_ROUND,
                           budget_s=BUDGET_S)
    return handshake_verdict(rounds["plain"], rounds["tls"], machine_load()).verdict.status


CLAIMS = [
    Claim(lesson="l09_real_protocols", name="keep-alive beats a connection per request", truth="confirmed",
          why="a new connection adds connect() (a round trip through the OS's kernel), accept() and a new server "
              "thread to every request; keep-alive pays them once",
          run=_keepalive_is_faster),
    Claim(lesson="l09_real_protocols", name="a TLS connect costs several plain connects", truth="confirmed",
          why="the TLS handshake adds a round trip of messages and public-key signing and verification "
              "(about a millisecond of CPU) to the plain TCP connect (tens of microseconds on loopback)",
          run=_handshake_costs_more),
]
