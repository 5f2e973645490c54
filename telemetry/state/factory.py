"""Build the live-state store the settings ask for (the only Django-aware part of the package).

``MOE_STATE_BACKEND`` picks ``local`` (one process, the embedded default) or ``redis`` (shared
by every worker, needs ``REDIS_URL``); ``MOE_INFLIGHT_TIMEOUT_SECONDS`` is how long an
unreported request keeps counting in flight. Callers keep one store per process.
"""

from __future__ import annotations

from typing import Any

from routing.core.types import LiveStateStore


def create_state_store(**options: Any) -> LiveStateStore:
    """A new store for this process. ``options`` go to the store's constructor (for example
    ``on_transition`` or ``breaker_config``)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from routing.core.state import LocalStateStore

    backend = getattr(settings, "MOE_STATE_BACKEND", "local")
    options.setdefault("inflight_timeout_s", float(settings.MOE_INFLIGHT_TIMEOUT_SECONDS))
    if backend == "local":
        return LocalStateStore(**options)
    if backend != "redis":
        raise ImproperlyConfigured(f"MOE_STATE_BACKEND must be local or redis, not {backend!r}")
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        raise ImproperlyConfigured("MOE_STATE_BACKEND=redis needs REDIS_URL")
    from telemetry.state.redis_store import RedisStateStore, make_client

    return RedisStateStore(make_client(url), **options)
