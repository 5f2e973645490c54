"""register_service creates or updates a service, its capabilities, and announces it."""

import pytest
from django.core.exceptions import ValidationError

from registry.models import Capability, Service
from registry.services import current_registry_version, register_service
from registry.signals import service_registered

pytestmark = pytest.mark.django_db

PAYLOAD = {
    "service_id": "custom_processor",
    "service_type": "custom",
    "endpoint": "http://localhost:8006",
    "capabilities": ["processing", "analysis"],
    "max_capacity": 100,
}


@pytest.fixture
def announcements():
    received = []

    def receiver(sender, service, created, **kwargs):
        received.append((service.service_id, created))

    service_registered.connect(receiver)
    yield received
    service_registered.disconnect(receiver)


def test_it_creates_the_service_and_its_capabilities():
    service, created = register_service(PAYLOAD)

    assert created is True
    stored = Service.objects.get(service_id="custom_processor")
    assert stored == service
    assert (stored.service_type, stored.endpoint, stored.max_capacity) == (
        "custom",
        "http://localhost:8006",
        100,
    )
    assert sorted(stored.capabilities.values_list("name", flat=True)) == [
        "analysis",
        "processing",
    ]


def test_it_reuses_existing_capabilities():
    Capability.objects.create(name="analysis", description="kept")
    register_service(PAYLOAD)
    assert Capability.objects.count() == 2
    assert Capability.objects.get(name="analysis").description == "kept"


def test_registering_an_existing_id_updates_it():
    # given
    register_service(PAYLOAD)
    # when
    service, created = register_service(
        {**PAYLOAD, "max_capacity": 7, "capabilities": ["analysis", "vision"], "weight": 2.5}
    )
    # then
    assert created is False
    service.refresh_from_db()
    assert (service.max_capacity, service.weight) == (7, 2.5)
    assert sorted(service.capabilities.values_list("name", flat=True)) == ["analysis", "vision"]
    assert Service.objects.count() == 1


def test_omitted_optional_fields_keep_their_values_on_update():
    register_service({**PAYLOAD, "weight": 3.0, "metadata": {"team": "ml"}})
    service, _ = register_service(PAYLOAD)
    service.refresh_from_db()
    assert (service.weight, service.metadata) == (3.0, {"team": "ml"})


def test_it_leaves_status_and_health_alone():
    service, _ = register_service(PAYLOAD)
    Service.objects.filter(pk=service.pk).update(status="disabled", health="healthy")
    service, _ = register_service({**PAYLOAD, "max_capacity": 5})
    service.refresh_from_db()
    assert (service.status, service.health) == ("disabled", "healthy")


def test_an_unchanged_registration_writes_nothing():
    # given
    register_service(PAYLOAD)
    updated_at = Service.objects.get().updated_at
    version = current_registry_version()
    # when
    _, created = register_service({**PAYLOAD, "capabilities": ["analysis", "processing"]})
    # then
    assert created is False
    assert current_registry_version() == version
    assert Service.objects.get().updated_at == updated_at


@pytest.mark.parametrize(
    "change, field",
    [
        ({"endpoint": "http://169.254.169.254/"}, "endpoint"),
        ({"max_capacity": 0}, "max_capacity"),
        ({"service_id": "not a slug"}, "service_id"),
        ({"capabilities": ["fine", "not fine"]}, "capabilities"),
        ({"service_type": "quantum"}, "service_type"),
    ],
)
def test_it_refuses_an_invalid_payload_and_stores_nothing(change, field):
    with pytest.raises(ValidationError) as info:
        register_service({**PAYLOAD, **change})
    assert field in info.value.message_dict
    assert not Service.objects.exists()


def test_it_announces_created_and_changed_services_after_commit(
    announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        register_service(PAYLOAD)
    with django_capture_on_commit_callbacks(execute=True):
        register_service({**PAYLOAD, "max_capacity": 5})
    with django_capture_on_commit_callbacks(execute=True):
        register_service({**PAYLOAD, "max_capacity": 5})  # unchanged: no announcement

    assert announcements == [("custom_processor", True), ("custom_processor", False)]


def test_nothing_is_announced_before_commit(announcements, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        register_service(PAYLOAD)
    assert announcements == []
