"""Lesson 09's harness and its own server: http.server and the TLS echo on loopback, the page
link, the verdicts on synthetic numbers, the claims; and the HTTP server the lesson's cells
define, exercised by real clients (urllib, http.client, curl)."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import time
import urllib.request

import pytest

from socketlessons import serve_in_background
from socketlessons.lessons.l05_best_practices import wait_until
from socketlessons.lessons.l09_real_protocols import (
    StdlibHTTPServer,
    TLSEchoServer,
    alternate,
    curl,
    handshake_verdict,
    keepalive_verdict,
    page_link,
    ratio_figure,
)
from socketlessons.lessons.l09_real_protocols.claims import CLAIMS

from ._cells import code_cells

pytestmark = pytest.mark.usefixtures("matplotlib_warm", "no_leaks")

NOTEBOOK = "09_real_protocols.ipynb"


# ---- the lesson's own server, from its cells ------------------------------------------------------

def lesson_server_namespace() -> dict:
    """Run the cells that define the lesson's HTTP server (imports, read_head … serve_http)."""
    cells = code_cells(NOTEBOOK)
    wanted = [c for c in cells if c.startswith(("import contextlib, http", "MAX_HEAD", "def parse_head", "def read_request(",
                                               "def refuse", "PAGE ="))]
    assert len(wanted) == 6, [c[:30] for c in wanted]
    namespace: dict = {}
    for source in wanted:
        exec(compile(source, NOTEBOOK, "exec"), namespace)  # noqa: S102 - the lesson's own code
    return namespace


@pytest.fixture
def lesson_server():
    ns = lesson_server_namespace()
    with serve_in_background(ns["serve_http"], name="test-http-by-hand", deadline=30) as server:
        yield server, ns


def test_urllib_reads_the_lesson_servers_page(lesson_server):
    server, ns = lesson_server
    with urllib.request.urlopen(f"http://127.0.0.1:{server.address[1]}/", timeout=5) as reply:
        assert reply.status == 200 and reply.read() == ns["PAGE"]
        assert reply.headers["Connection"] == "close"
    assert ns["seen"][0][0] == "GET /" and ns["seen"][0][1].startswith("Python-urllib/")


def test_http_client_gets_404_and_a_post_body_is_read(lesson_server):
    server, ns = lesson_server
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.request("GET", "/nowhere")
        reply = conn.getresponse()
        assert (reply.status, reply.reason, reply.read()) == (404, "Not Found", b"<h1>Not found</h1>")
    finally:
        conn.close()
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.request("POST", "/", body=b"x" * 5000)  # a body the server must read, exactly
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert [s[0] for s in ns["seen"]] == ["GET /nowhere", "POST /"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_lesson_servers_page(lesson_server):
    server, ns = lesson_server
    done = curl(f"http://127.0.0.1:{server.address[1]}/", "--include")
    assert done is not None and done.returncode == 0, done
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == ns["PAGE"]
    assert ns["seen"][0][1].startswith("curl/")


def test_the_lesson_server_bounds_time_and_size(lesson_server):
    server, ns = lesson_server
    with socket.create_connection(server.address, timeout=5) as slow:
        t0 = time.monotonic()
        slow.sendall(b"GET / HTTP/1.1\r\n")
        assert slow.recv(1024).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - t0 >= ns["READ_TIME_S"] * 0.9
    with socket.create_connection(server.address, timeout=5) as greedy:
        greedy.sendall(b"GET / HTTP/1.1\r\nX-Junk: " + b"a" * 20_000 + b"\r\n")
        assert greedy.recv(1024).startswith(b"HTTP/1.1 400 ")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.address[1]}/", timeout=5) as reply:
        assert reply.status == 200  # and it still serves the next client


# ---- harness ---------------------------------------------------------------------------------------

def _get(sock, path="/"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    f = sock.makefile("rb")
    try:
        status = f.readline()
        headers = {}
        while (line := f.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, f.read(int(headers.get("content-length", 0)))
    finally:
        f.close()


def test_stdlib_server_keeps_alive_closes_on_request_and_stops_with_connections_open():
    server = StdlibHTTPServer().start()
    kept = socket.create_connection(server.address, timeout=5)
    try:
        try:
            assert _get(kept)[0] == b"HTTP/1.1 200 OK\r\n"
            status, headers, body = _get(kept, "/bytes/70000")
            assert len(body) == 70000 and headers["content-length"] == "70000"
            with socket.create_connection(server.address, timeout=5) as once:
                status, headers, _ = _get(once, "/close")
                assert headers["connection"] == "close" and once.recv(10) == b""
            assert server.requests == 3  # each counted before its body went out
            t0 = time.monotonic()
        finally:
            server.stop()  # with `kept` still open: its thread is woken
        assert time.monotonic() - t0 < 2
        assert kept.recv(10) == b""
    finally:
        kept.close()
    assert server.errors == []


def test_stdlib_server_answers_404_for_unknown_paths():
    with StdlibHTTPServer() as server, socket.create_connection(server.address, timeout=5) as sock:
        assert _get(sock, "/nope")[0].startswith(b"HTTP/1.1 404")


@pytest.fixture(scope="module")
def tls_pair():
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    return server_ctx, client_ctx


def test_tls_echo_echoes_records_and_counts_refused_handshakes(tls_pair):
    server_ctx, client_ctx = tls_pair
    with TLSEchoServer(server_ctx) as server:
        with socket.create_connection(server.address, timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"x" * 50_000)
            sizes = []
            while sum(sizes) < 50_000:
                sizes.append(len(tls.recv(1 << 20)))
        assert max(sizes) <= 16384 and sum(sizes) == 50_000
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"), \
                socket.create_connection(server.address, timeout=5) as raw:
            client_ctx.wrap_socket(raw, server_hostname="other.example")
        wait_until(lambda: bool(server.failed_handshakes), timeout=2)
        assert server.handshakes == 1 and len(server.failed_handshakes) == 1
    assert server.errors == []


def test_wait_failed_handshakes_returns_each_alert_in_order(tls_pair):
    """The lesson's cell 42 printed the first alert as if it were the second: the client raises
    before the server's thread has read its alert. The wait is bounded and returns both, in order."""
    server_ctx, client_ctx = tls_pair
    with TLSEchoServer(server_ctx) as server:
        for ctx, name in ((client_ctx, "bank.example"), (ssl.create_default_context(), "localhost")):
            with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(server.address, timeout=5) as raw:
                ctx.wrap_socket(raw, server_hostname=name)
        failed = server.wait_failed_handshakes(2)
        assert len(failed) == 2 and "BAD_CERTIFICATE" in failed[0] and "UNKNOWN_CA" in failed[1], failed
        t0 = time.monotonic()
        assert server.wait_failed_handshakes(3, timeout=0.2) == failed  # none more: gives up in time
        assert time.monotonic() - t0 < 2
        with pytest.raises(ValueError, match="n must be"):
            server.wait_failed_handshakes(0)


def test_tls_echo_drops_a_client_that_never_handshakes(tls_pair):
    server_ctx, _ = tls_pair
    with TLSEchoServer(server_ctx, handshake_timeout=0.2) as server, \
            socket.create_connection(server.address, timeout=5) as raw:
        assert raw.recv(10) == b""  # the server gave up on us
        # ssl closes the socket inside wrap_socket, before the server thread records why: wait
        # (bounded) for the record rather than race it (CI saw the list still empty once).
        assert wait_until(lambda: bool(server.failed_handshakes), timeout=5)
        assert "timed out" in server.failed_handshakes[0]


def test_tls_echo_refuses_bad_arguments(tls_pair):
    with pytest.raises(TypeError, match="context must be an ssl.SSLContext"):
        TLSEchoServer("cert.pem")
    with pytest.raises(ValueError, match="handshake_timeout"):
        TLSEchoServer(tls_pair[0], handshake_timeout=0)


def test_page_link_direct_and_through_the_proxy(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    link = page_link(8123)
    assert (link.url, link.via) == ("http://127.0.0.1:8123/", "direct") and "127.0.0.1" in link.why
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    link = page_link(8123, "/x")
    assert (link.url, link.via) == ("/user/ada/proxy/127.0.0.1:8123/x", "proxy") and "jupyter-server-proxy" in link.why
    for bad in (0, 70000, "80", True):
        with pytest.raises(ValueError, match="port"):
            page_link(bad)
    with pytest.raises(ValueError, match="path"):
        page_link(80, "x")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="timeout"):
        curl("http://127.0.0.1:1/", timeout=float("nan"))
    with pytest.raises(TypeError, match="url"):
        curl(b"http://127.0.0.1:1/")
    with pytest.raises(TypeError, match="result"):
        ratio_figure([1, 2], title="", ylabel="", line=1, line_label="")
    result = keepalive_verdict(_rounds([3, 3, 3]), _rounds([1, 1, 1]))
    with pytest.raises(ValueError, match="line"):
        ratio_figure(result, title="", ylabel="", line=float("inf"), line_label="")
    with pytest.raises(ValueError, match="loopback|127.0.0.1|host"):
        StdlibHTTPServer("0.0.0.0")


def test_curl_refuses_addresses_off_this_machine():
    if shutil.which("curl") is None:
        assert curl("http://127.0.0.1:1/") is None
    else:
        with pytest.raises(ValueError, match="loopback"):
            curl("http://example.com/")


def test_alternate_takes_turns_and_validates():
    order = []
    out = alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3, per_round=2,
                    warmup=0)
    assert order == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert [len(r) for r in out["a"]] == [2, 2, 2]
    with pytest.raises(ValueError, match="rounds"):
        alternate({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="budget_s"):
        alternate({"a": lambda: None}, budget_s=float("nan"))
    with pytest.raises(TypeError, match="callables"):
        alternate({"a": 3})
    with pytest.raises(TypeError, match="give ops"):
        alternate()


def test_alternate_enters_each_round_op_once_per_round():
    import contextlib

    events = []

    @contextlib.contextmanager
    def fresh():
        events.append("open")
        yield lambda: events.append("op")
        events.append("close")

    out = alternate({"a": lambda: events.append("a")}, each_round={"b": fresh}, rounds=2, per_round=2, warmup=0)
    assert events == ["a", "a", "open", "op", "op", "close", "open", "op", "op", "close", "a", "a"]
    assert [len(r) for r in out["b"]] == [2, 2]


def _rounds(values):
    return [[v] * 5 for v in values]


@pytest.mark.parametrize(("new", "keep", "status"), [
    ([300, 310, 290, 305, 320], [100, 100, 105, 98, 101], "confirmed"),
    ([100, 99, 98, 101, 97], [100, 100, 100, 100, 100], "contradicted"),
    ([100, 150, 90, 160, 95], [100, 100, 100, 100, 100], "inconclusive"),
    ([300], [100], "inconclusive"),
])
def test_keepalive_verdict_from_synthetic_rounds(new, keep, status):
    result = keepalive_verdict(_rounds(new), _rounds(keep), "load average 1.0 on 2 cores")
    assert result.verdict.status == status
    if len(new) >= 3:
        assert f"{sorted(n / k for n, k in zip(new, keep))[len(new) // 2]:.2f}×" in result.verdict.text
    else:
        assert "only 1 paired round" in result.verdict.text


@pytest.mark.parametrize(("plain", "tls", "status"), [
    ([20, 21, 19, 20, 22], [1000, 1100, 950, 1000, 990], "confirmed"),
    ([20, 21, 19, 20, 22], [20, 22, 19, 21, 20], "contradicted"),
    ([20, 20, 20, 20, 20], [30, 60, 25, 70, 35], "inconclusive"),
])
def test_handshake_verdict_from_synthetic_rounds(plain, tls, status):
    result = handshake_verdict(_rounds(plain), _rounds(tls))
    assert result.verdict.status == status
    assert f"{result.a_ns / 1e3:,.0f} µs" in result.verdict.text


@pytest.fixture(scope="module")
def matplotlib_warm():
    """matplotlib keeps its font files open after the first render: not a leak of this test."""
    ratio_figure(keepalive_verdict(_rounds([3, 3, 3]), _rounds([1, 1, 1])), title="", ylabel="", line=1,
                 line_label="")._repr_png_()


def test_ratio_figure_draws_every_round(matplotlib_warm):
    result = keepalive_verdict(_rounds([300, 310, 290]), _rounds([100, 100, 100]))
    shown = ratio_figure(result, title="t", ylabel="r", line=1.1, line_label="line")
    assert shown._repr_png_().startswith(b"\x89PNG")
    ax = shown.figure.axes[0]
    assert list(ax.lines[0].get_ydata()) == result.ratios


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.name)
def test_each_claim_runs_and_returns_a_status(claim):
    assert claim.run() in ("confirmed", "refined", "contradicted", "inconclusive")
