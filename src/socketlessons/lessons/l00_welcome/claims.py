"""The verdict lesson 00 prints, measured once exactly as its cell does, for ``benchmarks/bench_verdicts.py``."""

from __future__ import annotations

from collections.abc import Callable

from ...claims import Claim
from ...measure import Status
from . import SEND_BUDGET_S, SEND_SIZES, DrainedConnection, send_verdict, slope_settled, sweep_rounds


def _sendall_is_linear() -> Status:
    with DrainedConnection() as conn:
        def send_op(k: int) -> Callable[[], None]:
            payload = b"x" * k
            return lambda: conn.sendall(payload)

        points = sweep_rounds(send_op, SEND_SIZES, budget_s=SEND_BUDGET_S, before_batch=conn.wait_empty,
                              enough=slope_settled)
    return send_verdict(points, what="sendall()")[0].status


CLAIMS = [
    Claim(lesson="l00_welcome", name="sendall() is O(k)", truth="refined",
          why="copying k bytes into the socket buffer costs time proportional to k, plus a fixed cost per call "
              "(about 1 µs) that dominates sends below a few KiB",
          run=_sendall_is_linear, acceptable=frozenset({"confirmed"})),
]
