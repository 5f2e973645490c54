"""A service that answered a forwarded call with 429 and ``Retry-After`` asked for nothing
until then: routing leaves it out for that long, as LiteLLM's router cools a deployment down,
with every strategy, panic routing included; while it is the only one able to serve a request,
the request is a 503 whose reason says so (never a 502 "upstream failed" that tried nobody).
Real loopback backends."""

import pytest

from routing.core.strategies import STRATEGY_NAMES
from routing.forwarding import cooldowns

pytestmark = pytest.mark.django_db(transaction=True)


def _route(client_api, capability, strategy="semantic", **extra):
    body = {
        "data": {"capabilities": [capability], "data": {"q": 1}, "key": "k"},
        "routing_strategy": strategy,
        **extra,
    }
    return client_api.post("/api/v1/route", body, format="json")


def _cool_down(client_api, capability, backend) -> None:
    """The first choice answers 429, Retry-After 30, to a forwarded call."""
    backend.mode, backend.status, backend.retry_after = "status", 429, "30"
    _route(client_api, capability, forward=True)
    assert cooldowns.cooling(backend.name)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_no_strategy_chooses_a_service_while_it_cools_down(client_api, fleet, capability, strategy):
    limited, other = fleet(2)  # semantic's first choice on an idle fleet: "a-..."
    _cool_down(client_api, capability, limited)

    chosen = [_route(client_api, capability, strategy).json() for _ in range(20)]

    assert {s for body in chosen for s in body["selected_services"]} == {other.name}
    assert "cooling down after a 429" in chosen[0]["reason"]


def test_the_only_able_service_cooling_down_is_a_503_saying_so(client_api, fleet, capability):
    (limited,) = fleet(1)
    _cool_down(client_api, capability, limited)
    hits = limited.hits

    routed = _route(client_api, capability)
    forwarded = _route(client_api, capability, forward=True)

    for response in (routed, forwarded):
        assert response.status_code == 503, response.content
        assert response.json()["error"]["code"] == "no_eligible_service"
        assert "1 cooling down after a 429" in response.json()["error"]["message"]
    assert limited.hits == hits


def test_it_is_chosen_again_once_its_retry_after_is_over(client_api, fleet, capability):
    (limited,) = fleet(1)
    _cool_down(client_api, capability, limited)
    assert _route(client_api, capability).status_code == 503

    cooldowns.clear()  # its Retry-After is over
    limited.mode, limited.status = "ok", 200

    again = _route(client_api, capability)
    assert again.status_code == 200
    assert again.json()["selected_services"] == [limited.name]


def test_the_service_list_shows_who_is_cooling_down(client_api, fleet, capability):
    limited, other = fleet(2)
    _cool_down(client_api, capability, limited)

    live = {
        s["service_id"]: s["live"] for s in client_api.get("/api/v1/services").json()["results"]
    }

    assert live[limited.name]["cooling_down"] is True
    assert live[other.name]["cooling_down"] is False
    # every service shows the same keys, with live state or without any yet
    assert {tuple(sorted(state)) for state in live.values()} == {tuple(sorted(live[limited.name]))}
    assert live[other.name]["breaker_allows"] is True
