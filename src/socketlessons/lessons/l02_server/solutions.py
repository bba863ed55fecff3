"""Reference solutions of lesson 02 (the TCP server)."""

from __future__ import annotations

import socket


def echo_server(listener: socket.socket, clients: int, timeout: float) -> None:
    """Serve `clients` clients one after another: send back everything each one sends, then
    close its connection. A client silent for `timeout` seconds is dropped."""
    for _ in range(clients):
        conn, addr = listener.accept()
        with conn:  # closed on every path: the client sees the end of the stream
            conn.settimeout(timeout)  # a silent client cannot block the server forever
            try:
                while data := conn.recv(65536):  # b"": the client is done sending
                    conn.sendall(data)  # send() could take only part of data
            except TimeoutError:
                pass  # give up on this client, serve the next one


def open_server(port: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:port that a restarted server can bind again at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Before bind(): bind at once although old connections are in TIME_WAIT. Not on Windows
        # (the only system with SO_EXCLUSIVEADDRUSE): there TIME_WAIT does not block bind(), and
        # SO_REUSEADDR would let another program bind the same port while we use it.
        if not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock
