"""The registry version goes up on every change to a service or a capability."""

import pytest

from registry.models import Capability, Service
from registry.services import (
    bump_registry_version,
    current_registry_version,
    register_service,
    remove_service,
    set_status,
)
from registry.signals import registry_changed

pytestmark = pytest.mark.django_db


def new_service(service_id: str = "svc-a") -> Service:
    return Service.objects.create(
        service_id=service_id,
        service_type="inference",
        endpoint="http://127.0.0.1:8101",
        max_capacity=10,
    )


def test_it_starts_at_zero_and_counts_up():
    assert current_registry_version() == 0
    assert bump_registry_version() == 1
    assert bump_registry_version() == 2
    assert current_registry_version() == 2


def test_creating_a_service_bumps_it():
    before = current_registry_version()
    new_service()
    assert current_registry_version() > before


def test_saving_a_service_bumps_it():
    # given
    service = new_service()
    before = current_registry_version()
    # when
    service.weight = 2.0
    service.save()
    # then
    assert current_registry_version() > before


def test_deleting_a_service_bumps_it():
    service = new_service()
    before = current_registry_version()
    service.delete()
    assert current_registry_version() > before


def test_deleting_services_through_a_queryset_bumps_it():
    new_service("a")
    new_service("b")
    before = current_registry_version()
    Service.objects.all().delete()
    assert current_registry_version() > before


def test_adding_removing_and_clearing_capabilities_bump_it():
    service = new_service()
    analysis = Capability.objects.create(name="analysis")
    for change in (
        lambda: service.capabilities.add(analysis),
        lambda: service.capabilities.remove(analysis),
        lambda: service.capabilities.set([analysis]),
        lambda: service.capabilities.clear(),
        lambda: analysis.services.add(service),  # from the capability's side
    ):
        before = current_registry_version()
        change()
        assert current_registry_version() > before


def test_re_adding_a_capability_the_service_already_has_does_not_bump_it():
    service = new_service()
    analysis = Capability.objects.create(name="analysis")
    service.capabilities.add(analysis)
    before = current_registry_version()
    service.capabilities.add(analysis)
    assert current_registry_version() == before


def test_creating_changing_and_deleting_a_capability_bump_it():
    before = current_registry_version()
    capability = Capability.objects.create(name="analysis")
    assert current_registry_version() > before

    before = current_registry_version()
    capability.description = "Looks at data"
    capability.save()
    assert current_registry_version() > before

    before = current_registry_version()
    capability.delete()
    assert current_registry_version() > before


def test_registry_functions_bump_it():
    payload = {
        "service_id": "svc-a",
        "service_type": "analysis",
        "endpoint": "http://127.0.0.1:8101",
        "capabilities": ["analysis"],
        "max_capacity": 5,
    }
    for change in (
        lambda: register_service(payload),
        lambda: register_service({**payload, "max_capacity": 6}),
        lambda: set_status(["svc-a"], "draining"),
        lambda: remove_service("svc-a"),
    ):
        before = current_registry_version()
        change()
        assert current_registry_version() > before


def test_registry_changed_is_sent_with_the_new_version_after_commit(
    django_capture_on_commit_callbacks,
):
    # given
    received = []

    def receiver(sender, version, **kwargs):
        received.append(version)

    registry_changed.connect(receiver)
    try:
        # when
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            version = bump_registry_version()
        # then: nothing before commit, the version once the callbacks run
        assert received == []
        for callback in callbacks:
            callback()
        assert received == [version]
    finally:
        registry_changed.disconnect(receiver)
