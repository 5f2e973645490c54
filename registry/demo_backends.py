"""Stand-in HTTP services for the demo fleet, so `make run` has something real to route to.

Each demo service gets a small threaded HTTP server on its registered port: ``GET <health
path>`` answers 200, ``POST /`` answers JSON after a latency typical of its type (with a little
jitter) and fails now and then, so breakers, EWMA latency, rebalancing and the dashboard have
real behaviour to show. Profiles are deterministic per service id.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that drops a keep-alive connection is normal here, not an error to print."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class JSONHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and logs nothing."""

    def log_message(self, *args):
        pass

    def reply(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


# (mean latency ms, failure probability) by service type
PROFILES = {
    "inference": (40.0, 0.01),
    "storage": (8.0, 0.002),
    "consensus": (15.0, 0.005),
    "analysis": (25.0, 0.01),
    "neuromorphic": (5.0, 0.02),
    "learning": (60.0, 0.02),
    "custom": (20.0, 0.01),
}


class DemoBackend:
    def __init__(self, service_id: str, service_type: str, port: int, health_path: str):
        latency, failure = PROFILES.get(service_type, (20.0, 0.01))
        # Spread services of one type a little, so strategies have differences to find.
        spread = 0.5 + (zlib.crc32(service_id.encode()) % 100) / 100
        self.latency_s = latency * spread / 1000
        self.failure = failure
        self.rng = random.Random(service_id)
        backend = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if urlsplit(self.path).path == health_path:
                    self.reply(200, {"service": service_id, "status": "ok"})
                else:
                    self.reply(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                time.sleep(backend.latency_s * backend.rng.uniform(0.7, 1.3))
                if backend.rng.random() < backend.failure:
                    self.reply(503, {"service": service_id, "error": "overloaded"})
                    return
                self.reply(200, {"service": service_id, "bytes": len(payload), "ok": True})

        self.server = QuietHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    def serve(self) -> threading.Thread:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        return thread
