"""Serve stand-in HTTP services on the demo fleet's ports (127.0.0.1 only) until stopped."""

import time
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand

from registry.demo_backends import DemoBackend
from registry.management.commands.seed_demo_fleet import DEMO_FLEET


class Command(BaseCommand):
    help = "Run stand-in HTTP services for the demo fleet on 127.0.0.1."

    def handle(self, *args, **options):
        started = []
        for payload in DEMO_FLEET:
            url = urlsplit(payload["endpoint"])
            if url.hostname != "127.0.0.1":
                continue
            try:
                backend = DemoBackend(
                    payload["service_id"],
                    payload["service_type"],
                    url.port,
                    payload.get("health_path", "/health"),
                )
            except OSError as exc:
                self.stderr.write(f"{payload['service_id']}: port {url.port} unavailable ({exc})")
                continue
            backend.serve()
            started.append(payload["service_id"])
        self.stdout.write(f"demo backends serving: {', '.join(started)}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
