"""The OpenAPI schema lists every status code each endpoint can answer, with the error body."""

import pytest
from drf_spectacular.generators import SchemaGenerator

# What each operation can answer (the live schemathesis test checks the server keeps to it).
ANSWERS = {
    ("/api/v1/auth/token/", "post"): {200, 400, 401, 413, 415, 429},
    ("/api/v1/auth/token/refresh/", "post"): {200, 400, 401, 413, 415, 429},
    ("/api/v1/auth/token/verify/", "post"): {200, 400, 401, 413, 415, 429},
    ("/api/v1/route", "post"): {200, 400, 401, 413, 415, 429, 502, 503},
    ("/api/v1/route/batch", "post"): {200, 400, 401, 413, 415, 429, 503},
    ("/api/v1/route/{request_id}/outcome", "post"): {200, 400, 401, 404, 409, 413, 415, 429},
    ("/api/v1/strategy/override", "get"): {200, 401, 429},
    ("/api/v1/strategy/override", "post"): {201, 400, 401, 403, 413, 415, 429},
    ("/api/v1/strategy/override/{override_id}", "delete"): {204, 401, 403, 404, 429},
    ("/api/v1/services", "get"): {200, 400, 401, 429},
    ("/api/v1/services/register", "post"): {200, 201, 400, 401, 403, 413, 415, 429},
    ("/api/v1/services/{service_id}", "get"): {200, 401, 404, 429},
    ("/api/v1/services/{service_id}", "delete"): {204, 401, 403, 404, 429},
    ("/api/v1/metrics", "get"): {200, 401, 429},
    ("/api/v1/demo/smart_routing", "get"): {200, 400, 401, 429},
    ("/api/v1/health", "get"): {200, 503},
    ("/api/v1/load/rebalance", "post"): {202, 400, 401, 403, 413, 415, 429, 503},
    ("/api/v1/load/rebalance/{task_id}", "get"): {200, 400, 401, 403, 404, 429},
    ("/api/v1/gate/retrain", "post"): {202, 400, 401, 403, 413, 415, 429, 503},
    ("/api/v1/gate/retrain/{task_id}", "get"): {200, 400, 401, 403, 404, 429},
    ("/api/v1/gate/versions", "get"): {200, 400, 401, 403, 429},
}
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_operation_is_listed_here(schema):
    operations = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert operations == set(ANSWERS)


@pytest.mark.parametrize("path, method", sorted(ANSWERS))
def test_each_operation_documents_what_it_can_answer(schema, path, method):
    responses = schema["paths"][path][method]["responses"]

    assert {int(code) for code in responses} == ANSWERS[(path, method)]
    for code, response in responses.items():
        if int(code) >= 400 and (path, int(code)) not in {
            ("/api/v1/route", 503),
            ("/api/v1/health", 503),
        }:
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}


def test_the_override_list_is_an_object_with_results(schema):
    ok = schema["paths"]["/api/v1/strategy/override"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    listed = schema["components"]["schemas"][ref]

    assert listed["properties"]["results"]["type"] == "array"


def test_route_and_metrics_answers_name_the_new_keys(schema):
    components = schema["components"]["schemas"]

    assert "propensity" in components["RouteResponse"]["required"]
    assert components["RouteResponse"]["properties"]["propensity"]["nullable"] is True
    assert {"objective", "learning"} <= set(components["Metrics"]["properties"])


def test_request_bodies_refuse_unknown_fields_and_carry_the_limits(schema):
    components = schema["components"]["schemas"]
    route = components["RouteRequest"]
    data = route["properties"]["data"]

    assert route["additionalProperties"] is False and data["additionalProperties"] is False
    assert data["properties"]["type"]["maxLength"] == 64
    assert data["properties"]["capabilities"]["maxItems"] == 32
    assert data["properties"]["priority"] == {**data["properties"]["priority"], "maximum": 1}
    assert components["ServiceRegister"]["additionalProperties"] is False
    outcome = components["OutcomeRequest"]["oneOf"]
    assert all(variant["additionalProperties"] is False for variant in outcome)
    # success true only with a status_code that is not a service failure (5xx, 429)
    by_success = {v["properties"]["success"]["allOf"][0]["enum"][0]: v for v in outcome}
    assert by_success[True]["properties"]["status_code"]["maximum"] == 499
    assert by_success[True]["properties"]["status_code"]["not"] == {"enum": [429]}
    assert by_success[False]["properties"]["status_code"]["maximum"] == 599
