"""Several flushes at once (more Celery worker processes, as docs/DEPLOY.md advises under heavy
batch traffic) share the history stream: each decision is written once and every outcome lands
on its row, also one read by another flush while its decision's transaction was still open
(that flush cannot see the row yet: it carries the outcome to a later flush). PostgreSQL +
Redis pass (the stream)."""

import threading

import pytest
from django.db import connection

from routing.history import flush as flush_module
from routing.history import flush_history
from routing.history.buffers import STREAM_GROUP, STREAM_KEY
from routing.models import RoutingDecision
from routing.runtime import get_router

pytestmark = pytest.mark.django_db(transaction=True)

ROUTED = 30


def route_and_report(client, n: int) -> list[str]:
    """``n`` routed requests, each reported right after it is routed: the stream holds decision,
    outcome, decision, outcome, ..."""
    ids = []
    for i in range(n):
        routed = client.post("/api/v1/route", {"data": {"type": "inference"}}, format="json")
        body = routed.json()
        report = client.post(
            f"/api/v1/route/{body['request_id']}/outcome",
            {"service_id": body["selected_services"][0], "success": i % 3 != 0, "latency_ms": i},
            format="json",
        )
        assert report.status_code == 200
        ids.append(body["request_id"])
    return ids


def test_flushes_at_once_write_every_decision_once_with_its_outcome(
    client_api, fleet, settings, monkeypatch
):
    if not settings.REDIS_URL:
        pytest.skip("the history stream: the PostgreSQL + Redis pass")
    # Small reads and transactions, so the two flushes take turns through the stream.
    monkeypatch.setattr(flush_module, "STREAM_FIRST_READ_COUNT", 1)
    monkeypatch.setattr(flush_module, "STREAM_READ_COUNT", 2)
    monkeypatch.setattr(flush_module, "MAX_RECORDS_PER_APPLY", 2)
    ids = route_and_report(client_api, ROUTED)

    # Flush A holds its first transaction (the first decision) open until flush B has applied
    # what it read first (that decision's outcome).
    a_holds, b_applied = threading.Event(), threading.Event()
    carried_by_b: list[int] = []
    apply = flush_module.apply_records

    def gated(records):
        name = threading.current_thread().name
        if name == "flush-a" and not a_holds.is_set():
            a_holds.set()
            assert b_applied.wait(30), "flush B never applied anything"
        result = apply(records)
        if name == "flush-b" and not b_applied.is_set():
            carried_by_b.append(len(result[1]))
            b_applied.set()
        return result

    monkeypatch.setattr(flush_module, "apply_records", gated)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            flush_history()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    flush_a = threading.Thread(target=run, name="flush-a")
    flush_a.start()
    assert a_holds.wait(30)
    flush_b = threading.Thread(target=run, name="flush-b")
    flush_b.start()
    flush_a.join(60)
    flush_b.join(60)
    assert not errors, errors
    # B read the first outcome while A's transaction held its decision: it carried it.
    assert carried_by_b == [1]

    flush_history()  # the next scheduled flush

    rows = RoutingDecision.objects.filter(request_id__in=ids)
    assert rows.count() == ROUTED
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(ids)
    outcomes = dict(rows.values_list("request_id", "success"))
    assert outcomes == {rid: i % 3 != 0 for i, rid in enumerate(ids)}
    client = get_router().redis_client
    assert client.xlen(STREAM_KEY) == 0
    assert client.xpending(STREAM_KEY, STREAM_GROUP)["pending"] == 0
