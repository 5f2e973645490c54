"""Real HTTP backends on 127.0.0.1 for forwarding and health-probe tests (no mocks)."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    """A client that drops a keep-alive connection is normal here, not an error to print."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Backend:
    """A tiny HTTP service: answers POST / with JSON and GET /health; behaviour is settable."""

    def __init__(self, name: str, status: int = 200, delay_s: float = 0.0) -> None:
        self.name = name
        self.status = status
        self.health_status = 200
        self.delay_s = delay_s
        self.received: list[object] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._reply(backend.health_status, {"service": backend.name, "ok": True})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                backend.received.append(payload)
                time.sleep(backend.delay_s)
                self._reply(backend.status, {"service": backend.name, "echo": payload})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
