"""Fixtures for the routing API: a fresh router per test, its own history spool, a fleet."""

import pytest
from django.conf import settings

from routing.runtime import reset_router


def _clear_redis() -> None:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter("moe:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def fresh_router(settings, tmp_path):
    settings.MOE_HISTORY_DIR = str(tmp_path / "history")
    _clear_redis()
    reset_router()
    yield
    reset_router()
    _clear_redis()


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
