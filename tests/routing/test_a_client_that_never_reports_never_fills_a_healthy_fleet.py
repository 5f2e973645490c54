"""The spec's example routed as fast as one client can go, never reporting outcomes: leases
expire after the services' expected service time, so nothing is refused (the same flood with
30-second leases, the old behaviour, is refused, which shows the test can fail)."""

import time

import pytest

from registry.services import register_service
from routing.runtime import get_router, reset_router

pytestmark = pytest.mark.django_db(transaction=True)

SPEC_EXAMPLE = {
    "data": {"type": "inference", "data": [0.1, 0.2, 0.3], "priority": 0.8, "complexity": 0.5}
}


@pytest.fixture
def small_fleet(db):
    for i, capacity in enumerate((64, 48, 32)):  # like the demo fleet's inference services
        register_service(
            {
                "service_id": f"llm-{i}",
                "service_type": "inference",
                "endpoint": f"http://127.0.0.1:{9200 + i}",
                "capabilities": ["text-generation"],
                "max_capacity": capacity,
            }
        )


def flood(client, n):
    codes = {}
    for _ in range(n):
        status = client.post("/api/v1/route", SPEC_EXAMPLE, format="json").status_code
        codes[status] = codes.get(status, 0) + 1
    return codes


def use_leases(settings, seconds):
    settings.MOE_LEASE_DEFAULT_SECONDS = settings.MOE_LEASE_MIN_SECONDS = seconds
    settings.MOE_LEASE_MAX_SECONDS = 30.0
    reset_router()


def in_flight() -> int:
    live = get_router().live_states(["llm-0", "llm-1", "llm-2"])
    return sum(s["in_flight"] for s in live.values())


def leased_since(client, n) -> list[tuple[float, int]]:
    """Route ``n`` times; for each answer, when it arrived and how many services it leased."""
    out = []
    for _ in range(n):
        response = client.post("/api/v1/route", SPEC_EXAMPLE, format="json")
        assert response.status_code == 200, response.content
        out.append((time.monotonic(), len(response.json()["selected_services"])))
    return out


def test_a_flood_without_outcomes_gets_no_503(client_api, small_fleet, settings):
    use_leases(settings, 0.05)  # the default for a service never measured
    answered = leased_since(client_api, 1500)  # each answer must be a 200
    # Little's law, exactly: a lease still counts only if its request was routed in the last
    # 0.05 s (so answered after that instant), whatever the machine's speed. Every answer of
    # the flood is in the count: on a fast machine the window reaches back past any tail.
    before = time.monotonic()
    counted = in_flight()
    recent = sum(n for at, n in answered if at > before - 0.05)
    assert counted <= recent, (counted, recent)
    time.sleep(0.15)
    assert in_flight() == 0


def test_with_thirty_second_leases_the_same_flood_fills_the_fleet(
    client_api, small_fleet, settings
):
    use_leases(settings, 30.0)
    codes = flood(client_api, 200)
    assert codes.get(503, 0) == 56  # capacity 144, the rest refused
