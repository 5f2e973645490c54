"""POST /api/v1/load/rebalance runs in a real Celery worker; both web workers use the result.

Outcomes reported through the API make one service fast and one slow (shared EWMA latency in
Redis). The rebalance job, queued by worker A and executed by a separate ``celery worker``
process, moves their weights apart in PostgreSQL and bumps the registry version; worker B
reports the job's state, and both web workers reload their fleet snapshot.
"""

import time

import pytest

from tests.integration.stack import wait_known, wait_until

pytestmark = pytest.mark.integration

FAST_MS, SLOW_MS = 5.0, 600.0


def test_rebalance_runs_in_celery_and_both_workers_use_the_new_weights(cluster, uid):
    a, b = cluster.a, cluster.b
    cap = f"reb-{uid}"
    fast, slow = f"reb-{uid}-fast", f"reb-{uid}-slow"
    for service_id in (fast, slow):
        a.register(service_id, [cap], max_capacity=100, weight=1.0)
    wait_known([a, b], [fast, slow])

    # Skew the live latency: keys spread over both services; every outcome is reported.
    reported = {fast: 0, slow: 0}
    for i in range(200):
        if min(reported.values()) >= 8:
            break
        api = (a, b)[i % 2]
        routed = api.ok(api.route({"capabilities": [cap], "key": f"{uid}-{i}"}, "consistent_hash"))
        service_id = routed["selected_services"][0]
        latency = FAST_MS if service_id == fast else SLOW_MS
        api.outcome(routed["request_id"], service_id, True, latency)
        reported[service_id] += 1
    assert min(reported.values()) >= 8, reported
    live = {sid: a.service(sid)["live"]["ewma_latency_ms"] for sid in (fast, slow)}
    assert live[slow] > 10 * live[fast], live

    queued = a.ok(a.post("/api/v1/load/rebalance"), 202)
    task_id = queued["task_id"]

    def finished():
        body = b.ok(b.get(f"/api/v1/load/rebalance/{task_id}"))
        return body if body["state"] in ("SUCCESS", "FAILURE") else None

    status, took = wait_until(finished, 60.0, f"rebalance task {task_id}", interval=0.2)
    print(f"\nrebalance task reached {status['state']} in {took:.2f} s")
    assert status["state"] == "SUCCESS", status
    result = status["result"]
    assert slow in result["changed"], result
    assert result["changed"][slow]["from"] == pytest.approx(1.0)
    assert result["changed"][slow]["to"] < 1.0
    assert result["registry_version"] is not None

    with cluster.scaleout.db() as conn:
        rows = dict(
            conn.execute(
                "SELECT service_id, weight FROM registry_service WHERE service_id = ANY(%s)",
                ([fast, slow],),
            ).fetchall()
        )
    assert rows[slow] == pytest.approx(result["changed"][slow]["to"])
    assert rows[fast] == pytest.approx(result["changed"].get(fast, {"to": 1.0})["to"])
    assert rows[fast] > rows[slow], rows

    # Both web workers serve the new weights and have rebuilt their snapshot at that version.
    started = time.monotonic()
    for api in (a, b):
        wait_until(
            lambda api=api: api.metrics()["registry_version"] >= result["registry_version"],
            3.0,
            f"{api.base_url} to reload registry version {result['registry_version']}",
        )
        for sid in (fast, slow):
            assert api.service(sid)["weight"] == pytest.approx(rows[sid])
    print(f"both web workers on the new weights {time.monotonic() - started:.2f} s later")
