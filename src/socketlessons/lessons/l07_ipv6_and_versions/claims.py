"""The verdicts lesson 07 prints, as the verdict-reliability benchmark runs them."""

from __future__ import annotations

import socket

from ...claims import Claim
from ...doctor import ipv6_available
from ...measure import Status
from .demos import family_rounds, family_verdict, seed_claim_verdict


def _ipv6_costs_what_ipv4_costs() -> Status:
    """Section 1's paired measurement (same sizes, rounds, estimator, budget), once."""
    if not ipv6_available():
        return "inconclusive"
    return family_verdict(family_rounds()).status


def _python3_same_with_ipv6_improvements() -> Status:
    """Section 4's cell: the Python-2 call on a real socket, then the verdict."""
    a, b = socket.socketpair()
    with a, b:
        try:
            a.send("Hello")  # type: ignore[arg-type]  # the Python-2 code the cell shows
            result = "sent"
        except TypeError as exc:
            result = f"TypeError: {exc}"
    return seed_claim_verdict(result).status


CLAIMS = [
    Claim(lesson="l07_ipv6_and_versions", name="on loopback IPv6 costs what IPv4 costs (ratio within 25 %)",
          truth="confirmed",
          why="on loopback no packet leaves the machine: both families take the same kernel path but for "
              "the address size (measured here with both ends of each connection in one thread: IPv6/IPv4 "
              "×1.01–1.03 at 16 B–16 KiB, quartiles within ×1.01–1.03, in 8 of 8 runs at load 3; through "
              "echo-server threads one run in six had quartiles up to ×6, from thread wake-ups)",
          run=_ipv6_costs_what_ipv4_costs),
    Claim(lesson="l07_ipv6_and_versions", name="Python 3.x: same socket calls, with IPv6 improvements",
          truth="refined",
          why="every call of the seed exists in Python 3 under its name, but they carry bytes: Python 2's "
              "sock.send('Hello') raises TypeError, so 'same' holds for the API and not for the data type",
          run=_python3_same_with_ipv6_improvements),
]
