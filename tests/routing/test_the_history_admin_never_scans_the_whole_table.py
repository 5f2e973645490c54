"""Every page of the routing history admin stays an index lookup, whatever the table holds.

At three million rows (PostgreSQL) a plain changelist took 2-5 s per page, and more with every
row: the strategy filter ran ``SELECT DISTINCT strategy`` and the date drill-down
``SELECT DISTINCT date_trunc(...)`` over the whole table on every page, a click on a column
header sorted every row, and the page links reached an ``OFFSET`` of millions. The count shown
beyond the exact limit read as exact ("10000 routing decisions").
"""

from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from routing.admin import HistoryPaginator
from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/routing/routingdecision/"


@pytest.fixture
def operator_admin(client, operator):
    client.force_login(operator)
    return client


def _decision(i: int, when: datetime, strategy: str = "semantic") -> RoutingDecision:
    return RoutingDecision(
        request_id=f"r-{i}",
        request_type="inference",
        requested_strategy="adaptive",
        strategy=strategy,
        primary_service="svc-a",
        decided_at=when,
    )


@pytest.fixture
def three_days():
    """Decisions on three days: two in January 2026, one in March 2025."""
    days = [(2025, 3, 10), (2026, 1, 5), (2026, 1, 20)]
    RoutingDecision.objects.bulk_create(
        _decision(i, timezone.make_aware(datetime(*day, 12, 0))) for i, day in enumerate(days * 3)
    )


@pytest.fixture
def many_decisions(monkeypatch):
    monkeypatch.setattr(HistoryPaginator, "EXACT_LIMIT", 150)
    now = timezone.now()
    RoutingDecision.objects.bulk_create(
        _decision(i, now, "semantic" if i % 2 else "power_of_two") for i in range(400)
    )


def _sql(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"].upper() for q in queries.captured_queries]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?strategy=semantic",
        "?q=inference",
        "?outcome=none",
        "?decided_at__year=2026",
        "?decided_at__year=2026&decided_at__month=1",
        "?decided_at__year=2026&decided_at__month=1&decided_at__day=5",
    ],
)
def test_no_page_reads_distinct_values_of_the_whole_table(operator_admin, three_days, query):
    statements = _sql(operator_admin, CHANGELIST + query)

    assert [s for s in statements if "DISTINCT" in s] == []


def test_the_strategy_filter_offers_every_known_strategy(operator_admin, three_days):
    from routing.core.strategies import STRATEGY_NAMES

    page = operator_admin.get(CHANGELIST).content.decode()

    for name in STRATEGY_NAMES:
        assert f"?strategy={name}" in page
    filtered = operator_admin.get(CHANGELIST + "?strategy=power_of_two")
    assert list(filtered.context["cl"].result_list) == []
    assert len(operator_admin.get(CHANGELIST + "?strategy=semantic").context["cl"].result_list)


def test_the_date_drill_down_offers_the_years_months_and_days_that_hold_decisions(
    operator_admin, three_days
):
    top = operator_admin.get(CHANGELIST).content.decode()
    assert "?decided_at__year=2025" in top and "?decided_at__year=2026" in top

    year = operator_admin.get(CHANGELIST + "?decided_at__year=2026").content.decode()
    assert "decided_at__month=1" in year
    assert "decided_at__month=2" not in year and "decided_at__month=3" not in year

    month = operator_admin.get(CHANGELIST + "?decided_at__year=2026&decided_at__month=1")
    page = month.content.decode()
    assert "decided_at__day=5" in page and "decided_at__day=20" in page
    assert "decided_at__day=6" not in page
    assert len(month.context["cl"].result_list) == 6


def test_only_indexed_columns_sort(operator_admin, three_days):
    # Columns 6-10 (confidence ... status code): sorting by them would sort every row.
    for column in ("6", "-8", "9", "10"):
        statements = _sql(operator_admin, f"{CHANGELIST}?o={column}")
        orders = [
            s.split("ORDER BY", 1)[1]
            for s in statements
            if "ROUTINGDECISION" in s and "ORDER BY" in s
        ]
        for unindexed in ("CONFIDENCE", '"SUCCESS"', "LATENCY_MS", "STATUS_CODE"):
            assert not [o for o in orders if unindexed in o]
    page = operator_admin.get(CHANGELIST).content.decode()
    assert 'class="sortable' in page  # decided_at still sorts
    assert page.count('class="sortable') == 2


@pytest.fixture
def planner_estimate(monkeypatch):
    """PostgreSQL's estimate of the unfiltered table (``pg_class.reltuples``), as it would be
    with millions of rows."""
    monkeypatch.setattr(HistoryPaginator, "_estimate", staticmethod(lambda queryset: 3_000_000))


def test_the_page_links_stop_where_the_exact_count_stops(
    operator_admin, many_decisions, planner_estimate
):
    response = operator_admin.get(CHANGELIST)
    paginator = response.context["cl"].paginator

    assert paginator.count == 3_000_000
    assert paginator.num_pages == 2  # 150 rows at 100 a page: no OFFSET of millions
    assert operator_admin.get(CHANGELIST + "?p=2").status_code == 200
    assert operator_admin.get(CHANGELIST + "?p=3").status_code == 302  # Django's "?e=1"
    assert "about 3,000,000 routing decisions" in response.content.decode()


def test_a_count_beyond_the_exact_limit_does_not_read_as_exact(operator_admin, many_decisions):
    page = operator_admin.get(CHANGELIST).content.decode()

    assert "more than 150 routing decisions" in page
    assert "the first 150 are paged" in page
    assert "150 routing decisions" not in page.replace("more than 150 routing decisions", "")


def test_a_short_history_shows_its_exact_count(operator_admin, three_days):
    page = operator_admin.get(CHANGELIST).content.decode()

    assert "9 routing decisions" in page
    assert "are paged" not in page
