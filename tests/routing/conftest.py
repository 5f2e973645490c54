"""Fixtures for the routing API tests: a small fleet."""

import uuid

import pytest

FLEET = [
    ("inf-a", "inference", ["inference", "analysis"], 100),
    ("inf-b", "inference", ["inference"], 50),
    ("store-a", "storage", ["storage"], 80),
    ("ana-a", "analysis", ["analysis", "processing"], 60),
]


@pytest.fixture
def fleet(db):
    from registry.services import register_service

    services = []
    for sid, stype, caps, capacity in FLEET:
        service, _ = register_service(
            {
                "service_id": sid,
                "service_type": stype,
                "endpoint": f"http://127.0.0.1:9{len(services)}01",
                "capabilities": caps,
                "max_capacity": capacity,
            }
        )
        services.append(service)
    return services


@pytest.fixture
def admin_client(client, django_user_model):
    """A test client logged in as a superuser (admin pages)."""
    user = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")
    client.force_login(user)
    return client


@pytest.fixture
def two_workers(fleet, settings):
    """Two routers on the shared (Redis) state, as two web workers; the PostgreSQL + Redis pass
    only (the local store has no other workers)."""
    from routing.runtime import Router

    if not settings.REDIS_URL:
        pytest.skip("runs in the PostgreSQL + Redis pass")
    # Views that stay fresh for a minute: B cannot learn of a breaker by a timely refresh.
    settings.MOE_STATE_VIEW_MAX_AGE_MS = 60_000
    a, b = Router(), Router()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def three_per_minute(settings):
    """A 3-per-minute client rate limit; a cache key prefix of its own gives the test fresh
    counters without flushing a shared cache."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"moe-test-{uuid.uuid4().hex}"}
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/min"},
    }
