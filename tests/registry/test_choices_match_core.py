"""The registry's status and health strings are the routing core's."""

from registry.choices import ServiceHealth, ServiceStatus, ServiceType
from routing.core import types


def test_status_values_match_the_core():
    assert set(ServiceStatus.values) == {s.value for s in types.ServiceStatus}


def test_health_values_match_the_core():
    assert set(ServiceHealth.values) == {h.value for h in types.Health}


def test_the_service_types_are_the_documented_ones():
    assert set(ServiceType.values) == {
        "inference",
        "storage",
        "consensus",
        "analysis",
        "neuromorphic",
        "learning",
        "custom",
    }
