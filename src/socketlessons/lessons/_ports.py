"""Addresses a demo may connect or send to without ever reaching another kernel.

A classroom host runs thirty kernels, and every helper server gets its port from port 0. A demo
that talks to an address it did not open itself ("nobody listens here", "the same port number
on the other address family") could, by chance, reach another student's server: the classroom
test saw lesson 07's IPv4 probe do exactly that. These helpers make such addresses safe by
construction rather than by luck:

* ``closed_port()``: a port held by a socket that is bound but never listens, so a TCP connect
  there is refused and nobody else can take it meanwhile;
* ``listener_alone_at_its_port()``: a listening server whose port number is also held, the same
  way, on the other addresses a client might try (``127.0.0.1`` beside ``::1``, or every address
  ``localhost`` stands for);
* ``port_nobody_uses()``: a port with no TCP or UDP socket at all (a UDP "nobody listens" demo
  needs that), chosen below the range port 0 draws from so no helper is handed it meanwhile.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterable, Iterator
from typing import Any

from ..addresses import address_in_use_errnos, ephemeral_port_range

__all__ = ["closed_port", "listener_alone_at_its_port", "port_nobody_uses"]


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@contextlib.contextmanager
def closed_port(host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """Yield ``(host, port)`` where a TCP connect is refused, for as long as the block runs.

    The port is reserved by a socket that is bound but never listens: no other program can take
    it meanwhile (binding, closing and handing out the number would be a race), and a connect
    to it is refused at once.
    """
    with socket.socket(_family_of(host), socket.SOCK_STREAM) as holder:
        holder.bind((host, 0))
        yield holder.getsockname()[:2]


def _hold(stack: contextlib.ExitStack, host: str, port: int) -> bool:
    """Bind a never-listening socket at ``(host, port)`` for the life of ``stack``.

    False when someone else has that address; True when we hold it, or when the address does not
    work here at all (no IPv6): then nobody can listen on it either.
    """
    try:
        holder = stack.enter_context(socket.socket(_family_of(host), socket.SOCK_STREAM))
        holder.bind((host, port))
    except OSError as exc:
        return exc.errno not in address_in_use_errnos()
    return True


@contextlib.contextmanager
def listener_alone_at_its_port(host: str, others: Iterable[str], *, attempts: int = 20,
                               **create_server_kwargs: Any) -> Iterator[socket.socket]:
    """``socket.create_server((host, 0), **create_server_kwargs)``, its port held on ``others``.

    IPv4 and IPv6 hand out port numbers separately, so ``127.0.0.1`` at a ``::1`` server's port
    (or the reverse) may be another kernel's server. Each address in ``others`` is bound at the
    same port and never listens: a client trying it is refused at once and can reach nobody
    else. When one of them is already taken, we close everything and draw a new port, at most
    ``attempts`` times.
    """
    others = sorted(set(others) - {host})
    for _ in range(attempts):
        server = socket.create_server((host, 0), family=_family_of(host), **create_server_kwargs)
        with contextlib.ExitStack() as held:
            held.enter_context(server)
            port = server.getsockname()[1]
            if not all(_hold(held, other, port) for other in others):
                continue  # someone else has this number on another address: draw again
            yield server
            return
    raise OSError(f"no port was free on {host} and {', '.join(others)} after {attempts} tries")


def port_nobody_uses(host: str = "127.0.0.1", attempts: int = 50) -> tuple[str, int]:
    """``(host, port)`` where no TCP or UDP socket is, and where none will appear by chance.

    Binding port 0 and closing the socket again gives a free port, but only for a moment: port 0
    hands that number to the next program that asks, and in a classroom thirty kernels ask all
    the time. Our datagram would then land in another student's server. Port 0 only ever hands
    out ports from the ephemeral range, so we pick a port *below* it and check that neither TCP
    nor UDP uses it now. (Someone could still bind that exact number on purpose; no helper does.)
    """
    family = _family_of(host)
    low, _, _ = ephemeral_port_range()
    first = max(1024, low // 2)
    draw = random.Random()
    for _ in range(attempts):
        port = draw.randrange(first, low) if low > first else 0
        try:
            with socket.socket(family, socket.SOCK_STREAM) as tcp, socket.socket(family, socket.SOCK_DGRAM) as udp:
                tcp.bind((host, port))
                udp.bind((host, tcp.getsockname()[1]))
                return host, tcp.getsockname()[1]
        except OSError:  # in use (or, on Windows, in an excluded range): draw again
            continue
    raise OSError(f"found no port free for both TCP and UDP on {host} in {attempts} tries")
