"""Killing a web worker mid-load loses no acknowledged decision once history is flushed.

Threads drive ``POST /api/v1/route`` at a dedicated uvicorn worker; the worker is SIGKILLed
mid-run. Every request id that got a 200 must then be in the PostgreSQL routing history
exactly once after the flush job (run by the real Celery worker), with the services the client
was told; a second flush changes nothing.
"""

import json
import threading
import time

import httpx
import pytest

from tests.integration.stack import Api, WebServer, forget, wait_known

pytestmark = pytest.mark.integration

THREADS = 4
KILL_AFTER_ACKS = 150


@pytest.fixture
def victim(cluster):
    server = WebServer("web-victim", cluster.scaleout.env(), cluster.scaleout.log_dir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        forget([server])


def test_killing_a_web_worker_loses_no_acknowledged_decision(cluster, victim, uid):
    cap = f"kill-{uid}"
    ids = [f"kill-{uid}-{i}" for i in range(3)]
    for service_id in ids:
        cluster.a.register(service_id, [cap])
    api = Api(victim.url, cluster.token)
    wait_known([api], ids)
    api.close()

    acked: dict[str, list[str]] = {}
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    body = {"data": {"type": "it-kill", "capabilities": [cap]}, "routing_strategy": "power_of_two"}

    def drive() -> None:
        headers = {"Authorization": f"Bearer {cluster.token}"}
        with httpx.Client(base_url=victim.url, headers=headers, timeout=10.0) as client:
            while not stop.is_set():
                try:
                    response = client.post("/api/v1/route", json=body)
                except httpx.TransportError:
                    return  # the worker is gone
                with lock:
                    if response.status_code == 200:
                        data = response.json()
                        acked[data["request_id"]] = data["selected_services"]
                    else:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while len(acked) < KILL_AFTER_ACKS and time.monotonic() - started < 20:
        time.sleep(0.01)
    victim.kill()  # SIGKILL mid-load: requests are in flight right now
    killed_at = len(acked)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    assert not failures, failures[:5]
    assert killed_at >= 20, f"only {killed_at} requests acknowledged before the kill"
    print(f"\n{len(acked)} decisions acknowledged before SIGKILL of {victim.name}")

    flushed = cluster.run_task("routing.flush_history")
    print(f"flush: {flushed}")

    def history() -> dict[str, tuple[int, list[str]]]:
        with cluster.scaleout.db() as conn:
            rows = conn.execute(
                "SELECT request_id, count(*), min(selected_services::text)"
                " FROM routing_routingdecision WHERE request_id = ANY(%s) GROUP BY request_id",
                (list(acked),),
            ).fetchall()
        return {rid: (n, json.loads(sel)) for rid, n, sel in rows}

    found = history()
    lost = sorted(set(acked) - set(found))
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged decisions lost: {lost[:5]}"
    assert all(n == 1 for n, _ in found.values())
    wrong = {rid: (sel, acked[rid]) for rid, (_, sel) in found.items() if sel != acked[rid]}
    assert not wrong, list(wrong.items())[:5]

    cluster.run_task("routing.flush_history")
    assert history() == found
