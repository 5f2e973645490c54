"""The OpenAPI schema documents the registry endpoints' bodies."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_lists_the_registry_paths(schema):
    paths = schema["paths"]
    assert set(paths["/api/v1/services/register"]) >= {"post"}
    assert set(paths["/api/v1/services"]) >= {"get"}
    assert set(paths["/api/v1/services/{service_id}"]) >= {"get", "delete"}


def test_the_register_operation_documents_its_request_and_responses(schema):
    operation = schema["paths"]["/api/v1/services/register"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ServiceRegister")
    assert set(operation["responses"]) >= {"200", "201", "400", "401", "403"}

    register = schema["components"]["schemas"]["ServiceRegister"]
    assert set(register["required"]) == {
        "service_id",
        "service_type",
        "endpoint",
        "capabilities",
        "max_capacity",
    }
    assert {"weight", "health_path", "metadata"} <= set(register["properties"])


def test_a_service_documents_its_live_state(schema):
    service = schema["components"]["schemas"]["Service"]
    assert service["properties"]["live"]["allOf"][0]["$ref"].endswith("/LiveState")
    live = schema["components"]["schemas"]["LiveState"]
    assert set(live["properties"]) == {
        "load",
        "in_flight",
        "ewma_latency_ms",
        "error_rate",
        "breaker_state",
        "breaker_allows",
        "cooling_down",
        "anomaly",
    }


def test_errors_are_documented_in_the_error_shape(schema):
    operation = schema["paths"]["/api/v1/services/{service_id}"]["delete"]
    not_found = operation["responses"]["404"]["content"]["application/json"]["schema"]
    assert not_found["$ref"].endswith("/Error")
