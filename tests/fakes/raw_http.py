"""Raw sockets to a server under test: for what an HTTP client library would not send or
would hide (idle connections, half-sent requests, odd headers, who closed first)."""

from __future__ import annotations

import socket
import time

__all__ = ["connect", "read_until_closed"]


def connect(port: int) -> socket.socket:
    """A connection to ``127.0.0.1:port`` with a 10 s timeout on every operation."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float = 15.0) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection within ``limit_s``."""
    data = b""
    end = time.monotonic() + limit_s
    sock.settimeout(0.5)
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False
