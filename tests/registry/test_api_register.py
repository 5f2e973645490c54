"""POST /api/v1/services/register: operators create (201) or update (200) a service."""

import pytest

from registry.models import Service

pytestmark = pytest.mark.django_db

URL = "/api/v1/services/register"
BODY = {
    "service_id": "custom_processor",
    "service_type": "custom",
    "endpoint": "http://localhost:8006",
    "capabilities": ["processing", "analysis"],
    "max_capacity": 100,
}


def test_an_operator_registers_a_new_service(operator_api):
    response = operator_api.post(URL, BODY, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["service_id"] == "custom_processor"
    assert body["capabilities"] == ["analysis", "processing"]
    assert (body["weight"], body["status"], body["health"]) == (1.0, "active", "unknown")
    assert body["live"]["load"] == 0.0
    assert Service.objects.filter(service_id="custom_processor").exists()


def test_staff_may_register(staff_api):
    assert staff_api.post(URL, BODY, format="json").status_code == 201


def test_registering_an_existing_id_updates_it_with_200(operator_api):
    # given
    operator_api.post(URL, BODY, format="json")
    # when
    response = operator_api.post(
        URL,
        {**BODY, "max_capacity": 50, "weight": 2.0, "health_path": "/ready", "metadata": {"a": 1}},
        format="json",
    )
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["max_capacity"], body["weight"], body["health_path"]) == (50, 2.0, "/ready")
    assert body["metadata"] == {"a": 1}
    assert Service.objects.count() == 1


def test_re_registering_the_same_body_is_a_200(operator_api):
    operator_api.post(URL, BODY, format="json")
    assert operator_api.post(URL, BODY, format="json").status_code == 200


def test_a_client_may_not_register(client_api):
    response = client_api.post(URL, BODY, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Service.objects.exists()


def test_anonymous_gets_401(anon_api):
    response = anon_api.post(URL, BODY, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not Service.objects.exists()


def test_a_bad_token_gets_401():
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.post(URL, BODY, format="json").status_code == 401


def test_get_is_not_allowed(operator_api):
    response = operator_api.get(URL)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_operator_session_may_register_with_a_csrf_token(operator, client):
    # The browsable side (admin users) authenticates by session; CSRF still applies.
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(operator)
    response = csrf_client.post(URL, BODY, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
