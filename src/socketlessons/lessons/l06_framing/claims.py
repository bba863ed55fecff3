"""The verdicts lesson 06 prints, as the verdict-reliability benchmark runs them."""

from __future__ import annotations

from ...claims import Claim
from ...measure import Status, sweep
from .demos import READERS, reader_verdict, reading

#: As in the lesson's cell: message sizes, batches per point, estimator.
SIZES = [16, 64, 256, 1024, 4096]
REPEATS = 7


def _recv1_costs_more() -> Status:
    """The lesson's reader sweep (section 5), once, without the plot."""
    runs = {how: sweep(lambda k, how=how: reading(k, how), SIZES, series=how, repeats=REPEATS) for how in READERS}
    return reader_verdict(runs).status


CLAIMS = [
    Claim(lesson="l06_framing", name="recv(1) per byte costs >= 10x a buffered line reader", truth="confirmed",
          why="recv(1) makes one system call per byte (0.3-4 µs each on the VMs measured) where the buffered "
              "reader makes one per 64 KiB, so a 4 KiB line costs hundreds of times more",
          run=_recv1_costs_more),
]
