"""remove_service deletes a service and announces its id after commit."""

import pytest

from registry.models import Capability, Service
from registry.services import register_service, remove_service
from registry.signals import service_removed

pytestmark = pytest.mark.django_db


def test_it_deletes_the_service_but_keeps_capabilities():
    register_service(
        {
            "service_id": "svc-a",
            "service_type": "storage",
            "endpoint": "http://127.0.0.1:8104",
            "capabilities": ["storage"],
            "max_capacity": 3,
        }
    )
    remove_service("svc-a")
    assert not Service.objects.exists()
    assert Capability.objects.filter(name="storage").exists()


def test_an_unknown_id_raises_does_not_exist():
    with pytest.raises(Service.DoesNotExist):
        remove_service("nope")


def test_it_sends_service_removed_after_commit(django_capture_on_commit_callbacks):
    # given
    Service.objects.create(
        service_id="svc-a",
        service_type="storage",
        endpoint="http://127.0.0.1:8104",
        max_capacity=3,
    )
    removed = []

    def receiver(sender, service_id, **kwargs):
        removed.append(service_id)

    service_removed.connect(receiver)
    try:
        # when
        with django_capture_on_commit_callbacks(execute=True):
            remove_service("svc-a")
    finally:
        service_removed.disconnect(receiver)
    # then
    assert removed == ["svc-a"]
