"""The verdicts lesson 02 prints, as the verdict-reliability benchmark runs them.

Each ``run()`` measures once, exactly as the lesson's cell does (the same timed operation, sizes,
budget, estimator and verdict function), with its own sockets, and returns the verdict's status.
"""

from __future__ import annotations

import socket

from ...claims import Claim
from ...measure import LoadWatch, Status
from . import demos

#: The cell "bind() and listen(): O(1)": listeners already open, and the timed operation.
OPENED = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: The cell "accept() waits": how late the client comes.
DELAYS = (0.05, 0.1, 0.2, 0.4)


def open_listener() -> None:
    """The lesson's timed operation: a whole socket() + bind() (port 0) + listen() + close()."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()


def _listen() -> Status:
    with LoadWatch() as watch:
        points = demos.time_with_listeners_open(open_listener, OPENED)
    return demos.listen_verdict(points, watch.load).status


def _accept() -> Status:
    waits = demos.accept_waits(DELAYS)
    return demos.accept_verdict(waits, demos.accept_cost()).status


CLAIMS = [
    Claim(lesson="l02_server", name="bind() and listen() are O(1)", truth="confirmed",
          why="port 0 takes a free port from a hash of the ports in use and listen() only marks the socket: "
              "neither walks the other listeners, so 1 or 256 open ones cost the same",
          run=_listen, acceptable=frozenset()),
    Claim(lesson="l02_server", name="accept() is 'O(n) - wait for client'", truth="refined",
          why="a blocked accept() sleeps in the kernel until the client's handshake completes, so its wall time "
              "is the client's delay while its CPU time stays near zero; the call's own work is microseconds",
          run=_accept, acceptable=frozenset()),
]
