"""Local networking for test servers: every server binds 127.0.0.1 only."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
# How often a test HTTP server's ``serve_forever`` looks for a ``shutdown()`` (socketserver's
# default, 0.5 s, made every test that stops a loopback backend wait half a second).
POLL_S = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
