"""probe_health calls each service's health URL (real HTTP servers on 127.0.0.1)."""

import pytest

from registry.models import Service
from registry.services import current_registry_version, register_service
from routing.runtime import get_router
from telemetry.services import probe_health
from tests.backends import Backend

pytestmark = pytest.mark.django_db


@pytest.fixture
def up_and_down():
    up, down = Backend("up"), Backend("down")
    down.health_status = 500
    for backend in (up, down):
        register_service(
            {
                "service_id": backend.name,
                "service_type": "storage",
                "endpoint": backend.url,
                "capabilities": [],
                "max_capacity": 5,
            }
        )
    yield up, down
    up.close()
    down.close()


def test_probe_marks_healthy_and_unhealthy_services(up_and_down):
    before = current_registry_version()

    result = probe_health(timeout_s=1.0)

    assert result["health"] == {"up": "healthy", "down": "unhealthy"}
    assert Service.objects.get(service_id="up").health == "healthy"
    assert Service.objects.get(service_id="down").health == "unhealthy"
    assert Service.objects.get(service_id="up").last_seen is not None
    assert current_registry_version() > before  # routers rebuild their snapshot


def test_an_unreachable_service_is_unhealthy_and_feeds_its_breaker(up_and_down):
    up, _ = up_and_down
    up.close()

    probe_health(timeout_s=0.5)
    # Unhealthy (and so out of routing) on the first failed probe ...
    assert Service.objects.get(service_id="up").health == "unhealthy"
    assert get_router().live_states(["up"])["up"]["breaker_state"] == "closed"
    # ... and its breaker opens on the run a service with nothing else known needs (8).
    for _ in range(7):
        probe_health(timeout_s=0.5)
    assert get_router().live_states(["up"])["up"]["breaker_state"] == "open"


def test_an_unhealthy_service_is_not_routed_to(up_and_down, client_api):
    probe_health(timeout_s=1.0)

    for _ in range(5):  # "up" has capacity 5
        body = client_api.post("/api/v1/route", {"data": {}}, format="json").json()
        assert body["selected_services"] == ["up"]
