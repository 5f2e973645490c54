"""Pruning: routing history older than the retention period goes, in small batches."""

from __future__ import annotations

from django.conf import settings

# Rows deleted per statement when pruning: small enough not to hold long locks.
PRUNE_BATCH_SIZE = 5000


def prune_history(retention_days: float | None = None) -> int:
    """Delete routing history older than ``MOE_HISTORY_RETENTION_DAYS``; returns rows deleted."""
    from datetime import timedelta

    from django.utils import timezone

    from routing.models import RoutingDecision

    days = settings.MOE_HISTORY_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(
            RoutingDecision.objects.filter(decided_at__lt=cutoff).values_list("id", flat=True)[
                :PRUNE_BATCH_SIZE
            ]
        )
        if not ids:
            return deleted
        deleted += RoutingDecision.objects.filter(id__in=ids).delete()[0]
