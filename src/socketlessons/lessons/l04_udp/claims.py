"""The verdicts lesson 04 prints, as the verdict-reliability benchmark runs them (``claims.Claim``).

Each ``run()`` measures once exactly as the lesson's cell or panel does (same sizes, budget,
estimator and verdict function), with its own sockets and servers, and returns the status.
"""

from __future__ import annotations

from ...claims import Claim
from ...measure import LoadWatch, Status
from ...servers import UDPEchoServer
from .demos import (DATAGRAM_BUDGET_S, DATAGRAM_SIZES, PingPanel, datagram_timer, datagram_verdict, largest_datagram,
                    loss_verdict, ping_series, sweep_rounds)

__all__ = ["CLAIMS", "DATAGRAM_SWEEP", "PING_RUN"]

#: The lesson's sweep cell: sizes interleaved in rounds, until every size's estimate is settled.
DATAGRAM_SWEEP = {"series": "sendto + recvfrom(k)", "budget_s": DATAGRAM_BUDGET_S}
#: The ping panel's defaults (and the lesson's first run of it).
PING_RUN = {"count": 40, "timeout": PingPanel.TIMEOUT_S, "loss": 0.2, "retries": 0, "jitter": 0.005}


def datagram_sizes() -> list[int]:
    limit, _ = largest_datagram("127.0.0.1")
    return [k for k in DATAGRAM_SIZES if k < limit] + [limit]


def _datagram_is_linear() -> Status:
    with LoadWatch() as watch:
        points = sweep_rounds(datagram_timer(), datagram_sizes(), **DATAGRAM_SWEEP)
    return datagram_verdict(points, load=watch.load).status


def _ping_loss_matches_chance() -> Status:
    p = PING_RUN
    with UDPEchoServer(loss=p["loss"], jitter=p["jitter"], name="lesson04-claim-ping") as server:
        run = ping_series(server.address, p["count"], timeout=p["timeout"], retries=p["retries"])
    return loss_verdict(run, p["loss"], p["retries"]).status


CLAIMS = [
    Claim(lesson="l04_udp", name="sendto + recvfrom of k bytes is O(k)", truth="refined",
          why="each datagram costs two system calls (a fixed cost, 2-11 µs on this machine from day to day) plus "
              "copying its k bytes into the kernel and out again (0.05-0.2 ns per byte), so the time is O(1) + O(k)",
          run=_datagram_is_linear, acceptable=frozenset()),
    Claim(lesson="l04_udp", name="a ping is lost with probability loss^(1 + retries)", truth="confirmed",
          why="the helper server drops each datagram independently with the set probability, and a ping is lost "
              "only when all its attempts are; late replies on a busy machine add losses the verdict names",
          run=_ping_loss_matches_chance, acceptable=frozenset({"refined"})),
]
