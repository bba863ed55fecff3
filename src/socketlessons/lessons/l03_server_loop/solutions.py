"""Reference solutions of lesson 03 (the server loop)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def echo_until_eof(conn: socket.socket) -> None:
    """Echo everything the client sends until it closes its side; always close the connection."""
    with conn:  # closes it however the loop ends
        try:
            while True:
                data = conn.recv(1024)
                if not data:  # b"": the client closed its side (EOF)
                    break
                conn.sendall(data)
        except ConnectionError:  # the client vanished mid-conversation (reset, broken pipe)
            pass


def serve_concurrently(listener: socket.socket, handle_client: Callable[[socket.socket], None]) -> None:
    """Accept clients forever; give each its own thread so no client waits for another."""
    while True:
        conn, _addr = listener.accept()
        threading.Thread(target=handle_client, args=(conn,), daemon=True).start()
