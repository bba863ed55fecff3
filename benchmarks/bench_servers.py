"""Helper servers against raw sockets, side by side in one run (issue 2, item 5).

Three questions, each answered with the helper and a minimal hand-written equivalent measured
in the same configuration, interleaved (see ``_common``):

1. Echo round trip: does 1 byte through ``EchoServer`` cost what it costs through a bare
   ``recv``/``sendall`` loop? Thread mode (server in a thread of this process, sharing the GIL
   with the client) and process mode (server in a child process), plus a C echo for reference.
2. Bulk throughput: does ``SinkServer`` receive as fast as a bare ``recv_into`` loop with the
   same 256 KiB buffer? Plus ``iperf3`` (C at both ends) where installed.
3. Lifecycle: how long ``start()`` and ``stop()`` take, and ``stop()`` while a client is
   connected and idle, against the floor: waking a thread blocked in ``recv`` and joining it.

Run: ``python benchmarks/bench_servers.py`` (or ``make bench``). Loopback only; well under
two minutes. Writes ``benchmarks/results/servers.md``.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import interleave, paired_ratio, report, row, summarize, verdict

from socketlessons import (
    DribbleServer,
    EchoServer,
    SilentServer,
    SinkServer,
    UDPEchoServer,
)

CHUNK = 256 * 1024  # the client's sendall size and the raw receiver's buffer, as in SinkServer
RAW_ECHO_BUFSIZE = 64 * 1024  # what a hand-written echo typically passes to recv()
BULK_BYTES = 128 * CHUNK  # 32 MiB per throughput sample
RTT_BATCH = 400  # round trips per echo sample
Row = tuple[str, ...]
COUNT = struct.Struct("!Q")  # SinkServer's reply: the byte count
CHILD_TIMEOUT_S = 10.0

C_ECHO = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {  /* the C twin of raw_echo(): one client, read and write until EOF */
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) return 1;
    getsockname(l, (struct sockaddr *)&a, &len);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int c = accept(l, 0, 0);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static char buf[65536];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0)
        for (ssize_t off = 0, w; off < n; off += w)
            if ((w = write(c, buf + off, n - off)) <= 0) return 0;
    return 0;
}
"""


# ---- the raw servers: the least code that does the job -----------------------------------------

def raw_echo(listener: socket.socket) -> None:
    """Minimal echo: one client, TCP_NODELAY, ``recv`` then ``sendall`` until it closes."""
    conn, _ = listener.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(RAW_ECHO_BUFSIZE):
            conn.sendall(data)


def receive(conn: socket.socket, buf: memoryview) -> int:
    """Minimal receiver, same protocol as SinkServer: ``recv_into`` until EOF, answer the count."""
    with conn:
        n = 0
        while got := conn.recv_into(buf):
            n += got
        conn.sendall(COUNT.pack(n))
    return n


def raw_sink(listener: socket.socket) -> None:
    """One thread receives every client in turn, into one 256 KiB buffer. A client that sends
    nothing ends it."""
    buf = memoryview(bytearray(CHUNK))
    while receive(listener.accept()[0], buf):
        pass


def raw_sink_threaded(listener: socket.socket) -> None:
    """The helper's structure without the helper: a new thread (and buffer) per client."""
    while True:
        conn, _ = listener.accept()
        if not conn.recv(1, socket.MSG_PEEK):  # the client that sends nothing: stop
            conn.close()
            return
        threading.Thread(target=receive, args=(conn, memoryview(bytearray(CHUNK)))).start()


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@contextlib.contextmanager
def raw_in_thread(serve: Callable[[socket.socket], None]) -> Iterator[tuple[str, int]]:
    """Run a raw server in a thread of this process (the helper's thread mode)."""
    with listener() as lst:
        t = threading.Thread(target=serve, args=(lst,), daemon=True)
        t.start()
        yield lst.getsockname()
        t.join(CHILD_TIMEOUT_S)


@contextlib.contextmanager
def child(argv: list[str]) -> Iterator[tuple[str, int]]:
    """Run a server program that prints its port on its first line (the helper's process mode)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        if not select.select([proc.stdout], [], [], CHILD_TIMEOUT_S)[0]:
            raise RuntimeError(f"{argv[0]} printed no port within {CHILD_TIMEOUT_S} s")
        yield ("127.0.0.1", int(proc.stdout.readline()))
        proc.wait(CHILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def raw_child(kind: str) -> contextlib.AbstractContextManager[tuple[str, int]]:
    return child([sys.executable, __file__, "--child", kind])


def child_main(kind: str) -> None:
    """``--child echo|sink|sink-threaded``: serve one raw server in this (child) process."""
    with listener() as lst:
        print(lst.getsockname()[1], flush=True)
        {"echo": raw_echo, "sink": raw_sink, "sink-threaded": raw_sink_threaded}[kind](lst)


@contextlib.contextmanager
def helper(server_cls: type, **kwargs: object) -> Iterator[tuple[str, int]]:
    with server_cls(**kwargs) as server:
        yield server.address


@contextlib.contextmanager
def c_echo() -> Iterator[tuple[str, int] | None]:
    """The C echo, compiled now into a temporary directory; None if there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp, "echo.c"), Path(tmp, "echo")
        src.write_text(C_ECHO)
        if subprocess.run([cc, "-O2", "-o", str(exe), str(src)], capture_output=True).returncode:
            yield None
            return
        with child([str(exe)]) as address:
            yield address


# ---- 1. echo round trip ---------------------------------------------------------------------

def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=CHILD_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def rtt_sampler(sock: socket.socket) -> Callable[[], float]:
    """One sample: mean round trip of 1 byte over ``RTT_BATCH`` round trips, in µs.

    The client blocks without a timeout (a timeout adds a ``poll`` to every ``recv``, on every
    case alike, diluting the ratios); run_all.py's deadline bounds a hung server.
    """
    sock.settimeout(None)
    send, recv, one, n = sock.send, sock.recv, b"x", RTT_BATCH

    def sample() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            send(one)
            if recv(16) != one:
                raise RuntimeError("the echo answered something else than the byte sent")
        return (time.perf_counter_ns() - t0) / n / 1000

    sample()  # warm up: connection accepted, thread running, caches warm
    return sample


def bench_echo(notes: list[str]) -> list[Row]:
    with contextlib.ExitStack() as stack:
        where = {
            "EchoServer, thread": helper(EchoServer),
            "raw echo, thread": raw_in_thread(raw_echo),
            "EchoServer, process": helper(EchoServer, mode="process"),
            "raw echo, child process": raw_child("echo"),
            "C echo, child process": c_echo(),
        }
        cases = {}
        for name, ctx in where.items():
            address = stack.enter_context(ctx)
            if address is None:
                notes.append(f"{name}: skipped (no working C compiler).")
                continue
            cases[name] = rtt_sampler(stack.enter_context(connect(address)))
        s = interleave(cases, repeats=41, budget_s=25)
    return compare(s, "echo RTT, 1 byte: ", "µs", [
        ("EchoServer, thread", "raw echo, thread", "≤1.1"),
        ("raw echo, thread", None, ""),
        ("EchoServer, process", "raw echo, child process", "≤1.1"),
        ("raw echo, child process", None, ""),
        ("C echo, child process", "raw echo, child process", ""),
    ])


def compare(s: dict[str, list[float]], prefix: str, unit: str,
            specs: list[tuple[str, str | None, str]]) -> list[Row]:
    """Rows for ``(case, raw case, target)`` specs; a target is "≤x" or "≥x" (times raw)."""
    rows = []
    for name, raw, target in specs:
        if name not in s:
            continue
        r = paired_ratio(s[name], s[raw]) if raw else None
        met = ""
        if r is not None and target:
            met = verdict(r, target[0], float(target[1:]))
            target = f"{target[0]} {target[1:]}× raw"
        rows.append(row(prefix + name, summarize(s[name]), unit, r, target, met))
    return rows


# ---- 2. bulk throughput ---------------------------------------------------------------------

def bulk_sampler(address: tuple[str, int]) -> Callable[[], float]:
    """One sample: send ``BULK_BYTES`` in 256 KiB ``sendall``s, half-close, wait for the
    receiver's byte count; GB/s from connect-done to count-received."""
    chunk = memoryview(bytes(CHUNK))

    def sample() -> float:
        with socket.create_connection(address, timeout=CHILD_TIMEOUT_S) as sock:
            t0 = time.perf_counter()
            for _ in range(BULK_BYTES // CHUNK):
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while len(reply) < COUNT.size and (more := sock.recv(COUNT.size - len(reply))):
                reply += more
            dt = time.perf_counter() - t0
        if reply != COUNT.pack(BULK_BYTES):
            raise RuntimeError(f"the receiver counted {reply!r}, expected {BULK_BYTES} bytes")
        return BULK_BYTES / dt / 1e9

    sample()
    return sample


@contextlib.contextmanager
def iperf3() -> Iterator[Callable[[], float] | None]:
    """``iperf3 -s`` on a free loopback port; each sample one ``iperf3 -c`` of the same size."""
    exe = shutil.which("iperf3")
    if exe is None:
        yield None
        return
    with listener() as probe:  # iperf3 cannot bind port 0: borrow a free port number
        port = str(probe.getsockname()[1])
    server = subprocess.Popen([exe, "-s", "-B", "127.0.0.1", "-p", port],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sample() -> float:
        out = subprocess.run([exe, "-c", "127.0.0.1", "-p", port, "-n", str(BULK_BYTES),
                              "-l", str(CHUNK), "-J"], capture_output=True, text=True,
                             timeout=CHILD_TIMEOUT_S)
        result = json.loads(out.stdout or "{}")
        if "end" not in result:
            raise RuntimeError(f"iperf3 -c failed: {result.get('error') or out.stderr.strip()}")
        return result["end"]["sum_received"]["bits_per_second"] / 8e9

    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while True:  # wait until the server listens
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        time.sleep(0.05)  # let iperf3 -s settle after the probe connection
        sample()
        yield sample
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def ended_sink(address_ctx: contextlib.AbstractContextManager) -> Iterator[tuple[str, int]]:
    """A raw sink, ended on exit by a client that sends nothing."""
    with address_ctx as address:
        try:
            yield address
        finally:
            socket.create_connection(address, timeout=CHILD_TIMEOUT_S).close()


def bench_bulk(notes: list[str]) -> list[Row]:
    with contextlib.ExitStack() as stack:
        cases = {
            name: bulk_sampler(stack.enter_context(ctx)) for name, ctx in {
                "SinkServer, thread": helper(SinkServer),
                "raw recv_into, thread": ended_sink(raw_in_thread(raw_sink)),
                "raw recv_into, new thread per client": ended_sink(raw_in_thread(raw_sink_threaded)),
                "SinkServer, process": helper(SinkServer, mode="process"),
                "raw recv_into, child process": ended_sink(raw_child("sink")),
                "raw recv_into, child, new thread per client": ended_sink(raw_child("sink-threaded")),
            }.items()
        }
        ip = stack.enter_context(iperf3())
        if ip is None:
            notes.append("iperf3: skipped (not installed; `apt-get install iperf3` to add it).")
        else:
            cases["iperf3 -c/-s (C both ends)"] = ip
        s = interleave(cases, repeats=31, budget_s=30)
    return compare(s, "bulk into ", "GB/s", [
        ("SinkServer, thread", "raw recv_into, thread", "≥0.9"),
        ("raw recv_into, new thread per client", "raw recv_into, thread", ""),
        ("raw recv_into, thread", None, ""),
        ("SinkServer, process", "raw recv_into, child process", "≥0.9"),
        ("raw recv_into, child, new thread per client", "raw recv_into, child process", ""),
        ("raw recv_into, child process", None, ""),
        ("iperf3 -c/-s (C both ends)", "raw recv_into, child process", ""),
    ])


# ---- 3. start and stop ----------------------------------------------------------------------

def raw_wake() -> float:
    """The floor of any stop(): wake a thread blocked in ``recv`` (``shutdown``) and join it, ms."""
    a, b = socket.socketpair()
    with a, b:
        t = threading.Thread(target=a.recv, args=(1,))
        t.start()
        time.sleep(0.002)  # let it block in recv
        t0 = time.perf_counter()
        a.shutdown(socket.SHUT_RDWR)
        t.join(CHILD_TIMEOUT_S)
        return (time.perf_counter() - t0) * 1000


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def lifecycle(cls: type, what: str, **kwargs: object) -> Callable[[], float]:
    """One sample (ms) of ``start()``, of ``stop()``, or of ``stop()`` with an idle client."""

    def sample() -> float:
        server = cls(**kwargs)
        if what == "start":
            ms = timed(server.start)
            server.stop()
            return ms
        server.start()
        if what == "stop":
            return timed(server.stop)
        with connect(server.address) as client:
            if kwargs.get("mode") == "process":  # a round trip proves the child accepted it
                client.sendall(b"x")
                client.recv(1)
            else:
                deadline = time.monotonic() + CHILD_TIMEOUT_S
                while server.connections == 0 and time.monotonic() < deadline:
                    time.sleep(0.0005)
            return timed(server.stop)

    return sample


def bench_lifecycle(notes: list[str]) -> list[Row]:
    floor = "raw: wake a thread blocked in recv + join"
    kinds = [EchoServer, UDPEchoServer, SinkServer, DribbleServer, SilentServer]
    thread = {floor: raw_wake} | {
        f"{cls.__name__} {what}": lifecycle(cls, what) for cls in kinds
        for what in ("start", "stop", "stop, idle client")
        if not (cls is UDPEchoServer and what == "stop, idle client")  # UDP: no connections
    }
    process = {floor: raw_wake} | {
        f"EchoServer process mode {what}": lifecycle(EchoServer, what, mode="process")
        for what in ("start", "stop", "stop, idle client")
    }
    s, p = interleave(thread, repeats=31, budget_s=15), interleave(process, repeats=7, budget_s=15)
    rows = [row(floor, summarize(s[floor]), "ms")]
    for samples in (s, p):
        for name, values in samples.items():
            if name == floor:
                continue
            idle = name.endswith("idle client")
            r = paired_ratio(values, samples[floor]) if "stop" in name else None
            stats = summarize(values)
            rows.append(row(name, stats, "ms", r, "< 10 ms" if idle else "",
                            verdict(stats, "<", 10) if idle else ""))
    notes.append("Start/stop: one new server per sample. Their ratios are against the raw wake-up "
                 "floor (no target): how much of stop() is more than waking one blocked thread.")
    return rows


def main() -> None:
    t0 = time.monotonic()
    notes = [
        "Median and IQR over interleaved repeats (rounds of A, B, ... in shuffled order); a "
        "ratio is the median of the per-round ratios helper/raw, with its IQR. The machine is "
        "shared: compare ratios, not absolute numbers, across runs.",
        f"Echo: {RTT_BATCH} round trips of 1 byte per sample, TCP_NODELAY on both ends; the "
        f"client is this process's main thread. Raw echo: recv({RAW_ECHO_BUFSIZE}) + sendall; "
        "EchoServer: its default bufsize (256 KiB). Thread mode: the server shares the "
        "client's GIL.",
        f"Bulk: {BULK_BYTES >> 20} MiB per sample (one new connection each) in {CHUNK >> 10} KiB "
        "sendall()s, timed until the receiver's 8-byte count arrives. Thread mode: client and "
        "receiver share the GIL. The 'new thread per client' rows are the raw loop started in a "
        "new thread for each connection, as the helpers do: the part of a gap due to that "
        "structure (where the scheduler puts the new thread), not to the sink's code.",
    ]
    rows = bench_echo(notes) + bench_bulk(notes) + bench_lifecycle(notes)
    notes.append(f"Whole run: {time.monotonic() - t0:.0f} s.")
    report("servers", "Helper servers vs raw sockets (issue 2, item 5)", rows, notes)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2])
    else:
        main()
