"""Lesson 07 helpers: IPv6 on loopback, getaddrinfo, and what changed between Python versions.

Rules of this module:

* Loopback only. Nothing here binds ``::`` or ``0.0.0.0``: a dual-stack socket on ``::``
  would listen on every interface of the machine. The dual-stack cells of the lesson bind
  ``::1`` and the IPv4-mapped form of ``127.0.0.1`` (``::ffff:127.0.0.1``); the socket code is
  in those cells, this module keeps the harness (``listener_alone_at_its_port``, the paired
  IPv4/IPv6 measurement, the verdicts).
* No name resolution leaves the machine: candidate lists are built from *literal* loopback
  addresses with ``AI_NUMERICHOST``, so the lesson does not depend on how ``localhost``
  resolves on the learner's machine (it differs: Docker, macOS and Windows disagree).
* The lesson asks ``ipv6_available()`` (``ipv6_skip_message``) before every IPv6 step and says
  "skipped" when the host has no IPv6: lesson 07 skips, it never fails.

Used in ``notebooks/07_ipv6_and_versions.ipynb``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...doctor import ipv6_available
from ...measure import Verdict
from ...validate import seconds
from .._ports import closed_port, listener_alone_at_its_port

__all__ = [
    "VERSION_NOTES",
    "AddrInfo",
    "VersionNote",
    "candidates",
    "closed_port",
    "describe_addrinfo",
    "RatioPoint",
    "family_figure",
    "family_rounds",
    "family_verdict",
    "listener_alone_at_its_port",
    "ipv6_skip_message",
    "seed_claim_verdict",
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


# ---- Python 2 -> 3 ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class VersionNote:
    feature: str
    version: str  # the Python version that added or changed it
    what: str
    probe: Callable[[], bool]  # true when this interpreter has the feature
    ipv6: bool = False  # one of the seed's "IPv6 improvements"

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
    VersionNote("ipaddress module", "3.3", "parse and compare IPv4 and IPv6 addresses",
                lambda: importlib.util.find_spec("ipaddress") is not None, ipv6=True),
    VersionNote("socket.if_nameindex()", "3.3", "interface names and the scope ids of IPv6 link-local addresses",
                lambda: hasattr(socket, 'if_nameindex'), ipv6=True),
    VersionNote("sendmsg() / recvmsg()", "3.3", "ancillary data (Unix)",
                lambda: hasattr(socket.socket, 'sendmsg')),
    VersionNote("automatic EINTR retry", "3.5", "PEP 475: calls retry after a signal",
                lambda: sys.version_info >= (3, 5)),
    VersionNote("socket.sendfile()", "3.5", "zero-copy file sending where the OS has it",
                lambda: hasattr(socket.socket, 'sendfile')),
    VersionNote("socket.close(fd)", "3.7", "close a raw socket descriptor portably",
                lambda: hasattr(socket, 'close')),
    VersionNote("create_server(), has_dualstack_ipv6()", "3.8", "one call to bind+listen, dual stack",
                lambda: hasattr(socket, 'create_server') and hasattr(socket, 'has_dualstack_ipv6'), ipv6=True),
    VersionNote("send_fds() / recv_fds()", "3.9", "pass descriptors over AF_UNIX (Unix only)",
                lambda: hasattr(socket, 'send_fds')),
    VersionNote("socket.timeout is TimeoutError", "3.10", "one exception for every timeout",
                lambda: socket.timeout is TimeoutError),
    VersionNote("create_connection(all_errors=)", "3.11", "an ExceptionGroup of every failed attempt",
                lambda: 'all_errors' in inspect.signature(socket.create_connection).parameters),
)


def version_table() -> list[tuple[str, str, str, str]]:
    """Rows ``(feature, added in, what, here?)``: each note checked against *this* interpreter;
    ``what`` starts with "IPv6:" for the seed's "IPv6 improvements"."""
    rows = []
    for note in VERSION_NOTES:
        ok = note.available()
        here = "yes" if ok else ("no" if ok is False else "?")
        rows.append((note.feature, note.version, f"IPv6: {note.what}" if note.ipv6 else note.what, here))
    return rows


#: The calls of the seed's four flows: "Python 3.x: same" means these exist, under these names.
SEED_CALLS = ("socket", "connect", "send", "recv", "bind", "listen", "accept", "sendto", "recvfrom", "close")


def seed_claim_verdict(python2_result: str) -> Verdict:
    """The seed's version note, "Python 3.x: Same with IPv6 improvements", held against this
    interpreter: are the seed's calls all there, does Python-2 code run unchanged
    (``python2_result``: what ``sock.send("Hello")`` did), and which IPv6 helpers it has."""
    calls = [c for c in SEED_CALLS if hasattr(socket.socket if c != "socket" else socket, c)]
    missing = sorted(set(SEED_CALLS) - set(calls))
    improved = [n for n in VERSION_NOTES if n.ipv6]
    here = [n for n in improved if n.available()]
    listed = ", ".join(f"{n.feature} ({n.version})" for n in here) or "none"
    same = (f"{len(calls)} of the reference's {len(SEED_CALLS)} calls ({', '.join(SEED_CALLS)}) exist under the same "
            "names"
            + (f" (missing: {', '.join(missing)})" if missing else ""))
    if missing:
        return Verdict("contradicted", f"not the same: {same}.")
    improvements = f"IPv6 helpers of Python 3 on this interpreter: {len(here)} of {len(improved)}: {listed}"
    if python2_result.startswith("TypeError"):
        return Verdict("refined", (f"refined: {same}, but Python-2 code does not run unchanged: "
                                   f"sock.send(\"Hello\") raised {python2_result}; sockets carry bytes now. "
                                   f"{improvements}."))
    return Verdict("confirmed", f"confirmed: {same}, and sock.send(\"Hello\") went through. {improvements}.")


# ---- IPv4 vs IPv6 cost ------------------------------------------------------------------------

#: Payload sizes of the IPv6/IPv4 comparison (bytes): three decades, so a difference that grows
#: with the size (per-byte cost) would show as well as a fixed one (headers, lookups).
FAMILY_SIZES = (16, 256, 4096, 16384)
#: Rounds: each round measures every size with both families back to back, in alternating order
#: (IPv4 first in one round, IPv6 first in the next) and in a shuffled size order, so a slow
#: moment of the machine hits both families alike and cancels in their ratio.
FAMILY_ROUNDS = 31
#: Echoes per batch, batches per family and size in a round: the time of one echo is the fastest
#: batch / FAMILY_BATCH. The minimum, because the claim is about what the operation itself
#: costs, and noise on a busy machine only ever adds time (timeit's docs: "the min is the most
#: useful value"; pyperf and Google Benchmark discuss the same).
FAMILY_BATCH, FAMILY_BATCHES = 10, 3
#: Two costs are "the same" when IPv6 / IPv4 stays within this factor (either way) at every
#: size; a difference is named only beyond DIFFERENT, with its quartiles on the same side of 1.
SAME, DIFFERENT = 1.25, 1.5


def _echo(client: socket.socket, server: socket.socket, payload: bytes, view: memoryview) -> None:
    """One echo with both ends in this thread: the client sends, the server end reads it all and
    sends it back, the client reads it all (``recv_into``, no copies).

    No other thread takes part, so no thread has to be woken up: an echo through a server thread
    costs 5 µs when the operating system runs the woken thread at once and 60 µs or more when it
    first wakes an idle CPU for it, and which one a connection gets can last the whole run (seen:
    IPv6 ×6 "slower" for most of a run, then ×1.0 in the next). What is left is what the claim
    is about: each family's path through the kernel. Payloads stay far below the socket buffers,
    so no ``sendall`` here waits for the other end.
    """
    n = len(payload)
    for sender, receiver in ((client, server), (server, client)):
        sender.sendall(payload if sender is client else view[:n])
        got = 0
        while got < n:
            k = receiver.recv_into(view[got:n])
            if not k:
                raise ConnectionError("the other end closed the connection")
            got += k


@contextlib.contextmanager
def _pair(host: str) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on ``host`` (port 0), both ends here; the listener closes at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as listener:
        client = socket.socket(family)
        try:
            client.settimeout(5)
            client.connect(listener.getsockname()[:2])
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    with client, server:
        server.settimeout(5)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield client, server


@dataclasses.dataclass(frozen=True)
class RatioPoint:
    """IPv6 time / IPv4 time at one payload size, one ratio per round."""

    size: int
    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.ratios) < 2:
            return self.ratios[0], self.ratios[0]
        q1, _, q3 = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q1, q3


def family_rounds(*, sizes: Sequence[int] = FAMILY_SIZES, rounds: int = FAMILY_ROUNDS,
                  budget_s: float = 2.5, hosts: tuple[str, str] = ("127.0.0.1", "::1")) -> list[RatioPoint]:
    """Echoes over an IPv4 and an IPv6 loopback connection, paired in alternating rounds.

    Each family gets one connection whose two ends both live in this thread (see ``_echo``).
    Returns one ``RatioPoint`` per size. Stops adding rounds after ``budget_s`` seconds (at
    least 3 rounds), so a crowded machine costs seconds, not minutes.
    """
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= 64 * 1024 for n in sizes):
        raise ValueError(f"sizes must be payload sizes between 1 and 64 KiB (each must fit in a socket's "
                         f"buffers: both ends are in this thread), got {sizes!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 3:
        raise ValueError(f"rounds must be an int of at least 3, got {rounds!r}")
    budget_s = seconds("budget_s", budget_s, high=60.0)
    payloads = {n: bytes(n) for n in sizes}
    view = memoryview(bytearray(max(sizes)))
    ratios: dict[int, list[float]] = {n: [] for n in sizes}
    order = list(sizes)
    shuffle = random.Random(7).shuffle  # a fixed seed: the same interleaving every run
    end = time.perf_counter() + budget_s
    with _pair(hosts[0]) as v4, _pair(hosts[1]) as v6:
        pairs = {"v4": v4, "v6": v6}
        for r in range(rounds):
            shuffle(order)
            for i, n in enumerate(order):
                best = {}
                for name in (("v4", "v6") if (r + i) % 2 == 0 else ("v6", "v4")):
                    times = []
                    for _ in range(FAMILY_BATCHES):
                        t0 = time.perf_counter_ns()
                        for _ in range(FAMILY_BATCH):
                            _echo(*pairs[name], payloads[n], view)
                        times.append(time.perf_counter_ns() - t0)
                    best[name] = min(times)
                ratios[n].append(best["v6"] / best["v4"])
            if r >= 2 and time.perf_counter() > end:
                break
    return [RatioPoint(n, tuple(ratios[n])) for n in sorted(sizes)]


def family_verdict(points: Sequence[RatioPoint]) -> Verdict:
    """"On loopback IPv6 costs what IPv4 costs": judged from the ratio at every size."""
    if not points:
        return Verdict("inconclusive", "nothing measured: run family_rounds() first")
    rounds = min(len(p.ratios) for p in points)
    each = "; ".join(f"{_size(p.size)} ×{p.median:.2f} ({p.quartiles[0]:.2f}–{p.quartiles[1]:.2f})" for p in points)
    head = f"IPv6 time / IPv4 time per echo, median (quartiles) over {rounds} paired rounds: {each}"
    if all(1 / SAME <= p.quartiles[0] and p.quartiles[1] <= SAME for p in points):
        # "the same" within the claim's 25 %, and what is left, from the numbers: a steady few per
        # cent (every quartile above 1) is a real difference, only too small for the claim
        lows, highs = [p.quartiles[0] for p in points], [p.quartiles[1] for p in points]
        steady = "slower" if min(lows) > 1 else "faster" if max(highs) < 1 else ""
        side = (f"; IPv6 was a little {steady} in every round's middle half (×{min(lows):.2f}–×{max(highs):.2f})"
                if steady else "")
        return Verdict("confirmed", f"{head}.\nThe same cost on loopback, within the claim's {SAME - 1:.0%}: at every "
                                    f"size the middle half of the rounds lies within {SAME - 1:.0%} of ×1{side}.")
    apart = [p for p in points if (p.median >= DIFFERENT and p.quartiles[0] > 1)
             or (p.median <= 1 / DIFFERENT and p.quartiles[1] < 1)]
    if apart:
        p = apart[0]
        slower = "IPv6" if p.median > 1 else "IPv4"
        return Verdict("contradicted", f"{head}.\nNot the same: at {_size(p.size)} {slower} took ×"
                                       f"{max(p.median, 1 / p.median):.2f} as long, in most rounds.")
    wide = max(points, key=lambda p: p.quartiles[1] / p.quartiles[0])
    return Verdict("inconclusive", (
        f"{head}.\nToo spread to say within {SAME - 1:.0%}: at {_size(wide.size)} the middle half of the rounds "
        f"spans ×{wide.quartiles[0]:.2f}–{wide.quartiles[1]:.2f}. More rounds would narrow it "
        "(family_rounds(..., rounds=61)); so would a quieter machine."))


def _size(n: int) -> str:
    return f"{n >> 10} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def family_figure(points: Sequence[RatioPoint], *, ax: Any = None) -> Any:
    """The ratio IPv6 / IPv4 against payload size: medians with their quartiles, the line of
    "the same cost" (×1) and the band the verdict calls the same (×1/1.25 to ×1.25)."""
    from ...plots import style_for  # first: it loads matplotlib with ■ held (socketlessons._interrupts)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    if ax is None:
        fig = Figure(figsize=(6.4, 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    fig = ax.figure
    xs = [p.size for p in points]
    med = [p.median for p in points]
    lo = [p.median - p.quartiles[0] for p in points]
    hi = [p.quartiles[1] - p.median for p in points]
    st = style_for(0)
    ax.axhspan(1 / SAME, SAME, color="0.9", label=f"same cost (within {SAME - 1:.0%})")
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="×1: IPv6 = IPv4")
    ax.errorbar(xs, med, yerr=[lo, hi], color=st["color"], marker=st.get("marker", "o"), capsize=4,
                linestyle="-", label="median ratio, bar: middle half of the rounds")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [_size(x) for x in xs])
    top = max([SAME * 1.1, *[p.quartiles[1] * 1.1 for p in points]])
    bottom = min([1 / SAME / 1.1, *[p.quartiles[0] / 1.1 for p in points]])
    ax.set_ylim(bottom, top)
    ax.set_xlabel("payload per echo")
    ax.set_ylabel("IPv6 time / IPv4 time")
    ax.set_title("Does IPv6 cost more than IPv4 on loopback? The ratio, paired round by round", fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)  # below the axes: never over a point
    ax.grid(True, axis="y", alpha=0.3)
    return fig
