"""Checkers of lesson 04: a UDP pinger (``check_ping``) and a whole-datagram receive (``check_recv_datagram``).

Both judge what the peer observes, not how long things took. ``check_ping``'s peer is a UDP
echo that decides each datagram's fate from a fixed PLAN: by the ping number in the datagram
and by how many datagrams of that number it has seen (drop it, echo it, echo it late, send a
stray copy of an earlier reply). The plan does not depend on arrival order or timing, so the
same function meets the same network every run. The peer records every datagram it received,
so the checker knows how many times each ping was sent and what came back for it:

1. every ping answered at once (timeout 0.5 s): every round trip must be reported;
2. planned loss, late replies and stray copies (timeout 40 ms, 2 retries): a ping whose every
   attempt was dropped must be tried exactly 1 + retries times and reported lost; a ping
   reported answered must have had a reply of its own; the round trip of a ping answered on a
   retry is timed from that retry (from the first send it is at least one timeout long); a late
   reply to the first attempt, arriving while the second waits, is the first attempt's answer;
3. a stream of stray replies every 20 ms while a ping waits (timeout 120 ms): a timeout set
   with ``settimeout()`` starts again at each ``recvfrom()``, so a pinger without a deadline
   never gives up while strays keep coming; a pinger that takes the first stray for the end of
   the wait sends again within milliseconds, long before its timeout. The gap between its sends
   is measured with the kernel's arrival stamps (Linux), and the phase runs again when the peer
   itself fell behind its stream of strays (a busy machine), which would let a restarting
   timeout run out.

A pinger that waits forever is noticed by the peer itself (silence long after a dropped
datagram); the peer then answers everything, so the learner's thread finishes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import re
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect

__all__ = ["check_ping", "check_recv_datagram"]

# ---- hints (the tests assert these constants) ---------------------------------------------------

TIMEOUT_HINT = ("UDP never says a datagram was lost: give every wait a timeout (sock.settimeout(...)) and "
                "catch TimeoutError around recvfrom, then try again")
RETRY_HINT = "when a ping times out, send it again (up to `retries` more times) before giving up with None"
RETRY_COUNT_HINT = ("each ping gets 1 + retries attempts in all, no more, no fewer: "
                    "`for attempt in range(1 + retries):`, and stop at the first reply")
RESEND_HINT = "stop trying a ping as soon as its reply has come (break out of the attempts loop)"
SEQ_HINT = ("compare each reply with the datagram you sent and ignore any other: duplicates and late "
            "replies to other pings arrive too")
NONCE_HINT = ("put the attempt number in each datagram (f'ping {seq} {attempt}') so a reply says which send it "
              "answers, and time the round trip from THAT send")
FIRST_SEND_HINT = ("take the time just before each sendto (inside the attempts loop): the round trip of a ping "
                   "answered on a retry starts at the retry, not at the first send")
RESTART_HINT = ("settimeout() starts again with every recvfrom(): with stray replies arriving the wait never "
                "ends. Keep a deadline (sent + timeout) and give each recvfrom only the time that is left")
STRAY_HINT = ("a reply that is not the one you wait for does not end the wait: ignore it and keep waiting for your "
              "own, with the time left until the deadline (sent + timeout); send again only once the timeout has "
              "passed")
FORMAT_HINT = "send the text f'ping {seq} {attempt}', encoded to bytes, with seq counting 0, 1, … count-1"
SLICE_HINT = ("recvfrom_into(buf) fills the start of buf and returns how many bytes came: return "
              "bytes(buf[:nbytes]), not the whole buffer")
GIVEN_TIMEOUT_HINT = ("use the timeout you were given, in seconds: sock.settimeout(timeout) (settimeout takes "
                      "seconds, not milliseconds)")
TWICE_HINT = ("once a ping is answered, stop waiting for it and go on to the next one: a duplicate of the "
              "same reply is not another round trip (one entry per ping)")
STATE_HINT = ("keep nothing between calls: create the list of round trips and the ping counter inside "
              "the function, so each call starts again at ping 0")
SHAPE_HINT = "return a list with one entry per ping: the round trip in seconds (a float), or None if it was lost"
UNITS_HINT = ("measure with time.perf_counter() (seconds), just before sendto and just after the matching "
              "reply; do not convert to milliseconds")

# ---- the pinger's peer --------------------------------------------------------------------------

DROP, ECHO, LATE, DUP, STRAYS, TWICE = "drop", "echo", "late", "dup", "strays", "twice"
_PING = re.compile(rb"ping (\d+)(?: (\S+))?")

#: Phase 2's plan: ping number -> what happens to its 1st, 2nd, 3rd datagram (echo after that).
#: LATE: dropped now, echoed right after the next datagram of that ping arrives (during its
#: wait). DUP: echoed, and a copy sent again right after the next datagram arrives, whichever
#: ping it belongs to (a duplicate that turns up while the next ping waits). TWICE: echoed twice
#: at once (a duplicate inside the answered ping's own wait: one round trip, not two).
LOSSY_PLAN: dict[int, tuple[str, ...]] = {
    0: (DUP,), 1: (DROP, DROP, DROP), 2: (DROP, ECHO), 3: (LATE, DROP, ECHO), 4: (DROP, DROP, ECHO),
    5: (DUP,), 6: (TWICE,), 7: (DROP, DROP, DROP), 8: (LATE, DROP, ECHO), 9: (DROP, ECHO),
}
STRAY_PLAN: dict[int, tuple[str, ...]] = {0: (ECHO,), 1: (STRAYS, ECHO)}
STRAY_GAP_S = 0.02
STRAY_COUNT = 40  # 0.8 s of strays, over six times the 120 ms timeout of that phase
STRAY_TIMEOUT_S = 0.12
LOSSY_TIMEOUT_S = 0.04
#: The stray phase runs again (at most this many times in all) when the peer itself fell behind
#: its stream of strays, by half the timeout or more, before the resend came: a pinger whose
#: timeout restarts at every recvfrom() times out in such a gap, and looks like a correct one.
STRAY_ROUNDS = 4

#: Linux's SO_TIMESTAMPNS (``SO_TIMESTAMPNS_OLD`` in include/uapi/asm-generic/socket.h; the
#: ``socket`` module does not export it): the kernel stamps each datagram when it arrives, so the
#: gap between two of the pinger's sends is measured exactly even when the peer's thread reads
#: them late on a busy machine. Other architectures number it differently: there, and on other
#: systems, the peer stamps a datagram when it reads it.
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" and platform.machine() in {
    "x86_64", "aarch64", "arm64", "i386", "i686", "armv7l", "armv6l", "riscv64"} else None


def _stamp_on_arrival(sock: socket.socket) -> bool:
    """Ask the kernel to stamp datagrams on arrival; True when it agreed."""
    if _SO_TIMESTAMPNS is None or not hasattr(sock, "recvmsg"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _recv_stamped(sock: socket.socket, stamped: bool) -> tuple[bytes, Any, float, bool]:
    """One datagram, its sender, and when it arrived (``time.time()`` seconds): the kernel's
    stamp when there is one (last item True), else now."""
    if stamped:
        data, ancillary, _flags, peer = sock.recvmsg(65_535, socket.CMSG_SPACE(16))
        for level, kind, cdata in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(cdata) in (8, 16):
                sec, nsec = struct.unpack("qq" if len(cdata) == 16 else "ii", cdata)
                return data, peer, sec + nsec * 1e-9, True
        return data, peer, time.time(), False
    data, peer = sock.recvfrom(65_535)
    return data, peer, time.time(), False


@dataclasses.dataclass
class _Seen:
    at: float  # perf_counter when the peer took it
    seq: int | None  # None: not a ping the peer could read
    attempt: int  # the peer's count of datagrams with this seq so far (0: the first)
    data: bytes
    action: str
    #: when it arrived (time.time() seconds): the kernel's stamp where there is one (``kernel_stamp``),
    #: else when the peer read it
    stamp: float
    kernel_stamp: bool


class _PingPeer:
    """A UDP echo on loopback that follows a plan and records what it saw (see the module docstring)."""

    def __init__(self, plan: dict[int, tuple[str, ...]], wake_after_s: float) -> None:
        self.plan, self.wake_after_s = plan, wake_after_s
        self.seen: list[_Seen] = []
        self.replied: dict[int, int] = {}  # seq -> replies sent back for it (strays not counted)
        self.strays_ran_out: list[int] = []  # seqs whose stray stream ended before the next datagram
        self.stalled: tuple[float, int | None, int] | None = None  # (when, seq, attempt) of a rescue
        self.returned_at = math.inf
        self._copied: set[bytes] = set()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)
        self._stamped = _stamp_on_arrival(self._sock)
        self.stray_sent: list[float] = []  # time.time() of each stray sent, in order
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="lesson04-ping-peer", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()

    def __enter__(self) -> _PingPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._read_the_rest()
        for s in (self._sock, self._wake_r, self._wake_w):
            s.close()

    def _read_the_rest(self) -> None:
        """Record the datagrams still queued (unanswered): a busy machine may leave the peer's
        thread behind the pinger, and the verdict counts what the pinger sent, not what the
        thread got round to."""
        while True:
            try:
                data, _peer, stamp, kernel = _recv_stamped(self._sock, self._stamped)
            except OSError:  # BlockingIOError: the queue is empty
                return
            match = _PING.fullmatch(data)
            seq = int(match.group(1)) if match else None
            attempt = len(self.attempts(seq)) if seq is not None else 0
            self.seen.append(_Seen(time.perf_counter(), seq, attempt, data, DROP, stamp, kernel))

    def rescue(self) -> None:
        """Answer everything from now on (wakes a pinger that waits forever)."""
        self._rescue = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"r")

    _rescue = False

    def attempts(self, seq: int) -> list[_Seen]:
        return [s for s in self.seen if s.seq == seq]

    # -- the loop --

    def _send(self, data: bytes, peer: Any) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendto(data, peer)

    def _serve(self) -> None:
        on_next: list[tuple[bytes, int]] = []  # (data, seq): sent right after the next datagram arrives
        strays: dict[str, Any] = {}  # the running stray stream: data, peer, left, due, seq
        last_from: Any = None
        last_drop: tuple[bytes, int | None, int] | None = None
        last_at = time.perf_counter()
        counts: dict[int, int] = {}
        last_reply = b"ping 0 0"
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                now = time.perf_counter()
                waits = [last_at + self.wake_after_s - now] if last_drop is not None else []
                if strays:
                    waits.append(strays["due"] - now)
                for key, _ in sel.select(max(0.0, min(waits)) if waits else None):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(64)
                        continue
                    try:
                        data, peer, stamp, kernel = _recv_stamped(self._sock, self._stamped)
                    except (BlockingIOError, InterruptedError, ConnectionResetError):
                        continue
                    last_from, last_at = peer, time.perf_counter()
                    if strays:  # the next datagram stops the stream: the pinger gave up waiting
                        strays.clear()
                    for copy, of in on_next:
                        self._send(copy, peer)
                        if copy not in self._copied:  # a late reply counts once; a duplicate does not count
                            self._copied.add(copy)
                            self.replied[of] = self.replied.get(of, 0) + 1
                    on_next.clear()
                    match = _PING.fullmatch(data)
                    seq = int(match.group(1)) if match else None
                    attempt = counts.get(seq, 0) if seq is not None else 0
                    if seq is not None:
                        counts[seq] = attempt + 1
                    plan = self.plan.get(seq, ()) if seq is not None else (ECHO,)  # echoed: judged after the run
                    action = plan[attempt] if attempt < len(plan) else ECHO
                    if self._rescue:
                        action = ECHO
                    self.seen.append(_Seen(last_at, seq, attempt, data, action, stamp, kernel))
                    last_drop = None
                    if action in (ECHO, DUP, TWICE):
                        self._send(data, peer)
                        if action == TWICE:
                            self._send(data, peer)
                        self.replied[seq] = self.replied.get(seq, 0) + 1  # type: ignore[index]
                        self._copied.add(data)
                        last_reply = data
                        if action == DUP:
                            on_next.append((data, seq))  # type: ignore[arg-type]
                    else:
                        last_drop = (data, seq, attempt)
                        if action == LATE:
                            on_next.append((data, seq))  # type: ignore[arg-type]
                        elif action == STRAYS:
                            strays.update(data=last_reply, peer=peer, left=STRAY_COUNT, due=last_at, seq=seq)
                now = time.perf_counter()
                if strays and now >= strays["due"]:
                    self.stray_sent.append(time.time())
                    self._send(strays["data"], strays["peer"])
                    strays["left"] -= 1
                    strays["due"] = now + STRAY_GAP_S
                    if strays["left"] <= 0:
                        self.strays_ran_out.append(strays["seq"])
                        strays.clear()
                        last_at = now  # the silence that matters starts when the strays end
                if self._rescue and last_drop is not None and last_from is not None:
                    self._send(last_drop[0], last_from)
                    last_drop = None
                if last_drop is not None and now - last_at >= self.wake_after_s and not strays:
                    # Long silence after a dropped datagram: the pinger waits without a timeout.
                    self.stalled = (now, last_drop[1], last_drop[2])
                    self._rescue = True
                    if last_from is not None:
                        self._send(last_drop[0], last_from)
                    last_drop = None


def _run(ping: Callable[..., Any], plan: dict[int, tuple[str, ...]], count: int, timeout: float,
         retries: int, label: str, wake_after_s: float) -> tuple[list[Any], _PingPeer, float]:
    with _PingPeer(plan, wake_after_s) as peer:
        strays = any(STRAYS in actions for actions in plan.values())
        worst = count * (1 + retries) * timeout + (STRAY_COUNT * STRAY_GAP_S if strays else 0)
        t0 = time.perf_counter()
        try:
            rtts = call(ping, peer.address, count, timeout, retries, timeout=worst + 3 * wake_after_s + 3,
                        on_timeout=peer.rescue)
        except DidNotReturn:
            raise NotYet(f"{label}: your pinger did not return, even after every ping was answered",
                         TIMEOUT_HINT) from None
        except TimeoutError as exc:
            raise NotYet(f"{label}: your pinger raised TimeoutError ({exc}) instead of trying again",
                         TIMEOUT_HINT) from None
        elapsed = time.perf_counter() - t0
        peer.returned_at = time.perf_counter()
    if peer.stalled is not None and peer.stalled[0] < peer.returned_at:
        _, seq, attempt = peer.stalled
        raise NotYet(f"{label}: ping {seq}'s datagram number {attempt + 1} was dropped, and your pinger then "
                     f"sent nothing for {wake_after_s:g} s (the timeout was {timeout:g} s): it waited "
                     "without a timeout", TIMEOUT_HINT)
    unreadable = [s.data for s in peer.seen if s.seq is None]
    if unreadable:
        raise NotYet(f"{label}: the peer got {unreadable[0]!r:.60}, not a ping it can read", FORMAT_HINT)
    if isinstance(rtts, (list, tuple)) and len(rtts) > count:
        twice = sum(TWICE in actions for actions in plan.values())
        if 0 < len(rtts) - count <= twice:  # one more entry per ping whose reply came twice at once
            raise NotYet(f"{label}: asked for {count} pings, your function returned {len(rtts)} entries: a reply "
                         "that came twice was counted twice", TWICE_HINT)
        raise NotYet(f"{label}: asked for {count} pings, your function returned {len(rtts)} entries "
                     "(entries of an earlier call are still in the list)", STATE_HINT)
    beyond = sorted({s.seq for s in peer.seen if s.seq is not None and s.seq >= count})
    if beyond:
        raise NotYet(f"{label}: asked for {count} pings (0 … {count - 1}), your pinger sent ping "
                     f"{beyond[0]} (does its counter carry over from an earlier call?)", STATE_HINT)
    expect(isinstance(rtts, (list, tuple)) and len(rtts) == count,
           f"{label}: expected a list of {count} round trips, got {rtts!r:.80}", SHAPE_HINT)
    for rtt in rtts:
        expect(rtt is None or (isinstance(rtt, (int, float)) and not isinstance(rtt, bool)),
               f"{label}: each entry must be a number of seconds or None, got {rtt!r}", SHAPE_HINT)
        expect(rtt is None or (rtt > 0 and math.isfinite(rtt)), f"{label}: a round trip of {rtt!r} s",
               UNITS_HINT)
    # The round trips are disjoint stretches of the run, so in seconds they add up to less than it.
    total = sum(r for r in rtts if r is not None)
    expect(total <= elapsed, f"{label}: your round trips add up to {total:.3g}, but the whole run took "
           f"{elapsed:.3g} s: are they in seconds?", UNITS_HINT)
    for seq in range(count):
        sent = len(peer.attempts(seq))
        expect(sent <= 1 + retries, f"{label}: you sent ping {seq} {sent} times; with retries={retries} "
               f"that is at most {1 + retries}", RETRY_COUNT_HINT)
        expect(sent > 0, f"{label}: ping {seq} never reached the peer", FORMAT_HINT)
    return list(rtts), peer, elapsed


def _judge_lost(label: str, rtts: list[Any], peer: _PingPeer, retries: int) -> None:
    """Pings whose every attempt was dropped, and answers that were not theirs."""
    for seq, rtt in enumerate(rtts):
        tried = peer.attempts(seq)
        if rtt is not None and not peer.replied.get(seq):
            raise NotYet(f"{label}: you reported ping {seq} answered, but the peer dropped all {len(tried)} "
                         "of its datagrams: the reply you took belonged to another ping", SEQ_HINT)
        if rtt is None and len(tried) < 1 + retries:
            raise NotYet(f"{label}: ping {seq} was lost, and you sent it only {len(tried)} time(s); with "
                         f"retries={retries} it should go out {1 + retries} times before you give up",
                         RETRY_HINT if len(tried) == 1 else RETRY_COUNT_HINT)


def _judge_strays(label: str, peer: _PingPeer) -> bool:
    """Judge the stray phase's ping 1 (its first datagram gets only strays, its second an echo).

    Raises NotYet for a wait that a stray ended or that restarted with every stray; returns
    True when the pinger waited out its timeout while the peer kept its stream going, False when
    the peer itself fell behind (then a restarting timeout could have run out in the gap, and
    the round proves nothing either way)."""
    tried = peer.attempts(1)
    expect(not (peer.strays_ran_out and len(tried) > 1),
           f"{label}: your pinger tried ping 1 again only after all {STRAY_COUNT} strays "
           f"({STRAY_COUNT * STRAY_GAP_S:.1f} s of them), not after its {STRAY_TIMEOUT_S:g} s timeout", RESTART_HINT)
    if len(tried) < 2:  # never sent again: _judge_lost has had its say
        return True
    first, again = tried[0], tried[1]
    gap = again.stamp - first.stamp
    # A pinger that waits out its timeout sends again at least STRAY_TIMEOUT_S after its first
    # send, while one that a stray stops sends again within milliseconds of the first stray.
    # Stamped by the kernel on arrival, the gap is at least the timeout, however late the peer
    # reads: a quarter of it is the margin. Stamped on reading, the peer's delay in reading the
    # first datagram shortens the gap: a third of the timeout leaves it 80 ms.
    exact = first.kernel_stamp and again.kernel_stamp
    bar = STRAY_TIMEOUT_S * (0.75 if exact else 1 / 3)
    expect(gap >= bar, f"{label}: ping 1's first datagram got only stray replies (the first at once), and "
           f"your pinger sent ping 1 again {gap * 1000:.0f} ms later, before its {STRAY_TIMEOUT_S * 1000:.0f} ms "
           "timeout had passed: a stray ended the wait", STRAY_HINT)
    marks = [first.stamp, *(t for t in peer.stray_sent if t < again.stamp), again.stamp]
    widest = max(b - a for a, b in zip(marks, marks[1:]))
    return widest < STRAY_TIMEOUT_S / 2


@checker("ping", solution="ping")
def check_ping(ping: Callable[..., Any]) -> str:
    label = "a peer that answers every ping at once"
    rtts, peer, _ = _run(ping, {}, 5, 0.5, 2, label, wake_after_s=2.0)
    lost = rtts.count(None)
    expect(lost == 0, f"{label}: you reported {lost} of 5 pings as lost", TIMEOUT_HINT if lost == 5 else SEQ_HINT)
    resent = [seq for seq in range(5) if len(peer.attempts(seq)) > 1]
    # One resend could be a reply delayed 0.5 s by a busy machine; a habit is not.
    expect(len(resent) < 3, f"{label}: every reply came at once, yet you sent pings {resent} more than once",
           RESEND_HINT)

    label, timeout = "planned loss, late replies and duplicates", LOSSY_TIMEOUT_S
    rtts, peer, _ = _run(ping, LOSSY_PLAN, len(LOSSY_PLAN), timeout, 2, label, wake_after_s=1.0)
    _judge_lost(label, rtts, peer, 2)
    for seq, actions in LOSSY_PLAN.items():
        if actions[0] == LATE and rtts[seq] is not None and len(peer.attempts(seq)) == 2:
            # It stopped after the 2nd datagram, which was dropped: it took the late reply to the 1st,
            # whose send was at least one timeout before that reply came.
            expect(rtts[seq] >= timeout, f"{label}: ping {seq}'s first reply came late, during the wait for "
                   f"its second attempt (which was dropped); you took it as the second attempt's answer and "
                   f"reported {rtts[seq] * 1000:.1f} ms, but it answered the first send, over "
                   f"{timeout * 1000:.0f} ms earlier", NONCE_HINT)
    retried = [seq for seq, actions in LOSSY_PLAN.items() if DROP in actions and actions[-1] == ECHO
               and rtts[seq] is not None and len(peer.attempts(seq)) == len(actions)]
    slow = [seq for seq in retried if rtts[seq] >= timeout]
    # Timed from the first send, a ping answered on a retry took at least one timeout, every time;
    # timed from the retry, it takes well under one. A majority rules out a busy machine's stall.
    expect(len(slow) * 2 <= len(retried), f"{label}: pings {slow} were answered on a retry at once, but you "
           f"reported round trips of {timeout * 1000:.0f} ms or more "
           f"({', '.join(f'{rtts[s] * 1000:.0f}' for s in slow)} ms)", FIRST_SEND_HINT)

    label = "a stream of stray replies every 20 ms while ping 1 waits"
    for _round in range(STRAY_ROUNDS):  # again only when the peer fell behind its own stream
        rtts, peer, _ = _run(ping, STRAY_PLAN, 2, STRAY_TIMEOUT_S, 1, label, wake_after_s=1.5)
        _judge_lost(label, rtts, peer, 1)
        if _judge_strays(label, peer):
            break
    return ("timeouts, retries and sequence numbers all work: lost pings were tried 1 + retries times, "
            "duplicates, late and stray replies were told apart, and each round trip was timed from the send "
            "it answered")


# ---- exercise 2: one whole datagram -------------------------------------------------------------

TRUNC_HINT = ("recvfrom(bufsize) keeps at most bufsize bytes of a datagram and throws the rest away: ask for "
              "65,535 bytes, the most one UDP datagram can carry")
BOUNDARY_HINT = "return one datagram per call: one recvfrom, not a loop that joins several"
CONSUME_HINT = ("MSG_PEEK leaves the datagram in the queue: after peeking at its size, read it for real with a "
                "recvfrom without MSG_PEEK")
BYTES_HINT = "return the datagram's bytes exactly as they came: no strip(), no decode(), no changes"
TYPE_HINT = "return bytes (what recvfrom gives you), not text or a view of a buffer you reuse"
EMPTY_HINT = ("an empty datagram is a datagram: recvfrom returns b'' for it (with UDP, b'' does not mean "
              "the peer closed). Return b'', and keep None for 'nothing came'")
NONE_HINT = "when nothing arrives within the timeout, catch TimeoutError and return None"
WAIT_HINT = "wait up to `timeout` seconds for the datagram (sock.settimeout(timeout)), do not give up at once"
DGRAM_STATE_HINT = ("keep nothing between calls: each call reads one datagram from the socket it is given, "
                    "with no list of datagrams outside the function")


def _pattern(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(range(n % 256))


@contextlib.contextmanager
def _dgram_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sender, the learner's socket), both bound on 127.0.0.1, with room for the largest datagrams."""
    tx, rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tx, rx:
        tx.bind(("127.0.0.1", 0))
        rx.bind(("127.0.0.1", 0))
        for s, opt in ((tx, socket.SO_SNDBUF), (rx, socket.SO_RCVBUF)):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, opt, 1 << 20)
        yield tx, rx


def _receive(recv_datagram: Callable[..., Any], tx: socket.socket, rx: socket.socket, timeout: float,
             what: str) -> Any:
    def wake() -> None:  # a recvfrom without a timeout returns when a datagram comes
        with contextlib.suppress(OSError):
            tx.sendto(b"wake up", rx.getsockname())

    try:
        return call(recv_datagram, rx, timeout, timeout=timeout + 2.0, on_timeout=wake)
    except DidNotReturn:
        left = rx.gettimeout() if rx.fileno() != -1 else None
        hint = GIVEN_TIMEOUT_HINT if left is not None and left > timeout + 1 else \
            NONE_HINT if what.startswith("nothing") else TIMEOUT_HINT
        raise NotYet(f"{what}: your function was still waiting {timeout + 2:g} s later, with a timeout of "
                     f"{timeout:g} s" + (f" (the socket's timeout was {left:g} s)" if hint is GIVEN_TIMEOUT_HINT
                                         else ""), hint) from None
    except TimeoutError:
        raise NotYet(f"{what}: your function raised TimeoutError", NONE_HINT) from None


_last: list[Any] = [None]  # what the previous call of the running check returned


def _same(got: Any, want: bytes, what: str) -> None:
    last, _last[0] = _last[0], got
    if got != want and last is not None and got == last:
        raise NotYet(f"{what}: you returned {got!r:.40} again, the datagram the previous call returned",
                     CONSUME_HINT)
    if isinstance(got, memoryview) or isinstance(got, str):
        raise NotYet(f"{what}: expected bytes, got a {type(got).__name__}: {got!r:.60}", TYPE_HINT)
    if want == b"" and got is None:
        raise NotYet(f"{what}: an empty datagram came, and you returned None", EMPTY_HINT)
    expect(isinstance(got, (bytes, bytearray)), f"{what}: expected bytes, got {got!r:.60}", TYPE_HINT)
    if got == want:
        return
    if len(got) < len(want) and want.startswith(got):
        raise NotYet(f"{what}: you returned the first {len(got):,} of {len(want):,} bytes", TRUNC_HINT)
    if len(got) > len(want) and got.startswith(want):
        padded = not got[len(want):].strip(b"\0")  # the rest of a recvfrom_into buffer: zero bytes
        raise NotYet(f"{what}: you returned {len(got):,} bytes, {got!r:.50}…: that is more than the one "
                     "datagram", SLICE_HINT if padded else BOUNDARY_HINT)
    raise NotYet(f"{what}: expected {want!r:.60}, got {got!r:.60}", BYTES_HINT)


@checker("recv_datagram", solution="recv_datagram")
def check_recv_datagram(recv_datagram: Callable[..., Any]) -> str:
    _last[0] = None
    with _dgram_pair() as (tx, rx):
        dest = rx.getsockname()
        tx.sendto(b"hello", dest)
        _same(_receive(recv_datagram, tx, rx, 1.0, "one datagram b'hello'"), b"hello", "one datagram b'hello'")
        for size in (1_500, 4_097, 9_000, 65_507):
            what = f"one datagram of {size:,} bytes"
            tx.sendto(_pattern(size), dest)
            _same(_receive(recv_datagram, tx, rx, 1.0, what), _pattern(size), what)
        tx.sendto(b"first", dest)
        tx.sendto(b"second", dest)
        what = "two datagrams b'first' and b'second' waiting"
        _same(_receive(recv_datagram, tx, rx, 1.0, what), b"first", what)
        _same(_receive(recv_datagram, tx, rx, 1.0, what), b"second", what)
        for text in (b" \tpadded line\r\n", b"\xff\xfe\x00 not text"):
            what = f"the datagram {text!r}"
            tx.sendto(text, dest)
            _same(_receive(recv_datagram, tx, rx, 1.0, what), text, what)
        tx.sendto(b"", dest)
        tx.sendto(b"after the empty one", dest)  # a function that skips b'' returns this one instead
        what = "an empty datagram b''"
        got = _receive(recv_datagram, tx, rx, 0.5, what)
        if got == b"after the empty one":
            raise NotYet(f"{what}: you skipped it and returned the next datagram", EMPTY_HINT)
        _same(got, b"", what)
        what = "the datagram after the empty one"
        _same(_receive(recv_datagram, tx, rx, 0.5, what), b"after the empty one", what)
        what = "nothing sent, timeout 0.3 s"
        t0 = time.perf_counter()
        got = _receive(recv_datagram, tx, rx, 0.3, what)
        waited = time.perf_counter() - t0
        expect(got is None, f"{what}: expected None, got {got!r:.60}", NONE_HINT)
        expect(waited >= 0.25, f"{what}: you returned None after {waited * 1000:.0f} ms", WAIT_HINT)
        what = "a datagram sent 0.15 s after your function started, timeout 1 s"
        timer = threading.Timer(0.15, lambda: tx.sendto(b"worth the wait", dest))
        timer.start()
        try:
            got = _receive(recv_datagram, tx, rx, 1.0, what)
        finally:
            timer.cancel()
            timer.join()
        if got is None:
            raise NotYet(f"{what}: you returned None", WAIT_HINT)
        _same(got, b"worth the wait", what)
        tx.sendto(b"left behind 1", dest)
        tx.sendto(b"left behind 2", dest)
        what = "two datagrams waiting, one call"
        _same(_receive(recv_datagram, tx, rx, 1.0, what), b"left behind 1", what)
    with _dgram_pair() as (tx, rx):  # a new socket: what stayed queued on the old one died with it
        tx.sendto(b"new socket", rx.getsockname())
        what = "a new socket with one datagram b'new socket'"
        got = _receive(recv_datagram, tx, rx, 1.0, what)
        if got == b"left behind 2":
            raise NotYet(f"{what}: you returned {got!r}, a datagram sent to the previous socket", DGRAM_STATE_HINT)
        _same(got, b"new socket", what)
    return ("every datagram came back whole and exactly as sent, one per call: 65,507 bytes, b'', bytes that "
            "are not text; None after the timeout when nothing came")
