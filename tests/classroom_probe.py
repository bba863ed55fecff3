"""The classroom probe: installed in each student's kernel before a lesson, it records who listened
where, who connected where and whom each listener accepted; the checks below find port collisions
and cross-talk between kernels. Used by test_classroom.py (plain kernels) and test_hub.py (a real hub)."""

from __future__ import annotations

import dataclasses

PROBE_INSTALL = r'''
def _socketlessons_probe_install():
    import os, socket, threading, time
    from socketlessons.servers import _base

    rec = {"pid": os.getpid(), "listen": [], "connect": [], "accept": [], "servers": {}}
    lock = threading.Lock()

    def addr(a):
        return [a[0], a[1]]

    def tcp(sock):
        return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM

    listen, connect, connect_ex, accept = (socket.socket.listen, socket.socket.connect,
                                           socket.socket.connect_ex, socket.socket.accept)

    def p_listen(self, *args):
        listen(self, *args)
        if tcp(self):
            with lock:
                rec["listen"].append(addr(self.getsockname()))

    def note_connect(self, remote):
        if tcp(self):
            try:
                local = addr(self.getsockname())
            except OSError:
                return
            with lock:
                rec["connect"].append([local, addr(remote)])

    def p_connect(self, address):
        try:
            connect(self, address)
        except (BlockingIOError, InterruptedError):  # non-blocking connect (asyncio): in progress
            note_connect(self, address)
            raise
        note_connect(self, address)

    def p_connect_ex(self, address):
        err = connect_ex(self, address)
        if err in (0, 115, 36, 10035):  # 0 or "in progress" (Linux, macOS, Windows)
            note_connect(self, address)
        return err

    import subprocess
    children = []  # one entry per process this kernel started (lesson 09 runs curl against its own server)
    popen_init = subprocess.Popen.__init__

    def p_popen_init(self, *args, **kwargs):
        with lock:  # before the child exists: it may connect before popen_init returns
            children.append(None)
        popen_init(self, *args, **kwargs)

    def child_owning(peer):
        """The pid of a live descendant of this kernel whose TCP socket is ``peer``, else None.

        Read from the process tree, not from the Popen objects: a child such as curl can connect
        (and be accepted) before the thread that started it has stored its Popen, which a busy
        host (a hub classroom beside a CPU hog per core) showed as cross-talk.
        """
        with lock:
            own = any(local == addr(peer) for local, _remote in rec["connect"])
            spawned = bool(children)
        if own or not spawned:
            return None  # the common cases: no lookup at all
        import psutil
        try:
            descendants = psutil.Process().children(recursive=True)
        except psutil.Error:
            return None
        for child in descendants:
            try:
                for c in child.net_connections(kind="tcp"):
                    if c.laddr and (c.laddr.ip, c.laddr.port) == (peer[0], peer[1]):
                        return child.pid
            except psutil.Error:
                pass
        return None

    def p_accept(self):
        conn, peer = accept(self)
        if tcp(self):
            child = child_owning(peer)
            with lock:
                rec["accept"].append([addr(self.getsockname()), addr(peer), child])
        return conn, peer

    start, stop = _base.LoopbackServer.start, _base.LoopbackServer.stop
    import itertools
    starts = itertools.count(1)

    def p_start(self):
        # One entry per start, keyed by a counter kept on the server: not by id(self), which a
        # new server reuses once an old one is collected (lesson 03 makes dozens): the new
        # server's address was then never recorded, and its clients looked like cross-talk.
        running = self._state == "running"  # then start() returns it as it is
        result = start(self)
        if not running:
            with lock:
                self._probe_key = str(next(starts))
                rec["servers"][self._probe_key] = {
                    "kind": type(self).__name__, "mode": self.mode, "address": addr(self.address),
                    "udp": self.family is not None and "UDP" in type(self).__name__,
                    "start_ns": time.monotonic_ns(), "stop_ns": None}
        return result

    def p_stop(self):
        stop(self)
        with lock:
            entry = rec["servers"].get(getattr(self, "_probe_key", None))
            if entry is not None and entry["stop_ns"] is None:
                entry["stop_ns"] = time.monotonic_ns()

    socket.socket.listen, socket.socket.connect = p_listen, p_connect
    socket.socket.connect_ex, socket.socket.accept = p_connect_ex, p_accept
    _base.LoopbackServer.start, _base.LoopbackServer.stop = p_start, p_stop
    subprocess.Popen.__init__ = p_popen_init
    return rec

_socketlessons_probe = _socketlessons_probe_install()
del _socketlessons_probe_install
'''


PROBE_DUMP = r'''
import json as _json, time as _time
for _entry in _socketlessons_probe["servers"].values():
    if _entry["stop_ns"] is None:  # still running at the end: alive until now
        _entry["stop_ns"] = _time.monotonic_ns()
print(_json.dumps(_socketlessons_probe))
'''


@dataclasses.dataclass
class Job:
    lesson: str
    copy: int
    error: str | None = None
    probe: dict | None = None
    seconds: float = 0.0
    port_races: int = 0

    @property
    def name(self) -> str:
        return f"{self.lesson} (kernel {self.copy})"


def _key(address: list) -> tuple[str, int]:
    """``(host, port)`` with IPv4-mapped IPv6 (``::ffff:127.0.0.1``, a dual-stack socket's view
    of an IPv4 peer) written as plain IPv4, so both sides of one connection compare equal."""
    host = str(address[0])
    if host.lower().startswith("::ffff:") and "." in host:
        host = host[7:]
    return (host, int(address[1]))


WILDCARDS = {"0.0.0.0", "::"}


def _listens_on(listeners: set[tuple[str, int]], remote: tuple[str, int]) -> bool:
    """A listener on the wildcard address (``::``, ``0.0.0.0``) takes any host on its port."""
    return remote in listeners or any(h in WILDCARDS and p == remote[1] for h, p in listeners)


def port_collisions(jobs: list[Job]) -> list[str]:
    """Helper servers of different kernels alive on the same address at the same time."""
    by_address: dict[tuple, list] = {}
    for job in jobs:
        for s in (job.probe or {}).get("servers", {}).values():
            by_address.setdefault((_key(s["address"]), s["udp"]), []).append((s["start_ns"], s["stop_ns"], job.name))
    collisions = []
    for (address, udp), lives in by_address.items():
        lives.sort()
        for (_s1, e1, n1), (s2, _e2, n2) in zip(lives, lives[1:]):
            if s2 < e1 and n1 != n2:
                collisions.append(f"{address} ({'udp' if udp else 'tcp'}): {n1} and {n2}")
    return collisions


def cross_talk(jobs: list[Job]) -> tuple[list[str], int, int]:
    """Connections that went from one kernel to another; and how many connects/accepts were seen."""
    connects = accepts = 0
    problems = []
    for job in jobs:
        probe = job.probe or {"listen": [], "servers": {}, "connect": [], "accept": []}
        listeners = {_key(a) for a in probe["listen"]} | {_key(s["address"]) for s in probe["servers"].values()}
        clients = {_key(local) for local, _remote in probe["connect"]}
        for _local, remote in probe["connect"]:
            connects += 1
            if not _listens_on(listeners, _key(remote)):
                problems.append(f"{job.name} connected to {remote}, which is not one of its own listeners")
        for local, peer, *child in probe["accept"]:
            accepts += 1
            if _key(peer) not in clients and not (child and child[0]):  # its own client, or its own child's
                problems.append(f"{job.name}: its listener {local} accepted {peer}, not one of its own clients")
    return problems, connects, accepts
