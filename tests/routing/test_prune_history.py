"""Routing history older than the retention period is deleted; recent rows stay."""

from datetime import timedelta

import pytest
from django.utils import timezone

from routing.history import prune_history
from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db


def _row(request_id, age_days):
    return RoutingDecision.objects.create(
        request_id=request_id,
        requested_strategy="semantic",
        strategy="semantic",
        decided_at=timezone.now() - timedelta(days=age_days),
    )


def test_rows_older_than_the_retention_are_deleted(settings):
    settings.MOE_HISTORY_RETENTION_DAYS = 7
    _row("old-1", 8)
    _row("old-2", 30)
    _row("new", 1)

    assert prune_history() == 2
    assert list(RoutingDecision.objects.values_list("request_id", flat=True)) == ["new"]
    assert prune_history() == 0
