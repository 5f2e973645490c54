"""Malformed bodies never reach a 500: each gets a 4xx and the error JSON naming the field."""

import pytest

pytestmark = pytest.mark.django_db

DEEP = {"a": None}
for _ in range(60):
    DEEP = {"a": DEEP}

ROUTE = "/api/v1/route"
BATCH = "/api/v1/route/batch"
OVERRIDE = "/api/v1/strategy/override"

# (path, raw body, expected status, field the error must name)
CASES = [
    (ROUTE, b"not json", 400, "body"),
    (ROUTE, b"", 400, "data"),  # an empty body is a body without data
    (ROUTE, b"[1, 2]", 400, "body"),
    (ROUTE, b'"a string"', 400, "body"),
    (ROUTE, b"{}", 400, "data"),
    (ROUTE, b'{"data": []}', 400, "data"),
    (ROUTE, b'{"data": "x"}', 400, "data"),
    (ROUTE, b'{"data": {}, "extra": 1}', 400, "extra"),
    (ROUTE, b'{"data": {"colour": "red"}}', 400, "data.colour"),
    (ROUTE, b'{"data": {"type": 5}}', 400, "data.type"),
    (ROUTE, b'{"data": {"type": "' + b"x" * 5000 + b'"}}', 400, "data.type"),
    (ROUTE, b'{"data": {"priority": "high"}}', 400, "data.priority"),
    (ROUTE, b'{"data": {"priority": true}}', 400, "data.priority"),
    (ROUTE, b'{"data": {"priority": 1.5}}', 400, "data.priority"),
    (ROUTE, b'{"data": {"complexity": -0.1}}', 400, "data.complexity"),
    (ROUTE, b'{"data": {"anomaly_score": null}}', 400, "data.anomaly_score"),
    (ROUTE, b'{"data": {"priority": NaN}}', 400, "body"),
    (ROUTE, b'{"data": {"priority": 1e309}}', 400, "body"),
    (ROUTE, b'{"data": {"capabilities": "analysis"}}', 400, "data.capabilities"),
    (ROUTE, b'{"data": {"capabilities": [1]}}', 400, "data.capabilities"),
    (ROUTE, b'{"data": {"capabilities": [""]}}', 400, "data.capabilities"),
    (ROUTE, b'{"data": {"type": "a\\u0000b"}}', 400, "data.type"),
    (ROUTE, b'{"data": {"capabilities": ["x", "\\u0000"]}}', 400, "data.capabilities"),
    (ROUTE, b'{"data": {"key": {"a": 1}}}', 400, "data.key"),
    (ROUTE, b'{"data": {"key": true}}', 400, "data.key"),
    (ROUTE, b'{"data": {}, "routing_strategy": "random"}', 400, "routing_strategy"),
    (ROUTE, b'{"data": {}, "routing_strategy": 3}', 400, "routing_strategy"),
    (ROUTE, b'{"data": {}, "top_k": 0}', 400, "top_k"),
    (ROUTE, b'{"data": {}, "top_k": -2}', 400, "top_k"),
    (ROUTE, b'{"data": {}, "top_k": 10}', 400, "top_k"),  # above the fleet size (4)
    (ROUTE, b'{"data": {}, "top_k": 99999999999999999999}', 400, "top_k"),
    (ROUTE, b'{"data": {}, "top_k": 2.5}', 400, "top_k"),
    (ROUTE, b'{"data": {}, "top_k": "2"}', 400, "top_k"),
    (ROUTE, b'{"data": {}, "forward": "yes"}', 400, "forward"),
    (BATCH, b'{"requests": []}', 400, "requests"),
    (BATCH, b'{"requests": {}}', 400, "requests"),
    (BATCH, b"{}", 400, "requests"),
    (BATCH, b'{"requests": [{}, {"priority": 9}]}', 400, "requests[1].priority"),
    (BATCH, b'{"requests": [{}, {"type": "a\\u0000"}]}', 400, "requests[1].type"),
    (BATCH, b'{"requests": [{"capabilities": ["\\u0000"]}]}', 400, "requests[0].capabilities"),
    (BATCH, b'{"requests": [{}], "routing_strategy": "nope"}', 400, "routing_strategy"),
    (OVERRIDE, b'{"strategy": "top_k", "scope": "planet"}', 400, "scope"),
    (OVERRIDE, b'{"strategy": "top_k", "scope": "global", "ttl_seconds": -5}', 400, "ttl_seconds"),
    (OVERRIDE, b'{"strategy": "warp", "scope": "global"}', 400, "strategy"),
    (OVERRIDE, b'{"strategy": "top_k", "scope": "request_type"}', 400, "request_type"),
    (OVERRIDE, b'{"strategy": "top_k", "scope": "global", "top_k": 0}', 400, "top_k"),
]


@pytest.mark.parametrize(("path", "raw", "status", "field"), CASES)
def test_malformed_body_gets_a_4xx_naming_the_field(operator_api, fleet, path, raw, status, field):
    response = operator_api.generic("POST", path, raw, content_type="application/json")

    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert error["code"]
    assert error["message"]
    assert field in error["fields"], error


def test_deeply_nested_payload_is_refused(operator_api, fleet):
    response = operator_api.post("/api/v1/route", {"data": {"data": DEEP}}, format="json")

    assert response.status_code == 400
    assert "body" in response.json()["error"]["fields"]


def test_batch_above_the_limit_is_refused(operator_api, fleet, settings):
    settings.MOE_BATCH_MAX_ITEMS = 5

    response = operator_api.post("/api/v1/route/batch", {"requests": [{}] * 6}, format="json")

    assert response.status_code == 400
    assert "requests" in response.json()["error"]["fields"]


def test_oversized_body_is_a_413(operator_api, fleet, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048

    response = operator_api.post("/api/v1/route", {"data": {"data": "x" * 5000}}, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_outcome_for_an_unknown_service_is_refused(client_api, fleet):
    routed = client_api.post("/api/v1/route", {"data": {}}, format="json").json()

    response = client_api.post(
        f"/api/v1/route/{routed['request_id']}/outcome",
        {"service_id": "ghost", "success": True},
        format="json",
    )

    assert response.status_code == 400
    assert "service_id" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"success": True}, "service_id"),
        ({"service_id": "inf-a"}, "success"),
        ({"service_id": "inf-a", "success": "yes"}, "success"),
        ({"service_id": "inf-a", "success": True, "latency_ms": -1}, "latency_ms"),
        ({"service_id": "inf-a", "success": True, "status_code": 42}, "status_code"),
        ({"service_id": "inf-a", "success": True, "mood": "ok"}, "mood"),
    ],
)
def test_bad_outcome_bodies_name_the_field(client_api, fleet, body, field):
    routed = client_api.post("/api/v1/route", {"data": {}}, format="json").json()

    response = client_api.post(f"/api/v1/route/{routed['request_id']}/outcome", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
