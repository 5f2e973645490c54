"""Who may call what: clients route and report; operators manage; anonymous gets 401."""

import pytest

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("post", "/api/v1/route", {"data": {}}),
    ("post", "/api/v1/route/batch", {"requests": [{}]}),
    ("post", "/api/v1/route/x/outcome", {"service_id": "inf-a", "success": True}),
    ("get", "/api/v1/strategy/override", None),
    ("post", "/api/v1/strategy/override", {"strategy": "semantic", "scope": "global"}),
    ("delete", "/api/v1/strategy/override/1", None),
    ("get", "/api/v1/metrics", None),
    ("get", "/api/v1/demo/smart_routing", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_gets_401(anon_api, fleet, method, path, body):
    response = getattr(anon_api, method)(path, body, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("method", "path", "body", "client_status", "operator_status"),
    [
        ("post", "/api/v1/route", {"data": {}}, 200, 200),
        ("post", "/api/v1/route/batch", {"requests": [{}]}, 200, 200),
        ("get", "/api/v1/strategy/override", None, 200, 200),
        (
            "post",
            "/api/v1/strategy/override",
            {"strategy": "semantic", "scope": "global"},
            403,
            201,
        ),
        ("get", "/api/v1/metrics", None, 200, 200),
        ("get", "/api/v1/demo/smart_routing", None, 200, 200),
    ],
)
def test_clients_and_operators(
    client_api, operator_api, staff_api, fleet, method, path, body, client_status, operator_status
):
    assert getattr(client_api, method)(path, body, format="json").status_code == client_status
    assert getattr(operator_api, method)(path, body, format="json").status_code == operator_status


def test_staff_are_operators(staff_api, fleet):
    response = staff_api.post(
        "/api/v1/strategy/override", {"strategy": "semantic", "scope": "global"}, format="json"
    )
    assert response.status_code == 201


def test_a_forged_token_is_refused(anon_api, fleet):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")

    response = anon_api.post("/api/v1/route", {"data": {}}, format="json")

    assert response.status_code == 401
