"""An operator pins a service's weight (admin or API) so the rebalance job leaves it alone,
and both say that an unpinned weight is the job's to move."""

import pytest

from registry.models import Service

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/services/register"
BODY = {
    "service_id": "llm-code",
    "service_type": "inference",
    "endpoint": "http://127.0.0.1:8102",
    "capabilities": ["code"],
    "max_capacity": 32,
}


def test_a_service_is_not_pinned_unless_asked(operator_api):
    response = operator_api.post(REGISTER, BODY, format="json")

    assert response.status_code == 201
    assert response.json()["weight_pinned"] is False


def test_the_register_api_pins_and_an_update_that_omits_it_keeps_the_pin(operator_api):
    # given
    created = operator_api.post(
        REGISTER, {**BODY, "weight": 5.0, "weight_pinned": True}, format="json"
    )
    assert created.status_code == 201
    assert (created.json()["weight"], created.json()["weight_pinned"]) == (5.0, True)
    # when: re-registered after a restart, without the optional fields
    updated = operator_api.post(REGISTER, {**BODY, "max_capacity": 40}, format="json")
    # then
    assert updated.status_code == 200
    service = Service.objects.get(service_id="llm-code")
    assert (service.weight, service.weight_pinned, service.max_capacity) == (5.0, True, 40)
    listed = operator_api.get("/api/v1/services/llm-code").json()
    assert listed["weight_pinned"] is True


def test_the_register_api_unpins(operator_api):
    operator_api.post(REGISTER, {**BODY, "weight_pinned": True}, format="json")

    response = operator_api.post(REGISTER, {**BODY, "weight_pinned": False}, format="json")

    assert response.status_code == 200
    assert Service.objects.get(service_id="llm-code").weight_pinned is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "Must be true or false."),
        (1, "Must be true or false."),
        (None, "This field may not be null."),
    ],
)
def test_weight_pinned_must_be_a_boolean(operator_api, value, message):
    response = operator_api.post(REGISTER, {**BODY, "weight_pinned": value}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"weight_pinned": [message]}


def test_the_schema_documents_the_pin_and_who_moves_an_unpinned_weight(client):
    schemas = client.get("/api/v1/schema/", {"format": "json"}).json()["components"]["schemas"]
    register = schemas["ServiceRegister"]["properties"]

    assert register["weight_pinned"]["type"] == "boolean"
    assert "rebalance" in register["weight_pinned"]["description"]
    assert "rebalance" in register["weight"]["description"]
    assert "weight_pinned" in register["weight"]["description"]
    assert "weight_pinned" not in schemas["ServiceRegister"].get("required", [])
    assert schemas["Service"]["properties"]["weight_pinned"]["type"] == "boolean"


def test_the_admin_form_pins_and_says_what_rebalance_does_to_the_weight(admin_client):
    # given
    service = Service.objects.create(
        service_id="llm-code",
        service_type="inference",
        endpoint="http://127.0.0.1:8102",
        max_capacity=32,
    )
    url = f"/admin/registry/service/{service.pk}/change/"
    page = admin_client.get(url)
    html = page.content.decode()
    assert 'name="weight_pinned"' in html
    assert "rebalance job moves it" in html  # the weight's help text
    # when
    response = admin_client.post(
        url,
        {
            "service_id": "llm-code",
            "service_type": "inference",
            "endpoint": "http://127.0.0.1:8102",
            "status": "active",
            "max_capacity": "32",
            "weight": "5",
            "weight_pinned": "on",
            "health_path": "/health",
            "metadata": "{}",
            "_save": "Save",
        },
    )
    # then
    assert response.status_code == 302
    service.refresh_from_db()
    assert (service.weight, service.weight_pinned) == (5.0, True)
