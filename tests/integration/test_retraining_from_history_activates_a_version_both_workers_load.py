"""Retraining from recorded history yields a new active gate version that both workers load.

Routed requests with reported outcomes (one service fast and successful for the request type,
the other failing) are flushed into the PostgreSQL history by the ``routing.flush_history``
task, then ``routing.retrain_gate`` runs in the real Celery worker. The new GateModel version is
the active one, and both uvicorn workers load it without a restart (``gate_version`` in
``GET /api/v1/metrics`` and in the health report).
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.stack import wait_known, wait_until

pytestmark = pytest.mark.integration

# Enough that the newest 20% (held out for the off-policy evaluation) gives an effective
# sample size above MOE_OPE_MIN_ESS (30) on its own, whatever other tests left in history.
EXAMPLES = 400


def test_retraining_from_history_activates_a_version_both_workers_load(cluster, uid):
    a, b = cluster.a, cluster.b
    cap = f"gate-{uid}"
    good, bad = f"gate-{uid}-good", f"gate-{uid}-bad"
    for service_id in (good, bad):
        a.register(service_id, [cap], max_capacity=1000)
    wait_known([a, b], [good, bad])
    with cluster.scaleout.db() as conn:
        before = conn.execute("SELECT max(version) FROM routing_gatemodel").fetchone()[0] or 0

    # Recorded history: half the batch through each worker, every outcome reported.
    routed = []
    for api, part in ((a, range(0, EXAMPLES, 2)), (b, range(1, EXAMPLES, 2))):
        items = [
            {"type": f"it-gate-{uid}", "capabilities": [cap], "key": f"{uid}-{i}", "priority": 0.7}
            for i in part
        ]
        body = api.ok(
            api.post(
                "/api/v1/route/batch", {"requests": items, "routing_strategy": "consistent_hash"}
            )
        )
        routed += [(api, r["request_id"], r["selected_services"][0]) for r in body["results"]]
    chosen = {sid for _, _, sid in routed}
    assert chosen == {good, bad}, f"the keys should spread over both services: {chosen}"

    def report(job):
        api, request_id, service_id = job
        if service_id == good:
            return api.outcome(request_id, service_id, True, 8.0, 200)
        return api.outcome(request_id, service_id, False, 900.0, 502)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(r["recorded"] for r in pool.map(report, routed))

    flushed = cluster.run_task("routing.flush_history")
    assert flushed["decisions"] >= EXAMPLES and flushed["outcomes"] >= EXAMPLES, flushed
    ids = [request_id for _, request_id, _ in routed]
    with cluster.scaleout.db() as conn:
        with_outcome = conn.execute(
            "SELECT count(*) FROM routing_routingdecision"
            " WHERE request_id = ANY(%s) AND success IS NOT NULL",
            (ids,),
        ).fetchone()[0]
    assert with_outcome == EXAMPLES

    result = cluster.run_task("routing.retrain_gate", timeout=180)
    print(f"\nretrain_gate: {result}")
    assert result["trained"] is True, result
    assert result["version"] > before
    assert result["activated"] is True, result
    version = result["version"]

    with cluster.scaleout.db() as conn:
        active = conn.execute("SELECT version FROM routing_gatemodel WHERE active").fetchall()
        metrics = conn.execute(
            "SELECT validation_metrics FROM routing_gatemodel WHERE version = %s", (version,)
        ).fetchone()[0]
    assert active == [(version,)]
    assert "loss" in metrics, metrics

    # Both web workers pick the new version up without a restart.
    for api in (a, b):
        _, took = wait_until(
            lambda api=api: api.metrics()["gate_version"] == version,
            5.0,
            f"{api.base_url} to load gate v{version}",
        )
        assert api.health()["checks"]["router"]["gate_version"] == version
        print(f"{api.base_url} serves gate v{version} ({took:.2f} s after activation)")
    # ... and still routes with it.
    for api in (a, b):
        gated = api.ok(api.route({"type": f"it-gate-{uid}", "capabilities": [cap]}, "top_k"))
        assert set(gated["selected_services"]) <= {good, bad}
