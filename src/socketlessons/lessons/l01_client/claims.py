"""The verdicts lesson 01 prints, each measured once exactly as its cell does (same sizes,
budgets, estimator and verdict function), with its own servers, for ``benchmarks/bench_verdicts.py``."""

from __future__ import annotations

import contextlib
import socket
import statistics
from collections.abc import Callable, Iterator

from ...claims import Claim
from ...measure import Status, time_op
from ...servers import EchoServer
from .demos import (
    SEND_BUDGET_S,
    SEND_SIZES,
    DrainedConnection,
    SourceServer,
    connect_verdict,
    recv_verdicts,
    send_verdict,
    slope_settled,
    socket_verdict,
    sweep_rounds,
    tcp_pair,
    with_open,
)

#: The notebook's sizes (cells "connect() is O(n)?", "recv() is O(bufsize)?").
OPENED = [1, 2, 4, 8, 16, 32, 64, 128, 256]
BUFSIZES = [16, 64, 256, 1024, 4096, 16384, 65536, 262144]
ONE_RECV_SIZES = [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20]


def _connect_once(address: tuple[str, int]) -> Callable[[], None]:
    def connect_once() -> None:
        with socket.socket() as s:
            s.connect(address)

    return connect_once


def _socket_is_constant() -> Status:
    with EchoServer(mode="process") as echo:
        with with_open(echo.address, lambda: socket.socket().close()) as make:
            points = sweep_rounds(make, OPENED, interleave=False, budget_s=0.5)
    return socket_verdict(points).status


def _connect_is_constant_plus_latency() -> Status:
    with EchoServer(mode="process") as echo:
        connect_once = _connect_once(echo.address)
        t_socket = time_op(lambda: socket.socket().close())
        t_connect = time_op(connect_once)
        with socket.create_connection(echo.address) as s:
            t_rtt = time_op(lambda: (s.sendall(b"x"), s.recv(1)))
        with with_open(echo.address, connect_once) as make:
            by_open = sweep_rounds(make, OPENED, interleave=False, budget_s=1.0, max_rounds=25)
    return connect_verdict(t_socket.median_ns, t_connect.median_ns, t_rtt.median_ns, by_open).status


def _send_is_linear() -> Status:
    with DrainedConnection() as conn:
        def send_op(k: int) -> Callable[[], None]:
            payload = b"x" * k
            return lambda: conn.sendall(payload)

        points = sweep_rounds(send_op, SEND_SIZES, budget_s=SEND_BUDGET_S, before_batch=conn.wait_empty,
                              enough=slope_settled)
    return send_verdict(points)[0].status


def _read_payload(sock: socket.socket, size: int, bufsize: int) -> int:
    got = calls = 0
    while got < size:
        chunk = sock.recv(bufsize)
        if not chunk:
            raise EOFError("the source closed the connection early")
        got += len(chunk)
        calls += 1
    return calls


def _fixed_payload(address: tuple[str, int]) -> Callable[[int], contextlib.AbstractContextManager[Callable[[], None]]]:
    @contextlib.contextmanager
    def fixed_payload(bufsize: int, size: int = 64 * 1024) -> Iterator[Callable[[], None]]:
        with socket.create_connection(address) as sock:
            calls: list[int] = []

            def op() -> None:
                sock.sendall(SourceServer.COUNT.pack(size))
                calls.append(_read_payload(sock, size, bufsize))

            op.extra = lambda: {"calls": statistics.median(calls), "ideal": -(-size // bufsize)}  # type: ignore[attr-defined]
            yield op

    return fixed_payload


@contextlib.contextmanager
def _one_recv(bufsize: int, waiting: int = 1) -> Iterator[Callable[[], None]]:
    with tcp_pair() as (sender, receiver):
        payload = b"x" * waiting

        def op() -> None:
            sender.sendall(payload)
            got = len(receiver.recv(bufsize))
            while got < waiting:
                got += len(receiver.recv(bufsize))

        yield op


def _recv_measurements() -> tuple:
    with SourceServer(mode="process") as source:
        by_bufsize = sweep_rounds(_fixed_payload(source.address), BUFSIZES, budget_s=1.0)
    one_byte = sweep_rounds(_one_recv, ONE_RECV_SIZES, series="1 byte waiting", budget_s=0.8)
    full = sweep_rounds(lambda b: _one_recv(b, waiting=b), ONE_RECV_SIZES[:7], series="bufsize bytes waiting",
                        budget_s=0.6)
    return recv_verdicts(by_bufsize, one_byte, full)


def _recv_follows_calls() -> Status:
    return _recv_measurements()[0].status


def _recv_not_bufsize() -> Status:
    return _recv_measurements()[1].status


CLAIMS = [
    Claim(lesson="l01_client", name="socket() is O(1)", truth="confirmed",
          why="socket() allocates one descriptor and one structure; the number of connections already open "
              "does not change that work",
          run=_socket_is_constant),
    Claim(lesson="l01_client", name="connect() is O(1) + latency", truth="confirmed",
          why="the server's OS kernel answers the handshake from its listen queue in constant time, whatever "
              "the number of connections already open",
          run=_connect_is_constant_plus_latency),
    Claim(lesson="l01_client", name="send() is O(k)", truth="refined",
          why="copying k bytes into the socket buffer costs time proportional to k, plus a fixed cost per call "
              "(about 1 µs) that dominates sends below a few KiB",
          run=_send_is_linear, acceptable=frozenset({"confirmed"})),
    Claim(lesson="l01_client", name="receiving a fixed payload: time follows the recv calls", truth="refined",
          why="each recv call costs a fixed amount; the buffer size sets how many calls a payload needs",
          run=_recv_follows_calls),
    Claim(lesson="l01_client", name="recv() is O(k), k = buffer size", truth="refined",
          why="recv costs a fixed amount plus the bytes it returns; the size asked for only caps what one "
              "call may return",
          run=_recv_not_bufsize),
]
