"""POST /api/v1/route/<id>/outcome lands on the right row, before or after the flush."""

import pytest

from routing.history import flush_history
from routing.models import RoutingDecision
from routing.runtime import get_router

pytestmark = pytest.mark.django_db(transaction=True)


def _route(client, **data):
    return client.post("/api/v1/route", {"data": data}, format="json").json()


def _report(client, routed, **extra):
    body = {"service_id": routed["selected_services"][0], "success": True, "latency_ms": 12.5}
    body.update(extra)
    return client.post(f"/api/v1/route/{routed['request_id']}/outcome", body, format="json")


def test_outcome_before_the_flush_lands_on_its_row(client_api, fleet):
    routed = _route(client_api)

    response = _report(client_api, routed, status_code=200)
    flush_history()

    assert response.status_code == 200
    row = RoutingDecision.objects.get(request_id=routed["request_id"])
    assert (row.success, row.latency_ms, row.status_code) == (True, 12.5, 200)
    assert row.outcome_service == routed["selected_services"][0]


def test_outcome_after_the_flush_lands_on_its_row(client_api, fleet):
    routed = _route(client_api)
    other = _route(client_api)
    flush_history()

    response = _report(client_api, routed, success=False, status_code=503)
    flush_history()

    assert response.status_code == 200
    row = RoutingDecision.objects.get(request_id=routed["request_id"])
    assert (row.success, row.status_code) == (False, 503)
    assert RoutingDecision.objects.get(request_id=other["request_id"]).success is None


def test_outcome_for_an_unknown_request_is_a_404(client_api, fleet):
    response = client_api.post(
        "/api/v1/route/nope/outcome", {"service_id": "inf-a", "success": True}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_second_outcome_is_a_409(client_api, fleet):
    routed = _route(client_api)
    _report(client_api, routed)

    response = _report(client_api, routed)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "outcome_already_reported"


def test_outcome_releases_the_in_flight_slot(client_api, fleet):
    routed = _route(client_api)
    service = routed["selected_services"][0]
    router = get_router()
    assert router.live_states([service])[service]["in_flight"] == 1

    _report(client_api, routed)

    assert router.live_states([service])[service]["in_flight"] == 0


def test_failures_open_the_breaker_and_routing_avoids_the_service(client_api, fleet):
    # given: every request that goes to the chosen service fails
    victim = None
    for _ in range(60):
        routed = client_api.post(
            "/api/v1/route",
            {"data": {"capabilities": ["inference"]}, "routing_strategy": "power_of_two"},
            format="json",
        ).json()
        service = routed["selected_services"][0]
        victim = victim or service
        ok = service != victim
        _report(client_api, {**routed, "selected_services": [service]}, success=ok)

    # then: the victim's breaker is open and it is no longer chosen
    state = get_router().live_states([victim])[victim]
    assert state["breaker_state"] == "open"
    for _ in range(20):
        routed = client_api.post(
            "/api/v1/route",
            {"data": {"capabilities": ["inference"]}, "routing_strategy": "power_of_two"},
            format="json",
        ).json()
        assert routed["selected_services"] != [victim]


@pytest.mark.parametrize("status_code", [500, 503, 429])
def test_a_success_with_a_failure_status_is_refused_and_the_report_can_be_made_again(
    client_api, fleet, status_code
):
    routed = _route(client_api)

    refused = _report(client_api, routed, success=True, status_code=status_code)
    again = _report(client_api, routed, success=False, status_code=status_code)

    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["success"]
    assert again.status_code == 200
    assert again.json()["reward"] == 0.0


def test_a_success_with_a_client_error_status_is_a_success(client_api, fleet):
    # A 4xx other than 429 is the caller's problem, not the service failing.
    routed = _route(client_api)

    response = _report(client_api, routed, success=True, status_code=404)

    assert response.status_code == 200
    assert response.json()["reward"] > 0.9
