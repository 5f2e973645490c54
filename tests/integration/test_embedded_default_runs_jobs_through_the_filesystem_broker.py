"""The embedded default (no PostgreSQL, no Redis) runs the whole job machinery on one machine.

With only a temporary ``MOE_VAR_DIR`` (SQLite, local state, kombu's filesystem broker, file
result backend) the database is migrated and seeded, then uvicorn and
``celery -A moe_project worker -B`` start exactly as ``.ci/serve`` starts them.
``POST /api/v1/load/rebalance`` reaches SUCCESS through the filesystem broker, and routed
requests land in the SQLite history through the beat-scheduled flush job (every 5 s, a schedule
created by migration ``routing/0002_default_schedules``).
"""

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.conftest import EMBEDDED_REASON, scaleout_pass
from tests.integration.stack import (
    Api,
    CeleryWorker,
    WebServer,
    base_env,
    forget,
    manage,
    obtain_token,
    start_all,
    wait_known,
    wait_until,
)
from tests.support.net import POLL_S

pytestmark = pytest.mark.integration

ROUTES = 25
SETUP = """
call_command("migrate", interactive=False, verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
call_command("seed_demo_fleet")
"""


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def healthy_endpoint():
    """A service endpoint that answers the beat's health probes (the demo fleet's do not)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def embedded(tmp_path_factory):
    if scaleout_pass():
        pytest.skip(EMBEDDED_REASON)
    root = tmp_path_factory.mktemp("moe-embedded")
    var_dir = root / "var"
    env = base_env(MOE_VAR_DIR=str(var_dir))
    manage(env, SETUP, root, "setup-embedded")
    web = WebServer("embedded-web", env, root)
    worker = CeleryWorker(
        "embedded-celery",
        env,
        root,
        ["-B", "--loglevel", "INFO", "--concurrency", "1"],
    )
    try:
        start_all([web, worker])
        yield web, worker, var_dir / "db.sqlite3"
    finally:
        for proc in (web, worker):
            proc.stop()
        forget([web, worker])


def test_embedded_default_runs_jobs_through_the_filesystem_broker(embedded, healthy_endpoint, uid):
    web, worker, sqlite_path = embedded
    api = Api(web.url, obtain_token(web.url))
    cap = f"emb-{uid}"
    service_id = f"emb-{uid}"
    api.register(service_id, [cap], endpoint=healthy_endpoint)
    wait_known([api], [service_id])
    health = api.health()
    assert health["checks"]["database"]["vendor"] == "sqlite"
    assert health["checks"]["redis"]["status"] == "not_configured"

    # A job through the filesystem broker, its result through the file result backend.
    task_id = api.ok(api.post("/api/v1/load/rebalance"), 202)["task_id"]

    def finished():
        body = api.ok(api.get(f"/api/v1/load/rebalance/{task_id}"))
        return body if body["state"] in ("SUCCESS", "FAILURE") else None

    status, took = wait_until(finished, 60.0, f"rebalance {task_id}", interval=0.25)
    print(f"\nrebalance through the filesystem broker: {status['state']} in {took:.2f} s")
    assert status["state"] == "SUCCESS", status
    assert status["result"]["services"] >= 12, status["result"]
    assert f"Task telemetry.rebalance[{task_id}] succeeded" in worker.log_text()

    # Routes reach the SQLite history through the beat-scheduled flush job alone.
    routed = {}
    for i in range(ROUTES):
        body = api.ok(api.route({"type": "it-embedded", "capabilities": [cap], "key": i}))
        routed[body["request_id"]] = body["selected_services"]
    assert all(selected == [service_id] for selected in routed.values())
    routed_at = time.monotonic()

    def history():
        conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=10)
        try:
            marks = ",".join("?" * len(routed))
            return conn.execute(
                "SELECT request_id, count(*), min(selected_services)"
                f" FROM routing_routingdecision WHERE request_id IN ({marks})"
                " GROUP BY request_id",
                list(routed),
            ).fetchall()
        finally:
            conn.close()

    rows, took = wait_until(
        lambda: (found := history()) and len(found) == len(routed) and found,
        45.0,
        "the beat's flush job to write every routed request",
        interval=0.5,
    )
    print(
        f"all {len(routed)} routes in the SQLite history {time.monotonic() - routed_at:.1f} s later"
    )
    assert all(n == 1 for _, n, _ in rows)
    assert {rid: json.loads(sel) for rid, _, sel in rows} == routed
    log = worker.log_text()
    assert "Sending due task moe: flush routing history (routing.flush_history)" in log
    # The flush job's heartbeat tells the health check that worker and beat are alive.
    assert api.health()["checks"]["celery"]["status"] == "ok"
    api.close()
