"""Strategy overrides: an active override beats the request's strategy; TTL; end; personas."""

import time

import pytest

pytestmark = pytest.mark.django_db


def _route(client, strategy="power_of_two", **data):
    return client.post(
        "/api/v1/route", {"data": data, "routing_strategy": strategy}, format="json"
    ).json()


def test_a_global_override_beats_the_requested_strategy(operator_api, client_api, fleet):
    created = operator_api.post(
        "/api/v1/strategy/override",
        {"strategy": "consistent_hash", "scope": "global", "reason": "incident 42"},
        format="json",
    )
    assert created.status_code == 201

    body = _route(client_api, "power_of_two")

    assert body["routing_strategy"] == "consistent_hash"
    assert body["requested_strategy"] == "power_of_two"
    assert body["override_id"] == created.json()["id"]


def test_a_request_type_override_applies_to_that_type_only(operator_api, client_api, fleet):
    operator_api.post(
        "/api/v1/strategy/override",
        {"strategy": "semantic", "scope": "request_type", "request_type": "analysis"},
        format="json",
    )

    assert _route(client_api, type="analysis")["routing_strategy"] == "semantic"
    assert _route(client_api, type="inference")["routing_strategy"] == "power_of_two"


def test_an_override_with_top_k_sets_k(operator_api, client_api, fleet):
    operator_api.post(
        "/api/v1/strategy/override",
        {"strategy": "top_k", "scope": "global", "top_k": 3},
        format="json",
    )

    assert len(_route(client_api)["selected_services"]) == 3


def test_an_expired_override_no_longer_applies(operator_api, client_api, fleet):
    operator_api.post(
        "/api/v1/strategy/override",
        {"strategy": "semantic", "scope": "global", "ttl_seconds": 1},
        format="json",
    )
    assert _route(client_api)["routing_strategy"] == "semantic"

    time.sleep(1.1)

    assert _route(client_api)["routing_strategy"] == "power_of_two"
    assert operator_api.get("/api/v1/strategy/override").json()["results"] == []


def test_deleting_an_override_ends_it(operator_api, client_api, fleet):
    override_id = operator_api.post(
        "/api/v1/strategy/override", {"strategy": "semantic", "scope": "global"}, format="json"
    ).json()["id"]

    response = operator_api.delete(f"/api/v1/strategy/override/{override_id}")

    assert response.status_code == 204
    assert _route(client_api)["routing_strategy"] == "power_of_two"
    assert operator_api.delete(f"/api/v1/strategy/override/{override_id}").status_code == 404


def test_clients_list_but_cannot_set_overrides(client_api, fleet):
    assert client_api.get("/api/v1/strategy/override").status_code == 200
    response = client_api.post(
        "/api/v1/strategy/override", {"strategy": "semantic", "scope": "global"}, format="json"
    )
    assert response.status_code == 403
    assert client_api.delete("/api/v1/strategy/override/1").status_code == 403
