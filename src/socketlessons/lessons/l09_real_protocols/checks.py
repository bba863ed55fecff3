"""Checkers of lesson 09: ``read_requests``, ``send_response`` and ``tls_echo``.

* ``check_read_requests``: a ``ScriptedServer`` (lesson 06) sends pipelined HTTP requests (one
  with a body holding a blank line, header names in both cases, padded values), glued in one
  piece and then cut into pieces of 1, 2, 3, 5… bytes, and half-closes; the requests the
  function returns are compared field by field and byte by byte. Then a stream that ends inside
  a head and inside a body (must raise ``EOFError``) and an endless head that never reaches its
  blank line (must raise ``ValueError``: a server bounds what it reads); then a new connection
  with the whole stream again (a buffer kept at module level still holds those leftovers).
* ``check_send_response``: a helper server reads each request and calls the learner's function
  to answer it; what answers is judged by real clients: a raw socket that checks every byte of
  the status line and headers, ``http.client`` (several requests on one keep-alive connection,
  so a wrong ``Content-Length`` shows; the reason phrase of each status is compared, and the
  server counts the connections it accepted, since http.client silently reconnects after a
  ``Connection: close``), ``urllib.request`` and ``curl`` when it is installed. A
  small send buffer and a timeout on the connection make ``send()`` take only part of 1 MiB.
* ``check_tls_echo``: TLS echo servers with trustme certificates: the right name and CA (a
  200 kB echo, many TLS records), the wrong name and an untrusted CA (must raise
  ``ssl.SSLCertVerificationError``), and a server that never answers the handshake (must give up
  after its timeout).
"""

from __future__ import annotations

import http
import http.client
import re
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from ...checks._core import DidNotReturn, NotYet, call, checker, expect
from ...servers import SilentServer, TCPServer
from ...servers._tcp import ConnectionStats
from ..l06_framing.demos import ScriptedServer
from .demos import TLSEchoServer, curl

__all__ = ["check_read_requests", "check_send_response", "check_tls_echo"]

SOCKET_TIMEOUT_S = 4.0
DEADLINE_S = 3.0

# ---- read_requests ---------------------------------------------------------------------------

EOF_HINT = ("the client closed after its last request: stop when recv returns b'' (and return what you "
            "have), instead of waiting for more")
COUNT_HINT = ("loop until the client closes (recv returns b''), not a fixed number of times: the client "
              "decides how many requests it sends")
GLUED_HINT = ("one recv can hold several requests: after a body, the bytes that follow are the start of "
              "the next request; keep them in your buffer")
CARRY_HINT = ("a recv can end anywhere, even inside b'\\r\\n\\r\\n': add each piece to one buffer and look "
              "for the blank line in the whole buffer")
BODY_HINT = ("a request with a body says how long it is in Content-Length: after the blank line read "
             "exactly that many bytes (the body may contain b'\\r\\n\\r\\n' itself)")
BODY_PIECES_HINT = ("the body can arrive in pieces too: keep reading until you have Content-Length bytes "
                    "(one recv is not enough)")
CASE_HINT = ("header names are case-insensitive: content-length and Content-Length are the same header; "
             "store names lowercased and look them up lowercased")
LOWER_HINT = "store header names lowercased (name.lower()), so headers['content-length'] finds any spelling"
CRLF_HINT = ("HTTP lines end with b'\\r\\n': split the head on b'\\r\\n' (splitting on b'\\n' leaves a '\\r' at "
             "the end of every value)")
VALUE_HINT = "a header value may have spaces around it ('Name:   value  '): strip the value, not the body"
BYTES_HINT = ("the body must come back exactly as sent: do not strip or decode it (its bytes may include "
              "spaces, b'\\r\\n' and non-text bytes)")
STATE_HINT = ("the second connection got requests of the first: keep the buffer and the list inside the "
              "function, not at module level")
CUT_HINT = ("when the stream ends inside a request (a head without its blank line, or a body shorter "
            "than Content-Length), raise EOFError: a cut-off request must not pass for a whole one")
COLON_HINT = ("split each header line at its first ':' only (line.partition(':')) and strip both sides: the "
              "space after the colon is optional ('Host:127.0.0.1'), and a value may hold ': ' itself")
BIG_BODY_HINT = ("MAX_HEAD limits the head only, up to the blank line: a body may be as long as its "
                 "Content-Length says, so do not count it against the head's limit")
NO_LENGTH_HINT = ("a request without a body (a GET) has no Content-Length: read it with "
                  "headers.get('content-length', '0'), which is 0 when it is missing")
CLEAN_CLOSE_HINT = ("a connection that closes right after a complete request is the normal end: return the "
                    "requests read so far; only a close inside a request (head or body) is an error")
HEAD_LIMIT_HINT = ("a client can send header lines forever (or very slowly): stop reading and raise "
                   "ValueError once the head is longer than a limit (8192 bytes, as many servers do)")

_REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("GET", "/", {"host": "127.0.0.1", "x-padded": "value with spaces"}, b""),
    ("POST", "/form", {"host": "127.0.0.1", "content-length": "19"}, b"a=1&b=2\r\n\r\n \t tail "),
    ("PUT", "/upload", {"host": "127.0.0.1", "content-length": "260"}, bytes(range(256)) + b"\r\n\r\n"),
    ("GET", "/last?q=1", {"host": "127.0.0.1"}, b""),
]
_WIRE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padded:   value with spaces  \r\n\r\n"
         b"POST /form HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 19\r\n\r\na=1&b=2\r\n\r\n \t tail "
         b"PUT /upload HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 260\r\n\r\n" + bytes(range(256)) + b"\r\n\r\n"
         b"GET /last?q=1 HTTP/1.1\r\nHOST: 127.0.0.1\r\n\r\n")
_PIECES = [1, 2, 3, 5, 8, 13, 21, 34, 2, 1, 55]
#: Headers as clients may send them: no space after the colon, ': ' inside a value.
_COLON_WIRE = b"GET /colon HTTP/1.1\r\nHost:127.0.0.1\r\nX-Note: a: b\r\n\r\n"
_COLON_REQUEST = ("GET", "/colon", {"host": "127.0.0.1", "x-note": "a: b"}, b"")
#: A body longer than MAX_HEAD (8,192): the limit is the head's only.
_BIG_BODY = bytes(range(256)) * 78 + b"end"
_BIG_WIRE = (b"PUT /big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(_BIG_BODY)) + _BIG_BODY
_BIG_REQUEST = ("PUT", "/big", {"host": "127.0.0.1", "content-length": str(len(_BIG_BODY))}, _BIG_BODY)


def _clean_close_raises(read_requests: Callable[..., Any]) -> bool:
    """Does the learner's function raise EOFError on one complete GET and a clean close?"""
    _got, error = _serve_and_read(read_requests, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "whole")
    return isinstance(error, EOFError)


def _kill(sock: socket.socket, server: Any) -> Callable[[], None]:
    def stop() -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        server.stop()
    return stop


def _serve_and_read(fn: Callable[..., Any], payload: bytes, chunks: Any, *, close: bool = True,
                    pause: float = 0.001) -> tuple[Any, Any]:
    """(result, None) or (None, exception) of fn(sock) on a stream sent cut into ``chunks``.

    ``pause`` between pieces: each piece arrives alone only if the reader has read the one
    before; for the few decisive cuts it is 20 ms, which holds on a busy machine too.
    """
    with ScriptedServer(payload, chunks=chunks, pause=pause, close=close) as server, \
            socket.create_connection(server.address, timeout=SOCKET_TIMEOUT_S) as sock:
        try:
            return call(fn, sock, timeout=DEADLINE_S, on_timeout=_kill(sock, server)), None
        except (DidNotReturn, Exception) as exc:
            return None, exc


def _as_tuples(got: Any) -> list[tuple[Any, ...]]:
    expect(isinstance(got, (list, tuple)), f"expected a list of requests, got {type(got).__name__}",
           "return a list with one (method, target, headers, body) tuple per request")
    out = []
    for item in got:
        expect(isinstance(item, (list, tuple)) and len(item) == 4,
               f"each request should be (method, target, headers, body), got {item!r:.80}",
               "append (method, target, headers, body) for each request")
        out.append(tuple(item))
    return out


def _request_hint(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]], pieces: bool) -> str:
    """The most specific hint for requests that differ from the expected ones."""
    if len(got) == 2 * len(expected) and got[len(expected):] == expected:
        return STATE_HINT
    for g, e in zip(got, expected):
        headers = g[2] if isinstance(g[2], dict) else {}
        if any(isinstance(v, str) and v.endswith("\r") for v in headers.values()):
            return CRLF_HINT
        if headers and {str(k).lower(): v for k, v in headers.items()} != headers and \
                {str(k).lower() for k in headers} >= set(e[2]):
            return LOWER_HINT
        if e[3] and isinstance(g[3], (bytes, bytearray)) and g[3] != e[3]:
            if g[3].strip() == e[3].strip():
                return BYTES_HINT
            if not g[3]:
                return CASE_HINT if any(x[3] == y[3] != b"" for x, y in zip(got, expected)) else BODY_HINT
            return BODY_PIECES_HINT if pieces else BODY_HINT
        if isinstance(headers.get("x-padded"), str) and headers.get("x-padded") != e[2].get("x-padded"):
            return VALUE_HINT
    if 0 < len(got) < len(expected) and got == expected[: len(got)]:
        return CARRY_HINT if pieces else (COUNT_HINT if len(got) == 2 else GLUED_HINT)
    return CARRY_HINT if pieces else GLUED_HINT


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DidNotReturn):
        return f"did not return within {DEADLINE_S:g} s"
    return f"raised {type(exc).__name__}: {exc}"


def _cuts(wire: bytes, offsets: list[int]) -> list[int]:
    """Piece sizes that cut ``wire`` at each of ``offsets`` (and nowhere else)."""
    points = sorted({o for o in offsets if 0 < o < len(wire)}) + [len(wire)]
    return [b - a for a, b in zip([0, *points[:-1]], points)]


def _head_cuts(wire: bytes) -> list[int]:
    """Cut every request in the middle of its b"\\r\\n\\r\\n", bodies left whole."""
    offsets, i = [], wire.find(b"\r\n\r\n")
    while i != -1:
        offsets.append(i + 2)
        i = wire.find(b"\r\n\r\n", i + 4)
    return _cuts(wire, offsets)


def _body_cuts(wire: bytes) -> list[int]:
    """Cut each body in several pieces (heads left whole): a single recv for a body gets one piece."""
    post = wire.index(b"a=1&b=2")
    put = wire.index(bytes(range(256)))
    return _cuts(wire, [post + 5, post + 9, post + 14, put + 100, put + 150, put + 200])


def _head_only_cuts(wire: bytes) -> list[int]:
    """Cut each request in the middle of its own blank line only: each body arrives whole, in the
    same piece as the end of its head (a reader that takes the body only from what came with the
    head passes this; one that loses a piece before a blank line does not)."""
    offsets, pos = [], 0
    for request in _REQUESTS:
        end = wire.index(b"\r\n\r\n", pos)
        offsets.append(end + 2)
        pos = end + 4 + len(request[3])
    return _cuts(wire, offsets)


def _reads_alike(read_requests: Callable[..., Any], wire: bytes, chunks: Any, *, strip_values: bool = False) -> bool:
    """Does the function read ``wire`` into _REQUESTS, header names compared lowercased (and
    values stripped, if asked)?"""
    got, error = _serve_and_read(read_requests, wire, chunks, pause=0.02 if chunks != "whole" else 0.001)
    if error is not None or not isinstance(got, (list, tuple)):
        return False
    try:
        lowered = [(m, t, {str(k).lower(): (v.strip() if strip_values else v) for k, v in h.items()}, b)
                   for m, t, h, b in got]
    except (TypeError, ValueError, AttributeError):
        return False
    return lowered == _REQUESTS


def _lowercase_names_pass(read_requests: Callable[..., Any]) -> bool:
    """Does the function read the requests when every header name is sent lowercased (values
    compared stripped)? Then what it lacks is lowercasing the names itself."""
    wire = _WIRE
    for name in (b"Host:", b"HOST:", b"X-Padded:", b"Content-Length:"):
        wire = wire.replace(name, name.lower())
    return _reads_alike(read_requests, wire, "whole", strip_values=True)


def _canonical_case_passes(read_requests: Callable[..., Any]) -> bool:
    """Does the function read the requests when every header name is spelled Content-Length?"""
    wire = _WIRE.replace(b"content-length", b"Content-Length").replace(b"HOST:", b"Host:")
    got, error = _serve_and_read(read_requests, wire, "whole")
    if error is not None or not isinstance(got, (list, tuple)):
        return False
    try:
        lowered = [(m, t, {str(k).lower(): v for k, v in h.items()}, b) for m, t, h, b in got]
    except (TypeError, ValueError, AttributeError):
        return False
    return lowered == _REQUESTS


def _cut_hint(read_requests: Callable[..., Any], chunks: Any, cut_hint: str) -> str:
    """Heads cut in their blank line also cut the bodies that hold one: when only the bodies'
    cuts matter (the function reads heads cut in their blank line, bodies whole), say so."""
    if cut_hint == CARRY_HINT and _reads_alike(read_requests, _WIRE, _head_only_cuts(_WIRE)):
        return BODY_PIECES_HINT
    return cut_hint


@checker("read_requests", solution="read_requests")
def check_read_requests(read_requests: Callable[..., Any]) -> str:
    expected = list(_REQUESTS)
    cases = (("whole", "glued in one piece", GLUED_HINT),
             (_head_cuts(_WIRE), "each cut in the middle of its blank line", CARRY_HINT),
             (_body_cuts(_WIRE), "with the bodies cut in two", BODY_PIECES_HINT),
             (_PIECES, "cut into pieces of 1, 2, 3, 5, 8… bytes", CARRY_HINT))
    for chunks, how, cut_hint in cases:
        pieces = chunks != "whole"
        got, error = _serve_and_read(read_requests, _WIRE, chunks,
                                     pause=0.001 if chunks in ("whole", _PIECES) else 0.02)
        if error is not None:
            if isinstance(error, DidNotReturn):
                hint = EOF_HINT
            elif isinstance(error, KeyError) and "content-length" in str(error).lower():
                hint = NO_LENGTH_HINT
            elif isinstance(error, EOFError) and _clean_close_raises(read_requests):
                hint = CLEAN_CLOSE_HINT
            elif pieces:
                hint = _cut_hint(read_requests, chunks, cut_hint)
            elif _canonical_case_passes(read_requests):
                hint = CASE_HINT
            else:
                hint = LOWER_HINT if _lowercase_names_pass(read_requests) else BODY_HINT
            raise NotYet(f"on {len(expected)} pipelined requests {how}, your function {_describe(error)}", hint)
        requests = _as_tuples(got)
        if requests != expected:
            hint = _request_hint(requests, expected, pieces)
            if hint in (BODY_HINT, CARRY_HINT, GLUED_HINT, BODY_PIECES_HINT):
                hint = _cut_hint(read_requests, chunks, cut_hint) if pieces else \
                    (CASE_HINT if _canonical_case_passes(read_requests) else hint)
            raise NotYet(f"on {len(expected)} pipelined requests {how} (a GET, a POST with a 19-byte body, a PUT "
                         f"with 260 binary bytes, a GET), you returned {len(requests)}: "
                         f"{[r[:2] for r in requests][:6]}; first difference: "
                         f"{next(((g, e) for g, e in zip(requests, expected) if g != e), None)!r:.160}", hint)

    for wire, want, how, hint in (
            (_COLON_WIRE, _COLON_REQUEST, "a header with no space after its colon ('Host:127.0.0.1') and a value "
             "holding ': ' ('X-Note: a: b')", COLON_HINT),
            (_BIG_WIRE, _BIG_REQUEST, f"a PUT with a {len(_BIG_REQUEST[3]):,}-byte body", BIG_BODY_HINT)):
        got, error = _serve_and_read(read_requests, wire, "whole")
        shown = _describe(error) if error is not None else f"returned {[r[:3] for r in _as_tuples(got)]!r:.160}"
        expect(error is None and _as_tuples(got) == [want], f"on {how}, your function {shown}", hint)

    for cut_stream, where in ((b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", "inside a head"),
                              (b"POST /form HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", "inside a body")):
        got, error = _serve_and_read(read_requests, cut_stream, "whole")
        if error is None:
            raise NotYet(f"the stream ended {where} ({cut_stream[-24:]!r}) and your function returned {got!r:.80}",
                         CUT_HINT)
        expect(isinstance(error, (EOFError, ConnectionError)), f"the stream ended {where} and your function "
               f"{_describe(error)}", CUT_HINT if not isinstance(error, DidNotReturn) else EOF_HINT)

    endless = b"GET / HTTP/1.1\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 60) for i in range(1000))  # 75 kB, no blank line
    got, error = _serve_and_read(read_requests, endless, [4096], close=False)
    if error is None:
        raise NotYet(f"a head of {len(endless):,} bytes without a blank line: your function returned {got!r:.60}",
                     HEAD_LIMIT_HINT)
    expect(isinstance(error, ValueError), f"a client sent {len(endless):,} bytes of header lines without a blank "
           f"line and kept the connection open; your function {_describe(error)}", HEAD_LIMIT_HINT)

    # A new connection after the cut-off streams: a buffer kept outside the function still holds
    # their leftovers (the head that never ended, the bytes after the endless head's limit).
    # Its 5 pieces come 0.1 s apart: the other cases take well under 0.3 s on a quiet machine,
    # too short for the shared busy-loop check to see a function spinning while it waits.
    got, error = _serve_and_read(read_requests, _WIRE, _head_only_cuts(_WIRE), pause=0.1)
    if error is not None or _as_tuples(got) != expected:
        raise NotYet(f"after the cut-off streams, a new connection sent the {len(expected)} requests again and "
                     f"your function " + (_describe(error) if error is not None else
                                          f"returned {[r[:2] for r in _as_tuples(got)][:6]}"), STATE_HINT)
    return ("4 pipelined requests came apart glued and in pieces, bodies byte for byte; headers without a space "
            "and a 20 kB body were read; cut-off requests raised EOFError and an endless head ValueError; a new "
            "connection after them started afresh")


# ---- send_response -------------------------------------------------------------------------------

CRLF_RESPONSE_HINT = ("end every line of the status line and headers with '\\r\\n' (not '\\n'), and the "
                      "head with an empty line: '\\r\\n\\r\\n'")
STATUS_HINT = ("the first line is 'HTTP/1.1 <status> <reason>', e.g. 'HTTP/1.1 404 Not Found' "
               "(http.HTTPStatus(404).phrase gives the reason)")
LENGTH_HINT = ("say how long the body is: 'Content-Length: <number of bytes>'; without it a keep-alive "
               "client cannot tell where your response ends and waits")
ENCODE_LENGTH_HINT = ("Content-Length counts bytes, not characters: 'naïve ✓' is 7 characters but "
                      "{n} bytes in UTF-8; take len() of the bytes you send")
SENDALL_HINT = ("send() may send only part of what you give it (here the body was 1 MiB and the send "
                "buffer small): use sendall(), which loops until every byte is out")
BODY_REPR_HINT = ("send the body's bytes after the head (head.encode('latin-1') + body), not their repr: "
                  "f\"...{body}\" writes b'...' into the text")
BODY_RESPONSE_HINT = "send the body exactly as given (bytes, unchanged): no strip(), no decoding"
CLOSE_RESPONSE_HINT = ("do not close the connection in send_response: the server loop decides (with "
                       "keep-alive the client sends its next request on the same connection)")
TYPE_HINT = "send a Content-Type header with the content_type you were given"
REASON_HINT = ("the reason phrase belongs to the status: 'HTTP/1.1 404 Not Found', not 'HTTP/1.1 404 OK'; "
               "take it from http.HTTPStatus(status).phrase instead of writing one text for every status")
KEEP_ALIVE_HINT = ("do not send 'Connection: close': it tells the client to hang up after this response, so "
                   "keep-alive is lost and every request costs a new connection; this server keeps it open")

_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ([^\r\n]+)\r\n")
_BIG = bytes(range(256)) * 4096  # 1 MiB
_NAIVE = "naïve ✓\n".encode()
_ROUTES: dict[str, tuple[int, bytes, str]] = {
    "/": (200, b"Hello from your send_response!\n", "text/plain; charset=utf-8"),
    "/missing": (404, b"", "text/plain; charset=utf-8"),
    "/naive": (200, _NAIVE, "text/plain; charset=utf-8"),
    "/binary": (200, bytes(range(256)) + b"\r\n\r\n  ", "application/octet-stream"),
    "/big": (200, _BIG, "application/octet-stream"),
}


class _Responder(TCPServer):
    """Reads each request of a connection and has the learner's function answer it."""

    kind = "responder"

    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fn = fn
        self.raised: list[BaseException] = []
        self.late = 0
        self.closed_by_fn = 0
        self.handled: list[int] = []  # one item per connection served (list.append is atomic)
        self._finished = 0  # connections whose handler has returned, and so recorded all it saw
        self._finishing = threading.Condition()

    def handle(self, conn: socket.socket, stats: ConnectionStats) -> None:
        self.handled.append(1)
        try:
            self._answer_requests(conn)
        finally:
            with self._finishing:
                self._finished += 1
                self._finishing.notify_all()

    def wait_until_done(self, timeout: float) -> bool:
        """Wait (bounded) until every connection's handler has returned: only then do ``raised``
        and ``closed_by_fn`` hold all that happened (a client can see the error first)."""
        with self._finishing:
            return self._finishing.wait_for(lambda: self._finished >= len(self.handled), timeout)

    def _answer_requests(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)  # send() takes part of 1 MiB
        conn.settimeout(SOCKET_TIMEOUT_S)  # ... because a socket with a timeout never blocks in send()
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("latin-1")
            status, body, ctype = _ROUTES.get(target, (404, b"", "text/plain; charset=utf-8"))
            try:
                call(self.fn, conn, status, body, ctype, timeout=DEADLINE_S)
            except DidNotReturn:
                self.late += 1
                return
            except Exception as exc:
                self.raised.append(exc)
                return
            if conn.fileno() == -1:
                self.closed_by_fn += 1
                return


def _raw_response(address: tuple[str, int], path: str) -> bytes:
    """What a raw client asking for ``path`` receives within DEADLINE_S: the head, and as much of the
    body as Content-Length announces (or whatever came, if the head cannot be parsed)."""
    with socket.create_connection(address, timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        end = time.monotonic() + DEADLINE_S
        while len(data) < 64 * 1024 and time.monotonic() < end:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length is None or len(body) >= int(length.group(1)):
                    break
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    return data


def _learner_trouble(server: _Responder) -> None:
    if server.raised:
        raise server.raised[0]
    if server.late:
        raise DidNotReturn(DEADLINE_S)


def _check_head(address: tuple[str, int]) -> None:
    data = _raw_response(address, "/")
    expect(data, "a raw client asked for / and got no bytes at all", LENGTH_HINT)
    first = data.split(b"\n", 1)[0] + b"\n"
    expect(_STATUS_LINE.fullmatch(first), f"the status line was {first!r:.60}, not like b'HTTP/1.1 200 OK\\r\\n'",
           CRLF_RESPONSE_HINT if first.endswith(b"\n") and not first.endswith(b"\r\n") and
           re.match(rb"HTTP/1\.1 \d{3} \S", first) else STATUS_HINT)
    expect(b"\r\n\r\n" in data, f"the head never ended with an empty line b'\\r\\n\\r\\n': got {data[:120]!r}",
           CRLF_RESPONSE_HINT)
    head, _, body = data.partition(b"\r\n\r\n")
    expect(b"\n" not in head.replace(b"\r\n", b""), f"a header line ended with a bare b'\\n': {head!r:.120}",
           CRLF_RESPONSE_HINT)
    names = {line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")[1:]}
    expect(b"content-length" in names, f"the response to / has no Content-Length header: {head!r:.160}", LENGTH_HINT)
    expect(b"content-type" in names, f"the response to / has no Content-Type header: {head!r:.160}", TYPE_HINT)
    sent = _ROUTES["/"][1]
    if body != sent:
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        changed = body.strip() == sent.strip() or (len(body) < length == len(sent))
        as_repr = repr(sent).encode() in data  # f"...{body}" writes b'...' into the text
        raise NotYet(f"asked for /, a raw client got the body {body!r:.60} (Content-Length {length}); the "
                     f"function was given {sent!r}",
                     BODY_REPR_HINT if as_repr else BODY_RESPONSE_HINT if changed else LENGTH_HINT)


#: http.client gives up when no byte came for this long (a loopback answer comes in milliseconds,
#: on a busy machine in tens of them): a body shorter than its Content-Length costs this much.
CLIENT_TIMEOUT_S = 1.5


def _check_http_client(address: tuple[str, int], server: _Responder) -> None:
    conn = http.client.HTTPConnection(*address, timeout=CLIENT_TIMEOUT_S)
    before = len(server.handled)
    said_close = []
    try:
        for path in ("/", "/missing", "/naive", "/binary", "/big", "/"):
            status, body, ctype = _ROUTES[path]
            try:
                conn.request("GET", path)
                reply = conn.getresponse()
                got = reply.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # a handler waiting for the next request returns, and records what it saw
                server.wait_until_done(SOCKET_TIMEOUT_S + 1)
                _learner_trouble(server)
                if server.closed_by_fn:
                    hint = CLOSE_RESPONSE_HINT
                elif path == "/big":
                    hint = SENDALL_HINT
                elif path == "/naive":
                    hint = ENCODE_LENGTH_HINT.format(n=len(_NAIVE))
                else:
                    hint = LENGTH_HINT
                raise NotYet(f"http.client, asking for {path} on a keep-alive connection, failed: "
                             f"{type(exc).__name__}: {exc}", hint) from None
            if got != body:
                if path == "/big":
                    hint = SENDALL_HINT
                elif path == "/naive":
                    hint = ENCODE_LENGTH_HINT.format(n=len(_NAIVE))
                elif got.strip() == body.strip():
                    hint = BODY_RESPONSE_HINT
                else:
                    hint = LENGTH_HINT
                raise NotYet(f"http.client asked for {path}: expected a body of {len(body):,} bytes, got "
                             f"{len(got):,} ({got[:30]!r}…)", hint)
            expect(reply.status == status, f"http.client asked for {path}: status {reply.status}, expected {status}",
                   STATUS_HINT)
            phrase = http.HTTPStatus(status).phrase
            expect(reply.reason.strip().lower() == phrase.lower(), f"http.client asked for {path}: the status "
                   f"line said {status} {reply.reason!r}, the reason of {status} is {phrase!r}", REASON_HINT)
            if (reply.getheader("Connection") or "").strip().lower() == "close":
                said_close.append(path)
            expect(reply.getheader("Content-Type") == ctype, f"http.client asked for {path}: Content-Type "
                   f"{reply.getheader('Content-Type')!r}, expected {ctype!r}", TYPE_HINT)
    finally:
        conn.close()
    # http.client reconnects silently when a response says "Connection: close" (or the server hung
    # up): the server counts the connections it served, so one keep-alive connection is observed.
    _learner_trouble(server)
    used = len(server.handled) - before
    if used != 1:
        raise NotYet(f"http.client asked for 6 paths and the server had to accept {used} connections for them "
                     f"(one keep-alive connection would do)"
                     + (f"; your responses said 'Connection: close' (to {said_close[0]})" if said_close else ""),
                     KEEP_ALIVE_HINT if said_close else CLOSE_RESPONSE_HINT)


@checker("send_response", solution="send_response")
def check_send_response(send_response: Callable[..., Any]) -> str:
    with _Responder(send_response) as server:
        address = server.address
        _check_head(address)
        _learner_trouble(server)
        _check_http_client(address, server)
        _learner_trouble(server)
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/naive", timeout=DEADLINE_S) as reply:
            expect(reply.read() == _NAIVE, "urllib.request read a different body for /naive",
                   ENCODE_LENGTH_HINT.format(n=len(_NAIVE)))
        done = curl(f"http://{address[0]}:{address[1]}/binary", "--http1.1", timeout=DEADLINE_S)
        if done is None:
            tail = "; curl not installed, so it was not asked"
        else:
            expect(done.returncode == 0 and done.stdout == _ROUTES["/binary"][1],
                   f"curl asked for /binary: exit code {done.returncode}, {done.stderr.decode(errors='replace')[:80]!r}, "
                   f"{len(done.stdout)} bytes", BODY_RESPONSE_HINT if done.returncode == 0 else LENGTH_HINT)
            tail = ", and curl read /binary byte for byte"
        _learner_trouble(server)
    return ("a raw client found a correct status line and headers; http.client read 6 answers (200, 404, UTF-8, "
            f"binary, 1 MiB) on one keep-alive connection; urllib read one{tail}")


# ---- tls_echo --------------------------------------------------------------------------------------

TLS_TIMEOUT_S = 1.0  # the exercise asks for this timeout
HOSTNAME_HINT = ("your client accepted a certificate for 'localhost' when it asked for another name: keep "
                 "check_hostname on (ssl.create_default_context() does) and pass server_hostname=hostname")
VERIFY_HINT = ("your client accepted a certificate from a CA it was never told to trust: verification is "
               "off. ssl.SSLContext(ssl.PROTOCOL_TLS) and ssl._create_unverified_context() verify nothing; use "
               "ssl.create_default_context(cadata=ca_pem) (or SSLContext(ssl.PROTOCOL_TLS_CLIENT) and "
               "load_verify_locations(cadata=ca_pem))")
TRUST_HINT = ("the certificate could not be verified: trust the lesson's CA with "
              "ssl.create_default_context(cadata=ca_pem) (the system's CAs never signed it)")
SWALLOW_HINT = ("let ssl.SSLCertVerificationError reach the caller (do not catch it and return b'' or None): a "
                "refused certificate must not look like an empty echo")
SNI_HINT = "pass the name you expect: context.wrap_socket(sock, server_hostname=hostname)"
#: A client that returns this long after the echo's last bytes were sent waited for something else
#: (its 1 s timeout, the end of the stream): a correct one returns within milliseconds.
LATE_RETURN_S = 0.8
CADATA_HINT = ("ca_pem is the CA certificate's text, not a file name: ssl.create_default_context("
               "cadata=ca_pem) (cafile= expects a path)")
NAME_NOT_IP_HINT = ("server_hostname is the name the certificate was issued for (the hostname argument, "
                    "'localhost' here), not the IP address you connect to")
RECORDS_HINT = ("one recv over TLS returns at most one TLS record (16 KiB here): loop until you have "
                "len(message) bytes")
EXACT_HINT = ("the echo server keeps the connection open: stop reading once you have len(message) bytes, "
              "instead of waiting for the end of the stream")
TLS_TIMEOUT_HINT = (f"a server that accepts but never answers the handshake must not hang your client: "
                    f"give the socket a timeout of {TLS_TIMEOUT_S:g} s before wrap_socket "
                    f"(socket.create_connection(address, timeout={TLS_TIMEOUT_S:g}))")

_MESSAGE = bytes(range(256)) * 800  # 200 kB: about 13 TLS records


def _tls_contexts() -> dict[str, Any]:
    from ..._interrupts import import_held

    trustme = import_held("trustme")  # cryptography inside: ■ during a first import would break it

    good, other = trustme.CA(), trustme.CA()
    contexts = {}
    for name, ca in (("good", good), ("other", other)):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(ctx)
        contexts[name] = ctx
    return {"contexts": contexts, "ca_pem": good.cert_pem.bytes().decode("ascii")}


def _tls_call(fn: Callable[..., Any], *args: Any, stop: Callable[[], None] | None = None) -> tuple[Any, Any]:
    try:
        return call(fn, *args, timeout=DEADLINE_S, on_timeout=stop), None
    except (DidNotReturn, Exception) as exc:
        return None, exc


@checker("tls_echo", solution="tls_echo")
def check_tls_echo(tls_echo: Callable[..., Any]) -> str:
    made = _tls_contexts()
    ca_pem = made["ca_pem"]
    with TLSEchoServer(made["contexts"]["good"]) as good, TLSEchoServer(made["contexts"]["other"]) as other:
        got, error = _tls_call(tls_echo, good.address, "localhost", ca_pem, _MESSAGE, stop=good.stop)
        returned = time.monotonic()
        if error is not None:
            if isinstance(error, ValueError) and "server_hostname" in str(error):
                hint = SNI_HINT
            elif isinstance(error, DeprecationWarning) and "PROTOCOL_TLS" in str(error):
                hint = VERIFY_HINT  # warnings raised as errors (python -W error): the look-alike constant
            elif isinstance(error, ssl.SSLCertVerificationError):
                hint = NAME_NOT_IP_HINT if "IP address mismatch" in str(error) else TRUST_HINT
            elif isinstance(error, (FileNotFoundError,)) or (isinstance(error, OSError) and "File name too long"
                                                              in str(error)):
                hint = CADATA_HINT
            elif isinstance(error, (DidNotReturn, TimeoutError)):
                hint = EXACT_HINT
            else:
                hint = RECORDS_HINT
            raise NotYet(f"sending {len(_MESSAGE):,} bytes to a TLS echo server named 'localhost', signed by the CA "
                         f"you were given, your function {_describe(error)}",
                         hint)
        expect(isinstance(got, (bytes, bytearray)) and bytes(got) == _MESSAGE,
               f"sent {len(_MESSAGE):,} bytes over TLS, got back {len(got) if isinstance(got, (bytes, bytearray)) else got!r} "
               "bytes" + ("" if not isinstance(got, (bytes, bytearray)) or len(got) >= len(_MESSAGE)
                          else f" (a recv returned at most {min(16384, len(got)):,})"),
               RECORDS_HINT if isinstance(got, (bytes, bytearray)) and len(got) < len(_MESSAGE) else BODY_RESPONSE_HINT)
        late = returned - (good.last_echo_s or returned)
        expect(late < LATE_RETURN_S, f"the whole {len(_MESSAGE):,}-byte echo had arrived, and your function returned "
               f"{late:.2f} s later: it waited for a timeout or for the server to close", EXACT_HINT)

        got, error = _tls_call(tls_echo, other.address, "localhost", ca_pem, b"hello", stop=other.stop)
        if error is None and not got:  # b"" or None: the verification error was caught and dropped
            raise NotYet(f"facing a certificate signed by ANOTHER CA, your function returned {got!r} instead of "
                         "raising ssl.SSLCertVerificationError", SWALLOW_HINT)
        if error is None:
            raise NotYet("a server whose certificate was signed by ANOTHER CA got your message and echoed "
                         f"{got!r:.40}", VERIFY_HINT)
        expect(isinstance(error, ssl.SSLError), f"facing a certificate from an untrusted CA, your function "
               f"{_describe(error)}; expected ssl.SSLCertVerificationError", VERIFY_HINT)

        got, error = _tls_call(tls_echo, good.address, "wrong.example", ca_pem, b"hello", stop=good.stop)
        if error is None:
            raise NotYet(f"asked to talk to 'wrong.example', your function talked to the server for 'localhost' "
                         f"(echo {got!r:.40})", HOSTNAME_HINT)
        expect(isinstance(error, (ssl.SSLError, ssl.CertificateError)), f"facing a certificate for another name, "
               f"your function {_describe(error)}; expected ssl.SSLCertVerificationError", HOSTNAME_HINT)

    with SilentServer() as silent:
        got, error = _tls_call(tls_echo, silent.address, "localhost", ca_pem, b"hello", stop=silent.stop)
        expect(error is not None and not isinstance(error, DidNotReturn),
               f"a server that accepts and never answers the handshake: your function "
               f"{_describe(error) if error is not None else f'returned {got!r:.40}'}", TLS_TIMEOUT_HINT)
        expect(isinstance(error, (TimeoutError, OSError)), f"facing a silent server, your function "
               f"{_describe(error)}; expected TimeoutError", TLS_TIMEOUT_HINT)
    return ("a 200 kB echo came back whole over TLS; an untrusted CA and a wrong name were refused; a silent "
            "server was given up on")

