"""Domain operations of the routing app: overrides. API views and admin call these."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from registry.services import bump_registry_version
from routing.models import StrategyOverride


def create_override(
    *,
    strategy: str,
    scope: str,
    request_type: str = "",
    top_k: int | None = None,
    ttl_seconds: int | None = None,
    reason: str = "",
    user=None,
) -> StrategyOverride:
    """Pin a strategy. Every worker picks it up with the next registry version."""
    expires_at = timezone.now() + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    with transaction.atomic():
        override = StrategyOverride.objects.create(
            strategy=strategy,
            scope=scope,
            request_type=request_type if scope == "request_type" else "",
            top_k=top_k,
            reason=reason,
            expires_at=expires_at,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        bump_registry_version()
    return override


def end_override(override_id: int) -> StrategyOverride:
    """End an override now. Raises StrategyOverride.DoesNotExist for an unknown or ended one."""
    with transaction.atomic():
        override = StrategyOverride.objects.active().select_for_update().get(pk=override_id)
        override.ended_at = timezone.now()
        override.save(update_fields=["ended_at", "updated_at"])
        bump_registry_version()
    return override
