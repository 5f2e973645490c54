"""The demo fleet's stand-in services answer health probes and forwarded requests."""

import httpx

from registry.demo_backends import DemoBackend


def test_a_demo_backend_answers_health_and_requests():
    backend = DemoBackend("vector-store", "storage", 0, "/healthz")
    backend.serve()
    port = backend.server.server_address[1]
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        missing = httpx.get(f"http://127.0.0.1:{port}/nope")
        answers = [httpx.post(f"http://127.0.0.1:{port}/", json={"x": 1}) for _ in range(20)]
    finally:
        backend.server.shutdown()
        backend.server.server_close()

    assert health.status_code == 200
    assert missing.status_code == 404
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) >= 18  # storage fails 0.2% of the time
    assert ok[0].json() == {"service": "vector-store", "bytes": 7, "ok": True}
