"""The strategy override list reads who created each override with the page, not per row.

Overrides are ended rather than deleted, so the list grows; it ran one ``auth_user`` query per
row for the "created by" column (101 queries for a page of 100).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.models import StrategyOverride

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/routing/strategyoverride/"


@pytest.fixture
def overrides(django_user_model):
    creators = [
        django_user_model.objects.create_user(f"op-{i}", password="pw-12345678", is_staff=True)
        for i in range(6)
    ]
    StrategyOverride.objects.bulk_create(
        StrategyOverride(
            strategy="semantic", scope="request_type", request_type=f"t-{i}", created_by=user
        )
        for i, user in enumerate(creators * 5)
    )
    return creators


def _queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    return len(queries.captured_queries)


def test_the_page_costs_the_same_queries_for_few_or_many_overrides(client, operator, overrides):
    client.force_login(operator)
    many = _queries(client)
    page = client.get(CHANGELIST).content.decode()
    StrategyOverride.objects.filter(pk__in=StrategyOverride.objects.all()[3:]).delete()
    few = _queries(client)

    assert many == few
    assert "op-5" in page  # the column still names the creator
