"""While Redis cannot be reached, an outcome whose decision is pending there (or on its way to
the database) cannot be checked: the answer is a 503 with ``Retry-After``, which a client
retries, not a 404 it would take as final and so lose the outcome. Once Redis answers, the
same report lands. A decision already in the database is reported as usual meanwhile.

Redis is made unreachable for real: the router's claim goes to a port nothing listens on.
PostgreSQL + Redis pass (the local store has nothing to reach)."""

from contextlib import contextmanager

import pytest
import redis

from routing.history import flush_history
from routing.runtime import _MARK_REPORTED, get_router
from tests.support.net import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def router(settings):
    if not settings.REDIS_URL:
        pytest.skip("runs in the PostgreSQL + Redis pass")
    return get_router()


@contextmanager
def unreachable(router):
    """The router's outcome claim goes to a closed port meanwhile."""
    working = router.redis_client
    dead = redis.Redis(port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5)
    router.redis_client, router._mark_reported = dead, dead.register_script(_MARK_REPORTED)
    try:
        yield
    finally:
        router.redis_client = working
        router._mark_reported = working.register_script(_MARK_REPORTED)


def _route(api) -> dict:
    return api.post("/api/v1/route", {"data": {"type": "inference"}}, format="json").json()


def _report(api, routed):
    body = {"service_id": routed["selected_services"][0], "success": True, "latency_ms": 9.0}
    return api.post(f"/api/v1/route/{routed['request_id']}/outcome", body, format="json")


def test_a_pending_decision_is_a_503_to_retry_then_lands(fleet, client_api, router):
    routed = _route(client_api)
    with unreachable(router):
        answer = _report(client_api, routed)

    assert answer.status_code == 503, answer.content
    assert answer.json()["error"]["code"] == "state_unavailable"
    assert int(answer["Retry-After"]) > 0
    assert _report(client_api, routed).status_code == 200


def test_a_decision_already_in_the_database_is_reported_meanwhile(fleet, client_api, router):
    routed = _route(client_api)
    flush_history()
    router.redis_client.delete(f"moe:pending:{routed['request_id']}")  # only its row is left
    with unreachable(router):
        answer = _report(client_api, routed)

    assert answer.status_code == 200, answer.content
