"""The OpenAPI schema documents the gate endpoints, errors included, in the shared error shape."""

import pytest

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _error_codes(operation) -> set[str]:
    return {
        code
        for code, response in operation["responses"].items()
        if response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
        == ERROR_REF
    }


def test_retrain_documents_queued_bad_input_auth_and_a_down_broker(schema):
    operation = schema["paths"]["/api/v1/gate/retrain"]["post"]

    assert "202" in operation["responses"]
    assert _error_codes(operation) >= {"400", "401", "403", "503"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schema["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert request["properties"]["max_examples"]["minimum"] == 50
    assert request["properties"]["max_examples"]["maximum"] == 100_000


def test_the_job_status_documents_a_bad_task_id(schema):
    operation = schema["paths"]["/api/v1/gate/retrain/{task_id}"]["get"]

    assert "200" in operation["responses"]
    assert _error_codes(operation) >= {"400", "401", "403"}


def test_the_version_list_documents_its_limit_and_errors(schema):
    operation = schema["paths"]["/api/v1/gate/versions"]["get"]

    assert "200" in operation["responses"]
    assert _error_codes(operation) >= {"400", "401", "403"}
    assert [p["name"] for p in operation["parameters"]] == ["limit"]
    version = schema["components"]["schemas"]["GateVersion"]
    assert "weights" not in version["properties"]
    assert "evaluation" in version["properties"]
