"""The admin add/change/delete pages validate like the API and keep the registry in step."""

import pytest

from registry.models import Capability, Service
from registry.services import current_registry_version
from registry.signals import service_registered, service_removed

pytestmark = pytest.mark.django_db

ADD = "/admin/registry/service/add/"


def form_data(**overrides) -> dict:
    data = {
        "service_id": "svc-a",
        "service_type": "analysis",
        "endpoint": "http://127.0.0.1:8101",
        "status": "active",
        "max_capacity": "10",
        "weight": "1.0",
        "health_path": "/health",
        "metadata": "{}",
        "_save": "Save",
    }
    return {**data, **overrides}


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://example.com/",
        "http://user:pw@127.0.0.1/",
    ],
)
def test_the_add_form_refuses_a_bad_endpoint(admin_client, endpoint):
    response = admin_client.post(ADD, form_data(endpoint=endpoint))
    assert response.status_code == 200  # the form again, with errors
    assert "endpoint" in response.context["adminform"].form.errors
    assert not Service.objects.exists()


@pytest.mark.parametrize(
    "field, value",
    [("max_capacity", "0"), ("weight", "-1"), ("service_id", "bad id"), ("metadata", "[1]")],
)
def test_the_add_form_refuses_other_bad_values(admin_client, field, value):
    response = admin_client.post(ADD, form_data(**{field: value}))
    assert field in response.context["adminform"].form.errors
    assert not Service.objects.exists()


def test_the_add_form_saves_a_service_with_capabilities(
    admin_client, django_capture_on_commit_callbacks
):
    # given
    analysis = Capability.objects.create(name="analysis")
    before = current_registry_version()
    announced = []

    def receiver(sender, service, created, **kwargs):
        announced.append((service.service_id, created))

    service_registered.connect(receiver)
    try:
        # when
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(ADD, form_data(capabilities=[analysis.pk]))
    finally:
        service_registered.disconnect(receiver)
    # then
    assert response.status_code == 302
    service = Service.objects.get(service_id="svc-a")
    assert list(service.capabilities.values_list("name", flat=True)) == ["analysis"]
    assert current_registry_version() > before
    assert announced == [("svc-a", True)]


def test_the_change_page_uses_a_two_pane_capability_picker(admin_client):
    service = Service.objects.create(
        service_id="svc-a",
        service_type="analysis",
        endpoint="http://127.0.0.1:8101",
        max_capacity=1,
    )
    response = admin_client.get(f"/admin/registry/service/{service.pk}/change/")
    assert response.status_code == 200
    assert "selectfilter" in response.content.decode().lower()


def test_deleting_in_admin_announces_the_removal(admin_client, django_capture_on_commit_callbacks):
    # given
    services = [
        Service.objects.create(
            service_id=sid,
            service_type="analysis",
            endpoint="http://127.0.0.1:8101",
            max_capacity=1,
        )
        for sid in ("a", "b")
    ]
    removed = []

    def receiver(sender, service_id, **kwargs):
        removed.append(service_id)

    service_removed.connect(receiver)
    try:
        # when: one through its delete page, one through the bulk "delete selected" action
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(f"/admin/registry/service/{services[0].pk}/delete/", {"post": "yes"})
            admin_client.post(
                "/admin/registry/service/",
                {"action": "delete_selected", "_selected_action": [services[1].pk], "post": "yes"},
            )
    finally:
        service_removed.disconnect(receiver)
    # then
    assert not Service.objects.exists()
    assert sorted(removed) == ["a", "b"]
