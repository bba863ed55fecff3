"""Reference solutions of lesson 09 (real protocols)."""

from __future__ import annotations

import http
import socket
import ssl

MAX_HEAD = 8192  # bytes of request line + headers a server accepts (431 beyond)


def read_requests(sock: socket.socket) -> list[tuple[str, str, dict[str, str], bytes]]:
    """Every request the client sends until it closes: (method, target, headers, body) each.

    Requests may arrive glued (pipelined) or in pieces; a body is Content-Length bytes.
    """
    requests: list[tuple[str, str, dict[str, str], bytes]] = []
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:  # the head: up to the blank line
            if len(buffer) > MAX_HEAD:
                raise ValueError(f"request head longer than {MAX_HEAD} bytes")
            chunk = sock.recv(4096)
            if not chunk:
                if buffer:
                    raise EOFError(f"the stream ended inside a request head: {buffer[:30]!r}")
                return requests
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise ValueError(f"request head longer than {MAX_HEAD} bytes")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:  # the body: exactly Content-Length bytes
            chunk = sock.recv(max(4096, length - len(buffer)))
            if not chunk:
                raise EOFError(f"the stream ended after {len(buffer)} of {length} body bytes")
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]  # what follows is the next request
        requests.append((method, target, headers, body))


def send_response(conn: socket.socket, status: int, body: bytes,
                  content_type: str = "text/plain; charset=utf-8") -> None:
    """Send one HTTP/1.1 response: status line, headers, blank line, body."""
    reason = http.HTTPStatus(status).phrase
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n")
    conn.sendall(head.encode("latin-1") + body)


def tls_echo(address: tuple[str, int], hostname: str, ca_pem: str, message: bytes) -> bytes:
    """Send ``message`` over TLS to an echo server and return the echo; verify its certificate."""
    context = ssl.create_default_context(cadata=ca_pem)  # trust this CA; checks names too
    with socket.create_connection(address, timeout=1) as raw, \
            context.wrap_socket(raw, server_hostname=hostname) as tls:
        tls.sendall(message)
        echo = b""
        while len(echo) < len(message):
            chunk = tls.recv(65536)
            if not chunk:
                raise EOFError(f"the server closed after {len(echo)} of {len(message)} bytes")
            echo += chunk
    return echo
