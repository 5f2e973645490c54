"""Real HTTP backends on 127.0.0.1 for forwarding and health-probe tests (no mocks)."""

from __future__ import annotations

import json
import threading
import time

from registry.demo_backends import JSONHandler, QuietHTTPServer
from tests.support.net import POLL_S


class Backend:
    """A tiny HTTP service: answers POST / with JSON and GET /health; behaviour is settable."""

    def __init__(self, name: str, status: int = 200, delay_s: float = 0.0) -> None:
        self.name = name
        self.status = status
        self.health_status = 200
        self.delay_s = delay_s
        self.received: list[object] = []
        backend = self

        class Handler(JSONHandler):
            def do_GET(self):
                self.reply(backend.health_status, {"service": backend.name, "ok": True})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                backend.received.append(payload)
                time.sleep(backend.delay_s)
                self.reply(backend.status, {"service": backend.name, "echo": payload})

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
