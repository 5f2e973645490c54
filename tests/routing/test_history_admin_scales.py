"""The routing history changelist never counts the whole table, and only filters on indexes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from routing.admin import HistoryPaginator, RoutingDecisionAdmin
from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db


@pytest.fixture
def many_decisions(monkeypatch):
    # More rows than the paginator counts exactly (the limit is lowered to keep this fast).
    monkeypatch.setattr(HistoryPaginator, "EXACT_LIMIT", 150)
    now = timezone.now()
    RoutingDecision.objects.bulk_create(
        RoutingDecision(
            request_id=f"r-{i}",
            requested_strategy="semantic",
            strategy="semantic" if i % 2 else "power_of_two",
            primary_service="svc-a",
            decided_at=now,
        )
        for i in range(400)
    )


def _counts(queries) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


@pytest.mark.parametrize(
    "query", ["", "?strategy=semantic", "?p=1", "?outcome=none", "?q=r-7", "?service=svc-a"]
)
def test_the_changelist_runs_no_count(admin_client, many_decisions, query):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"/admin/routing/routingdecision/{query}")

    assert response.status_code == 200
    assert _counts(queries.captured_queries) == []


def test_a_long_history_still_pages(admin_client, many_decisions):
    response = admin_client.get("/admin/routing/routingdecision/?p=1")

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 150
    assert response.context["cl"].multi_page


def test_search_is_an_exact_match(admin_client, many_decisions):
    response = admin_client.get("/admin/routing/routingdecision/?q=r-7")

    assert [d.request_id for d in response.context["cl"].result_list] == ["r-7"]


def test_every_list_filter_is_an_indexed_column():
    meta = RoutingDecision._meta
    indexed = {meta.get_field(f).column for f in ("decided_at", "strategy", "primary_service")}
    for index in meta.indexes:
        indexed.add(meta.get_field(index.fields[0]).column)
    filtered = {"strategy", "primary_service", "success", "no_eligible_service", "decided_at"}

    assert filtered <= indexed
    assert RoutingDecisionAdmin.show_full_result_count is False
    assert RoutingDecisionAdmin.date_hierarchy == "decided_at"
