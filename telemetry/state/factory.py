"""Build the live-state store the settings ask for (the only Django-aware part of the package).

``MOE_STATE_BACKEND`` picks ``local`` (one process, the embedded default) or ``redis`` (shared
by every worker, needs ``REDIS_URL``). Every selection is a lease on its service that an
unreported request gives up after the service's expected service time:
``MOE_LEASE_LATENCY_FACTOR`` x its latency EWMA within [``MOE_LEASE_MIN_SECONDS``,
``MOE_LEASE_MAX_SECONDS``], or ``MOE_LEASE_DEFAULT_SECONDS`` while nothing has been measured
(see :class:`~routing.core.state.LeaseConfig`). Callers keep one store per process.
"""

from __future__ import annotations

from typing import Any

from routing.core.types import LiveStateStore


def lease_config():
    """The :class:`~routing.core.state.LeaseConfig` of the ``MOE_LEASE_*`` settings."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from routing.core.state import LeaseConfig

    try:
        return LeaseConfig(
            default_s=float(settings.MOE_LEASE_DEFAULT_SECONDS),
            factor=float(settings.MOE_LEASE_LATENCY_FACTOR),
            min_s=float(settings.MOE_LEASE_MIN_SECONDS),
            max_s=float(settings.MOE_LEASE_MAX_SECONDS),
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"MOE_LEASE_* settings: {exc}") from exc


def create_state_store(**options: Any) -> LiveStateStore:
    """A new store for this process. ``options`` go to the store's constructor (for example
    ``on_transition``, ``breaker_config`` or ``lease``)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from routing.core.state import LocalStateStore

    backend = settings.MOE_STATE_BACKEND
    if "lease" not in options:
        options["lease"] = lease_config()
    if backend == "local":
        return LocalStateStore(**options)
    if backend != "redis":
        raise ImproperlyConfigured(f"MOE_STATE_BACKEND must be local or redis, not {backend!r}")
    url = settings.REDIS_URL
    if not url:
        raise ImproperlyConfigured("MOE_STATE_BACKEND=redis needs REDIS_URL")
    from telemetry.state.redis_store import RedisStateStore, make_client

    options.setdefault("view_max_age_s", settings.MOE_STATE_VIEW_MAX_AGE_MS / 1000.0)
    return RedisStateStore(make_client(url), **options)
