"""build_fleet_snapshot turns the registry into the routing core's FleetSnapshot."""

import pytest

from registry.models import Capability, Service
from registry.services import current_registry_version
from registry.snapshot import build_fleet_snapshot
from routing.core.types import FleetSnapshot, Health, ServiceSpec, ServiceStatus

pytestmark = pytest.mark.django_db


def test_an_empty_registry_gives_an_empty_snapshot():
    snapshot = build_fleet_snapshot()
    assert isinstance(snapshot, FleetSnapshot)
    assert len(snapshot) == 0
    assert snapshot.version == 0


def test_it_builds_specs_with_capabilities_status_health_and_the_version():
    # given
    analysis = Capability.objects.create(name="analysis")
    vision = Capability.objects.create(name="vision")
    b = Service.objects.create(
        service_id="b-vision",
        service_type="inference",
        endpoint="http://127.0.0.1:8102",
        max_capacity=8,
        weight=2.0,
        status="draining",
        health="healthy",
    )
    b.capabilities.set([analysis, vision])
    Service.objects.create(
        service_id="a-store",
        service_type="storage",
        endpoint="http://127.0.0.1:8101",
        max_capacity=100,
        health="unhealthy",
    )

    # when
    snapshot = build_fleet_snapshot()

    # then
    assert snapshot.version == current_registry_version()
    assert snapshot.service_ids == ("a-store", "b-vision")
    assert snapshot.services[1] == ServiceSpec(
        service_id="b-vision",
        service_type="inference",
        endpoint="http://127.0.0.1:8102",
        capabilities=frozenset({"analysis", "vision"}),
        max_capacity=8,
        weight=2.0,
        status=ServiceStatus.DRAINING,
        health=Health.HEALTHY,
    )
    assert snapshot.services[0].capabilities == frozenset()
    assert snapshot.capability_names == ("analysis", "vision")
    assert list(snapshot.capacity) == [100.0, 8.0]
    assert list(snapshot.routable) == [False, False]  # unhealthy; draining


def test_it_reads_the_registry_in_a_fixed_number_of_queries(django_assert_num_queries):
    for i in range(5):
        service = Service.objects.create(
            service_id=f"svc-{i}",
            service_type="analysis",
            endpoint="http://127.0.0.1:8101",
            max_capacity=1,
        )
        service.capabilities.add(Capability.objects.get_or_create(name=f"cap-{i % 2}")[0])

    # version + services + their capabilities, whatever the fleet size
    with django_assert_num_queries(3):
        snapshot = build_fleet_snapshot()
    assert len(snapshot) == 5
