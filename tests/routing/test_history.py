"""History loses nothing: after a flush every routed request is in the table exactly once."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connection

from routing.history import flush_history
from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_single_and_batch_routes_are_each_recorded_once(api_for, fleet, client_user):
    # given: several clients routing at once, singles and batches
    def single(_):
        client = api_for(client_user)
        try:
            body = client.post("/api/v1/route", {"data": {}}, format="json").json()
        finally:
            connection.close()  # each thread has its own connection
        return [body["request_id"]]

    def batch(_):
        client = api_for(client_user)
        try:
            body = client.post(
                "/api/v1/route/batch", {"requests": [{"key": i} for i in range(25)]}, format="json"
            ).json()
        finally:
            connection.close()
        return [r["request_id"] for r in body["results"]]

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = [rid for chunk in pool.map(single, range(30)) for rid in chunk]
        ids += [rid for chunk in pool.map(batch, range(8)) for rid in chunk]

    # when
    flush_history()
    flush_history()  # a second flush must not duplicate anything

    # then
    assert len(ids) == 30 + 8 * 25
    stored = list(RoutingDecision.objects.values_list("request_id", flat=True))
    assert sorted(stored) == sorted(ids)


def test_flush_command_writes_the_buffer(client_api, fleet, capsys):
    for _ in range(3):
        client_api.post("/api/v1/route", {"data": {"type": "inference"}}, format="json")

    call_command("flush_history")

    assert RoutingDecision.objects.count() == 3
    assert "flushed 3 decisions" in capsys.readouterr().out


def test_the_row_holds_the_decision(client_api, fleet):
    body = client_api.post(
        "/api/v1/route",
        {
            "data": {"type": "analysis", "capabilities": ["processing"]},
            "routing_strategy": "semantic",
        },
        format="json",
    ).json()

    flush_history()

    row = RoutingDecision.objects.get(request_id=body["request_id"])
    assert row.strategy == "semantic"
    assert row.requested_strategy == "semantic"
    assert row.selected_services == ["ana-a"]
    assert row.primary_service == "ana-a"
    assert row.request_type == "analysis"
    assert row.features["capabilities"] == ["processing"]
    # the fleet context the adaptive policy learns from: utilisation, eligible share, ...
    assert len(row.features["context"]) == 4
    assert row.features["context"][1] == 1.0  # every service eligible
    assert row.success is None
