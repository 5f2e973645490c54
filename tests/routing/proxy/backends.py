"""Loopback HTTP services for the proxy tests: each can echo, fail, hang, stall or cut a body.

``mode`` is read on every request, so a test can change a running backend's behaviour:
``ok`` (echo method, path, query, headers and body as JSON), ``status`` (answer ``status``),
``slow`` (answer after ``delay_s``), ``hang`` (never answer), ``reset`` (send headers and half
the body, then reset the connection), ``dead`` (the listening socket is closed: connection
refused). ``download`` bytes of zeros are streamed for ``GET /download``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time

from registry.demo_backends import JSONHandler, QuietHTTPServer
from tests.support.net import POLL_S


class ProxyBackend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "ok"
        self.status = 200
        self.delay_s = 0.0
        self.retry_after: str | None = None
        # reset: the body declared, and how much of it goes out before the reset
        self.reset_declared, self.reset_after = 20_000, 10_000
        self.hits = 0
        self.seen: list[dict] = []
        self._release = threading.Event()
        self._connections: set[socket.socket] = set()
        backend = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                backend._connections.add(self.connection)

            def finish(self):
                backend._connections.discard(self.connection)
                super().finish()

            def _any(self):
                backend.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = b""
                remaining = length
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    body += chunk if len(body) < 1 << 16 else b""
                    remaining -= len(chunk)
                backend.seen.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "peer": self.client_address,
                    }
                )
                mode = backend.mode
                if mode == "hang":
                    backend._release.wait(30)
                    return
                if mode == "slow":
                    time.sleep(backend.delay_s)
                if mode == "reset":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(backend.reset_declared))
                    self.end_headers()
                    self.wfile.write(b"x" * backend.reset_after)
                    self.wfile.flush()
                    # RST instead of FIN: SO_LINGER with a zero timeout.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if self.path.startswith("/download"):
                    size = int(self.path.rsplit("=", 1)[-1]) if "=" in self.path else 0
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    block = b"\0" * (1 << 20)
                    sent = 0
                    while sent < size:
                        part = block[: min(len(block), size - sent)]
                        self.wfile.write(part)
                        sent += len(part)
                    return
                status = backend.status if mode == "status" else 200
                raw = json.dumps(
                    {
                        "service": backend.name,
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body_bytes": length,
                        "body": body[:1000].decode("latin-1"),
                    }
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("X-Backend", backend.name)
                if self.path.startswith("/login"):
                    self.send_header("Set-Cookie", "session=s3cret; Path=/; HttpOnly")
                    self.send_header("Set-Cookie", "theme=dark; Path=/")
                if status == 429 and backend.retry_after:
                    self.send_header("Retry-After", backend.retry_after)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Stop listening: new connections are refused."""
        self.mode = "dead"
        self.server.shutdown()
        self.server.server_close()
        for conn in list(self._connections):  # a dead process's sockets close too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._release.set()
        if self.mode != "dead":
            self.kill()
