"""Over the API, every strategy chooses only services whose type serves the request and that
offer every required capability; a request nobody can serve is a 503 naming what is missing,
and the reason says which filter removed whom."""

import pytest

from routing.core.strategies import STRATEGY_NAMES

pytestmark = pytest.mark.django_db(transaction=True)

TYPE_OF = {"inf-a": "inference", "inf-b": "inference", "store-a": "storage", "ana-a": "analysis"}


def route(client, strategy, **data):
    return client.post("/api/v1/route", {"data": data, "routing_strategy": strategy}, format="json")


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_an_inference_request_goes_to_an_inference_service(client_api, fleet, strategy):
    chosen = set()
    for i in range(30):
        response = route(client_api, strategy, type="inference", key=f"user-{i}")
        assert response.status_code == 200, response.json()
        body = response.json()
        chosen.update(body["selected_services"])
        assert "2 of 4 can serve it (2 not of type inference)" in body["reason"]
    assert chosen <= {"inf-a", "inf-b"}


def test_the_reasons_counts_add_up_to_the_services_that_cannot_serve_it(client_api, fleet):
    # store-a is both of another type and without 'analysis': it is counted once, by the type
    # filter; inf-b is the one more that 'analysis' removes.
    body = route(client_api, "adaptive", type="inference", capabilities=["analysis"]).json()

    assert "1 of 4 can serve it (2 not of type inference, 1 more lack 'analysis')" in body["reason"]


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_required_capabilities_narrow_the_candidates(client_api, fleet, strategy):
    for _ in range(10):
        body = route(client_api, strategy, type="inference", capabilities=["analysis"]).json()
        assert body["selected_services"][0] == "inf-a"


def test_a_request_without_a_type_may_go_to_any_service(client_api, fleet):
    chosen = {
        route(client_api, "power_of_two", key=str(i)).json()["selected_services"][0]
        for i in range(80)
    }
    assert len(chosen) >= 3


def test_no_service_of_the_type_with_the_capability_is_a_503_naming_both(client_api, fleet):
    response = route(client_api, "semantic", type="storage", capabilities=["analysis"])
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_eligible_service"
    assert "3 do not serve type 'storage'" in error["message"]
    assert "lack capability 'analysis'" in error["message"]


def test_an_unknown_type_may_be_refused_by_configuration(client_api, fleet, settings):
    from routing.runtime import reset_router

    assert route(client_api, "semantic", type="quantum").status_code == 200  # default: any
    settings.MOE_UNKNOWN_TYPE = "reject"
    reset_router()
    response = route(client_api, "semantic", type="quantum")
    assert response.status_code == 503
    assert "no service serves type 'quantum'" in response.json()["error"]["message"]


def test_a_type_may_accept_other_service_types(client_api, fleet, settings):
    from routing.runtime import reset_router

    settings.MOE_TYPE_ACCEPTS = {"inference": ("inference", "analysis")}
    reset_router()
    chosen = {
        route(client_api, "power_of_two", type="inference").json()["selected_services"][0]
        for _ in range(60)
    }
    assert chosen == {"inf-a", "inf-b", "ana-a"}
