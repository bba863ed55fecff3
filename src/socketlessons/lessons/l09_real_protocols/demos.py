"""Helpers of lesson 09 (real protocols): the other side of HTTP and TLS, and the timing.

The HTTP server and client the lesson teaches are written in its cells; this module only holds
the harness around them:

* ``StdlibHTTPServer``: the standard library's ``http.server.ThreadingHTTPServer`` (a server
  nobody in this course wrote) on 127.0.0.1, port 0, in a background thread, stopped like every
  helper server (``stop()``, ``stop_all()``). Paths: ``/`` a short text, ``/bytes/N`` N bytes,
  ``/close`` an answer that ends the connection (``Connection: close``);
* ``TLSEchoServer``: the echo server behind ``ssl.SSLContext.wrap_socket(server_side=True)``;
  handshakes that fail (the client refused the certificate) are counted, not raised;
* ``page_link(port)``: where a browser finds a server of this kernel: straight at
  ``http://127.0.0.1:PORT/`` in a local JupyterLab, through jupyter-server-proxy on a hub
  (``JUPYTERHUB_SERVICE_PREFIX`` is set) — and the sentence that says which;
* ``curl(url)``: runs the curl program if it is installed (None otherwise);
* ``alternate(ops, rounds, per_round)``: times several operations in alternating rounds, and
  ``keepalive_verdict`` / ``handshake_verdict`` judge the numbers;
* ``ratio_figure``: the per-round ratios as a figure (the claims are ratios).

Used in 09_real_protocols.
"""

from __future__ import annotations

import dataclasses
import http.server
import math
import os
import shutil
import socket
import socketserver
import ssl
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...measure import Verdict
from ...servers import LoopbackServer, TCPServer
from ...servers._tcp import ConnectionStats

__all__ = ["CURL_TIMEOUT_S", "PageLink", "StdlibHTTPServer", "TLSEchoServer", "alternate", "curl",
           "handshake_verdict", "keepalive_verdict", "machine_load", "page_link", "ratio_figure"]

#: Largest body ``/bytes/N`` serves: enough to need several recv calls, bounded memory.
MAX_BODY = 16 * 1024 * 1024
#: curl gives up after this long (it is a separate program: its own deadline).
CURL_TIMEOUT_S = 10.0


# ---- the standard library's HTTP server ------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per connection
    # http.server writes the headers and the body in two send() calls: with Nagle's algorithm on
    # (lesson 08), the body of every answer after the first on a keep-alive connection waits for
    # the client's delayed ACK, 40 ms on Linux. TCP_NODELAY, as every helper server sets it.
    disable_nagle_algorithm = True
    server: _HTTPD

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        path = self.path
        if path == "/" or path == "/close":
            body = b"Hello from http.server, a server nobody in this course wrote.\n"
        elif path.startswith("/bytes/") and path[7:].isdigit() and int(path[7:]) <= MAX_BODY:
            n = int(path[7:])
            body = (b"0123456789abcdef" * (n // 16 + 1))[:n]
        else:
            self.send_error(404, "try /, /bytes/N or /close")
            return
        close = path == "/close" or self.headers.get("Connection", "").lower() == "close"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        owner._count_request(len(body), self.requestline)  # before the body: a client that has it is counted
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature of http.server
        pass  # helper servers never print (DESIGN.md): the requests are in .events


class _HTTPD(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer whose connection threads the owner knows, so ``stop()`` can wake and join them."""

    owner: StdlibHTTPServer

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: it asks DNS for getfqdn(host)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        with owner._lock:
            if owner._stopping.is_set():
                self.shutdown_request(request)
                return
            owner._conns.add(request)
        owner._spawn(self._serve_one, "http-conn", request, client_address)

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the client left, or stop() shut the connection
        except Exception as exc:  # a bug in the handler: kept, never printed
            self.owner._keep_error(0, exc)
        finally:
            with self.owner._lock:
                self.owner._conns.discard(request)
            self.shutdown_request(request)


class StdlibHTTPServer(LoopbackServer):
    """``http.server.ThreadingHTTPServer`` on loopback, port 0, in the background.

    ``GET /`` answers a short text, ``GET /bytes/N`` N bytes, ``GET /close`` the text with
    ``Connection: close``. It speaks HTTP/1.1 with keep-alive. ``requests`` counts answers.
    """

    kind = "http.server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.requests = 0
        self._requests_lock = threading.Lock()  # connection threads count at once: += is not atomic
        self._httpd: _HTTPD | None = None
        self._conns: set[Any] = set()

    def _count_request(self, nbytes: int, requestline: str) -> None:
        with self._requests_lock:
            self.requests += 1
        self._record("request", 0, nbytes, requestline)

    def _settings(self) -> dict[str, Any]:  # pragma: no cover - thread mode only
        raise TypeError("StdlibHTTPServer runs in the kernel's threads only")

    def _open(self) -> socket.socket:
        _HTTPD.address_family = self.family
        httpd = _HTTPD((self.host, self.port_requested), _Handler)
        httpd.owner = self
        self._httpd = httpd
        return httpd.socket

    def _serve(self) -> None:
        assert self._httpd is not None
        self._httpd.serve_forever(poll_interval=0.05)  # shutdown() ends it within 50 ms

    def _wake(self) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # a keep-alive connection waits in readline(): wake it
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close(self) -> None:
        if self._httpd is not None:
            self._httpd.server_close()


# ---- TLS ---------------------------------------------------------------------------------------

class TLSEchoServer(TCPServer):
    """An echo server speaking TLS: ``context.wrap_socket(conn, server_side=True)``, then echo.

    Args:
        context: a server-side ``ssl.SSLContext`` holding the certificate and key (e.g.
            ``ca.issue_cert("localhost").configure_cert(ctx)`` with trustme).
        handshake_timeout: a client that connects and never starts the handshake is dropped
            after this long (a bound on reading time, as every server needs).

    ``handshakes`` counts the completed ones; ``failed_handshakes`` keeps why the others failed
    (a client refusing the certificate sends an alert: that is no server error).
    ``wait_failed_handshakes(n)`` waits (bounded) until n are recorded: the client raises as soon
    as it sends its alert, before this server's thread has read it.
    """

    kind = "tls-echo"

    def __init__(self, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0, *,
                 handshake_timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"context must be an ssl.SSLContext, not {type(context).__name__}")
        if not 0 < handshake_timeout <= 60:
            raise ValueError(f"handshake_timeout must be between 0 and 60 seconds, got {handshake_timeout!r}")
        self.context, self.handshake_timeout = context, float(handshake_timeout)
        self.handshakes = 0
        self.failed_handshakes: list[str] = []
        self._failed = threading.Condition()
        #: ``time.monotonic()`` when the last echo was handed to the kernel (a checker compares
        #: it with when the client returned: a client that waits for a timeout shows the gap).
        self.last_echo_s: float | None = None

    def wait_failed_handshakes(self, n: int, timeout: float = 2.0) -> list[str]:
        """The failed handshakes once at least ``n`` are recorded, or after ``timeout`` seconds
        (then fewer: print them, and the count shows what is missing)."""
        from ...validate import count

        count("n", n, low=1, high=100, unit="handshakes")
        if not 0 < timeout <= 60:
            raise ValueError(f"timeout must be between 0 and 60 seconds, got {timeout!r}")
        with self._failed:
            self._failed.wait_for(lambda: len(self.failed_handshakes) >= n, timeout)
            return list(self.failed_handshakes)

    def _settings(self) -> dict[str, Any]:  # pragma: no cover - thread mode only
        raise TypeError("TLSEchoServer runs in the kernel's threads only (an SSLContext cannot be pickled)")

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        conn.settimeout(self.handshake_timeout)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)  # the handshake happens here
        except (ssl.SSLError, OSError) as exc:
            with self._failed:
                if len(self.failed_handshakes) < 100:
                    self.failed_handshakes.append(f"{type(exc).__name__}: {exc}")
                self._failed.notify_all()
            self._record("handshake failed", stats.conn, 0, type(exc).__name__)
            return
        with self._lock:  # wrap_socket moved the descriptor into `tls`: stop() must wake that one
            self._conns[stats.conn] = tls
        with tls:
            self.handshakes += 1
            tls.settimeout(None)
            try:
                while data := tls.recv(64 * 1024):
                    stats.bytes_in += len(data)
                    # Stamped when the send starts (as TCPServer._send does): the client may have
                    # the bytes before sendall returns, and a busy machine can hold this thread
                    # back after it, which would make a client that waits look prompt.
                    self.last_echo_s = time.monotonic()
                    tls.sendall(data)
                    stats.bytes_out += len(data)
            except (ssl.SSLError, OSError):
                pass  # the client left without a TLS goodbye, or stop() shut the socket


# ---- where the browser finds a server of this kernel -------------------------------------------

@dataclasses.dataclass(frozen=True)
class PageLink:
    url: str
    via: str  # "direct" or "proxy"
    why: str

    def __str__(self) -> str:
        return f"{self.url} ({self.why})"


def page_link(port: int, path: str = "/") -> PageLink:
    """The URL a browser uses for ``http://127.0.0.1:port`` of this kernel, and why that one.

    On JupyterHub and Binder the browser runs on another machine than the kernel, so
    127.0.0.1 there is the learner's own computer: the page goes through jupyter-server-proxy
    at ``<base url>proxy/127.0.0.1:PORT/`` (the base URL is JUPYTERHUB_SERVICE_PREFIX; the
    proxy forwards only to this host). In a local JupyterLab the browser and the kernel share
    one machine and the URL is the server's own.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be the server's port number (1-65535), got {port!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if prefix:
        base = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        return PageLink(f"{base}proxy/127.0.0.1:{port}{path}", "proxy",
                        "through jupyter-server-proxy: JUPYTERHUB_SERVICE_PREFIX is set, so this Jupyter kernel runs on a "
                        "hub or Binder and your browser is on another machine, where 127.0.0.1 means your own "
                        "computer")
    return PageLink(f"http://127.0.0.1:{port}{path}", "direct",
                    "straight from 127.0.0.1: no JUPYTERHUB_SERVICE_PREFIX (no hub, no Binder), so this is "
                    "most likely a local JupyterLab, with your browser on the same machine as this Jupyter kernel")


def curl(url: str, *args: str, timeout: float = CURL_TIMEOUT_S) -> subprocess.CompletedProcess[bytes] | None:
    """Run ``curl --silent --show-error ARGS URL`` (None when curl is not installed)."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str like 'http://127.0.0.1:PORT/', not {type(url).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 120:
        raise ValueError(f"timeout must be between 0 and 120 seconds, got {timeout!r}")
    exe = shutil.which("curl")
    if exe is None:
        return None
    if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:", "http://[::1]:", "https://localhost:")):
        raise ValueError(f"url must point at a server of this kernel on loopback, got {url!r}")
    return subprocess.run([exe, "--silent", "--show-error", "--max-time", f"{timeout:g}", *args, url],
                          capture_output=True, timeout=timeout + 5, check=False)


# ---- timing in alternating rounds ----------------------------------------------------------

def alternate(ops: dict[str, Callable[[], object]] | None = None, *, each_round: dict[str, Any] | None = None,
              rounds: int = 9, per_round: int = 15, budget_s: float = 2.0,
              warmup: int = 2) -> dict[str, list[list[int]]]:
    """Time each op ``per_round`` times per round, the ops taking turns round after round
    (A B, B A, A B…), so load that comes and goes hits them alike; ns per call, by round.

    ``ops`` are timed as they are. ``each_round`` maps a name to a function returning a context
    manager that yields the op: it is entered (untimed) at the start of each of that op's rounds
    and left at its end, e.g. one connection per round for "keep-alive". Stops after
    ``budget_s`` once at least 3 rounds are done.
    """
    plain, fresh = dict(ops or {}), dict(each_round or {})
    if not plain and not fresh:
        raise TypeError("give ops and/or each_round: names mapped to zero-argument callables")
    if set(plain) & set(fresh) or not all(callable(op) for op in [*plain.values(), *fresh.values()]):
        raise TypeError("ops and each_round must map distinct names to zero-argument callables")
    for name, value in (("rounds", rounds), ("per_round", per_round)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(budget_s, (int, float)) and 0 < budget_s <= 60):
        raise ValueError(f"budget_s must be between 0 and 60 seconds, got {budget_s!r}")
    for op in plain.values():
        for _ in range(warmup):
            op()
    names = [*plain, *fresh]
    out: dict[str, list[list[int]]] = {n: [] for n in names}
    end = time.monotonic() + budget_s
    clock = time.perf_counter_ns

    def timed(op: Callable[[], object]) -> list[int]:
        times = []
        for _ in range(per_round):
            t0 = clock()
            op()
            times.append(clock() - t0)
        return times

    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            if name in plain:
                out[name].append(timed(plain[name]))
            else:
                with fresh[name]() as op:
                    out[name].append(timed(op))
        if r + 1 >= 3 and time.monotonic() > end:
            break
    return out


def machine_load() -> str:
    """'load average 1.2 on 2 cores' (or '' where the OS has no load average)."""
    try:
        load1 = os.getloadavg()[0]
    except (OSError, AttributeError):
        return ""
    return f"load average {load1:.1f} on {os.cpu_count() or 1} cores"


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        v = values[0] if values else math.nan
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _per_round(rounds: Sequence[Sequence[int]], estimator: Callable[[Sequence[int]], float]) -> list[float]:
    return [estimator(r) for r in rounds if r]


def _low(times: Sequence[int]) -> float:
    """The 10 % quantile: what the operation itself costs (noise only ever adds time)."""
    ordered = sorted(times)
    return float(ordered[max(0, math.ceil(0.1 * len(ordered)) - 1)])


@dataclasses.dataclass(frozen=True)
class RatioResult:
    verdict: Verdict
    ratios: list[float]
    a_ns: float
    b_ns: float

    def __str__(self) -> str:
        return self.verdict.text


def keepalive_verdict(new_rounds: Sequence[Sequence[int]], keep_rounds: Sequence[Sequence[int]],
                      load: str = "") -> RatioResult:
    """Keep-alive vs a new connection per request, from per-request times in alternating rounds.

    Estimator: the median request of each round (what a user waits, with the odd slow one
    left out), and the ratio new / keep-alive per round (a paired comparison: a burst of load
    slows both halves of a round alike). The verdict rests on the quartiles of those ratios.
    """
    new = _per_round(new_rounds, statistics.median)
    keep = _per_round(keep_rounds, statistics.median)
    ratios = sorted(a / b for a, b in zip(new, keep) if b > 0)
    if len(ratios) < 3:
        return RatioResult(Verdict("inconclusive", f"inconclusive: only {len(ratios)} paired round(s) were "
                                   "measured; at least 3 are needed (give it a larger budget)."), ratios,
                           math.nan, math.nan)
    q1, med, q3 = _quartiles(ratios)
    a, b = statistics.median(new), statistics.median(keep)
    numbers = (f"a new connection per request: {a / 1e3:.0f} µs per request ({1e9 / a:,.0f} requests/s); "
               f"keep-alive: {b / 1e3:.0f} µs ({1e9 / b:,.0f} requests/s), each the median over the rounds of a "
               f"round's median request; "
               f"new / keep-alive, the median of the rounds' ratios = "
               f"{med:.2f}× (IQR {q1:.2f}–{q3:.2f}×, {len(ratios)} rounds)")
    extra = (a - b) / 1e3
    where = f" ({load})" if load else ""
    if q1 > 1.1:
        text = (f"confirmed: keep-alive is faster. {numbers}. Each new connection added {extra:.0f} µs: "
                "connect() (the SYN, SYN-ACK, ACK round trip), accept() and a new server thread, paid once per "
                "request instead of once per connection.")
        status = "confirmed"
    elif q3 < 1.05:
        text = (f"contradicted: keep-alive was not measurably faster. {numbers}. On loopback a connect "
                "costs little; if that holds on a quiet machine too, the server's own work per request "
                "dwarfs it.")
        status = "contradicted"
    else:
        text = (f"inconclusive: the per-round ratios straddle the 1.1× line. {numbers}. The spread between "
                f"rounds is too wide to say{where}; more rounds (a larger budget) would narrow it, and a "
                "quieter machine would too.")
        status = "inconclusive"
    return RatioResult(Verdict(status, text), ratios, a, b)


def handshake_verdict(plain_rounds: Sequence[Sequence[int]], tls_rounds: Sequence[Sequence[int]],
                      load: str = "") -> RatioResult:
    """What a TLS connect costs next to a plain one, from times in alternating rounds.

    Estimator: the 10 % quantile of each round (the cost of the operation itself: a busy
    scheduler only ever adds time), and the ratio TLS / plain per round.
    """
    plain = _per_round(plain_rounds, _low)
    tls = _per_round(tls_rounds, _low)
    ratios = sorted(a / b for a, b in zip(tls, plain) if b > 0)
    if len(ratios) < 3:
        return RatioResult(Verdict("inconclusive", f"inconclusive: only {len(ratios)} paired round(s) were "
                                   "measured; at least 3 are needed (give it a larger budget)."), ratios,
                           math.nan, math.nan)
    q1, med, q3 = _quartiles(ratios)
    a, b = statistics.median(tls), statistics.median(plain)
    numbers = (f"plain connect: {b / 1e3:.0f} µs; TLS connect + handshake: {a / 1e3:,.0f} µs, each the median over the rounds of "
               f"a round's 10 % quantile; "
               f"TLS / plain, the median of the rounds' ratios = {med:.1f}× (IQR {q1:.1f}–{q3:.1f}×, {len(ratios)} rounds)")
    where = f" ({load})" if load else ""
    if q1 > 2:
        text = (f"confirmed: the handshake makes connect() much dearer. {numbers}. The extra {(a - b) / 1e3:,.0f} µs "
                "are mostly the handshake's public-key arithmetic (signing and verifying), plus one more round "
                "trip of messages (cheap on loopback): the reference's 'connect() is O(1) + network latency' now "
                "has a large constant.")
        status = "confirmed"
    elif q3 < 1.2:
        text = f"contradicted: the TLS connect cost about the same as a plain one. {numbers}."
        status = "contradicted"
    else:
        text = (f"inconclusive: the ratios straddle 2×. {numbers}. The rounds disagree too much to say{where}; "
                "more rounds would narrow it.")
        status = "inconclusive"
    return RatioResult(Verdict(status, text), ratios, a, b)


def ratio_figure(result: RatioResult, *, title: str, ylabel: str, line: float, line_label: str) -> Any:
    """The per-round ratios (one dot per round), their median, and the verdict's line."""
    if not isinstance(result, RatioResult):
        raise TypeError(f"result must be what keepalive_verdict or handshake_verdict returned, not "
                        f"{type(result).__name__}")
    if isinstance(line, bool) or not isinstance(line, (int, float)) or not 0 < line < math.inf:
        raise ValueError(f"line must be a positive finite ratio (the verdict's threshold), got {line!r}")
    from ...plots import PALETTE
    from .._figures import Shown

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    xs = list(range(1, len(result.ratios) + 1))
    ax.plot(xs, result.ratios, "o", color=PALETTE[0], label="one round (sorted)")
    if result.ratios:
        ax.axhline(statistics.median(result.ratios), color=PALETTE[0], lw=1, label="median of the rounds")
    ax.axhline(line, color="0.4", ls="--", lw=1, label=line_label)
    ax.axhline(1.0, color="0.7", ls=":", lw=1, label="1× (no difference)")
    top = max([*result.ratios, line, 1.0])
    if top > 10 * max(line, 1.0):
        # ratios of about 100 over lines at 1x and 2x: on a linear axis from 0 the two lines would
        # lie on top of each other near zero; a log axis gives each its own height
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        ax.set_ylim(0.7, top * 1.5)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
    else:
        ax.set_ylim(0, top * 1.15)
    # The two lines can sit a few pixels apart (1× and a 1.1× threshold under ratios of 5): name
    # each at the right edge, the higher one above its line and the lower one below, so they
    # never run into each other.
    from matplotlib.transforms import blended_transform_factory

    edge = blended_transform_factory(ax.transAxes, ax.transData)
    for y, text in sorted([(line, f"{line:g}×"), (1.0, "1×")], reverse=True)[:1 if line == 1.0 else 2]:
        high = y == max(line, 1.0)
        ax.text(1.01, y, text, transform=edge, fontsize=8, color="0.3", va="bottom" if high else "top",
                ha="left", clip_on=False)
    ax.set_xlabel("round (sorted by ratio)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(xs)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)  # below: never over the data
    fig.tight_layout()
    shown = Shown(fig)
    shown.png()  # render here, once: a broken figure fails in this cell, not later
    return shown

