""" "forward": true on /route follows the proxy's failure rules (routing/forwarding.py)."""

import pytest

from routing.forwarding import cooldowns
from routing.runtime import get_router

pytestmark = pytest.mark.django_db(transaction=True)


def _forward(client_api, capability, **extra):
    return client_api.post(
        "/api/v1/route",
        {
            "data": {"capabilities": [capability], "data": {"q": 1}},
            "routing_strategy": "semantic",  # an idle fleet's first choice: "a-..."
            "forward": True,
            **extra,
        },
        format="json",
    )


def test_a_refused_connection_fails_over_to_a_candidate_that_was_not_selected(
    client_api, fleet, capability
):
    # given: semantic selects one service
    bad, good = fleet(2)
    bad.kill()

    # when
    response = _forward(client_api, capability)

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["selected_services"] == [bad.name]
    forwarded = body["forwarded"]
    assert forwarded["service_id"] == good.name
    assert [a["service_id"] for a in forwarded["attempts"]] == [bad.name, good.name]
    assert forwarded["attempts"][0]["error"] == "ConnectError"


def test_a_5xx_to_a_post_is_not_sent_again(client_api, fleet, capability):
    bad, good = fleet(2)
    bad.mode, bad.status = "status", 500

    response = _forward(client_api, capability)

    assert response.status_code == 502
    assert [a["service_id"] for a in response.json()["error"]["fields"]["attempts"]] == [bad.name]
    assert good.hits == 0


def test_a_4xx_is_the_callers_answer_and_not_a_service_failure(client_api, fleet, capability):
    (backend,) = fleet(1)
    backend.mode, backend.status = "status", 422

    response = _forward(client_api, capability)

    assert response.status_code == 200
    assert response.json()["forwarded"]["status_code"] == 422
    assert get_router().live_states([backend.name])[backend.name]["error_rate"] == 0


def test_a_429_is_a_failure_and_cools_the_service_down(client_api, fleet, capability):
    (backend,) = fleet(1)
    backend.mode, backend.status, backend.retry_after = "status", 429, "20"

    response = _forward(client_api, capability)

    assert response.status_code == 502
    assert get_router().live_states([backend.name])[backend.name]["error_rate"] > 0
    assert cooldowns.cooling(backend.name)


@pytest.mark.parametrize("deadline", ["soon", "\u0661\u0662", "1_000", " 5 ", "inf", "nan"])
def test_a_bad_client_deadline_on_forward_is_a_400_naming_the_header(
    client_api, fleet, capability, deadline
):
    # as the proxy reads it: ASCII digits, finite (not other scripts' digits, "_", spaces)
    fleet(1)
    response = client_api.post(
        "/api/v1/route",
        {"data": {"capabilities": [capability], "data": {"q": 1}}, "forward": True},
        format="json",
        HTTP_X_MOE_DEADLINE_MS=deadline,
    )
    assert response.status_code == 400
    assert "X-Moe-Deadline-Ms" in response.json()["error"]["fields"]
