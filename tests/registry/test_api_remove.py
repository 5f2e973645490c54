"""DELETE /api/v1/services/<service_id>: operators remove services; 404 when unknown."""

import pytest

from registry.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return Service.objects.create(
        service_id="svc-a",
        service_type="inference",
        endpoint="http://127.0.0.1:8101",
        max_capacity=10,
    )


def test_an_operator_removes_a_service(operator_api, service):
    response = operator_api.delete("/api/v1/services/svc-a")
    assert response.status_code == 204
    assert response.content == b""
    assert not Service.objects.exists()


def test_staff_may_remove(staff_api, service):
    assert staff_api.delete("/api/v1/services/svc-a").status_code == 204


def test_an_unknown_id_is_a_404_in_the_error_shape(operator_api):
    response = operator_api.delete("/api/v1/services/nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "nope" in error["message"]


def test_removing_twice_is_a_404_the_second_time(operator_api, service):
    assert operator_api.delete("/api/v1/services/svc-a").status_code == 204
    assert operator_api.delete("/api/v1/services/svc-a").status_code == 404


def test_a_client_may_not_remove(client_api, service):
    response = client_api.delete("/api/v1/services/svc-a")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Service.objects.exists()


def test_anonymous_gets_401(anon_api, service):
    response = anon_api.delete("/api/v1/services/svc-a")
    assert response.status_code == 401
    assert Service.objects.exists()


def test_a_trailing_slash_is_not_the_same_url(operator_api, service):
    response = operator_api.delete("/api/v1/services/svc-a/")
    assert response.status_code == 404
    assert Service.objects.exists()
